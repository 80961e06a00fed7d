// SPDX-License-Identifier: GPL-2.0
/*
 * gorilla/mux routes for the net/http server span: requestWithRoute(r, route), at entry.
 *
 * (*Router).ServeHTTP calls it once per request, and only when Match found a route: the
 * one it then serves. The route's path template (GetPathTemplate: routeConf.regexp.path
 * .template) already holds a subrouter's prefixes, which mux joins when routes are added.
 * A 404 never gets here (or, with a NotFoundHandler, gets here with a nil route): no route.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/http_route.h"

char LICENSE[] SEC("license") = "GPL";

/* Struct field offsets, from the target's DWARF or gotel's offsets database. */
volatile const __u64 off_route_err = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_route_route_conf = GOTEL_OFFSET_ABSENT;  /* embedded routeConf */
volatile const __u64 off_route_conf_regexp = GOTEL_OFFSET_ABSENT; /* routeRegexpGroup value */
volatile const __u64 off_regexp_group_path = GOTEL_OFFSET_ABSENT; /* *routeRegexp */
volatile const __u64 off_route_regexp_template = GOTEL_OFFSET_ABSENT;

/* Room for the route: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct http_route);
} mux_scratch SEC(".maps");

SEC("uprobe")
int request_with_route_entry(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	__u64 route = GO_PARAM2(ctx), path;
	struct http_route *r;
	__u32 zero = 0;

	if (!goid || !route)
		return 0;
	if (off_route_route_conf == GOTEL_OFFSET_ABSENT || off_route_conf_regexp == GOTEL_OFFSET_ABSENT ||
	    off_regexp_group_path == GOTEL_OFFSET_ABSENT)
		return 0;
	/* GetPathTemplate gives no template for a route with a build error (err's type word). */
	if (read_ptr_field(route, off_route_err))
		return 0;
	path = read_u64(route + off_route_route_conf + off_route_conf_regexp + off_regexp_group_path);
	r = bpf_map_lookup_elem(&mux_scratch, &zero);
	if (!path || !r) /* a route without a path (Host, Headers, ... only) */
		return 0;
	r->len = read_go_string_n(path, off_route_regexp_template, r->route, HTTP_ROUTE_MAX);
	if (r->len)
		process_update(&shared_http_routes, goid, r, BPF_ANY);
	return 0;
}
