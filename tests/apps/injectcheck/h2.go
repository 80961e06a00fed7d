package main

// HTTP/2 in cleartext (h2c, prior knowledge): what a header injector does to HEADERS frames.
//
// The server records, per connection, every byte it reads, and follows the frames: a
// HEADERS frame whose header block ends with the field an injector appends (literal
// without indexing, new name: 0x00, 11, "traceparent", 55, "00-...") has that field cut
// off again and its length restored. What is left is hashed. The client hashes every
// byte it writes on each connection. Equal hashes: the injector added those fields and
// changed nothing else. The handler also answers, per stream, the decoded traceparent
// values and the body's hash: the peer's HPACK decoder must see one field, the body
// must be intact.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	h2Preface  = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	fieldLen   = 69
	maxFrame   = 16384 // the server's SETTINGS_MAX_FRAME_SIZE: big header blocks continue
	frameHdr   = 9
	typeHeader = 0x1
)

var tpValue = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// --- server ------------------------------------------------------------------------------

// stripper follows one connection's frames and hashes them without the appended fields.
type stripper struct {
	mu       sync.Mutex
	buf      []byte
	preface  bool
	sum      hash.Hash
	raw      int64 // bytes read
	stripped int64 // bytes hashed
	injected int   // fields cut off
	bad      string
	dump     io.Writer // INJECTCHECK_DUMP: the stripped bytes, to compare by hand
}

func newStripper(name string) *stripper {
	s := &stripper{sum: sha256.New()}
	if dir := os.Getenv("INJECTCHECK_DUMP"); dir != "" {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		s.dump = f
	}
	return s
}

func injectedField(b []byte) bool {
	return len(b) == fieldLen && b[0] == 0x00 && b[1] == 11 &&
		string(b[2:13]) == "traceparent" && b[13] == 55 && tpValue.Match(b[14:])
}

func (s *stripper) hashBytes(b []byte) {
	s.sum.Write(b)
	s.stripped += int64(len(b))
	if s.dump != nil {
		s.dump.Write(b)
	}
}

func (s *stripper) feed(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw += int64(len(p))
	s.buf = append(s.buf, p...)
	if !s.preface {
		if len(s.buf) < len(h2Preface) {
			return
		}
		if string(s.buf[:len(h2Preface)]) != h2Preface {
			s.bad = "no preface"
		}
		s.hashBytes(s.buf[:len(h2Preface)])
		s.buf = s.buf[len(h2Preface):]
		s.preface = true
	}
	for len(s.buf) >= frameHdr {
		length := int(s.buf[0])<<16 | int(s.buf[1])<<8 | int(s.buf[2])
		if len(s.buf) < frameHdr+length {
			break
		}
		frame := s.buf[:frameHdr+length]
		if frame[3] == typeHeader && length >= fieldLen && injectedField(frame[len(frame)-fieldLen:]) {
			hdr := append([]byte{}, frame[:frameHdr]...)
			n := length - fieldLen
			hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
			s.hashBytes(hdr)
			s.hashBytes(frame[frameHdr : len(frame)-fieldLen])
			s.injected++
		} else {
			s.hashBytes(frame)
		}
		s.buf = s.buf[len(frame):]
	}
	if len(s.buf) == 0 {
		s.buf = nil // do not keep a large array alive
	}
}

type digest struct {
	Raw      int64  `json:"raw"`
	Stripped int64  `json:"stripped"` // hashed bytes, the pending ones included
	Pending  int    `json:"pending"`  // bytes of an incomplete frame
	SHA      string `json:"sha"`
	Injected int    `json:"injected"`
	Bad      string `json:"bad,omitempty"`
}

func (s *stripper) digest() digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := digest{Raw: s.raw, Stripped: s.stripped + int64(len(s.buf)), Pending: len(s.buf),
		Injected: s.injected, Bad: s.bad, SHA: "pending"}
	if len(s.buf) == 0 {
		d.SHA = hex.EncodeToString(s.sum.Sum(nil)) // Sum leaves the running hash as it is
	}
	return d
}

type recListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[int]*stripper // by the peer's port
}

type recServerConn struct {
	net.Conn
	s *stripper
}

