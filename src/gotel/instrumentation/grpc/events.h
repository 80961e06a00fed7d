/* gRPC events and knobs: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define GRPC_METHOD_SIZE 128  /* "/package.Service/Method" */
#define GRPC_AUTHORITY_SIZE 64 /* ":authority" / ClientConn.authority: host:port */
#define GRPC_MESSAGE_SIZE 128  /* the status message, for the span status */
#define GRPC_IP_SIZE 16	       /* net.IP: 4 or 16 bytes */

/*
 * Where a transport stream keeps its common fields (id, ctx, method): the
 * stream type changed between grpc releases; the loader picks from DWARF.
 */
enum grpc_stream_layout {
	GRPC_STREAM_UNKNOWN = 0,
	GRPC_STREAM_PLAIN = 1,	     /* < 1.69: *transport.Stream */
	GRPC_STREAM_EMBED_PTR = 2,   /* 1.69-1.76: ServerStream{*Stream, ...} */
	GRPC_STREAM_EMBED_VALUE = 3, /* >= 1.77: ServerStream{Stream, ...} */
};

/* Which argument of (*http2Server).operateHeaders is the *http2.MetaHeadersFrame. */
enum grpc_frame_arg {
	GRPC_FRAME_ARG_UNKNOWN = 0,
	GRPC_FRAME_ARG_2 = 2, /* < 1.60: (t, frame, handle) */
	GRPC_FRAME_ARG_4 = 4, /* >= 1.60: (t, ctx, frame, handle): ctx is two words */
};

/* How a span's gRPC status code was learned. */
enum grpc_status_source {
	GRPC_STATUS_NONE = 0,	     /* no status seen (server: none written, the peer left) */
	GRPC_STATUS_OK = 1,	     /* nil error (or io.EOF ending a client stream) */
	GRPC_STATUS_READ = 2,	     /* read from a *status.Status / *status.Error */
	GRPC_STATUS_NOT_STATUS = 3,  /* an error that is not a gRPC status: Unknown */
};

/* A client span covers one unary call, or a stream from NewStream to its end. */
enum grpc_call_kind {
	GRPC_CALL_UNARY = 0,
	GRPC_CALL_STREAM = 1,
};

/* One finished server RPC (google.golang.org/grpc.(*Server).handleStream). */
struct grpc_server_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u32 pid;
	__u32 trace_flags;
	__u32 remote_parent; /* the parent came in a traceparent header */
	enum grpc_status_source status_source;
	__u32 status_code;
	__u32 method_len;
	__u32 authority_len;
	__u32 peer_ip_len;
	__u32 peer_port;
	__u32 local_ip_len;
	__u32 local_port;
	__u32 http2_transport; /* grpc's own HTTP/2 server read the HEADERS (not ServeHTTP) */
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u8 peer_ip[GRPC_IP_SIZE];
	__u8 local_ip[GRPC_IP_SIZE];
	char method[GRPC_METHOD_SIZE];
	char authority[GRPC_AUTHORITY_SIZE];
};

/* One finished client call: (*ClientConn).Invoke, or a stream from (*ClientConn).NewStream. */
struct grpc_client_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 error_type; /* the error's itab (dynamic type) when the call failed, else 0 */
	__u32 pid;
	__u32 trace_flags;
	enum grpc_call_kind kind;
	enum grpc_status_source status_source;
	__u32 status_code;
	__u32 method_len;
	__u32 target_len;
	__u32 message_len;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	char method[GRPC_METHOD_SIZE];
	char target[GRPC_AUTHORITY_SIZE];
	char message[GRPC_MESSAGE_SIZE];
};
