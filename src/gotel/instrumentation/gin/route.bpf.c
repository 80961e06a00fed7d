// SPDX-License-Identifier: GPL-2.0
/*
 * gin's matched route for the net/http server span (github.com/gin-gonic/gin), from every RET of
 *
 *   (*node).getValue(path, params, skippedNodes, unescape) (value nodeValue)
 *
 * the tree lookup (*Engine).handleHTTPRequest makes on the serving goroutine; its result is
 * what becomes c.handlers and c.fullPath (the route with its groups' prefixes). One uprobe hit
 * per request. No events: the route goes to shared_http_routes[goid], read by the server probe.
 *
 * The result, a nodeValue, comes back in registers (Go's register ABI: one register per scalar,
 * in field order). Every field of nodeValue fills whole words, so the word at offset o of the
 * struct is result register o/8 (RAX, RBX, RCX, RDI, RSI, R8, ...).
 *
 * The first lookup of a request decides, a miss included: with HandleMethodNotAllowed, gin looks
 * the path up in the other methods' trees after a miss, and those hits are not this request's
 * route (a 405 has none).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/http_route.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_node_value_handlers = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_node_value_full_path = GOTEL_OFFSET_ABSENT;

/* The integer result registers at a RET, in order (copied: ctx may only be read at fixed
 * offsets, and the word a field is in is a load-time constant). */
struct results {
	__u64 word[9];
};

static __always_inline void read_results(struct pt_regs *ctx, struct results *r)
{
	r->word[0] = GO_PARAM1(ctx);
	r->word[1] = GO_PARAM2(ctx);
	r->word[2] = GO_PARAM3(ctx);
	r->word[3] = GO_PARAM4(ctx);
	r->word[4] = GO_PARAM5(ctx);
	r->word[5] = GO_PARAM6(ctx);
	r->word[6] = GO_PARAM7(ctx);
	r->word[7] = GO_PARAM8(ctx);
	r->word[8] = GO_PARAM9(ctx);
}

/* Result word `i`; 0 past the result registers (a layout this ABI would pass in memory). */
static __always_inline __u64 result_word(const struct results *r, __u64 i)
{
	return i < 9 ? r->word[i] : 0;
}

SEC("uprobe")
int get_value_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), handlers, ptr, n;
	struct http_route route = {};
	struct results results;
	__s64 len;

	if (!goid || off_node_value_handlers == GOTEL_OFFSET_ABSENT ||
	    off_node_value_full_path == GOTEL_OFFSET_ABSENT)
		return 0;
	if (process_lookup(&shared_http_routes, goid))
		return 0; /* not the request's own lookup (see above) */
	read_results(ctx, &results);
	handlers = result_word(&results, off_node_value_handlers / 8); /* the slice's data word */
	ptr = result_word(&results, off_node_value_full_path / 8);
	len = (__s64)result_word(&results, off_node_value_full_path / 8 + 1);
	/* A miss (404, a trailing-slash redirect) is stored as an empty route: it still decides. */
	if (handlers && ptr && len > 0) {
		n = len < HTTP_ROUTE_MAX ? len : HTTP_ROUTE_MAX;
		n &= 0x1ff; /* a bound the verifier tracks through the helper call */
		if (n <= HTTP_ROUTE_MAX && !bpf_probe_read_user(route.route, n, (void *)ptr))
			route.len = len > 0xffffffff ? 0xffffffff : (__u32)len;
	}
	process_update(&shared_http_routes, goid, &route, BPF_NOEXIST);
	return 0;
}
