// emoji is emojivoto's catalogue: a gRPC service that lists the emojis people can
// vote for and looks one up by its shortcode.
package main

import (
	"context"
	"flag"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"gotel.example/emojivoto/internal/api"
)

// catalogue: shortcode, unicode, ...
var catalogue = pairs(
	":joy:", "😂", ":sunglasses:", "😎", ":doughnut:", "🍩", ":stuck_out_tongue_winking_eye:", "😜",
	":money_mouth_face:", "🤑", ":flushed:", "😳", ":mask:", "😷", ":nerd_face:", "🤓",
	":ghost:", "👻", ":skull_and_crossbones:", "☠️", ":heart_eyes_cat:", "😻", ":hear_no_evil:", "🙉",
	":see_no_evil:", "🙈", ":speak_no_evil:", "🙊", ":boy:", "👦", ":girl:", "👧",
	":man:", "👨", ":woman:", "👩", ":older_man:", "👴", ":policeman:", "👮",
	":guardsman:", "💂", ":construction_worker:", "👷", ":prince:", "🤴", ":princess:", "👸",
	":pray:", "🙏", ":clap:", "👏", ":thumbsup:", "👍", ":thumbsdown:", "👎",
	":sunny:", "☀️", ":rainbow:", "🌈", ":fire:", "🔥", ":tada:", "🎉",
	":pizza:", "🍕", ":taco:", "🌮", ":champagne:", "🍾", ":rocket:", "🚀",
)

func pairs(flat ...string) []api.Emoji {
	all := make([]api.Emoji, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		all = append(all, api.Emoji{Shortcode: flat[i], Unicode: flat[i+1]})
	}
	return all
}

type emojis struct{ byCode map[string]api.Emoji }

func (e emojis) ListAll(context.Context) ([]api.Emoji, error) { return catalogue, nil }

func (e emojis) FindByShortcode(_ context.Context, shortcode string) (api.Emoji, error) {
	if found, ok := e.byCode[shortcode]; ok {
		return found, nil
	}
	return api.Emoji{}, status.Errorf(codes.NotFound, "no emoji %q", shortcode)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "gRPC listen address")
	flag.Parse()
	impl := emojis{byCode: map[string]api.Emoji{}}
	for _, e := range catalogue {
		impl.byCode[e.Shortcode] = e
	}
	if err := api.ServeGRPC(*addr, func(s *grpc.Server) { api.RegisterEmoji(s, impl) }); err != nil {
		log.Fatal(err)
	}
}