func (c *recServerConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.feed(p[:n])
	}
	return n, err
}

func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	port := c.RemoteAddr().(*net.TCPAddr).Port
	s := newStripper(fmt.Sprintf("server-%d", port))
	l.mu.Lock()
	l.conns[port] = s
	l.mu.Unlock()
	return &recServerConn{Conn: c, s: s}, nil
}

// streamReport is the answer to every request but /digests.
type streamReport struct {
	Path        string   `json:"path"`
	Traceparent []string `json:"traceparent"`
	BodyLen     int      `json:"body_len"`
	BodySHA     string   `json:"body_sha"`
	Proto       string   `json:"proto"`
}

func runH2Server(addr string) {
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	l := &recListener{Listener: inner, conns: map[int]*stripper{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/digests", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]digest{}
		l.mu.Lock()
		for port, s := range l.conns {
			out[strconv.Itoa(port)] = s.digest()
		}
		l.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(streamReport{
			Path:        r.URL.Path,
			Traceparent: r.Header.Values("Traceparent"),
			BodyLen:     int(n),
			BodySHA:     hex.EncodeToString(h.Sum(nil)),
			Proto:       r.Proto,
		})
	})
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   mux,
		Protocols: protocols,
		HTTP2: &http.HTTP2Config{
			MaxReadFrameSize:     maxFrame,
			MaxConcurrentStreams: 1000,
		},
	}
	fmt.Printf("listening on %s\n", inner.Addr())
	os.Stdout.Sync()
	log.Fatal(srv.Serve(l))
}

// --- client ------------------------------------------------------------------------------

type h2Command struct {
	N        int    `json:"n"`
	C        int    `json:"c"`
	Conns    int    `json:"conns"`     // transports (each its own connection)
	OwnEvery int    `json:"own_every"` // every k-th request carries its own traceparent
	BigEvery int    `json:"big_every"` // a header block near or past one frame
	MaxBody  int    `json:"max_body"`  // largest body
	Expect   string `json:"expect"`    // inject | none | any, for plain requests
	Seed     int64  `json:"seed"`
	Digests  bool   `json:"digests"` // compare the connections' bytes with the server's
	SendBuf  int    `json:"sndbuf"`  // SO_SNDBUF of the connections made from now on
}

type connDigest struct {
	Port     int    `json:"port"`
	Sent     int64  `json:"sent"`
	SHA      string `json:"sha"`
	Server   digest `json:"server"`
	Matching bool   `json:"matching"`
}

type h2Summary struct {
	Requests       int               `json:"requests"`
	Verified       int               `json:"verified"`
	Injected       int               `json:"injected"`
	Untouched      int               `json:"untouched"`
	OwnTraceparent int               `json:"own_traceparent"`
	Big            int               `json:"big"`
	Corrupted      int               `json:"corrupted"`
	Errors         int               `json:"errors"`
	Unexpected     int               `json:"unexpected"`
	NewConns       int64             `json:"new_conns"`
	ElapsedNs      int64             `json:"elapsed_ns"`
	IDs            map[string]string `json:"ids"`
	Conns          []connDigest      `json:"conns,omitempty"`
	DigestMismatch int               `json:"digest_mismatch"`
	ServerInjected int               `json:"server_injected"` // fields cut off, on these connections ever
	Samples        []string          `json:"samples,omitempty"`
}

// recClientConn hashes every byte written.
type recClientConn struct {
	net.Conn
	mu   sync.Mutex
	sum  hash.Hash
	sent int64
	dump io.Writer // INJECTCHECK_DUMP: the bytes written
}

func newRecClientConn(c net.Conn) *recClientConn {
	rc := &recClientConn{Conn: c, sum: sha256.New()}
	if dir := os.Getenv("INJECTCHECK_DUMP"); dir != "" {
		name := fmt.Sprintf("client-%d", c.LocalAddr().(*net.TCPAddr).Port)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		rc.dump = f
	}
	return rc
}

// Write holds the lock across the write: concurrent writers (rawh2's reader answers
// SETTINGS and PINGs) are hashed in the order their bytes went out.
func (c *recClientConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	n, err := c.Conn.Write(p)
	c.sum.Write(p[:n])
	c.sent += int64(n)
	if c.dump != nil {
		c.dump.Write(p[:n])
	}
	c.mu.Unlock()
	return n, err
}

