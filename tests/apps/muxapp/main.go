// A gorilla/mux service for gotel's route tests: a plain route, a subrouter with a nested
// subrouter, and everything else a 404.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	"github.com/gorilla/mux"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	root := mux.NewRouter()
	root.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}).Methods(http.MethodGet)
	api := root.PathPrefix("/api/v1").Subrouter()
	users := api.PathPrefix("/users").Subrouter()
	users.HandleFunc("/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user %s\n", mux.Vars(r)["id"])
	}).Methods(http.MethodGet)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// Tests read the port from this line.
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, root))
}
