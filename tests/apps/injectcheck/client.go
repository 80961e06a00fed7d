package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// command is one line of the client's stdin.
type command struct {
	Mode           string `json:"mode"`             // "check" (default) or "bench"
	N              int    `json:"n"`                // requests
	C              int    `json:"c"`                // concurrent workers
	Expect         string `json:"expect"`           // inject | none | any, for plain requests
	OwnEvery       int    `json:"own_every"`        // every k-th request carries its own traceparent
	CloseEvery     int    `json:"close_every"`      // every k-th request closes its connection
	LongURLEvery   int    `json:"long_url_every"`   // request line longer than the injector's window
	BigHeaderEvery int    `json:"big_header_every"` // header block longer than the window
	MaxBody        int    `json:"max_body"`         // largest body (default 300000)
	IDs            bool   `json:"ids"`              // report the inserted ids by path
	Seed           int64  `json:"seed"`
}

type summary struct {
	Requests       int               `json:"requests"`
	Verified       int               `json:"verified"`  // echo == sent bytes (+ one inserted line)
	Injected       int               `json:"injected"`  // one traceparent line was inserted
	Untouched      int               `json:"untouched"` // echo == sent bytes exactly
	OwnTraceparent int               `json:"own_traceparent"`
	Corrupted      int               `json:"corrupted"`  // echo differs otherwise
	Errors         int               `json:"errors"`     // transport errors
	Unexpected     int               `json:"unexpected"` // inserted where not expected or v.v.
	Unverified     int               `json:"unverified"` // on a connection already broken
	NewConns       int64             `json:"new_conns"`
	LeftoverBytes  int               `json:"leftover_bytes"` // written but never echoed
	ElapsedNs      int64             `json:"elapsed_ns"`
	IDs            map[string]string `json:"ids,omitempty"` // path -> "trace-span-flags"
	Samples        []string          `json:"samples,omitempty"`
}

// recConn records every byte written, so that echoes can be compared with them.
type recConn struct {
	net.Conn
	mu     sync.Mutex
	cond   *sync.Cond
	sent   []byte // written, not yet matched with an echo
	next   int    // index (on this connection) of the next request to match
	broken bool
}

func newRecConn(c net.Conn) *recConn {
	rc := &recConn{Conn: c}
	rc.cond = sync.NewCond(&rc.mu)
	return rc
}

func (rc *recConn) Write(p []byte) (int, error) {
	rc.mu.Lock() // record first: the echo can only come after the write
	rc.sent = append(rc.sent, p...)
	rc.mu.Unlock()
	n, err := rc.Conn.Write(p)
	if n < len(p) {
		rc.mu.Lock()
		rc.sent = rc.sent[:len(rc.sent)-(len(p)-n)]
		rc.mu.Unlock()
	}
	return n, err
}

func (rc *recConn) markBroken() {
	rc.mu.Lock()
	rc.broken = true
	rc.cond.Broadcast()
	rc.mu.Unlock()
}

type client struct {
	base     string
	checked  *http.Client // through recording connections
	plain    *http.Client // for benchmarks
	seq      atomic.Int64
	newConns atomic.Int64
	connsMu  sync.Mutex
	conns    []*recConn
}

func runClient(base string) {
	cl := newClient(base)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	fmt.Println("ready")
	for in.Scan() {
		var cmd command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			log.Fatalf("bad command %q: %v", in.Text(), err)
		}
		if cmd.C <= 0 {
			cmd.C = 1
		}
		if cmd.MaxBody <= 0 {
			cmd.MaxBody = 300000
		}
		if cmd.Expect == "" {
			cmd.Expect = "any"
		}
		var s *summary
		if cmd.Mode == "bench" {
			s = cl.bench(cmd)
		} else {
			s = cl.check(cmd)
		}
		if err := out.Encode(s); err != nil {
			log.Fatal(err)
		}
	}
}

func newClient(base string) *client {
	cl := &client{base: strings.TrimRight(base, "/")}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tlsConfig := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	checked := &http.Transport{
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     5 * time.Minute,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return cl.track(newRecConn(c)), nil
		},
		// Record the plaintext: what the echo is compared with.
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, tlsConfig)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return cl.track(newRecConn(tc)), nil
		},
	}
	plain := &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: tlsConfig}
	cl.checked = &http.Client{Transport: checked, Timeout: 60 * time.Second}
	cl.plain = &http.Client{Transport: plain, Timeout: 60 * time.Second}
	return cl
}

