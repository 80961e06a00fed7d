/* net/http events: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define HTTP_METHOD_SIZE 16
#define HTTP_PATH_SIZE 256
#define HTTP_QUERY_SIZE 256
#define HTTP_ROUTE_SIZE 256
#define HTTP_HOST_SIZE 128
#define HTTP_ADDR_SIZE 64

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
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8];
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
