// SPDX-License-Identifier: GPL-2.0
/*
 * Spans the program starts by hand with the OpenTelemetry Go API, when no SDK is installed:
 * the global tracer then makes a non-recording span in (*tracer).newSpan and every method of
 * that span does nothing. gotel reads what the program gives those calls (name, options,
 * attributes, status, end) and makes the span itself, without writing into the program:
 *
 *   newSpan entry  name, options, attributes of WithAttributes; parent from the Context
 *   newSpan RET    the returned span's data pointer names it from now on; the returned
 *                  Context carries it to gotel's other probes (children nest under it)
 *   SetAttributes, SetStatus, SetName   update it; End emits it.
 *
 * With an SDK installed the global tracer delegates to it and newSpan never runs: the
 * program exports its spans itself, gotel does not make them a second time.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/events.h"
#include "events.h"
#include "include/maps.h"

char LICENSE[] SEC("license") = "GPL";

/* File address of newSpan: with the probe's address it gives the load bias of a PIE. */
volatile const __u64 new_span_address = 0;
/* File addresses of attributeOption's applySpanStart (pointer wrapper and value method). */
volatile const __u64 attr_option_method = 0;
volatile const __u64 attr_option_value_method = 0;
/* attribute.KeyValue and attribute.Value layout. */
volatile const __u64 kv_size = 64;
volatile const __u64 off_kv_key = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_kv_value = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_value_vtype = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_value_numeric = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_value_stringly = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_value_slice = GOTEL_OFFSET_ABSENT;

/* newSpan in progress, by goroutine, until its RET names the span. */
GOTEL_PROCESS_HASH(otel_starting, struct otel_span_event, 512);

/* Open spans by their data pointer (a nonRecordingSpan on the heap). ~2.4 KiB each. */
GOTEL_PROCESS_HASH(otel_spans, struct otel_span_event, 2048);

/* Too big for the BPF stack: built here, then copied into the maps. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct otel_span_event);
} otel_scratch SEC(".maps");

GOTEL_EVENT_TYPE(otel_span_event);
GOTEL_EVENT_TYPE(otel_attr); /* its layout, for the agent's decoder of attrs[] */

/* Copy up to cap bytes of a Go string (ptr, len) into dst; returns the bytes copied. */
static __always_inline __u32 copy_string(__u64 ptr, __s64 len, void *dst, __u32 cap)
{
	__u64 n;

	if (!ptr || len <= 0)
		return 0;
	n = len > cap ? cap : len;
	n &= 0xff;
	if (n > cap || bpf_probe_read_user(dst, n, (void *)ptr))
		return 0;
	return n;
}

/* Copy a Go string for a text field whose _len is the full length (the agent tells a cut). */
static __always_inline __u32 copy_text(__u64 ptr, __s64 len, void *dst, __u32 cap)
{
	if (!copy_string(ptr, len, dst, cap))
		return 0;
	return len > 0xffffffff ? 0xffffffff : (__u32)len;
}

/* bpf_loop state: appending a []attribute.KeyValue to a span's slots. */
struct attr_walk {
	struct otel_span_event *span;
	__u64 kvs;  /* the array */
	__u64 n;    /* its length */
	__u64 next; /* first element not looked at */
};

static __always_inline void read_slice_value(struct otel_attr *a, __u64 value, __u8 type)
{
	__u64 iface[2]; /* the array of `slice any`: its type (Size_ first) and data */
	__u64 size, n, i;
	struct go_string s;

	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(value + off_value_slice)))
		return;
	size = read_u64(iface[0]);
	if (!iface[1] || size > 1 << 20)
		return;
	if (type == OTEL_STRINGSLICE) {
		a->count = size / 16;
		for (i = 0; i < OTEL_SLICE_STRINGS && i < a->count; i++) {
			__u8 *slot = &a->value[i * OTEL_SLICE_STRING_SIZE];

			if (bpf_probe_read_user(&s, sizeof(s), (void *)(iface[1] + i * 16)))
				return;
			slot[0] = s.len > 255 ? 255 : s.len;
			copy_string(s.ptr, s.len, slot + 1, OTEL_SLICE_STRING_SIZE - 1);
		}
		a->value_len = i * OTEL_SLICE_STRING_SIZE;
		return;
	}
	a->count = type == OTEL_BOOLSLICE ? size : size / 8;
	n = size > OTEL_VALUE_SIZE ? OTEL_VALUE_SIZE : size;
	n &= 0xff;
	if (n > OTEL_VALUE_SIZE || bpf_probe_read_user(a->value, n, (void *)iface[1]))
		return;
	a->value_len = n;
}