func (cl *client) track(rc *recConn) *recConn {
	cl.newConns.Add(1)
	cl.connsMu.Lock()
	cl.conns = append(cl.conns, rc)
	cl.connsMu.Unlock()
	return rc
}

// plan is one request to send and what to expect of it.
type plan struct {
	path, method, own string
	body              []byte
	chunked           bool
	close             bool
	bigHeader         bool
	expect            string
}

func (cl *client) plan(cmd command, i int, rng *rand.Rand) *plan {
	seq := cl.seq.Add(1)
	p := &plan{path: fmt.Sprintf("/seq/%d", seq), expect: cmd.Expect}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "POST", "GET"}
	p.method = methods[rng.Intn(len(methods))]
	if p.method == "POST" || p.method == "PUT" || p.method == "PATCH" {
		sizes := []int{0, 1, 17, 100, 1000, 4000, 4095, 4096, 4097, 5000, 20000, 70000, 300000}
		size := sizes[rng.Intn(len(sizes))]
		if size > cmd.MaxBody {
			size = cmd.MaxBody
		}
		p.body = makeBody(rng, size)
		p.chunked = rng.Intn(4) == 0
	}
	every := func(k int) bool { return k > 0 && i%k == k-1 }
	p.close = every(cmd.CloseEvery)
	if every(cmd.OwnEvery) {
		p.own = fmt.Sprintf("00-%032x-%016x-01", rng.Uint64(), rng.Uint64())
		p.expect = "none"
	}
	if every(cmd.LongURLEvery) {
		p.path += "?q=" + strings.Repeat("a", 5000)
		p.expect = "none"
	}
	if every(cmd.BigHeaderEvery) {
		p.bigHeader = true
		p.expect = "none"
	}
	return p
}

// makeBody: random bytes with request-like lines inside, which must never be touched.
func makeBody(rng *rand.Rand, size int) []byte {
	b := make([]byte, size)
	rng.Read(b)
	decoy := []byte("\r\nGET /decoy HTTP/1.1\r\ntraceparent: 00-x\r\n\r\n")
	for at := 0; at+len(decoy) < size; at += 1 + rng.Intn(3000) {
		copy(b[at:], decoy)
	}
	return b
}

// hiddenLength hides a body's length from net/http: it is then sent chunked.
type hiddenLength struct{ r io.Reader }

func (h hiddenLength) Read(p []byte) (int, error) { return h.r.Read(p) }

func (cl *client) request(p *plan, rng *rand.Rand) (*http.Request, error) {
	var body io.Reader
	if p.body != nil {
		body = bytes.NewReader(p.body)
		if p.chunked {
			body = hiddenLength{body}
		}
	}
	req, err := http.NewRequest(p.method, cl.base+p.path, body)
	if err != nil {
		return nil, err
	}
	req.Close = p.close
	for k := rng.Intn(6); k > 0; k-- {
		req.Header.Set(fmt.Sprintf("X-Pad-%d", k), strings.Repeat("v", 1+rng.Intn(200)))
	}
	if p.bigHeader {
		req.Header.Set("X-Big", strings.Repeat("b", 5000))
	}
	if p.own != "" {
		switch rng.Intn(3) { // any spelling of the name counts
		case 0:
			req.Header.Set("Traceparent", p.own)
		case 1:
			req.Header["traceparent"] = []string{p.own}
		default:
			req.Header["TRACEPARENT"] = []string{p.own}
		}
	}
	return req, nil
}

var inserted = regexp.MustCompile(`^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\r\n`)

// strip removes a traceparent line right after the request line; returns it, or nil.
func strip(echo []byte) ([]byte, [][]byte) {
	i := bytes.Index(echo, []byte("\r\n"))
	if i < 0 {
		return echo, nil
	}
	m := inserted.FindSubmatch(echo[i+2:])
	if m == nil {
		return echo, nil
	}
	out := append(append([]byte{}, echo[:i+2]...), echo[i+2+len(m[0]):]...)
	return out, m
}

