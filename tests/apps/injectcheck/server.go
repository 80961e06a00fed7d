package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"time"
)

func runServer(addr, tlsAddr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	if tlsAddr != "" {
		tl, err := net.Listen("tcp", tlsAddr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("tls on %s\n", tl.Addr())
		go serve(tls.NewListener(tl, &tls.Config{Certificates: []tls.Certificate{selfSigned()}}))
	}
	fmt.Printf("listening on %s\n", l.Addr())
	serve(l)
}

func serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go handle(c)
	}
}

// handle answers each request with its exact bytes, and its index on this connection.
func handle(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	bw := bufio.NewWriterSize(c, 64<<10)
	for index := 0; ; index++ {
		raw, closeAfter, err := readRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("connection %s: request %d: %v", c.RemoteAddr(), index, err)
			}
			return
		}
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"+
			"Content-Length: %d\r\nX-Req-Index: %d\r\n", len(raw), index)
		if closeAfter {
			bw.WriteString("Connection: close\r\n")
		}
		bw.WriteString("\r\n")
		bw.Write(raw)
		if bw.Flush() != nil || closeAfter {
			return
		}
	}
}

// readRequest reads one HTTP/1.1 request and returns its bytes exactly as received.
func readRequest(br *bufio.Reader) (raw []byte, closeAfter bool, err error) {
	line, err := br.ReadBytes('\n')
	if err != nil {
		return nil, false, err
	}
	raw = append(raw, line...)
	length, chunked := 0, false
	for {
		line, err = br.ReadBytes('\n')
		if err != nil {
			return nil, false, err
		}
		raw = append(raw, line...)
		if string(line) == "\r\n" {
			break
		}
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		if !ok {
			return nil, false, fmt.Errorf("malformed header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return nil, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		}
	}
	if !chunked {
		body := make([]byte, length)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, false, err
		}
		return append(raw, body...), closeAfter, nil
	}
	for {
		line, err = br.ReadBytes('\n')
		if err != nil {
			return nil, false, err
		}
		raw = append(raw, line...)
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return nil, false, fmt.Errorf("bad chunk size %q", line)
		}
		if n == 0 { // trailers, then the blank line
			for string(line) != "\r\n" {
				if line, err = br.ReadBytes('\n'); err != nil {
					return nil, false, err
				}
				raw = append(raw, line...)
			}
			return raw, closeAfter, nil
		}
		chunk := make([]byte, n+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, false, err
		}
		raw = append(raw, chunk...)
	}
}

func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "injectcheck"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
