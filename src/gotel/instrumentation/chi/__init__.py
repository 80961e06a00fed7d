"""chi v5 routes for the net/http server span (github.com/go-chi/chi/v5)."""
