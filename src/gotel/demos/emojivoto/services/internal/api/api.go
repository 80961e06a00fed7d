// Package api defines emojivoto's two gRPC services without protoc: each service is
// a grpc.ServiceDesc written by hand, and every message is one of protobuf's
// well-known types (Empty, StringValue, Struct, ListValue), so grpc's default
// proto codec carries them and the wire format is ordinary gRPC.
//
//	emojivoto.v1.EmojiService/ListAll          Empty       -> ListValue of {shortcode, unicode}
//	emojivoto.v1.EmojiService/FindByShortcode  StringValue -> Struct {shortcode, unicode}
//	emojivoto.v1.VotingService/Vote            StringValue -> Empty
//	emojivoto.v1.VotingService/Results         Empty       -> ListValue of {shortcode, votes}
package api

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	EmojiService  = "emojivoto.v1.EmojiService"
	VotingService = "emojivoto.v1.VotingService"
)

// Emoji is one votable emoji.
type Emoji struct {
	Shortcode string `json:"shortcode"`
	Unicode   string `json:"unicode"`
}

// Result is one line of the leaderboard.
type Result struct {
	Shortcode string `json:"shortcode"`
	Votes     int    `json:"votes"`
}

// EmojiServer is what the emoji service implements.
type EmojiServer interface {
	ListAll(ctx context.Context) ([]Emoji, error)
	FindByShortcode(ctx context.Context, shortcode string) (Emoji, error)
}

// VotingServer is what the voting service implements.
type VotingServer interface {
	Vote(ctx context.Context, shortcode string) error
	Results(ctx context.Context) ([]Result, error)
}

// unary adapts a typed method to grpc's MethodHandler, honouring interceptors.
func unary[Req proto.Message](
	service, method string, newReq func() Req,
	call func(srv any, ctx context.Context, req Req) (proto.Message, error),
) grpc.MethodDesc {
	full := "/" + service + "/" + method
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			req := newReq()
			if err := dec(req); err != nil {
				return nil, err
			}
			if icpt == nil {
				return call(srv, ctx, req)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: full}
			return icpt(ctx, req, info, func(ctx context.Context, r any) (any, error) {
				return call(srv, ctx, r.(Req))
			})
		},
	}
}

func newEmpty() *emptypb.Empty           { return &emptypb.Empty{} }
func newString() *wrapperspb.StringValue { return &wrapperspb.StringValue{} }

var emojiDesc = grpc.ServiceDesc{
	ServiceName: EmojiService,
	HandlerType: (*EmojiServer)(nil),
	Methods: []grpc.MethodDesc{
		unary(EmojiService, "ListAll", newEmpty, func(srv any, ctx context.Context, _ *emptypb.Empty) (proto.Message, error) {
			all, err := srv.(EmojiServer).ListAll(ctx)
			if err != nil {
				return nil, err
			}
			list := &structpb.ListValue{}
			for _, e := range all {
				list.Values = append(list.Values, structpb.NewStructValue(emojiStruct(e)))
			}
			return list, nil
		}),
		unary(EmojiService, "FindByShortcode", newString, func(srv any, ctx context.Context, req *wrapperspb.StringValue) (proto.Message, error) {
			e, err := srv.(EmojiServer).FindByShortcode(ctx, req.GetValue())
			if err != nil {
				return nil, err
			}
			return emojiStruct(e), nil
		}),
	},
	Metadata: "emojivoto/emoji (hand-written descriptor)",
}

