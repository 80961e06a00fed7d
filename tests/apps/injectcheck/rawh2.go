package main

// rawh2: an HTTP/2 client that writes its frames itself, to send what Go's client never
// does: many streams' frames in one write, writes cut anywhere (inside frame headers and
// HEADERS frames too), HEADERS frames with PRIORITY, PADDED or CONTINUATION, HEADERS
// frames that end a write, and writes much larger than a small socket buffer takes at
// once (the kernel splits them; the writes return short and go on). Its header blocks use HPACK literals that leave the dynamic table
// alone; the responses' header blocks are skipped, their DATA (the server's JSON) read.
//
// Before writing a batch the writer goroutine calls announce() once per stream: a test
// uprobe there gives the stream its context, as gotel's uprobe on a real client would.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"sync"
	"time"
)

type rawCommand struct {
	Batches           int    `json:"batches"`
	Streams           int    `json:"streams"` // per batch
	Cut               string `json:"cut"`     // none: one write a batch; random: cut anywhere; frames
	MaxBody           int    `json:"max_body"`
	PriorityEvery     int    `json:"priority_every"`
	PaddedEvery       int    `json:"padded_every"`
	ContinuationEvery int    `json:"continuation_every"`
	OwnEvery          int    `json:"own_every"`
	SendBuf           int    `json:"sndbuf"`
	// After this many batches a PING goes out with its stream id's reserved bit set:
	// peers ignore the bit, an injector walking frames cannot trust its parse any more.
	ReservedPingAfter int   `json:"reserved_ping_after"`
	Seed              int64 `json:"seed"`
	Digests           bool  `json:"digests"`
}

type rawSummary struct {
	h2Summary
	Priority     int `json:"priority"`
	Padded       int `json:"padded"`       // without their own traceparent nor CONTINUATION
	Continuation int `json:"continuation"` // without their own traceparent
	Writes       int `json:"writes"`
}

var announced uint32

// announce: the stream's header block is about to be written by this goroutine. (The
// body only keeps the function from being empty.)
//
//go:noinline
func announce(streamID uint32, own bool, path string) {
	if own && path == "" {
		announced = streamID
	}
}

type rawConn struct {
	conn      *recClientConn
	authority string
	nextID    uint32
	mu        sync.Mutex
	cond      *sync.Cond
	window    int64 // connection-level send window the server granted
	waiting   map[uint32]chan []byte
	bodies    map[uint32][]byte
	err       error
	// wmu: a batch's pieces are written with nothing in between (a frame cut by one
	// write continues in the next); the reader's answers wait.
	wmu sync.Mutex
}

func (r *rawConn) writeFrame(b []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := r.conn.Write(b)
	return err
}

func hpackInt(b []byte, prefix byte, bits uint, n int) []byte {
	max := 1<<bits - 1
	if n < max {
		return append(b, prefix|byte(n))
	}
	b = append(b, prefix|byte(max))
	n -= max
	for n >= 128 {
		b = append(b, byte(n%128)|0x80)
		n /= 128
	}
	return append(b, byte(n))
}

func hpackString(b []byte, s string) []byte {
	return append(hpackInt(b, 0, 7, len(s)), s...)
}

// literal without indexing, new name
func hpackField(b []byte, name, value string) []byte {
	return hpackString(hpackString(append(b, 0x00), name), value)
}

func frameHeader(b []byte, length int, typ, flags byte, sid uint32) []byte {
	b = append(b, byte(length>>16), byte(length>>8), byte(length), typ, flags)
	return binary.BigEndian.AppendUint32(b, sid)
}

