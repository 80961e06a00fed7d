// injectcheck checks byte by byte what a header injector does to HTTP/1 requests.
//
//	injectcheck server [-addr A] [-tls-addr B]  echo server: each response body is the exact
//	                                            bytes of the request it answers
//	injectcheck client -url URL                 reads one JSON command per stdin line, runs
//	                                            it, prints one JSON summary per line
//	injectcheck offsets                         field offsets a test uprobe needs
//	injectcheck h2server [-addr A]              h2c (and HTTP/1) server that reports, per
//	                                            stream, the traceparent values and body hash
//	                                            it got, and per connection the hash of its
//	                                            bytes with injected fields cut off (h2.go)
//	injectcheck h2client -url URL               h2c client driven like the HTTP/1 one
//
// The client records every byte it writes on each connection and compares, request by
// request, the server's echo with them: the echo may differ only by exactly one
// "traceparent: 00-...\r\n" line right after the request line.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: injectcheck server|client|h2server|h2client|offsets [flags]")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "server":
		fs := flag.NewFlagSet("server", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:0", "plain listener")
		tlsAddr := fs.String("tls-addr", "", "TLS listener (self-signed), optional")
		fs.Parse(args)
		runServer(*addr, *tlsAddr)
	case "client":
		fs := flag.NewFlagSet("client", flag.ExitOnError)
		target := fs.String("url", "", "server base URL (http:// or https://)")
		fs.Parse(args)
		runClient(*target)
	case "h2server":
		fs := flag.NewFlagSet("h2server", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:0", "listener (h2c with prior knowledge, HTTP/1)")
		fs.Parse(args)
		runH2Server(*addr)
	case "h2client":
		fs := flag.NewFlagSet("h2client", flag.ExitOnError)
		target := fs.String("url", "", "server base URL (http://)")
		fs.Parse(args)
		runH2Client(*target)
	case "offsets":
		var r http.Request
		var u url.URL
		json.NewEncoder(os.Stdout).Encode(map[string]uintptr{
			"request_url": unsafe.Offsetof(r.URL),
			"url_path":    unsafe.Offsetof(u.Path),
		})
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", cmd)
		os.Exit(2)
	}
}