var votingDesc = grpc.ServiceDesc{
	ServiceName: VotingService,
	HandlerType: (*VotingServer)(nil),
	Methods: []grpc.MethodDesc{
		unary(VotingService, "Vote", newString, func(srv any, ctx context.Context, req *wrapperspb.StringValue) (proto.Message, error) {
			if err := srv.(VotingServer).Vote(ctx, req.GetValue()); err != nil {
				return nil, err
			}
			return &emptypb.Empty{}, nil
		}),
		unary(VotingService, "Results", newEmpty, func(srv any, ctx context.Context, _ *emptypb.Empty) (proto.Message, error) {
			results, err := srv.(VotingServer).Results(ctx)
			if err != nil {
				return nil, err
			}
			list := &structpb.ListValue{}
			for _, r := range results {
				list.Values = append(list.Values, structpb.NewStructValue(&structpb.Struct{
					Fields: map[string]*structpb.Value{
						"shortcode": structpb.NewStringValue(r.Shortcode),
						"votes":     structpb.NewNumberValue(float64(r.Votes)),
					},
				}))
			}
			return list, nil
		}),
	},
	Metadata: "emojivoto/voting (hand-written descriptor)",
}

func emojiStruct(e Emoji) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"shortcode": structpb.NewStringValue(e.Shortcode),
		"unicode":   structpb.NewStringValue(e.Unicode),
	}}
}

func emojiFrom(s *structpb.Struct) Emoji {
	f := s.GetFields()
	return Emoji{Shortcode: f["shortcode"].GetStringValue(), Unicode: f["unicode"].GetStringValue()}
}

// RegisterEmoji and RegisterVoting add a service implementation to a gRPC server.
func RegisterEmoji(s *grpc.Server, impl EmojiServer)   { s.RegisterService(&emojiDesc, impl) }
func RegisterVoting(s *grpc.Server, impl VotingServer) { s.RegisterService(&votingDesc, impl) }

// Dial opens a plaintext client connection to a service (connects lazily).
func Dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// EmojiClient calls the emoji service.
type EmojiClient struct{ Conn grpc.ClientConnInterface }

func (c EmojiClient) ListAll(ctx context.Context) ([]Emoji, error) {
	out := &structpb.ListValue{}
	if err := c.Conn.Invoke(ctx, "/"+EmojiService+"/ListAll", &emptypb.Empty{}, out); err != nil {
		return nil, err
	}
	all := make([]Emoji, 0, len(out.GetValues()))
	for _, v := range out.GetValues() {
		all = append(all, emojiFrom(v.GetStructValue()))
	}
	return all, nil
}

func (c EmojiClient) FindByShortcode(ctx context.Context, shortcode string) (Emoji, error) {
	out := &structpb.Struct{}
	err := c.Conn.Invoke(ctx, "/"+EmojiService+"/FindByShortcode", wrapperspb.String(shortcode), out)
	return emojiFrom(out), err
}

// VotingClient calls the voting service.
type VotingClient struct{ Conn grpc.ClientConnInterface }

func (c VotingClient) Vote(ctx context.Context, shortcode string) error {
	return c.Conn.Invoke(ctx, "/"+VotingService+"/Vote", wrapperspb.String(shortcode), &emptypb.Empty{})
}

func (c VotingClient) Results(ctx context.Context) ([]Result, error) {
	out := &structpb.ListValue{}
	if err := c.Conn.Invoke(ctx, "/"+VotingService+"/Results", &emptypb.Empty{}, out); err != nil {
		return nil, err
	}
	results := make([]Result, 0, len(out.GetValues()))
	for _, v := range out.GetValues() {
		f := v.GetStructValue().GetFields()
		results = append(results, Result{
			Shortcode: f["shortcode"].GetStringValue(),
			Votes:     int(f["votes"].GetNumberValue()),
		})
	}
	return results, nil
}

// Listen opens a TCP listener and announces it on stdout as "listening on ADDR"
// (the line gotel's demo waits for).
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	return ln, nil
}

// ServeGRPC serves a gRPC server on addr until SIGTERM or SIGINT, then stops it gracefully.
func ServeGRPC(addr string, register func(*grpc.Server)) error {
	ln, err := Listen(addr)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	register(server)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.GracefulStop()
	}()
	return server.Serve(ln)
}
