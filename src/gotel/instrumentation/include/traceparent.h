/* Parsing an incoming W3C traceparent value: "00-<32 hex>-<16 hex>-<2 hex>". */
#pragma once

#include "span_context.h"

#define TRACEPARENT_LEN 55

static __always_inline int hex_value(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* the spec allows lowercase only */
}

static __always_inline int parse_hex(const __u8 *in, __u8 *out, int bytes)
{
	int any = 0;

	for (int i = 0; i < bytes; i++) {
		int hi = hex_value(in[2 * i]), lo = hex_value(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (hi << 4) | lo;
		any |= out[i];
	}
	return any ? 0 : -1; /* all-zero ids are invalid */
}

/* Returns 0 and fills sc (the remote parent) when v is a valid traceparent. */
static __always_inline int parse_traceparent(const __u8 *v, struct span_context *sc)
{
	__u8 flags;

	/* Version ff is forbidden; a future version keeps the first four fields. */
	if (v[0] == 'f' && v[1] == 'f')
		return -1;
	if (hex_value(v[0]) < 0 || hex_value(v[1]) < 0)
		return -1;
	if (v[2] != '-' || v[35] != '-' || v[52] != '-')
		return -1;
	if (parse_hex(v + 3, sc->trace_id, TRACE_ID_SIZE) ||
	    parse_hex(v + 36, sc->span_id, SPAN_ID_SIZE))
		return -1;
	if (hex_value(v[53]) < 0 || hex_value(v[54]) < 0)
		return -1;
	flags = (hex_value(v[53]) << 4) | hex_value(v[54]);
	sc->flags = flags & TRACE_FLAG_SAMPLED;
	return 0;
}
