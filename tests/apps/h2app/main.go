// An HTTP service for gotel's HTTP/2 and TLS tests: it serves over TLS (HTTP/1.1 and h2 by
// ALPN, with a self-signed certificate it makes at start), h2c through Go's own
// Server.Protocols, or h2c through golang.org/x/net/http2/h2c, and calls a downstream
// service over h2 (TLS or h2c) or HTTP/1 from /chain.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

var (
	serve      = flag.String("serve", "tls", "tls (h2 and HTTP/1.1 by ALPN), h2c (Server.Protocols), xh2c (x/net h2c), http1")
	downstream = flag.String("downstream", "", "base URL /chain calls")
	call       = flag.String("call", "h2", "how /chain calls downstream: h2 (TLS or h2c by the URL's scheme), http1")
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s proto=%s\n", r.PathValue("id"), r.Proto)
	})
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /chain", chain)
	mux.HandleFunc("GET /load", load)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	server := &http.Server{Handler: mux}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	switch *serve {
	case "tls":
		server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned()}}
		log.Fatal(server.ServeTLS(ln, "", ""))
	case "h2c":
		server.Protocols = new(http.Protocols)
		server.Protocols.SetHTTP1(true)
		server.Protocols.SetUnencryptedHTTP2(true)
		log.Fatal(server.Serve(ln))
	case "xh2c":
		server.Handler = h2c.NewHandler(mux, &http2.Server{})
		log.Fatal(server.Serve(ln))
	case "http1":
		log.Fatal(server.Serve(ln))
	}
	log.Fatalf("unknown -serve %q", *serve)
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, valid for a day.
func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gotel test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

var client = sync.OnceValue(func() *http.Client {
	transport := &http.Transport{
		// The downstream's certificate is the self-signed one it made at start.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: *call == "h2",
		Protocols:         new(http.Protocols),
	}
	transport.Protocols.SetHTTP1(*call == "http1")
	if *call == "h2" {
		transport.Protocols.SetHTTP2(true)
		transport.Protocols.SetUnencryptedHTTP2(true) // http:// URLs: h2c with prior knowledge
	}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
})

// chain calls the downstream's /chain (its own traceparent header when asked); the last
// service answers with the traceparent it received and its protocol (status 503 for
// hop=fail).
func chain(w http.ResponseWriter, r *http.Request) {
	if *downstream == "" {
		if r.URL.Query().Get("hop") == "fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "traceparent=%s proto=%s\n", r.Header.Get("Traceparent"), r.Proto)
		return
	}
	body, status, err := get(r.Context(), *downstream+"/chain?hop="+r.URL.Query().Get("hop"),
		r.URL.Query().Get("traceparent"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func get(ctx context.Context, url, traceparent string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	resp, err := client().Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode, err
}

// load makes n downstream calls from c goroutines, each request's hop naming it, and
// answers with what the downstream saw per hop: {"hop": "traceparent=... proto=..."}.
func load(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	c, _ := strconv.Atoi(r.URL.Query().Get("c"))
	var next atomic.Int64
	var mu sync.Mutex
	seen := map[string]string{}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				hop := strconv.FormatInt(i, 10)
				body, status, err := get(r.Context(), *downstream+"/chain?hop="+hop, "")
				if err != nil || status != http.StatusOK {
					failed.Add(1)
					continue
				}
				mu.Lock()
				seen[hop] = body
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	json.NewEncoder(w).Encode(map[string]any{"failed": failed.Load(), "seen": seen})
}
