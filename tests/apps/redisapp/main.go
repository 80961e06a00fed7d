// A net/http service whose handlers run go-redis commands, for gotel's tests: each request's
// Redis spans must nest under its HTTP server span.
//
// POST /commands?key=K with the value V as its body (never in the URL, which the HTTP server
// span records) runs, with the request's context: SET K V, GET K (a hit),
// GET K:missing (redis.Nil), INCR K:counter, INCR K (an error reply: V is not an integer),
// a pipeline (SET K:p V, GET K:p, INCR K:counter) and a MULTI/EXEC transaction
// (INCR K:counter, GET K). /background?key=K runs GET K with context.Background(), so its
// span's parent comes from the goroutine. /parallel?key=K&n=N runs GET K from N new
// goroutines at once, with the request's context (their small stacks grow inside go-redis).
// Each prints one line per command: NAME=RESULT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "redis-server address")
	db := flag.Int("db", 0, "Redis database index")
	flag.Parse()

	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, DB: *db})
	mux := http.NewServeMux()
	mux.HandleFunc("/commands", func(w http.ResponseWriter, r *http.Request) {
		value, _ := io.ReadAll(r.Body)
		commands(w, r.Context(), rdb, r.URL.Query().Get("key"), string(value))
	})
	mux.HandleFunc("/background", func(w http.ResponseWriter, r *http.Request) {
		report(w, "GET", rdb.Get(context.Background(), r.URL.Query().Get("key")).Err())
	})

	// n GETs per request: bench/db_overhead.py's slope between two n is one command's cost.
	mux.HandleFunc("/repeat", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := 0; i < n; i++ {
			if err := rdb.Get(r.Context(), "bench:key").Err(); err != nil && !errors.Is(err, redis.Nil) {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		fmt.Fprintf(w, "%d commands", n)
	})

	mux.HandleFunc("/parallel", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = rdb.Get(r.Context(), r.URL.Query().Get("key")).Err()
			}()
		}
		wg.Wait()
		for _, err := range errs {
			report(w, "GET", err)
		}
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// Tests read the port from this line.
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, mux))
}

func commands(w http.ResponseWriter, ctx context.Context, rdb *redis.Client, key, value string) {
	report(w, "SET", rdb.Set(ctx, key, value, 0).Err())
	report(w, "GET", rdb.Get(ctx, key).Err())
	report(w, "GET-MISSING", rdb.Get(ctx, key+":missing").Err())
	report(w, "INCR", rdb.Incr(ctx, key+":counter").Err())
	report(w, "INCR-TEXT", rdb.Incr(ctx, key).Err())
	_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, key+":p", value, 0)
		pipe.Get(ctx, key+":p")
		pipe.Incr(ctx, key+":counter")
		return nil
	})
	report(w, "PIPELINE", err)
	_, err = rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Incr(ctx, key+":counter")
		pipe.Get(ctx, key)
		return nil
	})
	report(w, "MULTI", err)
}

func report(w http.ResponseWriter, name string, err error) {
	switch {
	case err == nil:
		fmt.Fprintf(w, "%s=ok\n", name)
	case errors.Is(err, redis.Nil):
		fmt.Fprintf(w, "%s=nil\n", name)
	default:
		fmt.Fprintf(w, "%s=error\n", name)
	}
}
