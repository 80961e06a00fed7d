//go:build go1.22

package main

import "net/http"

// Go 1.22+ ServeMux patterns: spans carry http.route.
func registerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /hello/{id}", func(w http.ResponseWriter, r *http.Request) {
		hello(w, r.PathValue("id"))
	})
	mux.HandleFunc("POST /items", createItem)
	mux.HandleFunc("GET /fail", fail)
	mux.HandleFunc("GET /slow", slow)
	mux.HandleFunc("GET /chain", chain)
	mux.HandleFunc("GET /chain-detached", chainDetached)
}
