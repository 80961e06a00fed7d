/* Socket-level traceparent injection: what the C side and Python share. */
#pragma once

/*
 * What became of one message the sk_msg program saw; Python reads the names
 * from BTF and reports the counters by name (lower case, without INJECT_).
 */
enum inject_reason {
	INJECT_INJECTED = 0,       /* traceparent inserted after the request line */
	INJECT_NOT_TARGET,         /* sent by a process that is not instrumented */
	INJECT_NO_GOROUTINE,       /* the thread's goroutine could not be read */
	INJECT_NO_CONTEXT,         /* the goroutine has no request to propagate */
	INJECT_STALE_CONTEXT,      /* the context is older than max_context_age_ns */
	INJECT_TOO_SHORT,          /* shorter than the shortest request head */
	INJECT_TLS,                /* starts like a TLS record */
	INJECT_NOT_HTTP1,          /* not an HTTP/1.x request line */
	INJECT_TOO_LONG,           /* request line does not end within the head */
	INJECT_HEADERS_INCOMPLETE, /* header block does not end within the head */
	INJECT_HAS_TRACEPARENT,    /* the request carries its own traceparent */
	INJECT_PULL_FAILED,        /* bpf_msg_pull_data or the copy failed */
	INJECT_PUSH_FAILED,        /* bpf_msg_push_data failed: nothing changed */
	INJECT_WRITE_FAILED,       /* pushed, could not fill, popped: unchanged */
	INJECT_DROPPED,            /* pushed, could not fill nor pop: message dropped */
	INJECT_REASON_COUNT,
};

/*
 * Bytes of a message's head that are examined: the request line and the
 * whole header block must fit. Go's HTTP/1 client buffers its writes in
 * 4 KiB (Transport.WriteBufferSize), so a longer head arrives split anyway.
 */
#define INJECT_HEAD_MAX 4096
/* Largest message re-linearised after an insertion (two pages). */
#define INJECT_COALESCE_MAX 8192
/* "GET / HTTP/1.1\r\n\r\n" */
#define INJECT_MIN_REQUEST 18
/* "traceparent: 00-" 32 hex "-" 16 hex "-" 2 hex "\r\n" */
#define TRACEPARENT_LINE_LEN 70