static long read_attr_step(__u64 i, void *data)
{
	struct attr_walk *w = data;
	struct otel_span_event *span = w->span;
	struct otel_attr *a;
	struct go_string key, str;
	__u64 kv, value, type;
	__u32 slot;

	if (i >= w->n)
		return 1;
	slot = span->attr_count;
	if (slot >= OTEL_MAX_ATTRS)
		return 1; /* the rest are counted as dropped */
	w->next = i + 1;
	kv = w->kvs + i * kv_size;
	value = kv + off_kv_value;
	type = read_u64(value + off_value_vtype);
	if (type == OTEL_EMPTY || type >= OTEL_SLICE) { /* nested values: not bridged */
		span->attrs_dropped++;
		return 0;
	}
	if (bpf_probe_read_user(&key, sizeof(key), (void *)(kv + off_kv_key)))
		return 0;
	a = &span->attrs[slot & (OTEL_MAX_ATTRS - 1)];
	a->type = type;
	a->key_len = key.len > 255 ? 255 : key.len;
	copy_string(key.ptr, key.len, a->key, OTEL_KEY_SIZE);
	a->numeric = 0;
	a->count = 0;
	a->value_len = 0;
	switch (type) {
	case OTEL_BOOL:
	case OTEL_INT64:
	case OTEL_FLOAT64:
		a->numeric = read_u64(value + off_value_numeric);
		break;
	case OTEL_STRING:
	case OTEL_BYTESLICE:
		if (bpf_probe_read_user(&str, sizeof(str), (void *)(value + off_value_stringly)))
			break;
		a->count = str.len > 0xffffffff ? 0xffffffff : str.len;
		a->value_len = copy_string(str.ptr, str.len, a->value, OTEL_VALUE_SIZE);
		break;
	default:
		read_slice_value(a, value, type);
	}
	span->attr_count = slot + 1;
	return 0;
}

static __always_inline void append_attributes(struct otel_span_event *span, __u64 kvs, __s64 n)
{
	struct attr_walk w = {.span = span, .kvs = kvs, .n = n > 0 ? n : 0};

	if (!kvs || n <= 0 || off_kv_value == GOTEL_OFFSET_ABSENT)
		return;
	bpf_loop(OTEL_MAX_ATTRS, read_attr_step, &w, 0);
	if (w.n > w.next)
		span->attrs_dropped += w.n - w.next;
}

static __always_inline void read_options(struct pt_regs *ctx, struct otel_span_event *s,
					 __u64 opts, __s64 nopts)
{
	__u64 bias = (ctx->rip - new_span_address) & ~0xfffULL; /* 0 unless PIE */
	__u64 iface[2], words[2], slice[2];
	struct otel_option *o;

	for (int i = 0; i < OTEL_MAX_OPTIONS; i++) {
		if (i >= nopts)
			break;
		if (bpf_probe_read_user(iface, sizeof(iface), (void *)(opts + i * 16)) || !iface[0])
			break;
		o = &s->options[i];
		o->method = read_u64(iface[0] + GO_ITAB_FUN0) - bias;
		o->word0 = o->word1 = 0;
		s->option_count = i + 1;
		if (o->method == attr_option_method || o->method == attr_option_value_method) {
			/* WithAttributes: the data word points to the []KeyValue header. */
			if (!bpf_probe_read_user(slice, sizeof(slice), (void *)iface[1]))
				append_attributes(s, slice[0], slice[1]);
			continue;
		}
		if (!bpf_probe_read_user(words, sizeof(words), (void *)iface[1])) {
			o->word0 = words[0] - bias;
			o->word1 = words[1];
		}
	}
}

/* func (t *tracer) newSpan(ctx context.Context, autoSpan *bool, name string,
 *     opts []trace.SpanStartOption) (context.Context, trace.Span) */
