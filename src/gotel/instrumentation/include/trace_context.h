/*
 * Which span new work belongs to, decided in the kernel at span start so
 * that children, outgoing headers and exported spans agree.
 *
 * A span is found through the context.Context the code passes (walking the
 * context's parents), else through the goroutine: its own active span, then
 * the span of the goroutine that started it.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "go_types.h"
#include "goroutine.h"
#include "span_context.h"
#include "maps.h"

#define CONTEXT_WALK_DEPTH 8
#define LINEAGE_WALK_DEPTH 4

/* OTEL_TRACES_SAMPLER's values, as SAMPLER_ + the name in capitals (parentbased_ -> PARENT_). */
enum sampler_kind {
	SAMPLER_ALWAYS_ON = 0,
	SAMPLER_ALWAYS_OFF = 1,
	SAMPLER_TRACEIDRATIO = 2,
	SAMPLER_PARENT_ALWAYS_ON = 3,
	SAMPLER_PARENT_ALWAYS_OFF = 4,
	SAMPLER_PARENT_TRACEIDRATIO = 5,
};

/* Typed, so the enum is in every object's BTF: the loader sets it by enumerator name. */
volatile const enum sampler_kind sampler = SAMPLER_PARENT_ALWAYS_ON;
/* traceidratio: sampled when the trace id's low 8 bytes (big endian) < threshold. */
volatile const __u64 sampler_threshold = 0;
/* Offset of the parent Context interface embedded in context's cancelCtx/valueCtx/timerCtx. */
volatile const __u64 off_context_parent = GOTEL_OFFSET_ABSENT;

/* The active span of each goroutine that is serving a request. */
GOTEL_PROCESS_HASH(shared_goroutine_spans, struct span_context, 32768);

/* Spans by the context.Context data pointer that carries them. */
GOTEL_PROCESS_HASH(shared_context_spans, struct span_context, 32768);

/* goid -> parent goid, for goroutines started below the first level. */
GOTEL_PROCESS_HASH(shared_goroutine_parents, __u64, 65536);

static __always_inline int sample_root(const __u8 *trace_id)
{
	__u64 low = 0;

	switch (sampler) {
	case SAMPLER_ALWAYS_OFF:
	case SAMPLER_PARENT_ALWAYS_OFF:
		return 0;
	case SAMPLER_TRACEIDRATIO:
	case SAMPLER_PARENT_TRACEIDRATIO:
		for (int i = 8; i < 16; i++)
			low = (low << 8) | trace_id[i];
		return low < sampler_threshold;
	case SAMPLER_ALWAYS_ON:
	case SAMPLER_PARENT_ALWAYS_ON:
		break;
	}
	return 1;
}

static __always_inline int is_parent_based(void)
{
	return sampler >= SAMPLER_PARENT_ALWAYS_ON;
}

/*
 * Fill sc for a new span: a child of parent when there is one, else a new
 * trace. The sampling decision follows the parent for parent-based samplers.
 */
static __always_inline void span_start(struct span_context *sc, const struct span_context *parent)
{
	if (parent) {
		__builtin_memcpy(sc->trace_id, parent->trace_id, TRACE_ID_SIZE);
		if (is_parent_based())
			sc->flags = parent->flags & TRACE_FLAG_SAMPLED;
		else
			sc->flags = sample_root(sc->trace_id) ? TRACE_FLAG_SAMPLED : 0;
	} else {
		fill_random(sc->trace_id, TRACE_ID_SIZE);
		sc->flags = sample_root(sc->trace_id) ? TRACE_FLAG_SAMPLED : 0;
	}
	fill_random(sc->span_id, SPAN_ID_SIZE);
}

/* The span carried by ctx (a context.Context data word) or by one of its parents. */
static __always_inline int find_context_span(__u64 ctx, struct span_context *out)
{
	struct span_context *sc;

	if (off_context_parent == GOTEL_OFFSET_ABSENT)
		return 0;
	for (int i = 0; i < CONTEXT_WALK_DEPTH && ctx; i++) {
		sc = process_lookup(&shared_context_spans, ctx);
		if (sc) {
			*out = *sc;
			return 1;
		}
		/* A context with no parent field (e.g. Background) yields a pointer no span maps to. */
		ctx = read_u64(ctx + off_context_parent + 8);
	}
	return 0;
}

/* The active span of this goroutine, or of the goroutines that started it. */
static __always_inline int find_goroutine_span(__u64 g, __u64 goid, struct span_context *out)
{
	struct span_context *sc;
	__u64 *up, id = goid;

	for (int i = 0; i < LINEAGE_WALK_DEPTH && id; i++) {
		sc = process_lookup(&shared_goroutine_spans, id);
		if (sc) {
			*out = *sc;
			return 1;
		}
		/* The first step up is in the g itself; further ones need the lineage map. */
		if (i == 0) {
			id = goroutine_parent_id(g);
			continue;
		}
		up = process_lookup(&shared_goroutine_parents, id);
		id = up ? *up : 0;
	}
	return 0;
}

static __always_inline int find_parent_span(__u64 ctx, __u64 g, __u64 goid,
					    struct span_context *out)
{
	return find_context_span(ctx, out) || find_goroutine_span(g, goid, out);
}
