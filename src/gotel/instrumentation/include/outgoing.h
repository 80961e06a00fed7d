/*
 * The contract between uprobes on a client's send path and the socket-level
 * injector: "the goroutine that is about to write request bytes belongs to
 * this span". Keyed by process and goroutine (the g pointer, R14 in a uprobe,
 * *(fsbase-8) from any kernel hook), never by thread: goroutines move between
 * threads. Every object that includes this header, of every process, shares
 * one instance of each map (the loader reuses one fd for every map named
 * shared_*).
 *
 *  - shared_outgoing (HTTP/1): the goroutine's next request head. One request
 *    at a time per goroutine: the entry is used by the first bytes it sends.
 *  - shared_outgoing_streams (HTTP/2): one HTTP/2 writer goroutine sends the
 *    HEADERS frames of many streams, often several in one socket write, so
 *    the entry is per (goroutine, stream id). The injector finds each HEADERS
 *    frame of a send, looks up (sending goroutine, frame's stream id) and
 *    deletes the entry whatever becomes of the frame.
 *
 * HTTP/2 over TLS: the stream ids are inside encrypted records, and nothing can
 * be inserted there anyway; the writing goroutine gets a shared_outgoing entry
 * marked tls, so that its next send is counted as tls, never rewritten.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "span_context.h"
#include "maps.h"

struct outgoing_request {
	struct span_context sc;
	__u64 start_ns; /* when the uprobe set it; stale entries are ignored */
	__u32 tls;	/* the request goes out encrypted: counted, never rewritten */
	__u32 _pad;
};

GOTEL_PROCESS_HASH(shared_outgoing, struct outgoing_request, 16384);

struct outgoing_stream_key {
	__u32 tgid;	 /* first, as in every per-process key (process.h) */
	__u32 stream_id; /* the HTTP/2 stream */
	__u64 g;	 /* the goroutine that will write the stream's HEADERS frame */
};

struct outgoing_stream {
	struct outgoing_request req;
	/*
	 * The request already carries a traceparent field (the uprobe saw the
	 * decoded fields): the injector leaves the frame alone and counts it.
	 */
	__u32 own_traceparent;
	__u32 _pad;
};

GOTEL_LRU_HASH(shared_outgoing_streams, struct outgoing_stream_key, struct outgoing_stream, 16384);
