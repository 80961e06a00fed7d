// A service that starts spans by hand with the OpenTelemetry Go API, for gotel's bridge tests.
//
//	/work        a manual span (kind, attributes of every kind, SetAttributes, an event,
//	             SetName) around an outgoing HTTP call made with the span's context
//	/fail        a manual span whose status is set to Error
//	/nested      a manual span inside a manual span, each with a client call
//	/background  a manual span started in a goroutine of the handler
//	/limits      more attributes than gotel keeps, a long value, a long key, a long name
//	/db          a manual span around two SQL queries (database/sql, SQLite in memory)
//	/repeat?n=N  N manual spans, each with two attributes at Start and one set later (bench)
//
// With -sdk the program installs its own SDK tracer provider (exporting to stdout), so its
// spans are its own: gotel must not export them a second time.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite"
)

var tracer = otel.Tracer("gotel.test/otelapp")

var backend string // base URL of this server, for the client calls

func call(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, backend+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func work(w http.ResponseWriter, r *http.Request) {
	ctx, span := tracer.Start(r.Context(), "manual-work",
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("app.tier", "gold"),
			attribute.Int("app.items", 3),
			attribute.Bool("app.cached", true),
			attribute.Float64("app.ratio", 0.25),
			attribute.StringSlice("app.tags", []string{"a", "bc"}),
			attribute.Int64Slice("app.sizes", []int64{1, 2, 3}),
		))
	span.SetAttributes(attribute.String("app.later", "set"), attribute.Int64("app.count", 42))
	span.AddEvent("checkpoint")
	span.SetName("manual-work-renamed")
	err := call(ctx, "/leaf")
	if err != nil {
		span.RecordError(err)
	}
	span.End()
	fmt.Fprintln(w, "work done")
}

func fail(w http.ResponseWriter, r *http.Request) {
	_, span := tracer.Start(r.Context(), "manual-fail", trace.WithSpanKind(trace.SpanKindClient))
	span.SetStatus(codes.Error, "it broke")
	span.RecordError(errors.New("it broke"))
	span.End()
	http.Error(w, "failed", http.StatusInternalServerError)
}

func nested(w http.ResponseWriter, r *http.Request) {
	ctx, outer := tracer.Start(r.Context(), "manual-outer")
	ictx, inner := tracer.Start(ctx, "manual-inner", trace.WithSpanKind(trace.SpanKindProducer))
	_ = call(ictx, "/leaf")
	inner.End()
	_ = call(ctx, "/leaf")
	outer.End()
	fmt.Fprintln(w, "nested done")
}

func background(w http.ResponseWriter, r *http.Request) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func(ctx context.Context) {
		defer wg.Done()
		ctx, span := tracer.Start(ctx, "manual-background")
		_ = call(ctx, "/leaf")
		span.End()
	}(r.Context())
	wg.Wait()
	fmt.Fprintln(w, "background done")
}

func limits(w http.ResponseWriter, r *http.Request) {
	attrs := make([]attribute.KeyValue, 0, 20)
	for i := 0; i < 20; i++ {
		attrs = append(attrs, attribute.Int(fmt.Sprintf("app.n%02d", i), i))
	}
	_, span := tracer.Start(r.Context(), strings.Repeat("n", 150), trace.WithAttributes(attrs[:10]...))
	span.SetAttributes(attribute.String("app.long", strings.Repeat("v", 200)),
		attribute.String("app."+strings.Repeat("k", 40), "x"))
	span.SetAttributes(attrs[10:]...)
	span.End()
	fmt.Fprintln(w, "limits done")
}

var db *sql.DB

func query(w http.ResponseWriter, r *http.Request) {
	ctx, span := tracer.Start(r.Context(), "manual-db")
	defer span.End()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE name = 'secret'").Scan(&n); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO items (name) VALUES (?)", "x"); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, n)
}

func repeat(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	for i := 0; i < n; i++ {
		_, span := tracer.Start(r.Context(), "step",
			trace.WithAttributes(attribute.Int("app.step", i), attribute.String("app.tier", "gold")))
		span.SetAttributes(attribute.Bool("app.done", true))
		span.End()
	}
	fmt.Fprintln(w, n)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	useSDK := flag.Bool("sdk", false, "install an SDK tracer provider exporting to stdout")
	flag.Parse()
	if *useSDK {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			log.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		otel.SetTracerProvider(tp)
	}
	var err error
	if db, err = sql.Open("sqlite", ":memory:"); err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	if _, err = db.Exec("CREATE TABLE items (name TEXT)"); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	backend = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/work", work)
	mux.HandleFunc("/fail", fail)
	mux.HandleFunc("/nested", nested)
	mux.HandleFunc("/background", background)
	mux.HandleFunc("/limits", limits)
	mux.HandleFunc("/repeat", repeat)
	mux.HandleFunc("/db", query)
	mux.HandleFunc("/leaf", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "leaf") })
	fmt.Printf("listening on %s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
