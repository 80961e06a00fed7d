// The demo service that `gotel demo` builds and traces, also the tests' HTTP server: a small
// net/http service with routes, several status codes and an optional
// downstream call, so the spans it yields exercise every attribute.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

var downstream = flag.String("downstream", "", "base URL this service calls from /chain")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	mux := http.NewServeMux()
	registerRoutes(mux)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// Tests and the demo read the port from this line.
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, mux))
}

func hello(w http.ResponseWriter, id string) {
	fmt.Fprintf(w, "hello %s\n", id)
}

func createItem(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "created %d bytes\n", len(body))
}

func fail(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "boom", http.StatusInternalServerError)
}

func slow(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	time.Sleep(time.Duration(ms) * time.Millisecond)
	io.WriteString(w, "slept\n")
}

// chain calls the next service's /chain with the request's context, so traces
// span processes; the last service answers with the traceparent it received.
func chain(w http.ResponseWriter, r *http.Request) {
	if *downstream == "" {
		fmt.Fprintf(w, "traceparent=%s\n", r.Header.Get("Traceparent"))
		return
	}
	callDownstream(r.Context(), w, r.URL.Query().Get("next"))
}

// chainDetached makes the downstream call from a new goroutine with a fresh
// context.Background(): only goroutine lineage can link it to this request.
func chainDetached(w http.ResponseWriter, _ *http.Request) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		callDownstream(context.Background(), w, "")
	}()
	<-done
}

// callDownstream calls the next service's /chain, or /chain-<next> when asked
// (next=detached: the next service calls on from a detached goroutine).
func callDownstream(ctx context.Context, w http.ResponseWriter, next string) {
	if *downstream == "" {
		io.WriteString(w, "no downstream\n")
		return
	}
	path := "/chain"
	if next != "" {
		path += "-" + next
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *downstream+path, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	io.Copy(w, resp.Body)
}