func (cl *h2Client) dialRaw(sndbuf int) (*rawConn, error) {
	addr := strings.TrimPrefix(cl.base, "http://")
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if sndbuf > 0 {
		if err := c.(*net.TCPConn).SetWriteBuffer(sndbuf); err != nil {
			return nil, err
		}
	}
	rc := newRecClientConn(c)
	cl.newConns.Add(1)
	cl.mu.Lock()
	cl.conns = append(cl.conns, rc)
	cl.mu.Unlock()
	r := &rawConn{conn: rc, authority: addr, nextID: 1, window: 65535,
		waiting: map[uint32]chan []byte{}, bodies: map[uint32][]byte{}}
	r.cond = sync.NewCond(&r.mu)
	// Preface, SETTINGS (INITIAL_WINDOW_SIZE 2^31-1), connection WINDOW_UPDATE to 2^31-1.
	b := []byte(h2Preface)
	b = frameHeader(b, 6, 0x4, 0, 0)
	b = binary.BigEndian.AppendUint16(b, 0x4)
	b = binary.BigEndian.AppendUint32(b, 1<<31-1)
	b = frameHeader(b, 4, 0x8, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 1<<31-1-65535)
	if _, err := rc.Write(b); err != nil {
		return nil, err
	}
	go r.read()
	return r, nil
}

func (r *rawConn) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	for id, ch := range r.waiting {
		close(ch)
		delete(r.waiting, id)
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// read: the server's frames. DATA is collected per stream; control frames answered.
func (r *rawConn) read() {
	hdr := make([]byte, frameHdr)
	for {
		if _, err := io.ReadFull(r.conn, hdr); err != nil {
			r.fail(err)
			return
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags, sid := hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:])&0x7fffffff
		payload := make([]byte, length)
		if _, err := io.ReadFull(r.conn, payload); err != nil {
			r.fail(err)
			return
		}
		switch typ {
		case 0x0: // DATA
			if flags&0x8 != 0 && len(payload) > 0 {
				payload = payload[1 : len(payload)-int(payload[0])]
			}
			r.mu.Lock()
			r.bodies[sid] = append(r.bodies[sid], payload...)
			if flags&0x1 != 0 {
				if ch := r.waiting[sid]; ch != nil {
					ch <- r.bodies[sid]
					delete(r.waiting, sid)
				}
				delete(r.bodies, sid)
			}
			r.mu.Unlock()
		case 0x3: // RST_STREAM
			r.mu.Lock()
			if ch := r.waiting[sid]; ch != nil {
				close(ch)
				delete(r.waiting, sid)
			}
			r.mu.Unlock()
		case 0x4: // SETTINGS
			if flags&0x1 == 0 {
				if err := r.writeFrame(frameHeader(nil, 0, 0x4, 0x1, 0)); err != nil {
					r.fail(err)
					return
				}
			}
		case 0x6: // PING
			if flags&0x1 == 0 {
				if err := r.writeFrame(append(frameHeader(nil, 8, 0x6, 0x1, 0), payload...)); err != nil {
					r.fail(err)
					return
				}
			}
		case 0x7: // GOAWAY
			r.fail(fmt.Errorf("GOAWAY %x", payload))
			return
		case 0x8: // WINDOW_UPDATE
			if sid == 0 {
				r.mu.Lock()
				r.window += int64(binary.BigEndian.Uint32(payload) & 0x7fffffff)
				r.cond.Broadcast()
				r.mu.Unlock()
			}
		}
	}
}

type rawStream struct {
	id                             uint32
	path, own                      string
	body                           []byte
	priority, padded, continuation bool
	ch                             chan []byte
}

