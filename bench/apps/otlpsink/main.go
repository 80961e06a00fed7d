// otlpsink is the benchmarks' OTLP trace receiver: it decodes every request
// (OTLP/HTTP protobuf, gzip or not, and OTLP/gRPC) with the OpenTelemetry
// protobuf types, counts spans and requests, and answers /stats with the
// counts as JSON. It stores nothing, so it keeps up with any agent and both
// agents of a comparison meet the same receiver.
package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed gRPC messages
	"google.golang.org/protobuf/proto"
)

type counts struct {
	spans, requests, bytes, bad atomic.Int64
	mu                          sync.Mutex
	byService                   map[string]int64
	seen                        map[[8]byte]struct{} // span ids, with -dedup
	duplicates                  atomic.Int64
}

func (c *counts) add(req *coltrace.ExportTraceServiceRequest, size int, dedup bool) {
	var n int64
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		var per int64
		for _, ss := range rs.GetScopeSpans() {
			for _, span := range ss.GetSpans() {
				per++
				if dedup {
					var id [8]byte
					copy(id[:], span.GetSpanId())
					if _, dup := c.seen[id]; dup {
						c.duplicates.Add(1)
					}
					c.seen[id] = struct{}{}
				}
			}
		}
		c.byService[service] += per
		n += per
	}
	c.mu.Unlock()
	c.spans.Add(n)
	c.requests.Add(1)
	c.bytes.Add(int64(size))
}

type traceServer struct {
	coltrace.UnimplementedTraceServiceServer
	c     *counts
	dedup bool
}

func (s *traceServer) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	s.c.add(req, proto.Size(req), s.dedup)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func main() {
	httpAddr := flag.String("http", "127.0.0.1:0", "OTLP/HTTP listen address")
	grpcAddr := flag.String("grpc", "127.0.0.1:0", "OTLP/gRPC listen address")
	dedup := flag.Bool("dedup", false, "count span ids seen twice (keeps every id in memory)")
	flag.Parse()

	c := &counts{byService: map[string]int64{}, seen: map[[8]byte]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				c.bad.Add(1)
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		req := &coltrace.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(raw, req)
		}
		if err != nil {
			c.bad.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.add(req, len(raw), *dedup)
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		services := make(map[string]int64, len(c.byService))
		for k, v := range c.byService {
			services[k] = v
		}
		c.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{
			"spans": c.spans.Load(), "requests": c.requests.Load(), "bytes": c.bytes.Load(),
			"bad_requests": c.bad.Load(), "duplicates": c.duplicates.Load(), "services": services,
		})
	})

	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		log.Fatal(err)
	}
	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		log.Fatal(err)
	}
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	coltrace.RegisterTraceServiceServer(gs, &traceServer{c: c, dedup: *dedup})
	go func() { log.Fatal(gs.Serve(gl)) }()
	fmt.Printf("ready http=%d grpc=%d\n", hl.Addr().(*net.TCPAddr).Port, gl.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	log.Fatal(http.Serve(hl, mux))
}
