// SPDX-License-Identifier: GPL-2.0
/*
 * echo's matched route for the net/http server span (github.com/labstack/echo/v4), from every
 * RET of
 *
 *   (*Router).Find(method, path string, c Context)
 *
 * which (*Echo).ServeHTTP calls on the serving goroutine; it leaves the route (with its groups'
 * prefixes) in the context's path, what c.Path() returns. One uprobe hit per request. No
 * events: the route goes to shared_http_routes[goid], read by the server probe.
 *
 * Find returns nothing, so c is read back from its argument spill slot in the caller's frame
 * (ABI: the caller reserves it, the callee may store its register arguments there): Find needs
 * c after calls and stores it there in its prologue, with every echo release and Go toolchain
 * tested (tests/e2e/test_echo.py checks the store in the binaries it runs).
 *
 * A miss is no route: echo then gives the context the path of the node that came closest (for
 * its 404 and 405 handlers) but no parameter names, where a route always has a (maybe empty)
 * non-nil slice of them.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/http_route.h"

char LICENSE[] SEC("license") = "GPL";

volatile const __u64 off_context_path = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_context_pnames = GOTEL_OFFSET_ABSENT;

/*
 * At a RET the stack pointer is back at its entry value: the return address, then the spill
 * slots of the register arguments in order: r, method (2 words), path (2), c (itab, data).
 */
#define FIND_SPILL_C_ITAB 48
#define FIND_SPILL_C_DATA 56

SEC("uprobe")
int find_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), c, pnames;
	struct http_route route = {};

	if (!goid || off_context_pnames == GOTEL_OFFSET_ABSENT)
		return 0;
	if (!read_u64(ctx->rsp + FIND_SPILL_C_ITAB))
		return 0; /* a nil Context: nothing was spilled that we can use */
	c = read_u64(ctx->rsp + FIND_SPILL_C_DATA);
	pnames = read_ptr_field(c, off_context_pnames); /* the slice's data word */
	if (pnames)
		route.len = read_go_string(c, off_context_path, route.route);
	if (route.len)
		process_update(&shared_http_routes, goid, &route, BPF_ANY);
	else
		process_delete(&shared_http_routes, goid); /* a later miss (user re-routing) */
	return 0;
}