// frames: the stream's HEADERS (and CONTINUATION) and DATA frames.
func (s *rawStream) frames(authority string, rng *rand.Rand) (headers, data []byte) {
	block := []byte{0x83, 0x86}                                 // :method POST, :scheme http
	block = hpackString(hpackInt(block, 0x00, 4, 4), s.path)    // :path, literal, indexed name
	block = hpackString(hpackInt(block, 0x00, 4, 1), authority) // :authority
	if s.own != "" {
		block = hpackField(block, "traceparent", s.own)
	}
	block = hpackField(block, "x-seq", s.path)
	for k := rng.Intn(4); k > 0; k-- {
		block = hpackField(block, fmt.Sprintf("x-pad-%d", k), strings.Repeat("p", rng.Intn(300)))
	}
	if s.continuation {
		block = hpackField(block, "x-big", strings.Repeat("b", 17000+rng.Intn(8000)))
	}
	endStream := byte(0)
	if len(s.body) == 0 {
		endStream = 0x1
	}
	var payload []byte
	flags := endStream
	if s.padded {
		flags |= 0x8
		payload = append(payload, byte(rng.Intn(40)))
	}
	if s.priority {
		flags |= 0x20
		payload = binary.BigEndian.AppendUint32(payload, 0) // depends on nothing
		payload = append(payload, byte(rng.Intn(256)))      // weight
	}
	pad := 0
	if s.padded {
		pad = int(payload[0])
	}
	first := block
	if len(payload)+len(first)+pad > maxFrame {
		first = block[:maxFrame-len(payload)-pad]
	}
	payload = append(payload, first...)
	payload = append(payload, make([]byte, pad)...)
	rest := block[len(first):]
	if len(rest) == 0 {
		flags |= 0x4 // END_HEADERS
	}
	headers = append(frameHeader(nil, len(payload), 0x1, flags, s.id), payload...)
	for len(rest) > 0 {
		chunk := rest
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		rest = rest[len(chunk):]
		f := byte(0)
		if len(rest) == 0 {
			f = 0x4
		}
		headers = append(append(headers, frameHeader(nil, len(chunk), 0x9, f, s.id)...), chunk...)
	}
	for body := s.body; len(body) > 0; {
		chunk := body
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		body = body[len(chunk):]
		f := byte(0)
		if len(body) == 0 {
			f = 0x1
		}
		data = append(append(data, frameHeader(nil, len(chunk), 0x0, f, s.id)...), chunk...)
	}
	return headers, data
}

func (cl *h2Client) raw(cmd rawCommand) *rawSummary {
	s := &rawSummary{h2Summary: h2Summary{IDs: map[string]string{}}}
	cl.newConns.Store(0)
	if cl.rawConn == nil {
		r, err := cl.dialRaw(cmd.SendBuf)
		if err != nil {
			s.Errors++
			s.Samples = append(s.Samples, err.Error())
			return s
		}
		cl.rawConn = r
	}
	r := cl.rawConn
	rng := rand.New(rand.NewSource(cmd.Seed))
	every := func(k, i int) bool { return k > 0 && i%k == k-1 }
	start := time.Now()
	n := 0
	for batch := 0; batch < cmd.Batches; batch++ {
		streams := make([]*rawStream, cmd.Streams)
		dataBytes := int64(0)
		for k := range streams {
			st := &rawStream{id: r.nextID, path: fmt.Sprintf("/raw/%d", cl.seq.Add(1)),
				ch: make(chan []byte, 1)}
			r.nextID += 2
			if rng.Intn(4) > 0 { // else no DATA: END_STREAM on HEADERS
				st.body = make([]byte, rng.Intn(cmd.MaxBody+1))
				rng.Read(st.body)
			}
			dataBytes += int64(len(st.body))
			st.priority = every(cmd.PriorityEvery, n)
			st.padded = every(cmd.PaddedEvery, n)
			st.continuation = every(cmd.ContinuationEvery, n)
			if every(cmd.OwnEvery, n) {
				st.own = fmt.Sprintf("00-%032x-%016x-01", rng.Uint64(), rng.Uint64())
			}
			n++
			streams[k] = st
			s.Requests++
			if st.own != "" {
				s.OwnTraceparent++
			}
			if st.priority {
				s.Priority++
			}
			// Counted as an injector decides: its own traceparent first, then
			// CONTINUATION, then PADDED.
			if st.continuation && st.own == "" {
				s.Continuation++
			}
			if st.padded && st.own == "" && !st.continuation {
				s.Padded++
			}
		}
		// Frames in a random order that keeps each stream's HEADERS before its DATA.
		buf := cl.order(streams, r.authority, rng)
		r.mu.Lock()
		for r.window < dataBytes && r.err == nil {
			r.cond.Wait()
		}
		r.window -= dataBytes
		for _, st := range streams {
			r.waiting[st.id] = st.ch
		}
		err := r.err
		r.mu.Unlock()
		if err != nil {
			s.Errors++
			s.Samples = append(s.Samples, err.Error())
			return s
		}
		if cmd.ReservedPingAfter > 0 && batch == cmd.ReservedPingAfter {
			ping := append(frameHeader(nil, 8, 0x6, 0, 0x80000000), "reserved"...)
			if err := r.writeFrame(ping); err != nil {
				s.Errors++
			}
		}
		for _, st := range streams {
			announce(st.id, st.own != "", st.path)
		}
		r.wmu.Lock()
		writes, err := cl.write(r.conn, buf, cmd.Cut, rng)
		r.wmu.Unlock()
		s.Writes += writes
		if err != nil {
			s.Errors++
			s.Samples = append(s.Samples, err.Error())
			return s
		}
		for _, st := range streams {
			cl.rawResult(s, st, time.After(30*time.Second))
		}
	}
	s.ElapsedNs = time.Since(start).Nanoseconds()
	s.NewConns = cl.newConns.Load()
	if cmd.Digests {
		cl.compare(&s.h2Summary)
	}
	return s
}