func (cl *client) check(cmd command) *summary {
	s := &summary{}
	if cmd.IDs {
		s.IDs = map[string]string{}
	}
	var mu sync.Mutex
	note := func(f func()) { mu.Lock(); f(); mu.Unlock() }
	sample := func(format string, args ...any) {
		note(func() {
			if len(s.Samples) < 5 {
				s.Samples = append(s.Samples, fmt.Sprintf(format, args...))
			}
		})
	}
	cl.newConns.Store(0)
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < cmd.C; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(cmd.Seed*1000 + int64(w)))
			for i := range work {
				cl.one(cmd, i, rng, s, note, sample)
			}
		}(w)
	}
	for i := 0; i < cmd.N; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	s.ElapsedNs = time.Since(start).Nanoseconds()
	s.NewConns = cl.newConns.Load()
	cl.connsMu.Lock()
	for _, rc := range cl.conns {
		rc.mu.Lock()
		if !rc.broken {
			s.LeftoverBytes += len(rc.sent)
		}
		rc.mu.Unlock()
	}
	cl.connsMu.Unlock()
	return s
}

func (cl *client) one(cmd command, i int, rng *rand.Rand, s *summary, note func(func()),
	sample func(string, ...any)) {
	p := cl.plan(cmd, i, rng)
	req, err := cl.request(p, rng)
	if err != nil {
		log.Fatal(err)
	}
	var rc *recConn
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		rc, _ = info.Conn.(*recConn)
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	note(func() {
		s.Requests++
		if p.own != "" {
			s.OwnTraceparent++
		}
	})
	resp, err := cl.checked.Do(req)
	var echo []byte
	if err == nil {
		echo, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err != nil || rc == nil {
		note(func() { s.Errors++ })
		sample("%s %s: %v", p.method, p.path, err)
		if rc != nil {
			rc.markBroken()
		}
		return
	}
	index, _ := strconv.Atoi(resp.Header.Get("X-Req-Index"))
	stripped, ids := strip(echo)

	rc.mu.Lock()
	for !rc.broken && rc.next != index {
		rc.cond.Wait()
	}
	if rc.broken {
		rc.mu.Unlock()
		note(func() { s.Unverified++ })
		return
	}
	ok := bytes.HasPrefix(rc.sent, stripped)
	if ok {
		rc.sent = rc.sent[len(stripped):]
		rc.next++
	} else {
		rc.broken = true
		sample("%s %s: echo differs:\n sent %q\n echo %q", p.method, p.path,
			head(rc.sent, len(stripped)), head(echo, len(echo)))
	}
	rc.cond.Broadcast()
	rc.mu.Unlock()

	note(func() {
		if !ok {
			s.Corrupted++
			return
		}
		s.Verified++
		if ids != nil {
			s.Injected++
			if s.IDs != nil {
				s.IDs[p.path] = fmt.Sprintf("%s-%s-%s", ids[1], ids[2], ids[3])
			}
		} else {
			s.Untouched++
		}
	})
	if (ids != nil && p.expect == "none") || (ids == nil && p.expect == "inject") {
		note(func() { s.Unexpected++ })
		sample("%s %s: expected %s, inserted=%v (head %q)", p.method, p.path, p.expect,
			ids != nil, head(echo, 300))
	}
}

func head(b []byte, n int) []byte {
	if n > len(b) {
		n = len(b)
	}
	if n > 600 {
		n = 600
	}
	return b[:n]
}

// bench: plain GETs as fast as possible, nothing recorded or checked (own_every: some
// carry their own traceparent).
func (cl *client) bench(cmd command) *summary {
	s := &summary{Requests: cmd.N}
	var errs atomic.Int64
	work := make(chan int, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < cmd.C; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				req, err := http.NewRequest("GET", cl.base+"/bench", nil)
				if err != nil {
					log.Fatal(err)
				}
				if cmd.OwnEvery > 0 && i%cmd.OwnEvery == 0 {
					req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
				}
				resp, err := cl.plain.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					errs.Add(1)
				}
			}
		}()
	}
	for i := 0; i < cmd.N; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	s.ElapsedNs = time.Since(start).Nanoseconds()
	s.Errors = int(errs.Load())
	return s
}
