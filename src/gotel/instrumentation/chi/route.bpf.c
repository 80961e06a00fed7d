// SPDX-License-Identifier: GPL-2.0
/*
 * chi routes for the net/http server span: (*node).FindRoute, at every RET.
 *
 * Each router level (the top Mux, every Mount-ed or Route-d sub-router) calls FindRoute
 * once, and a successful call has just appended its pattern to the chi Context's
 * RoutePatterns. So at the RET of the innermost call the slice holds the whole pattern,
 * and each level's RET overwrites the goroutine's route with what rctx.RoutePattern()
 * would return by then: the last write is the full pattern. A failed call (404, 405)
 * clears it: the request matched no route, whatever its outer levels matched.
 *
 * At a RET the argument registers are gone, but FindRoute must keep rctx across its
 * findRoute call, and Go (register ABI) spills a register argument to its home slot in
 * the caller-reserved spill area: for (n, rctx, ...) that is the second word above the
 * return address, where RSP points at the RET.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/http_route.h"

char LICENSE[] SEC("license") = "GPL";

/* Struct field offsets, from the target's DWARF or gotel's offsets database. */
volatile const __u64 off_context_route_patterns = GOTEL_OFFSET_ABSENT;

#define RCTX_SPILL_SLOT 16 /* bytes above RSP at the RET: after the return address and n */
#define MAX_PATTERNS 8	   /* router levels joined; deeper nestings are cut */
#define PATTERN_MAX HTTP_ROUTE_MAX
#define JOINED_MAX (2 * HTTP_ROUTE_MAX) /* a full route plus one pattern more */

/* The joined patterns, then the route made of them: too big for the BPF stack. */
struct chi_scratch {
	char joined[JOINED_MAX];
	struct http_route route;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chi_scratch);
} chi_scratch SEC(".maps");

/* Append RoutePatterns[0..count) to s->joined; returns the joined length (< JOINED_MAX). */
static __always_inline __u32 join_patterns(struct chi_scratch *s, __u64 array, __u64 count)
{
	struct go_string p;
	__u32 len = 0, off;
	__u64 n;

	for (__u32 i = 0; i < MAX_PATTERNS; i++) {
		if (i >= count)
			break;
		if (bpf_probe_read_user(&p, sizeof(p), (void *)(array + i * sizeof(p))))
			return 0;
		if (p.len <= 0 || !p.ptr)
			continue;
		n = p.len;
		if (n > PATTERN_MAX)
			n = PATTERN_MAX;
		if (len >= HTTP_ROUTE_MAX) /* the route is full: what follows cannot fit */
			break;
		/* Bound again in a form the verifier tracks: len < 256, n <= 256 fit in 512. */
		n &= 0x1ff;
		if (n > PATTERN_MAX)
			return 0;
		/* Hide len's range from clang, which would drop the mask the verifier needs. */
		off = len;
		asm volatile("" : "+r"(off));
		if (bpf_probe_read_user(&s->joined[off & (HTTP_ROUTE_MAX - 1)], n, (void *)p.ptr))
			return 0;
		len += n;
	}
	return len;
}

/* The state of chi_route_pattern's loop, which bpf_loop runs (verified once, not per step). */
struct reduce_state {
	struct chi_scratch *s;
	__u32 joined_len;
	__u32 n; /* the route's length so far */
};

static long reduce_step(__u64 i, void *data)
{
	struct reduce_state *st = data;
	char *out = st->s->route.route;
	__u32 n = st->n;

	if (i >= st->joined_len || i >= HTTP_ROUTE_MAX)
		return 1;
	out[n & (HTTP_ROUTE_MAX - 1)] = st->s->joined[i & (HTTP_ROUTE_MAX - 1)];
	n++;
	if (n >= 3 && out[(n - 1) & (HTTP_ROUTE_MAX - 1)] == '/' &&
	    out[(n - 2) & (HTTP_ROUTE_MAX - 1)] == '*' && out[(n - 3) & (HTTP_ROUTE_MAX - 1)] == '/')
		n -= 2;
	st->n = n;
	return 0;
}

/*
 * chi's replaceWildcards (every slash-star-slash becomes "/", repeatedly: a Mount's
 * "/api/" + star pattern joins its sub-router's "/users") and its trimming of a trailing
 * "/" or "//" (unless the route is "/"), from joined into route. Reducing as we append
 * reaches the same fixpoint.
 */
static __always_inline __u32 chi_route_pattern(struct chi_scratch *s, __u32 joined_len)
{
	struct reduce_state st = {.s = s, .joined_len = joined_len};
	char *out = s->route.route;
	__u32 n;

	bpf_loop(HTTP_ROUTE_MAX, reduce_step, &st, 0);
	n = st.n;
	if (n > 1 && out[(n - 1) & (HTTP_ROUTE_MAX - 1)] == '/') {
		n--;
		if (n > 1 && out[(n - 1) & (HTTP_ROUTE_MAX - 1)] == '/')
			n--;
	}
	return n;
}

SEC("uprobe")
int find_route_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	__u64 rctx, patterns[2]; /* the slice's array pointer and length */
	struct chi_scratch *s;
	__u32 zero = 0, joined_len;

	if (!goid)
		return 0;
	if (!GO_PARAM1(ctx)) { /* no node matched: no route */
		process_delete(&shared_http_routes, goid);
		return 0;
	}
	rctx = read_u64(ctx->rsp + RCTX_SPILL_SLOT);
	if (!rctx || off_context_route_patterns == GOTEL_OFFSET_ABSENT)
		return 0;
	if (bpf_probe_read_user(patterns, sizeof(patterns),
				(void *)(rctx + off_context_route_patterns)))
		return 0;
	s = bpf_map_lookup_elem(&chi_scratch, &zero);
	if (!s || !patterns[0])
		return 0;
	joined_len = join_patterns(s, patterns[0], patterns[1]);
	if (!joined_len)
		return 0;
	s->route.len = chi_route_pattern(s, joined_len);
	/* Cut: report the length as at least the copy's, so the cut shows. */
	if (joined_len > HTTP_ROUTE_MAX && s->route.len <= HTTP_ROUTE_MAX)
		s->route.len = joined_len;
	process_update(&shared_http_routes, goid, &s->route, BPF_ANY);
	return 0;
}
