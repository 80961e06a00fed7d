/* Socket-level traceparent injection: what the C side and Python share. */
#pragma once

/*
 * What the sk_msg program decided; Python reads the names from BTF and
 * reports the counters by name (lower case, without INJECT_).
 *
 * HTTP/1 connections: one outcome per message (send). HTTP/2 connections:
 * one outcome per HEADERS frame that has a stream context or none
 * (INJECT_H2_INJECTED ... INJECT_H2_NO_CONTEXT, and the failures PULL_FAILED,
 * PUSH_FAILED, WRITE_FAILED, DROPPED), plus the per-connection and per-send
 * events marked below.
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
	/* HTTP/2 in cleartext (h2c, gRPC without TLS) */
	INJECT_H2_CONNECTION,      /* per connection: it began with the client preface */
	INJECT_H2_INJECTED,        /* traceparent field appended to the HEADERS frame */
	INJECT_H2_HAS_TRACEPARENT, /* the stream carries its own traceparent: untouched */
	INJECT_H2_STALE_CONTEXT,   /* the stream's context is older than max_context_age_ns */
	INJECT_H2_CONTINUATION,    /* END_HEADERS unset: the block goes on in CONTINUATION */
	INJECT_H2_PADDED,          /* PADDED flag: not rewritten */
	INJECT_H2_FRAME_TOO_BIG,   /* the frame would grow past 16384 bytes */
	INJECT_H2_SPLIT_FRAME,     /* the frame does not lie wholly in this send */
	INJECT_H2_TOO_LONG,        /* the frame ends beyond what can be linearised */
	INJECT_H2_TOO_MANY,        /* more such frames in one send than slots */
	INJECT_H2_SNDBUF,          /* the send buffer might not take the grown send whole */
	INJECT_H2_NO_CONTEXT,      /* a HEADERS frame nobody gave a context (or trailers) */
	INJECT_H2_LOST_CONTEXT,    /* a stream's context in a send whose framing broke */
	INJECT_H2_DESYNC,          /* per connection: frame sync lost, left alone from now */
	INJECT_H2_UNSYNCED,        /* per send on a connection that lost sync earlier */
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

/* HTTP/2 */
#define H2_PREFACE_LEN 24 /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define H2_FRAME_HEADER 9 /* length (24 bits), type, flags, stream id (31 bits) */
/*
 * No frame is grown past SETTINGS_MAX_FRAME_SIZE's initial value, which every
 * peer accepts: what the peer announced is in bytes it sent, not seen here.
 */
#define H2_MAX_FRAME 16384
/* Literal without indexing, new name: 0x00, 11, "traceparent", 55, the value. */
#define H2_FIELD_LEN 69
/* HEADERS frames rewritten in one send (gRPC packs one per waiting call). */
#define H2_MAX_INSERTS 64
/* Frame headers walked in one send. */
#define H2_MAX_FRAMES 2048
/* The longest prefix linearised so that every insertion falls in its first element. */
#define H2_LINEAR_MAX 32768
