// A short-lived HTTP client for gotel's exec-time tests: it GETs -url -n times,
// -every apart, prints each status and exits (well under a second by default),
// the kind of program only an agent that catches execs can trace.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := flag.String("url", "", "what to GET")
	n := flag.Int("n", 10, "requests")
	every := flag.Duration("every", 30*time.Millisecond, "pause between requests")
	flag.Parse()
	failed := 0
	for i := 0; i < *n; i++ {
		if i > 0 {
			time.Sleep(*every)
		}
		resp, err := http.Get(fmt.Sprintf("%s%d", *url, i))
		if err != nil {
			fmt.Println("error", err)
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(i, resp.StatusCode)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
