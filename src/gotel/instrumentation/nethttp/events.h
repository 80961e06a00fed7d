/* net/http events: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define HTTP_METHOD_SIZE 16
#define HTTP_PATH_SIZE 256
#define HTTP_QUERY_SIZE 256
#define HTTP_ROUTE_SIZE 256
#define HTTP_HOST_SIZE 128
#define HTTP_ADDR_SIZE 64
#define HTTP_SCHEME_SIZE 16

/* How the route pattern is found: the field moved between Go releases. */
enum http_route_source {
	HTTP_ROUTE_NONE = 0,
	HTTP_ROUTE_PATTERN_FIELD = 1, /* Go 1.23+: Request.Pattern string */
	HTTP_ROUTE_PAT_POINTER = 2,   /* Go 1.22: Request.pat *pattern, pattern.str */
};

/* One finished server request. Lengths are the Go strings' full lengths. */
struct http_server_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 status;
	__u64 proto_major;
	__u64 proto_minor;
	__u32 pid;
	__u32 tls;
	__u32 trace_flags;
	__u32 remote_parent; /* the parent came in a traceparent header */
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u32 method_len;
	__u32 path_len;
	__u32 query_len;
	__u32 route_len;
	__u32 host_len;
	__u32 remote_addr_len;
	char method[HTTP_METHOD_SIZE];
	char path[HTTP_PATH_SIZE];
	char query[HTTP_QUERY_SIZE];
	char route[HTTP_ROUTE_SIZE];
	char host[HTTP_HOST_SIZE];
	char remote_addr[HTTP_ADDR_SIZE];
};

/* One finished client round trip (net/http.(*Transport).roundTrip). */
struct http_client_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 status; /* 0: no response */
	__u64 proto_major;
	__u64 proto_minor;
	__u64 error_type; /* the error's itab (dynamic type) when roundTrip failed, else 0 */
	__u32 pid;
	__u32 trace_flags;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u32 method_len;
	__u32 scheme_len;
	__u32 host_len;
	__u32 path_len;
	__u32 query_len;
	__u32 has_userinfo; /* never exported: url.full is built without it */
	char method[HTTP_METHOD_SIZE];
	char scheme[HTTP_SCHEME_SIZE];
	char host[HTTP_HOST_SIZE];
	char path[HTTP_PATH_SIZE];
	char query[HTTP_QUERY_SIZE];
};
