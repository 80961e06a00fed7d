// A chi service for gotel's route tests: a plain route, a mounted sub-router with a
// nested route group, and everything else a 404.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/go-chi/chi/v5"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	users := chi.NewRouter()
	users.Get("/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s\n", chi.URLParam(r, "id"))
	})
	users.Route("/{id}/posts", func(r chi.Router) {
		r.Get("/{post}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "post %s\n", chi.URLParam(r, "post"))
		})
	})

	api := chi.NewRouter()
	api.Mount("/users", users)

	root := chi.NewRouter()
	root.Get("/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	root.Mount("/api/v1", api)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// Tests read the port from this line.
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, root))
}
