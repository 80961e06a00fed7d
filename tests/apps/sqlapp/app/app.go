// Package app is the SQL test service: an HTTP server whose handlers use
// database/sql, so that SQL client spans nest under HTTP server spans. Each
// driver's main package (pgx, pq, modernc, mattn) registers its driver and
// calls Main; the queries are the same for every driver ($N placeholders
// work in PostgreSQL and SQLite alike).
package app

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

// Secret values the tests look for in the exported spans: they must never appear.
const (
	SecretLiteral = "s3cr3t-literal"
	SecretNumber  = "987654321"
	SecretArg     = "s3cr3t-argument"
)

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// Main opens the database with driver and -dsn, then serves until killed.
func Main(driver string) {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	dsn := flag.String("dsn", "", "data source name")
	flag.Parse()

	db, err := sql.Open(driver, *dsn)
	must(err)
	ctx := context.Background()
	must(db.PingContext(ctx))
	_, err = db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS items (id INTEGER, name TEXT)")
	must(err)

	mux := http.NewServeMux()
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.QueryContext(r.Context(),
			"SELECT id, name FROM items WHERE name <> '"+SecretLiteral+"' AND id < "+SecretNumber)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		fmt.Fprintf(w, "%d rows", n)
	})
	mux.HandleFunc("/exec", func(w http.ResponseWriter, r *http.Request) {
		_, err := db.ExecContext(r.Context(), "INSERT INTO items (id, name) VALUES ($1, $2)", 1, SecretArg)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "inserted")
	})
	mux.HandleFunc("/tx", func(w http.ResponseWriter, r *http.Request) {
		tx, err := db.BeginTx(r.Context(), nil)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if _, err := tx.ExecContext(r.Context(), "UPDATE items SET name = $1 WHERE id = 1", SecretArg); err != nil {
			tx.Rollback()
			http.Error(w, err.Error(), 500)
			return
		}
		must(tx.Commit())
		tx, err = db.BeginTx(r.Context(), nil)
		must(err)
		tx.Rollback()
		fmt.Fprint(w, "committed and rolled back")
	})
	mux.HandleFunc("/prepare", func(w http.ResponseWriter, r *http.Request) {
		stmt, err := db.PrepareContext(r.Context(), "SELECT name FROM items WHERE id = $1")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer stmt.Close()
		var name string
		err = stmt.QueryRowContext(r.Context(), 1).Scan(&name)
		if err != nil && err != sql.ErrNoRows {
			http.Error(w, err.Error(), 500)
			return
		}
		update, err := db.PrepareContext(r.Context(), "UPDATE items SET name = $1 WHERE id = 2")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer update.Close()
		if _, err := update.ExecContext(r.Context(), SecretArg); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "prepared")
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		_, err := db.QueryContext(r.Context(), "SELECT * FROM no_such_table")
		if err == nil {
			http.Error(w, "expected an error", 500)
			return
		}
		fmt.Fprint(w, "failed as expected")
	})
	// A query on a goroutine with no HTTP request: a root span.
	mux.HandleFunc("/background", func(w http.ResponseWriter, _ *http.Request) {
		done := make(chan error)
		go func() {
			_, err := db.ExecContext(context.Background(), "DELETE FROM items WHERE id > 1000000")
			done <- err
		}()
		if err := <-done; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "deleted")
	})

	// n queries per request: the benchmark's slope between two n is the cost of one query.
	mux.HandleFunc("/repeat", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var count int
		for i := 0; i < n; i++ {
			if err := db.QueryRowContext(r.Context(), "SELECT count(*) FROM items WHERE id < 10").Scan(&count); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		fmt.Fprintf(w, "%d queries", n)
	})

	ln, err := net.Listen("tcp", *addr)
	must(err)
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(http.Serve(ln, mux))
}
