// voting counts votes per emoji shortcode and serves the leaderboard over gRPC.
// Like the original walkthrough, one emoji is broken on purpose: a vote for
// :doughnut: fails, so traces show an error path as well.
package main

import (
	"context"
	"flag"
	"log"
	"sort"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gotel.example/emojivoto/internal/api"
)

const broken = ":doughnut:"

type poll struct {
	mu    sync.Mutex
	votes map[string]int
}

func (p *poll) Vote(_ context.Context, shortcode string) error {
	if shortcode == broken {
		return status.Errorf(codes.Unknown, "votes for %s are broken on purpose", shortcode)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.votes[shortcode]++
	return nil
}

func (p *poll) Results(context.Context) ([]api.Result, error) {
	p.mu.Lock()
	results := make([]api.Result, 0, len(p.votes))
	for code, n := range p.votes {
		results = append(results, api.Result{Shortcode: code, Votes: n})
	}
	p.mu.Unlock()
	sort.Slice(results, func(i, j int) bool {
		if results[i].Votes != results[j].Votes {
			return results[i].Votes > results[j].Votes
		}
		return results[i].Shortcode < results[j].Shortcode
	})
	return results, nil
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "gRPC listen address")
	flag.Parse()
	impl := &poll{votes: map[string]int{}}
	if err := api.ServeGRPC(*addr, func(s *grpc.Server) { api.RegisterVoting(s, impl) }); err != nil {
		log.Fatal(err)
	}
}
