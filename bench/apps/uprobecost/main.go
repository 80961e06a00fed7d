// uprobecost times a tight loop calling one non-inlined function, so that the
// harness can compare the cost per call with and without a uprobe on it.
//
// Protocol (stdin/stdout, one line each): it prints "ready"; for every line
// "N" it reads it calls target N times and prints
// "ns/call <wall> cpu-ns/call <thread CPU> calls <N>". The process stays up
// between runs so the harness can attach and detach probes on the same pid.
//
// Thread CPU time is the figure to use on a shared machine: wall time also
// counts the moments other processes held the CPU, while the uprobe's trap,
// BPF program and single-step are all charged to this thread.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

var sink uint64

// target is what the uprobes are put on. It is not a leaf: the call to step
// gives it a frame and Go's usual stack-check prologue, so its first
// instruction is the same kind a uprobe hits at the entry of a real Go
// function (cmp rsp, [r14+0x10] in net/http.serverHandler.ServeHTTP too).
//
//go:noinline
func target(x uint64) uint64 {
	return step(x) + 1
}

//go:noinline
func step(x uint64) uint64 {
	return x*31 + 7
}

const clockThreadCPUTimeID = 3 // CLOCK_THREAD_CPUTIME_ID

// threadCPU is this OS thread's CPU time (user + system). The caller must be
// locked to its thread (runtime.LockOSThread) for two readings to compare.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	_, _, errno := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID,
		uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(errno)
	}
	return time.Duration(ts.Nano())
}

func run(n int) (wall, cpu time.Duration) {
	acc := sink
	start, cpuStart := time.Now(), threadCPU()
	for i := 0; i < n; i++ {
		acc = target(acc + uint64(i))
	}
	cpu, wall = threadCPU()-cpuStart, time.Since(start)
	sink = acc // keeps the loop from being optimised away
	return wall, cpu
}

func main() {
	runtime.LockOSThread() // the loop and its CPU clock stay on one thread
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil || n <= 0 {
			fmt.Println("error: want a positive count")
			continue
		}
		wall, cpu := run(n)
		fmt.Printf("ns/call %.3f cpu-ns/call %.3f calls %d\n",
			float64(wall.Nanoseconds())/float64(n), float64(cpu.Nanoseconds())/float64(n), n)
	}
}
