/* OpenTelemetry Go API bridge events: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define OTEL_NAME_SIZE 96
#define OTEL_STATUS_SIZE 96
#define OTEL_KEY_SIZE 32
#define OTEL_VALUE_SIZE 96
#define OTEL_MAX_ATTRS 16 /* a power of two: slot indexes are masked with it */
#define OTEL_MAX_OPTIONS 4
/* A []string value keeps its first strings in fixed slots: a length byte, then the bytes. */
#define OTEL_SLICE_STRINGS 4
#define OTEL_SLICE_STRING_SIZE 24

/* attribute.Type: the same numbers in every otel release since v1.0 (v1.4x added 9-11). */
enum otel_value_type {
	OTEL_EMPTY = 0,
	OTEL_BOOL = 1,
	OTEL_INT64 = 2,
	OTEL_FLOAT64 = 3,
	OTEL_STRING = 4,
	OTEL_BOOLSLICE = 5,
	OTEL_INT64SLICE = 6,
	OTEL_FLOAT64SLICE = 7,
	OTEL_STRINGSLICE = 8,
	OTEL_BYTESLICE = 9,
	OTEL_SLICE = 10,
	OTEL_MAP = 11,
};

/* One attribute.KeyValue, bounded. */
struct otel_attr {
	__u64 numeric; /* BOOL, INT64, FLOAT64 (IEEE bits) */
	__u32 count;   /* STRING, BYTESLICE: full length; *SLICE: element count */
	__u8 type;     /* enum otel_value_type */
	__u8 key_len;  /* full key length, 255 when longer */
	__u16 value_len; /* bytes copied into value */
	char key[OTEL_KEY_SIZE];
	__u8 value[OTEL_VALUE_SIZE]; /* string bytes, or the slice's array elements */
};

/* A trace.SpanStartOption, for the agent to tell its kind (it names code addresses). */
struct otel_option {
	__u64 method; /* file address of the option type's applySpanStart (its itab's fun[0]) */
	__u64 word0;  /* the first word its data points to, made a file address */
	__u64 word1;  /* the second (a WithSpanKind closure keeps the kind there) */
};

/* One span the program started by hand through the global (no-op) tracer, ended. */
struct otel_span_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 context; /* the Context newSpan returned: carries the span to gotel's other probes */
	__u64 name_ptr; /* with opts_ptr: tells newSpan's restart after a stack growth */
	__u64 opts_ptr;
	__u32 pid;
	__u32 trace_flags;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u32 name_len;
	__u32 status_len;
	__u32 status_code; /* codes.Code: 0 Unset, 1 Error, 2 Ok */
	__u32 attr_count;  /* slots filled */
	__u32 attrs_dropped; /* beyond the slots */
	__u32 option_count;  /* options kept (the first OTEL_MAX_OPTIONS) */
	struct otel_option options[OTEL_MAX_OPTIONS];
	char name[OTEL_NAME_SIZE];
	char status[OTEL_STATUS_SIZE];
	struct otel_attr attrs[OTEL_MAX_ATTRS];
};
