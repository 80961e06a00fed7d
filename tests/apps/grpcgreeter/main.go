// A gRPC service and client for gotel's tests, built on grpc's own health
// service so no generated code is needed.
//
// It serves gRPC on -addr and, with -http, an HTTP endpoint whose handler
// makes gRPC calls, so one process exercises HTTP server -> gRPC client and
// gRPC server -> gRPC/HTTP client nesting. /load makes many concurrent calls
// over one connection (gRPC then packs several streams' HEADERS frames into
// one socket write). Check's service name steers the
// server: "" answers SERVING, "fail:N" fails with code N, "grpc:ADDR" first
// calls Check on ADDR, "http:URL" first GETs URL.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	service := req.GetService()
	switch {
	case strings.HasPrefix(service, "fail:"):
		code, _ := strconv.Atoi(strings.TrimPrefix(service, "fail:"))
		return nil, status.Errorf(codes.Code(code), "failed as asked (%d)", code)
	case strings.HasPrefix(service, "grpc:"):
		if _, err := check(ctx, strings.TrimPrefix(service, "grpc:"), "", ""); err != nil {
			return nil, err
		}
	case strings.HasPrefix(service, "http:"):
		if err := get(ctx, strings.TrimPrefix(service, "http:")); err != nil {
			return nil, status.Error(codes.Unavailable, err.Error())
		}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// Watch streams three updates, then ends the stream.
func (health) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	for i := 0; i < 3; i++ {
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func get(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func dial(target string) (*grpc.ClientConn, error) {
	// grpc.Dial (not NewClient) builds with every grpc release the tests use.
	return grpc.Dial(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func withTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent)
}

func check(ctx context.Context, target, service, traceparent string) (string, error) {
	conn, err := dial(target)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(withTraceparent(ctx, traceparent),
		&healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "", err
	}
	return resp.GetStatus().String(), nil
}

func watch(ctx context.Context, target, traceparent string) (string, error) {
	conn, err := dial(target)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	stream, err := healthpb.NewHealthClient(conn).Watch(withTraceparent(ctx, traceparent),
		&healthpb.HealthCheckRequest{})
	if err != nil {
		return "", err
	}
	n := 0
	for {
		if _, err := stream.Recv(); err == io.EOF {
			return fmt.Sprintf("%d updates", n), nil
		} else if err != nil {
			return "", err
		}
		n++
	}
}

// missing calls a service nobody registered: the server answers Unimplemented.
func missing(ctx context.Context, target string) (string, error) {
	conn, err := dial(target)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var out healthpb.HealthCheckResponse
	err = conn.Invoke(ctx, "/gotel.test.Missing/Nope", &healthpb.HealthCheckRequest{}, &out)
	return "", err
}

// call serves /call?target=ADDR&rpc=check|watch|missing[&service=S][&traceparent=TP]
// and answers "code=<gRPC code> <detail>".
func call(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var (
		out string
		err error
	)
	switch q.Get("rpc") {
	case "watch":
		out, err = watch(r.Context(), q.Get("target"), q.Get("traceparent"))
	case "missing":
		out, err = missing(r.Context(), q.Get("target"))
	default:
		out, err = check(r.Context(), q.Get("target"), q.Get("service"), q.Get("traceparent"))
	}
	if err != nil {
		out = status.Convert(err).Message()
	}
	fmt.Fprintf(w, "code=%d %s\n", status.Code(err), out)
}

// load serves /load?target=ADDR&n=N&c=C: C goroutines make N unary Check calls each over
// one connection, each call with a fresh context (no trace context of the request's), and
// it answers {"calls":..,"failed":..,"elapsed_ns":..,"first_error":".."}.
func load(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	c, _ := strconv.Atoi(q.Get("c"))
	if c <= 0 {
		c = 1
	}
	conn, err := dial(q.Get("target"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: q.Get("service")})
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	first, _ := firstErr.Load().(string)
	fmt.Fprintf(w, "{\"calls\":%d,\"failed\":%d,\"elapsed_ns\":%d,\"first_error\":%q}\n",
		n*c, failed.Load(), time.Since(start).Nanoseconds(), first)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "gRPC listen address")
	httpAddr := flag.String("http", "", "HTTP listen address for /call (none when empty)")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health{})
	// Tests read the addresses from these lines.
	fmt.Printf("listening on %s\n", ln.Addr())
	if *httpAddr != "" {
		hln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			log.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/call", call)
		mux.HandleFunc("/load", load)
		mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") })
		fmt.Printf("http on %s\n", hln.Addr())
		go func() { log.Fatal(http.Serve(hln, mux)) }()
	}
	os.Stdout.Sync()
	log.Fatal(server.Serve(ln))
}
