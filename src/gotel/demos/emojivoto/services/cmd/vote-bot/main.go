// vote-bot is emojivoto's load generator: it lists the emojis, votes for one at
// random, and now and then reads the leaderboard, through web's HTTP API.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"time"
)

type emoji struct {
	Shortcode string `json:"shortcode"`
}

func get(client *http.Client, u string, into any) (int, error) {
	resp, err := client.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if into != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(into)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

func main() {
	web := flag.String("web", "", "web's base URL, e.g. http://127.0.0.1:8080")
	votes := flag.Int("votes", 20, "votes to cast, then exit (0: forever)")
	interval := flag.Duration("interval", 50*time.Millisecond, "pause between votes")
	every := flag.Int("leaderboard-every", 5, "read the leaderboard after every N votes (0: never)")
	seed := flag.Uint64("seed", 1, "random seed (the same seed casts the same votes)")
	hold := flag.Bool("hold", false, "wait for a line on stdin before the first request (lets a tracer attach)")
	flag.Parse()
	if *web == "" {
		log.Fatal("vote-bot: -web is required")
	}
	if *hold {
		fmt.Println("holding")
		os.Stdout.Sync()
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	client := &http.Client{Timeout: 5 * time.Second}
	rng := rand.New(rand.NewPCG(*seed, 0))
	byStatus := map[int]int{}
	for n := 1; *votes == 0 || n <= *votes; n++ {
		var all []emoji
		if code, err := get(client, *web+"/api/list", &all); err != nil || len(all) == 0 {
			log.Printf("vote-bot: list: status %d, %v", code, err)
			time.Sleep(*interval)
			continue
		}
		choice := all[rng.IntN(len(all))].Shortcode
		code, err := get(client, *web+"/api/vote?choice="+url.QueryEscape(choice), nil)
		if err != nil {
			log.Printf("vote-bot: vote %s: %v", choice, err)
		}
		byStatus[code]++
		if *every > 0 && n%*every == 0 {
			get(client, *web+"/api/leaderboard", nil)
		}
		time.Sleep(*interval)
	}
	fmt.Printf("vote-bot: done; votes by HTTP status: %v\n", byStatus)
}
