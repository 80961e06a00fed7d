// uprobecost times a tight loop calling one non-inlined function, so that the
// harness can compare ns/call with and without a uprobe on that function.
//
// Protocol (stdin/stdout, one line each): it prints "ready"; for every line
// "N" it reads it calls target N times and prints "ns/call <float> calls <N>".
// The process stays up between runs so the harness can attach and detach
// probes on the same pid in between.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

var sink uint64

// target is what the uprobes are put on. It is not a leaf of zero size: the
// call to step gives it a frame and Go's usual stack-check prologue, so its
// first instruction is the same kind of instruction a uprobe hits at the entry
// of a real Go function (such as net/http.serverHandler.ServeHTTP).
//
//go:noinline
func target(x uint64) uint64 {
	return step(x) + 1
}

//go:noinline
func step(x uint64) uint64 {
	return x*31 + 7
}

func run(n int) time.Duration {
	acc := sink
	start := time.Now()
	for i := 0; i < n; i++ {
		acc = target(acc + uint64(i))
	}
	elapsed := time.Since(start)
	sink = acc // keeps the loop from being optimised away
	return elapsed
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil || n <= 0 {
			fmt.Println("error: want a positive count")
			continue
		}
		elapsed := run(n)
		fmt.Printf("ns/call %.3f calls %d\n", float64(elapsed.Nanoseconds())/float64(n), n)
	}
}
