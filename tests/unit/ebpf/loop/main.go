// Command loop calls a probed function on request, for gotel's BPF runtime tests.
//
// Protocol on stdin/stdout, one line each: it prints "ready", then for every line
// "N BASE" calls probed(BASE+i, i) for i in [0, N) and prints "done N". It exits on EOF.
package main

import (
	"bufio"
	"fmt"
	"os"
)

var sink int

//go:noinline
func probed(x int, y int) int {
	return x*3 + y
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for in.Scan() {
		var n, base int
		if _, err := fmt.Sscan(in.Text(), &n, &base); err != nil {
			fmt.Fprintln(os.Stderr, "bad request:", err)
			os.Exit(2)
		}
		for i := 0; i < n; i++ {
			sink += probed(base+i, i)
		}
		fmt.Println("done", n)
	}
}