SEC("uprobe")
int new_span_entry(struct pt_regs *ctx)
{
	__u64 g = GO_G(ctx), goid = goroutine_id(g);
	__u64 goctx = GO_PARAM3(ctx), name_ptr = GO_PARAM5(ctx), opts = GO_PARAM7(ctx);
	struct otel_span_event *s, *seen;
	struct span_context parent = {};
	__u32 zero = 0;

	if (!goid)
		return 0;
	seen = process_lookup(&otel_starting, goid);
	if (seen && seen->name_ptr == name_ptr && seen->opts_ptr == opts)
		return 0; /* restarted after a stack growth */
	s = bpf_map_lookup_elem(&otel_scratch, &zero);
	if (!s)
		return 0;
	s->start_ns = bpf_ktime_get_boot_ns();
	s->end_ns = 0;
	s->context = 0;
	s->name_ptr = name_ptr;
	s->opts_ptr = opts;
	s->pid = agent_pid();
	s->name_len = copy_text(name_ptr, GO_PARAM6(ctx), s->name, OTEL_NAME_SIZE);
	s->status_len = s->status_code = 0;
	s->attr_count = s->attrs_dropped = s->option_count = 0;

	struct span_context sc = {};

	if (find_parent_span(goctx, g, goid, &parent)) {
		span_start(&sc, &parent);
		__builtin_memcpy(s->parent_span_id, parent.span_id, SPAN_ID_SIZE);
	} else {
		span_start(&sc, 0);
		__builtin_memset(s->parent_span_id, 0, SPAN_ID_SIZE);
	}
	__builtin_memcpy(s->trace_id, sc.trace_id, TRACE_ID_SIZE);
	__builtin_memcpy(s->span_id, sc.span_id, SPAN_ID_SIZE);
	s->trace_flags = sc.flags;

	read_options(ctx, s, opts, (__s64)GO_PARAM8(ctx));
	process_update(&otel_starting, goid, s, BPF_ANY);
	return 0;
}

SEC("uprobe")
int new_span_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	__u64 span = GO_PARAM4(ctx), retctx = GO_PARAM2(ctx); /* (ctx itab, data, span itab, data) */
	struct otel_span_event *s = process_lookup(&otel_starting, goid);
	struct span_context sc = {};

	if (!s)
		return 0;
	if (span) {
		s->context = retctx;
		process_update(&otel_spans, span, s, BPF_ANY);
		if (retctx) {
			__builtin_memcpy(sc.trace_id, s->trace_id, TRACE_ID_SIZE);
			__builtin_memcpy(sc.span_id, s->span_id, SPAN_ID_SIZE);
			sc.flags = s->trace_flags;
			process_update(&shared_context_spans, retctx, &sc, BPF_ANY);
		}
	}
	process_delete(&otel_starting, goid);
	return 0;
}

/* func (*nonRecordingSpan) SetAttributes(kv ...attribute.KeyValue) */
SEC("uprobe")
int set_attributes_entry(struct pt_regs *ctx)
{
	__u64 span = GO_PARAM1(ctx);
	struct otel_span_event *s = process_lookup(&otel_spans, span);

	if (s)
		append_attributes(s, GO_PARAM2(ctx), (__s64)GO_PARAM3(ctx));
	return 0;
}

/* func (*nonRecordingSpan) SetStatus(code codes.Code, description string) */
SEC("uprobe")
int set_status_entry(struct pt_regs *ctx)
{
	__u64 span = GO_PARAM1(ctx);
	__u32 code = GO_PARAM2(ctx);
	struct otel_span_event *s = process_lookup(&otel_spans, span);

	/* As the SDK does: Ok is final, Unset changes nothing, a description is for Error only. */
	if (!s || s->status_code == 2 || code == 0 || code > 2)
		return 0;
	s->status_code = code;
	s->status_len = code == 1 ? copy_text(GO_PARAM3(ctx), (__s64)GO_PARAM4(ctx), s->status,
					      OTEL_STATUS_SIZE) : 0;
	return 0;
}

/* func (*nonRecordingSpan) SetName(name string) */
SEC("uprobe")
int set_name_entry(struct pt_regs *ctx)
{
	__u64 span = GO_PARAM1(ctx);
	struct otel_span_event *s = process_lookup(&otel_spans, span);

	if (s)
		s->name_len = copy_text(GO_PARAM2(ctx), (__s64)GO_PARAM3(ctx), s->name,
					OTEL_NAME_SIZE);
	return 0;
}

/* func (*nonRecordingSpan) End(options ...trace.SpanEndOption) */
SEC("uprobe")
int end_entry(struct pt_regs *ctx)
{
	__u64 span = GO_PARAM1(ctx), retctx;
	struct otel_span_event *s = process_lookup(&otel_spans, span), *e = 0;

	if (!s)
		return 0; /* started before gotel attached, or ended already */
	s->end_ns = bpf_ktime_get_boot_ns();
	retctx = s->context;
	if (s->trace_flags & TRACE_FLAG_SAMPLED) {
		e = reserve_event(sizeof(*e));
		if (e)
			bpf_probe_read_kernel(e, sizeof(*e), s);
	}
	if (retctx)
		process_delete(&shared_context_spans, retctx);
	/* Deleting is atomic: of two concurrent Ends one emits. */
	if (process_delete(&otel_spans, span)) {
		if (e)
			bpf_ringbuf_discard(e, 0);
		return 0;
	}
	if (e)
		submit_event(e);
	return 0;
}