type h2Client struct {
	base     string
	clients  []*http.Client
	plain    *http.Client // HTTP/1, for /digests
	seq      atomic.Int64
	newConns atomic.Int64
	mu       sync.Mutex
	conns    []*recClientConn
	tps      []*http.Transport
	sndbuf   atomic.Int64
	rawConn  *rawConn // rawh2.go
}

func newH2Client(base string) *h2Client {
	return &h2Client{base: strings.TrimRight(base, "/"), plain: &http.Client{Timeout: 30 * time.Second}}
}

func (cl *h2Client) transports(n int) {
	for len(cl.clients) < n {
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		tr := &http.Transport{
			Protocols: protocols,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				if n := cl.sndbuf.Load(); n > 0 {
					// Small: writes go out short, and the application writes the rest again.
					if err := c.(*net.TCPConn).SetWriteBuffer(int(n)); err != nil {
						return nil, err
					}
				}
				rc := newRecClientConn(c)
				cl.newConns.Add(1)
				cl.mu.Lock()
				cl.conns = append(cl.conns, rc)
				cl.mu.Unlock()
				return rc, nil
			},
		}
		cl.tps = append(cl.tps, tr)
		cl.clients = append(cl.clients, &http.Client{Transport: tr, Timeout: 60 * time.Second})
	}
}

func runH2Client(base string) {
	cl := newH2Client(base)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	fmt.Println("ready")
	for in.Scan() {
		var mode struct{ Mode string }
		if err := json.Unmarshal(in.Bytes(), &mode); err != nil {
			log.Fatalf("bad command %q: %v", in.Text(), err)
		}
		if mode.Mode == "raw" {
			var cmd rawCommand
			if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
				log.Fatalf("bad command %q: %v", in.Text(), err)
			}
			if cmd.MaxBody < 0 {
				cmd.MaxBody = 0
			}
			if err := out.Encode(cl.raw(cmd)); err != nil {
				log.Fatal(err)
			}
			continue
		}
		var cmd h2Command
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			log.Fatalf("bad command %q: %v", in.Text(), err)
		}
		if cmd.C <= 0 {
			cmd.C = 1
		}
		if cmd.Conns <= 0 {
			cmd.Conns = 1
		}
		if cmd.MaxBody <= 0 {
			cmd.MaxBody = 70000
		}
		if cmd.Expect == "" {
			cmd.Expect = "any"
		}
		if err := out.Encode(cl.check(cmd)); err != nil {
			log.Fatal(err)
		}
	}
}

type h2Plan struct {
	path, method, own string
	body              []byte
	big               int // bytes of X-Big, 0: none
	expect            string
}

func (cl *h2Client) plan(cmd h2Command, i int, rng *rand.Rand) *h2Plan {
	p := &h2Plan{path: fmt.Sprintf("/seq/%d", cl.seq.Add(1)), method: "GET", expect: cmd.Expect}
	if rng.Intn(2) == 0 {
		p.method = "POST"
		sizes := []int{0, 1, 100, 4096, 16384, 16385, 40000, 70000, 300000}
		size := sizes[rng.Intn(len(sizes))]
		if size > cmd.MaxBody {
			size = cmd.MaxBody
		}
		p.body = make([]byte, size)
		rng.Read(p.body)
	}
	every := func(k int) bool { return k > 0 && i%k == k-1 }
	if every(cmd.OwnEvery) {
		p.own = fmt.Sprintf("00-%032x-%016x-01", rng.Uint64(), rng.Uint64())
		p.expect = "none"
	}
	if every(cmd.BigEvery) {
		// Around one frame once Huffman-coded (about 6 bits a letter): some blocks still
		// fit with the field, some would grow past 16384, some continue in CONTINUATION
		// frames.
		p.big = 20800 + rng.Intn(1400)
		p.expect = "any"
	}
	return p
}

