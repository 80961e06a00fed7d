"""gorilla/mux routes for the net/http server span (github.com/gorilla/mux)."""