var errTimeout = errors.New("no response in 30s")

func (cl *h2Client) rawResult(s *rawSummary, st *rawStream, timeout <-chan time.Time) {
	var body []byte
	var ok bool
	select {
	case body, ok = <-st.ch:
	case <-timeout:
	}
	var rep streamReport
	err := errTimeout
	if ok {
		err = json.Unmarshal(body, &rep)
	}
	if err != nil {
		s.Errors++
		if len(s.Samples) < 5 {
			s.Samples = append(s.Samples, fmt.Sprintf("%s: %v (%q)", st.path, err, body))
		}
		return
	}
	sum := sha256.Sum256(st.body)
	good := rep.Path == st.path && rep.BodyLen == len(st.body) &&
		rep.BodySHA == hex.EncodeToString(sum[:])
	injected := ""
	switch {
	case st.own != "":
		good = good && len(rep.Traceparent) == 1 && rep.Traceparent[0] == st.own
	case len(rep.Traceparent) == 1 && tpValue.MatchString(rep.Traceparent[0]):
		injected = rep.Traceparent[0]
	case len(rep.Traceparent) != 0:
		good = false
	}
	if !good {
		s.Corrupted++
		if len(s.Samples) < 5 {
			s.Samples = append(s.Samples, fmt.Sprintf("%s: server saw %+v", st.path, rep))
		}
		return
	}
	s.Verified++
	switch {
	case injected != "":
		s.Injected++
		s.IDs[st.path] = strings.TrimPrefix(injected, "00-")
		if st.padded || st.continuation {
			s.Unexpected++
		}
	case st.own == "":
		s.Untouched++
	}
}

// order: the streams' HEADERS (+ CONTINUATION) in stream id order (a new stream's id must
// exceed those opened before), each stream's DATA anywhere after its HEADERS.
func (cl *h2Client) order(streams []*rawStream, authority string, rng *rand.Rand) []byte {
	var buf []byte
	var data [][]byte // DATA of streams whose HEADERS went
	next := 0
	for next < len(streams) || len(data) > 0 {
		if next < len(streams) && (len(data) == 0 || rng.Intn(2) == 0) {
			h, d := streams[next].frames(authority, rng)
			next++
			buf = append(buf, h...)
			if len(d) > 0 {
				data = append(data, d)
			}
			continue
		}
		k := rng.Intn(len(data))
		buf = append(buf, data[k]...)
		data = append(data[:k], data[k+1:]...)
	}
	return buf
}

// write: the batch in one write, in pieces cut anywhere, or a write per frame.
func (cl *h2Client) write(c net.Conn, buf []byte, cut string, rng *rand.Rand) (int, error) {
	writes := 0
	var failed error
	put := func(b []byte) {
		if failed != nil {
			return
		}
		if n, err := c.Write(b); err != nil {
			failed = fmt.Errorf("write %d of %d bytes: %d written: %w", writes+1, len(b), n, err)
			return
		}
		writes++
	}
	switch cut {
	case "random":
		for len(buf) > 0 {
			n := 1 + rng.Intn(3000)
			if rng.Intn(4) == 0 {
				n = 1 + rng.Intn(12) // often inside a frame header
			}
			if n > len(buf) {
				n = len(buf)
			}
			put(buf[:n])
			buf = buf[n:]
		}
	case "frames":
		for len(buf) >= frameHdr {
			n := frameHdr + (int(buf[0])<<16 | int(buf[1])<<8 | int(buf[2]))
			put(buf[:n])
			buf = buf[n:]
		}
	default:
		put(buf)
	}
	return writes, failed
}
