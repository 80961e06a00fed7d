/*
 * The route a router matched for the request its goroutine is serving, for the
 * net/http server span: a router probe (gin, chi, echo, gorilla/mux, ...) sets
 * it from its own hook; the server probe clears it when a request starts and
 * uses it, over the ServeMux pattern, when the request ends. Keyed by process
 * and goid: a router runs on the goroutine that serves the request. One
 * instance per agent (shared_*), like the span maps.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"

#define HTTP_ROUTE_MAX 256

struct http_route {
	__u32 len; /* the route's full length (it may be longer than the copy) */
	__u32 _pad;
	char route[HTTP_ROUTE_MAX];
};

GOTEL_PROCESS_HASH(shared_http_routes, struct http_route, 16384);