func (cl *h2Client) check(cmd h2Command) *h2Summary {
	cl.sndbuf.Store(int64(cmd.SendBuf))
	cl.transports(cmd.Conns)
	s := &h2Summary{IDs: map[string]string{}}
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
	if cmd.Digests {
		cl.compare(s)
	}
	return s
}

func (cl *h2Client) one(cmd h2Command, i int, rng *rand.Rand, s *h2Summary, note func(func()),
	sample func(string, ...any)) {
	p := cl.plan(cmd, i, rng)
	var body io.Reader
	if p.body != nil {
		body = bytes.NewReader(p.body)
	}
	req, err := http.NewRequest(p.method, cl.base+p.path, body)
	if err != nil {
		log.Fatal(err)
	}
	for k := rng.Intn(6); k > 0; k-- {
		req.Header.Set(fmt.Sprintf("X-Pad-%d", k), strings.Repeat("v", 1+rng.Intn(200)))
	}
	if p.big > 0 {
		// Random letters: HPACK's Huffman code makes the block's size vary around it.
		b := make([]byte, p.big)
		for k := range b {
			b[k] = byte('a' + rng.Intn(26))
		}
		req.Header.Set("X-Big", string(b))
	}
	if p.own != "" {
		req.Header.Set("Traceparent", p.own)
	}
	note(func() {
		s.Requests++
		if p.own != "" {
			s.OwnTraceparent++
		}
		if p.big > 0 {
			s.Big++
		}
	})
	client := cl.clients[i%len(cl.clients)]
	resp, err := client.Do(req)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d: %q", resp.StatusCode, raw)
		}
	}
	var rep streamReport
	if err == nil {
		err = json.Unmarshal(raw, &rep)
	}
	if err != nil {
		note(func() { s.Errors++ })
		sample("%s %s: %v", p.method, p.path, err)
		return
	}
	sum := sha256.Sum256(p.body)
	ok := rep.Path == p.path && rep.BodyLen == len(p.body) &&
		rep.BodySHA == hex.EncodeToString(sum[:]) && rep.Proto == "HTTP/2.0"
	var injected string
	switch {
	case p.own != "":
		ok = ok && len(rep.Traceparent) == 1 && rep.Traceparent[0] == p.own
	case len(rep.Traceparent) == 1 && tpValue.MatchString(rep.Traceparent[0]):
		injected = rep.Traceparent[0]
	case len(rep.Traceparent) != 0:
		ok = false
	}
	if !ok {
		note(func() { s.Corrupted++ })
		sample("%s %s (own %q): server saw %+v", p.method, p.path, p.own, rep)
		return
	}
	note(func() {
		s.Verified++
		if injected != "" {
			s.Injected++
			s.IDs[p.path] = strings.TrimPrefix(injected, "00-")
		} else if p.own == "" {
			s.Untouched++
		}
	})
	if (injected != "" && p.expect == "none") || (injected == "" && p.expect == "inject") {
		note(func() { s.Unexpected++ })
		sample("%s %s: expected %s, injected %q", p.method, p.path, p.expect, injected)
	}
}

// compare: once the connections are quiet, each one's bytes against the server's view.
func (cl *h2Client) compare(s *h2Summary) {
	time.Sleep(300 * time.Millisecond)
	resp, err := cl.plain.Get(cl.base + "/digests")
	if err != nil {
		s.Errors++
		s.Samples = append(s.Samples, "digests: "+err.Error())
		return
	}
	defer resp.Body.Close()
	server := map[string]digest{}
	if err := json.NewDecoder(resp.Body).Decode(&server); err != nil {
		s.Errors++
		return
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	s.Conns = nil
	for _, c := range cl.conns {
		c.mu.Lock()
		port := c.LocalAddr().(*net.TCPAddr).Port
		d := connDigest{Port: port, Sent: c.sent, SHA: hex.EncodeToString(c.sum.Sum(nil)),
			Server: server[strconv.Itoa(port)]}
		c.mu.Unlock()
		d.Matching = d.Server.Stripped == d.Sent && d.Server.SHA == d.SHA && d.Server.Bad == ""
		if !d.Matching {
			s.DigestMismatch++
		}
		s.ServerInjected += d.Server.Injected
		s.Conns = append(s.Conns, d)
	}
}
