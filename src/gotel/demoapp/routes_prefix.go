//go:build !go1.22

package main

import (
	"net/http"
	"strings"
)

// Before Go 1.22 ServeMux matched prefixes only: no route on these spans.
func registerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/hello/", func(w http.ResponseWriter, r *http.Request) {
		hello(w, strings.TrimPrefix(r.URL.Path, "/hello/"))
	})
	mux.HandleFunc("/items", createItem)
	mux.HandleFunc("/fail", fail)
	mux.HandleFunc("/slow", slow)
	mux.HandleFunc("/chain", chain)
	mux.HandleFunc("/chain-detached", chainDetached)
}
