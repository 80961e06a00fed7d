// web is emojivoto's front end: an HTTP/JSON API whose handlers call the emoji
// and voting gRPC services with the request's context.
//
//	GET /api/list                 emoji.ListAll
//	GET /api/vote?choice=:joy:    emoji.FindByShortcode, then voting.Vote
//	GET /api/leaderboard          voting.Results, then emoji.ListAll
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gotel.example/emojivoto/internal/api"
)

const callTimeout = 2 * time.Second

type web struct {
	emoji  api.EmojiClient
	voting api.VotingClient
}

func reply(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(body)
}

func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch status.Code(err) {
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	}
	reply(w, code, map[string]string{"error": status.Convert(err).Message()})
}

func (s web) list(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	all, err := s.emoji.ListAll(ctx)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, all)
}

func (s web) vote(w http.ResponseWriter, r *http.Request) {
	choice := r.URL.Query().Get("choice")
	if choice == "" {
		fail(w, status.Error(codes.InvalidArgument, "choice is required"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	emoji, err := s.emoji.FindByShortcode(ctx, choice)
	if err != nil {
		fail(w, err)
		return
	}
	if err := s.voting.Vote(ctx, emoji.Shortcode); err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]string{"voted": emoji.Shortcode, "unicode": emoji.Unicode})
}

func (s web) leaderboard(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	results, err := s.voting.Results(ctx)
	if err != nil {
		fail(w, err)
		return
	}
	all, err := s.emoji.ListAll(ctx)
	if err != nil {
		fail(w, err)
		return
	}
	unicode := make(map[string]string, len(all))
	for _, e := range all {
		unicode[e.Shortcode] = e.Unicode
	}
	type line struct {
		api.Result
		Unicode string `json:"unicode"`
	}
	board := []line{}
	for _, res := range results {
		board = append(board, line{res, unicode[res.Shortcode]})
	}
	reply(w, http.StatusOK, board)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "HTTP listen address")
	emojiAddr := flag.String("emoji-addr", "", "emoji service (host:port)")
	votingAddr := flag.String("voting-addr", "", "voting service (host:port)")
	flag.Parse()
	if *emojiAddr == "" || *votingAddr == "" {
		log.Fatal("web: -emoji-addr and -voting-addr are required")
	}
	emojiConn, err := api.Dial(*emojiAddr)
	if err != nil {
		log.Fatal(err)
	}
	votingConn, err := api.Dial(*votingAddr)
	if err != nil {
		log.Fatal(err)
	}
	s := web{emoji: api.EmojiClient{Conn: emojiConn}, voting: api.VotingClient{Conn: votingConn}}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/list", s.list)
	mux.HandleFunc("GET /api/vote", s.vote)
	mux.HandleFunc("GET /api/leaderboard", s.leaderboard)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("emojivoto: GET /api/list, /api/vote?choice=:joy:, /api/leaderboard\n"))
	})

	ln, err := api.Listen(*addr)
	if err != nil {
		log.Fatal(err)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	emojiConn.Close()
	votingConn.Close()
}
