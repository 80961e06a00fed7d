// SPDX-License-Identifier: GPL-2.0
/*
 * W3C traceparent for outgoing requests, inserted at the socket layer:
 * nothing is written into the target's memory (lockdown forbids
 * bpf_probe_write_user).
 *
 * track_sockets (sockops, attached to the target's cgroup) puts the target's
 * active TCP sockets into `sockets`; inject_traceparent (sk_msg, attached to
 * that sockhash) runs on every send of those sockets.
 *
 * HTTP/1: when the sending goroutine has an entry in shared_outgoing (filled
 * by a uprobe on the client's write path) and the message starts with an
 * HTTP/1 request line, one traceparent line is inserted right after it.
 *
 * HTTP/2 in cleartext: a connection whose first bytes are the client preface
 * is followed frame by frame across its sends (per-socket state). In each
 * send every frame header is read; a HEADERS frame whose (sending goroutine,
 * stream id) has an entry in shared_outgoing_streams gets a traceparent
 * field, an HPACK literal without indexing, appended to its header block and
 * its length fixed. The field leaves the HPACK dynamic table alone, so the
 * encoder and the peer's decoder stay in step. When the framing of a
 * connection is in doubt it is left alone for good.
 *
 * Anything that cannot be parsed with certainty is sent untouched, the
 * reason counted.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/outgoing.h"
#include "inject.h"

char LICENSE[] SEC("license") = "GPL";

/* Where Go keeps g relative to the thread's FS base (a loader may know better). */
volatile const __s64 g_tls_offset = GO_G_TLS_OFFSET;
/* An entry older than this was left by a request whose bytes never came. */
volatile const __u64 max_context_age_ns = 5ULL * 1000 * 1000 * 1000;

/* The target's TCP sockets, keyed by socket cookie. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} sockets SEC(".maps");

/* Processes whose requests get a header; the loader fills it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} target_tgids SEC(".maps");

enum conn_proto {
	CONN_NEW = 0,	/* nothing sent yet */
	CONN_OTHER = 1, /* not HTTP/2 with prior knowledge: HTTP/1 rules, per message */
	CONN_H2 = 2,	/* HTTP/2 with prior knowledge: state in h2_conns */
};

/*
 * Sockets of the target process: sockops sees the process only at connect();
 * the handshake completes in softirq, where the current task is anyone, and
 * only then may the socket enter the sockhash. Sockets found open at attach
 * time have no state: they get the HTTP/1 rules only.
 */
struct conn_state {
	__u8 connecting; /* sockops saw the target connect it */
	__u8 proto;	 /* enum conn_proto */
	__u8 _pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* A HEADERS frame of the current send that gets a traceparent. */
struct h2_insert {
	__u32 off; /* its frame header, in the send as the application wrote it */
	__u32 len; /* its payload length, before the insertion */
	struct span_context sc;
};

/*
 * An HTTP/2 connection: where its frames stand. Every sk_msg run on a socket
 * holds the socket's lock, so this state (and the scratch space kept here
 * rather than in a per-CPU map, which a preempting sender could share) has
 * one user at a time.
 */
struct h2_conn {
	__u8 lost;	  /* frame boundaries not known any more: left alone */
	__u8 partial_len; /* bytes of a frame header the last send ended with */
	__u8 _pad[2];
	__u32 skip;	  /* bytes of the current frame still to come */
	__u32 next_seq;	  /* write_seq where the next send must start */
	__u32 ninserts;	  /* this send's HEADERS frames to rewrite */
	__u8 partial[16]; /* those header bytes; then the header they begin, put together */
	struct h2_insert inserts[H2_MAX_INSERTS];
	__u8 field[H2_FIELD_LEN + 3];
	__u8 _pad2[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct h2_conn);
} h2_conns SEC(".maps");

/* Messages by outcome, indexed by enum inject_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, INJECT_REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} inject_reasons SEC(".maps");

/* A copy of the message head, scanned in a map value: too big for the stack. */
struct message_head {
	__u8 buf[INJECT_HEAD_MAX + 16]; /* slack: masked loads stay inside */
	__u8 line[TRACEPARENT_LINE_LEN + 2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct message_head);
} heads SEC(".maps");

/* Just what CO-RE needs; relocated against the kernel's BTF. */
struct thread_struct {
	unsigned long fsbase;
} __attribute__((preserve_access_index));

struct task_struct {
	struct thread_struct thread;
} __attribute__((preserve_access_index));

struct sock {
	int sk_sndbuf;
	int sk_wmem_queued;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 write_seq; /* one past the last byte queued: where this send will start */
} __attribute__((preserve_access_index));

#define HEAD_MASK (INJECT_HEAD_MAX - 1)
#define BYTES_ONES 0x0101010101010101ULL
#define BYTES_LOW7 0x7f7f7f7f7f7f7f7fULL
#define CRLF16 0x0a0d		  /* "\r\n" read as a little-endian u16 */
#define TRACEPAR64 0x7261706563617274ULL /* "tracepar" */
#define ENT_COLON32 0x3a746e65		  /* "ent:" */
#define HTTP_1_DOT 0x002e312f50545448ULL  /* "HTTP/1." and the minor digit's byte */

static __always_inline void count_n(enum inject_reason reason, __u64 n)
{
	__u32 key = reason;
	__u64 *total = bpf_map_lookup_elem(&inject_reasons, &key);

	/* Atomic: another sender can preempt this one on the same CPU. */
	if (total)
		__sync_fetch_and_add(total, n);
}

static __always_inline void count(enum inject_reason reason)
{
	count_n(reason, 1);
}

static __always_inline int verdict(enum inject_reason reason)
{
	count(reason);
	return reason == INJECT_DROPPED ? SK_DROP : SK_PASS;
}

static __always_inline bool is_target(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	return bpf_map_lookup_elem(&target_tgids, &tgid) != 0;
}

/* The goroutine running on this thread: Go keeps g in thread-local storage. */
static __always_inline __u64 current_goroutine(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 g = 0;

	if (bpf_probe_read_user(&g, sizeof(g), (void *)(task->thread.fsbase + g_tls_offset)))
		return 0;
	return g;
}

/* 0x80 in every byte of w that equals the byte repeated in `pattern`, else 0. */
static __always_inline __u64 bytes_equal(__u64 w, __u64 pattern)
{
	__u64 x = w ^ pattern;

	/* Exact (no borrow between bytes), unlike the shorter has-zero-byte trick. */
	return ~(((x & BYTES_LOW7) + BYTES_LOW7) | x | BYTES_LOW7);
}

static __always_inline __u32 count_marked(__u64 marks)
{
	return ((marks >> 7) * BYTES_ONES) >> 56;
}

struct scan {
	__u8 *buf;
	__u32 len;	       /* valid bytes in buf */
	__u32 line_end;	       /* offset of the request line's LF; 0: not seen */
	__u32 spaces;	       /* SP bytes before it */
	__u32 headers_end;     /* offset past the blank line; 0: not seen */
	__u32 has_traceparent; /* a header line named traceparent was seen */
	__u32 _pad;
};

/* A header line starts at `at`: is it the blank line, or a traceparent? */
static __always_inline long check_line(struct scan *s, __u32 at)
{
	__u8 *p = s->buf + (at & HEAD_MASK);

	if (at + 2 > s->len)
		return 0; /* the head ends here: headers_end stays unknown */
	if (*(__u16 *)p == CRLF16) {
		s->headers_end = at + 2;
		return 1;
	}
	/* Case-insensitive: OR-ing 0x20 lowers letters and maps nothing else onto them. */
	if (at + 12 <= s->len && (*(__u64 *)p | 0x2020202020202020ULL) == TRACEPAR64 &&
	    (*(__u32 *)(p + 8) | 0x00202020) == ENT_COLON32) {
		s->has_traceparent = 1;
		return 1;
	}
	return 0;
}

/*
 * bpf_loop callback over the head, 8 bytes at a time: the request line ends at
 * the first LF; every later LF starts a header line. Stops at the blank line
 * or at a traceparent header.
 */
static long scan_word(__u32 i, void *ctx)
{
	struct scan *s = ctx;
	__u32 off = i * 8, left;
	__u64 w, lf, sp;

	if (off >= s->len)
		return 1;
	w = *(__u64 *)(s->buf + (off & HEAD_MASK));
	left = s->len - off;
	if (left < 8) /* bytes past the head are stale: zero matches neither LF nor SP */
		w &= (1ULL << (left * 8)) - 1;
	lf = bytes_equal(w, '\n' * BYTES_ONES);
	if (!s->line_end) {
		sp = bytes_equal(w, ' ' * BYTES_ONES);
		if (lf) /* only the bytes below the first LF */
			sp &= ((lf & -lf) >> 7) - 1;
		s->spaces += count_marked(sp);
	}
	if (!lf)
		return 0;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		if (!(lf & (0x80ULL << (k * 8))))
			continue;
		if (!s->line_end)
			s->line_end = off + k;
		else if (check_line(s, off + k + 1))
			return 1;
	}
	return 0;
}

/* METHOD SP target SP HTTP/1.x CRLF, with the LF at s->line_end. */
static __always_inline bool request_line_ok(const struct scan *s)
{
	__u32 end = s->line_end, method_len = 0;
	const __u8 *buf = s->buf;
	__u64 version;

	/* end < len <= INJECT_HEAD_MAX already: the mask tells the verifier. */
	end &= HEAD_MASK;
	/* "A / HTTP/1.1\r" is 13 bytes. */
	if (end < 13 || s->spaces != 2)
		return false;
	if (buf[end - 1] != '\r' || buf[end - 10] != ' ')
		return false;
	version = *(__u64 *)(buf + end - 9);
	if ((version & 0x00ffffffffffffffULL) != (HTTP_1_DOT & 0x00ffffffffffffffULL))
		return false;
	if ((version >> 56) != '0' && (version >> 56) != '1')
		return false;
#pragma unroll
	for (int k = 0; k < 17; k++) {
		__u8 c = buf[k];

		if (c == ' ') {
			method_len = k;
			break;
		}
		if (c < 'A' || c > 'Z')
			return false;
	}
	/* The two spaces are the method's and the version's: the target is between. */
	return method_len > 0 && method_len + 1 < end - 10;
}

static __always_inline __u8 hex_digit(__u8 n)
{
	return n + '0' + ((n + 6) >> 4) * ('a' - '0' - 10);
}

static __always_inline void format_traceparent(__u8 *line, const struct span_context *sc)
{
	/* "traceparent: 00-" as two little-endian words: no string in .rodata. */
	*(__u64 *)line = TRACEPAR64;
	*(__u64 *)(line + 8) = 0x2d3030203a746e65ULL; /* "ent: 00-" */
#pragma unroll
	for (int i = 0; i < TRACE_ID_SIZE; i++) {
		line[16 + 2 * i] = hex_digit(sc->trace_id[i] >> 4);
		line[17 + 2 * i] = hex_digit(sc->trace_id[i] & 0xf);
	}
	line[48] = '-';
#pragma unroll
	for (int i = 0; i < SPAN_ID_SIZE; i++) {
		line[49 + 2 * i] = hex_digit(sc->span_id[i] >> 4);
		line[50 + 2 * i] = hex_digit(sc->span_id[i] & 0xf);
	}
	line[65] = '-';
	line[66] = hex_digit(sc->flags >> 4);
	line[67] = hex_digit(sc->flags & 0xf);
	line[68] = '\r';
	line[69] = '\n';
}

/*
 * Insert the prepared line at offset `at`. The pushed bytes are not zeroed
 * and packet pointers die with the push: pull the new bytes, then fill them;
 * if that fails, take them out again.
 */
static __always_inline enum inject_reason insert_line(struct sk_msg_md *msg, __u32 at,
						      const __u8 *line)
{
	void *data, *data_end;
	__u32 size;

	if (bpf_msg_push_data(msg, at, TRACEPARENT_LINE_LEN, 0))
		return INJECT_PUSH_FAILED;
	if (bpf_msg_pull_data(msg, at, at + TRACEPARENT_LINE_LEN, 0))
		goto undo;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + TRACEPARENT_LINE_LEN > data_end)
		goto undo;
	__builtin_memcpy(data, line, TRACEPARENT_LINE_LEN);
	/*
	 * The push left three scatterlist elements (before, line, after), and
	 * tcp_bpf_push() hands each to its own tcp_sendmsg_locked() call without
	 * MSG_MORE: with TCP_NODELAY (Go's default) that is three segments, not
	 * one. Copy them back into one element while that is cheap (an order-0
	 * or order-1 page); if that fails they just go out separately.
	 */
	size = msg->size;
	if (size <= INJECT_COALESCE_MAX)
		bpf_msg_pull_data(msg, 0, size, 0);
	return INJECT_INJECTED;
undo:
	if (bpf_msg_pop_data(msg, at, TRACEPARENT_LINE_LEN, 0))
		return INJECT_DROPPED; /* never send uninitialised bytes */
	return INJECT_WRITE_FAILED;
}

/*
 * A subprogram, not inlined: its BTF prototype is what publishes
 * enum inject_reason for Python (an array map's key must be a plain u32).
 */
/* The send begins with a TLS record header's content type. */
static __always_inline bool starts_like_tls(struct sk_msg_md *msg)
{
	void *data, *data_end;
	__u8 first;

	if (bpf_msg_pull_data(msg, 0, 1, 0))
		return false;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + 1 > data_end)
		return false;
	first = *(__u8 *)data;
	return first >= 0x14 && first <= 0x17;
}

static __noinline enum inject_reason inject(struct sk_msg_md *msg, const struct span_context *sc)
{
	__u32 size = msg->size, want, zero = 0;
	struct message_head *head;
	struct scan s = {};
	void *data, *data_end;
	__u8 first;

	if (size < INJECT_MIN_REQUEST)
		return INJECT_TOO_SHORT;
	want = size < INJECT_HEAD_MAX ? size : INJECT_HEAD_MAX;
	/*
	 * Linearise the head. Besides giving one view of it, this keeps the
	 * insertion point in the message's first scatterlist element, where
	 * bpf_msg_push_data's split is right on every kernel (for a later
	 * element, kernels before a 2026 fix advanced the split's offset by the
	 * message offset instead of the element offset: corrupt output).
	 */
	if (bpf_msg_pull_data(msg, 0, want, 0))
		return INJECT_PULL_FAILED;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + 1 > data_end)
		return INJECT_PULL_FAILED;
	first = *(__u8 *)data;
	if (first >= 0x14 && first <= 0x17) /* TLS record types */
		return INJECT_TLS;
	if (first < 'A' || first > 'Z')
		return INJECT_NOT_HTTP1;

	head = bpf_map_lookup_elem(&heads, &zero);
	if (!head)
		return INJECT_PULL_FAILED;
	if (bpf_probe_read_kernel(head->buf, want, data))
		return INJECT_PULL_FAILED;
	s.buf = head->buf;
	s.len = want;
	bpf_loop(INJECT_HEAD_MAX / 8, scan_word, &s, 0);

	if (!s.line_end)
		return INJECT_TOO_LONG;
	if (!request_line_ok(&s))
		return INJECT_NOT_HTTP1;
	if (s.has_traceparent)
		return INJECT_HAS_TRACEPARENT;
	if (!s.headers_end)
		return INJECT_HEADERS_INCOMPLETE;
	format_traceparent(head->line, sc);
	return insert_line(msg, s.line_end + 1, head->line);
}

/* ---- HTTP/2 in cleartext ------------------------------------------------------- */

#define H2_DATA 0x0
#define H2_HEADERS 0x1
#define H2_PRIORITY 0x2
#define H2_RST_STREAM 0x3
#define H2_SETTINGS 0x4
#define H2_PUSH_PROMISE 0x5
#define H2_PING 0x6
#define H2_GOAWAY 0x7
#define H2_WINDOW_UPDATE 0x8
#define H2_CONTINUATION 0x9

#define H2_FLAG_END_HEADERS 0x4
#define H2_FLAG_PADDED 0x8

/* The client preface as little-endian words. */
#define PREFACE_0 0x5448202a20495250ULL /* "PRI * HT" */
#define PREFACE_1 0x0a0d302e322f5054ULL /* "TP/2.0\r\n" */
#define PREFACE_2 0x0a0d0a0d4d530a0dULL /* "\r\nSM\r\n\r\n" */

enum walk_status {
	WALK_GOING = 0,
	WALK_END = 1,	 /* every frame header of the send was read */
	WALK_BROKEN = 2, /* unreadable, or not what a client sends: framing lost */
};

/* The frame walk over one send (on the program's stack, bpf_loop's context). */
struct h2_walk {
	struct sk_msg_md *msg;
	struct h2_conn *conn;
	__u64 g;   /* the sending goroutine; 0: unknown */
	__u64 now;
	__u32 size; /* bytes in this send */
	__u32 off;  /* the next frame header */
	__u32 status;
	__u32 _pad;
};

struct h2_rewrite {
	struct sk_msg_md *msg;
	struct h2_conn *conn;
	__u32 n;    /* inserts to make, conn->inserts[0, n) */
	__u32 drop; /* a failed insertion could not be undone */
};

static __always_inline int lose_sync(struct h2_conn *conn)
{
	conn->lost = 1;
	count(INJECT_H2_DESYNC);
	return SK_PASS;
}

/*
 * Frames a client sends, as RFC 9113 shapes them: anything else means the
 * walk is not on a frame boundary. Unknown (extension) types are skipped.
 */
static __always_inline bool frame_sane(__u8 type, __u32 len, __u32 sid)
{
	switch (type) {
	case H2_DATA:
	case H2_HEADERS:
	case H2_CONTINUATION:
		return sid & 1; /* a client's own streams are odd */
	case H2_PRIORITY:
		return sid && len == 5;
	case H2_RST_STREAM:
		return sid && len == 4;
	case H2_SETTINGS:
		return !sid && len % 6 == 0;
	case H2_PUSH_PROMISE:
		return false; /* only servers push */
	case H2_PING:
		return !sid && len == 8;
	case H2_GOAWAY:
		return !sid && len >= 8;
	case H2_WINDOW_UPDATE:
		return len == 4;
	}
	return true;
}

/*
 * A HEADERS frame at off (payload len): does its stream have a context, and
 * can the field go in? `whole`: its header and payload are all in this send.
 * The context is used up whatever the answer.
 */
static __always_inline void headers_frame(struct h2_walk *w, __u32 off, __u32 len, __u8 flags,
					  __u32 sid, bool whole)
{
	struct outgoing_stream_key key = {.g = w->g, .stream_id = sid};
	struct h2_conn *conn = w->conn;
	struct outgoing_stream *out;
	enum inject_reason reason;
	struct span_context sc;
	struct h2_insert *slot;
	__u32 n = conn->ninserts, own;
	__u64 started;

	out = w->g ? bpf_map_lookup_elem(&shared_outgoing_streams, &key) : 0;
	if (!out) {
		count(INJECT_H2_NO_CONTEXT);
		return;
	}
	/* Copied before the delete: a deleted LRU element is reused at once. */
	sc = out->req.sc;
	started = out->req.start_ns;
	own = out->own_traceparent;
	bpf_map_delete_elem(&shared_outgoing_streams, &key);

	if (own)
		reason = INJECT_H2_HAS_TRACEPARENT;
	else if (w->now - started > max_context_age_ns)
		reason = INJECT_H2_STALE_CONTEXT;
	else if (!(flags & H2_FLAG_END_HEADERS))
		reason = INJECT_H2_CONTINUATION;
	else if (flags & H2_FLAG_PADDED)
		reason = INJECT_H2_PADDED;
	else if (!whole)
		reason = INJECT_H2_SPLIT_FRAME;
	else if (len + H2_FIELD_LEN > H2_MAX_FRAME)
		reason = INJECT_H2_FRAME_TOO_BIG;
	else if (n >= H2_MAX_INSERTS)
		reason = INJECT_H2_TOO_MANY;
	else {
		/*
		 * PRIORITY needs nothing special: its fields precede the
		 * header block, the field goes at the block's end.
		 */
		slot = &conn->inserts[n & (H2_MAX_INSERTS - 1)];
		slot->off = off;
		slot->len = len;
		slot->sc = sc;
		conn->ninserts = n + 1;
		return;
	}
	count(reason);
}

/*
 * One frame: its 9 header bytes, its payload from payload_at (its header
 * began in this send when `header_here`). Returns bpf_loop's 1 to stop.
 */
static __always_inline long frame(struct h2_walk *w, const __u8 *hdr, __u32 payload_at,
				  bool header_here)
{
	__u32 len = (__u32)hdr[0] << 16 | (__u32)hdr[1] << 8 | hdr[2];
	__u32 sid = (__u32)hdr[5] << 24 | (__u32)hdr[6] << 16 | (__u32)hdr[7] << 8 | hdr[8];
	__u32 end = payload_at + len;
	__u8 type = hdr[3];

	if ((sid & 0x80000000) || !frame_sane(type, len, sid)) {
		w->status = WALK_BROKEN;
		return 1;
	}
	if (type == H2_HEADERS)
		headers_frame(w, payload_at - H2_FRAME_HEADER, len, hdr[4], sid,
			      header_here && end <= w->size);
	if (end >= w->size) {
		/* The last frame of the send; the rest of it comes in the next ones. */
		w->conn->skip = end - w->size;
		w->status = WALK_END;
		return 1;
	}
	w->off = end;
	return 0;
}

/* bpf_loop callback: the frame header at w->off. */
static long walk_frame(__u32 i, void *ctx)
{
	struct h2_walk *w = ctx;
	struct sk_msg_md *msg = w->msg;
	struct h2_conn *conn = w->conn;
	__u32 off = w->off, left;
	__u8 hdr[H2_FRAME_HEADER];
	void *data, *data_end;

	if (off >= w->size) {
		w->status = WALK_END;
		return 1;
	}
	left = w->size - off;
	if (bpf_msg_pull_data(msg, off, left < H2_FRAME_HEADER ? w->size : off + H2_FRAME_HEADER,
			      0)) {
		w->status = WALK_BROKEN;
		return 1;
	}
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (left < H2_FRAME_HEADER) {
		/* The send ends inside a frame header: keep its first bytes. */
#pragma unroll
		for (int k = 0; k < H2_FRAME_HEADER - 1; k++) {
			if (k >= left || data + k + 1 > data_end)
				break;
			conn->partial[k] = *(__u8 *)(data + k);
		}
		conn->partial_len = left;
		conn->skip = 0;
		w->status = WALK_END;
		return 1;
	}
	if (data + H2_FRAME_HEADER > data_end) {
		w->status = WALK_BROKEN;
		return 1;
	}
	__builtin_memcpy(hdr, data, H2_FRAME_HEADER);
	return frame(w, hdr, off + H2_FRAME_HEADER, true);
}

/* The last send ended inside a frame header: this one begins with the rest of it. */
static __always_inline void complete_header(struct h2_walk *w)
{
	struct sk_msg_md *msg = w->msg;
	struct h2_conn *conn = w->conn;
	__u32 have = conn->partial_len, need = H2_FRAME_HEADER - have, take;
	void *data, *data_end;

	take = w->size < need ? w->size : need;
	if (have >= H2_FRAME_HEADER || bpf_msg_pull_data(msg, 0, take, 0)) {
		w->status = WALK_BROKEN;
		return;
	}
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	/* The header is put together where its first bytes wait. */
#pragma unroll
	for (int k = 0; k < H2_FRAME_HEADER - 1; k++) {
		if (k >= take)
			break;
		if (data + k + 1 > data_end) {
			w->status = WALK_BROKEN;
			return;
		}
		conn->partial[(have + k) & (sizeof(conn->partial) - 1)] = *(__u8 *)(data + k);
	}
	if (take < need) {
		conn->partial_len = have + take; /* still not whole: a tiny send */
		w->status = WALK_END;
		return;
	}
	conn->partial_len = 0;
	frame(w, conn->partial, need, false);
}

/* "00-<trace id>-<span id>-<flags>" behind the literal's prefix, as hex. */
static __always_inline void format_field(__u8 *f, const struct span_context *sc)
{
	f[0] = 0x00; /* literal without indexing, new name */
	f[1] = 11;   /* name length, not Huffman */
	f[2] = 't';
	f[3] = 'r';
	f[4] = 'a';
	f[5] = 'c';
	f[6] = 'e';
	f[7] = 'p';
	f[8] = 'a';
	f[9] = 'r';
	f[10] = 'e';
	f[11] = 'n';
	f[12] = 't';
	f[13] = 55; /* value length, not Huffman */
	f[14] = '0';
	f[15] = '0';
	f[16] = '-';
#pragma unroll
	for (int i = 0; i < TRACE_ID_SIZE; i++) {
		f[17 + 2 * i] = hex_digit(sc->trace_id[i] >> 4);
		f[18 + 2 * i] = hex_digit(sc->trace_id[i] & 0xf);
	}
	f[49] = '-';
#pragma unroll
	for (int i = 0; i < SPAN_ID_SIZE; i++) {
		f[50 + 2 * i] = hex_digit(sc->span_id[i] >> 4);
		f[51 + 2 * i] = hex_digit(sc->span_id[i] & 0xf);
	}
	f[66] = '-';
	f[67] = hex_digit(sc->flags >> 4);
	f[68] = hex_digit(sc->flags & 0xf);
}

/* The 24-bit length of the frame whose header is at off. */
static __always_inline int set_frame_len(struct sk_msg_md *msg, __u32 off, __u32 len)
{
	void *data, *data_end;

	if (bpf_msg_pull_data(msg, off, off + 3, 0))
		return -1;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + 3 > data_end)
		return -1;
	((__u8 *)data)[0] = len >> 16;
	((__u8 *)data)[1] = len >> 8;
	((__u8 *)data)[2] = len;
	return 0;
}

/*
 * Append the field to the header block of the HEADERS frame at off, and
 * grow the frame's length. The insertion point must lie in the send's first
 * scatterlist element (see h2_rewrite). bpf_msg_push_data refuses the very
 * end of a send (kernels before a 2026 fix): then the field goes in one byte
 * earlier and that byte is moved in front of it.
 */
static __always_inline enum inject_reason insert_field(struct sk_msg_md *msg, __u32 off,
						       __u32 len, const __u8 *field)
{
	__u32 at = off + H2_FRAME_HEADER + len, size = msg->size;
	bool rotate = at >= size;
	void *data, *data_end;
	__u8 moved = 0;

	if (rotate) {
		at = size - 1;
		if (bpf_msg_pull_data(msg, at, at + 1, 0))
			return INJECT_PULL_FAILED;
		data = (void *)(long)msg->data;
		data_end = (void *)(long)msg->data_end;
		if (data + 1 > data_end)
			return INJECT_PULL_FAILED;
		moved = *(__u8 *)data;
	}
	if (set_frame_len(msg, off, len + H2_FIELD_LEN))
		return INJECT_PULL_FAILED;
	if (bpf_msg_push_data(msg, at, H2_FIELD_LEN, 0)) {
		if (set_frame_len(msg, off, len))
			return INJECT_DROPPED;
		return INJECT_PUSH_FAILED;
	}
	/* Pushed bytes are not zeroed and packet pointers died with the push. */
	if (bpf_msg_pull_data(msg, at, at + H2_FIELD_LEN, 0))
		goto undo;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + H2_FIELD_LEN > data_end)
		goto undo;
	if (!rotate) {
		__builtin_memcpy(data, field, H2_FIELD_LEN);
		return INJECT_H2_INJECTED;
	}
	*(__u8 *)data = moved;
	__builtin_memcpy(data + 1, field, H2_FIELD_LEN - 1);
	if (bpf_msg_pull_data(msg, at + H2_FIELD_LEN, at + H2_FIELD_LEN + 1, 0))
		goto undo;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + 1 > data_end)
		goto undo;
	*(__u8 *)data = field[H2_FIELD_LEN - 1];
	return INJECT_H2_INJECTED;
undo:
	if (bpf_msg_pop_data(msg, at, H2_FIELD_LEN, 0) || set_frame_len(msg, off, len))
		return INJECT_DROPPED; /* never send uninitialised bytes nor a wrong length */
	return INJECT_WRITE_FAILED;
}

/* bpf_loop callback: the inserts from the last to the first. */
static long insert_one(__u32 i, void *ctx)
{
	struct h2_rewrite *r = ctx;
	struct h2_conn *conn = r->conn;
	struct h2_insert *ins = &conn->inserts[(r->n - 1 - i) & (H2_MAX_INSERTS - 1)];
	enum inject_reason reason;

	format_field(conn->field, &ins->sc);
	reason = insert_field(r->msg, ins->off, ins->len, conn->field);
	count(reason);
	if (reason == INJECT_DROPPED) {
		r->drop = 1;
		return 1;
	}
	return 0;
}

/* Where the field for conn->inserts[i] goes, in the send as written. */
static __always_inline __u32 insert_point(struct h2_conn *conn, __u32 i)
{
	struct h2_insert *ins = &conn->inserts[i & (H2_MAX_INSERTS - 1)];

	return ins->off + H2_FRAME_HEADER + ins->len;
}

/*
 * Make the inserts the walk chose. bpf_msg_push_data splits a scatterlist
 * element right only when it is the send's first (kernels before a 2026 fix
 * offset the split of a later element wrongly: corrupt output). So the send
 * is linearised up to its last insertion point and the fields go in from the
 * last to the first: each insertion point then lies in the first element,
 * before the split the previous insertion made.
 */
static __always_inline int h2_rewrite(struct sk_msg_md *msg, struct h2_conn *conn,
				      struct tcp_sock *tp)
{
	struct h2_rewrite r = {.msg = msg, .conn = conn};
	__u32 n = conn->ninserts, size = msg->size, want = 0, grown;
	struct sock *sk = (struct sock *)tp;

	/* The inserts are in send order: drop those past what is linearised. */
	for (int k = 0; k < H2_MAX_INSERTS; k++) {
		if (!n)
			break;
		want = insert_point(conn, n - 1) + 1;
		if (want > size)
			want = size;
		if (want <= H2_LINEAR_MAX)
			break;
		count(INJECT_H2_TOO_LONG);
		n--;
	}
	if (!n)
		return SK_PASS;
	/*
	 * A short write of a grown send would leave the application and the
	 * peer disagreeing on the bytes sent: the kernel gives back the unsent
	 * bytes' count, inserted ones included. Rewrite only when the send
	 * buffer can take the grown send whole.
	 */
	grown = size + n * H2_FIELD_LEN;
	if ((__s64)sk->sk_wmem_queued + 2 * (__s64)grown + 4096 > (__s64)sk->sk_sndbuf) {
		count_n(INJECT_H2_SNDBUF, n);
		return SK_PASS;
	}
	if (bpf_msg_pull_data(msg, 0, want, 0)) {
		count_n(INJECT_PULL_FAILED, n);
		return SK_PASS;
	}
	r.n = n;
	bpf_loop(n, insert_one, &r, 0);
	conn->next_seq += msg->size - size;
	if (r.drop) {
		conn->lost = 1;
		return SK_DROP;
	}
	/* One element again, so that the send goes out as one TCP segment (see insert_line). */
	if (msg->size != size && msg->size <= INJECT_COALESCE_MAX)
		bpf_msg_pull_data(msg, 0, msg->size, 0);
	return SK_PASS;
}

/* A send on a connection that began with the HTTP/2 client preface. */
static __always_inline int h2_send(struct sk_msg_md *msg, struct h2_conn *conn, __u64 g)
{
	struct h2_walk w = {.msg = msg, .conn = conn, .g = g, .size = msg->size};
	struct tcp_sock *tp;
	__u32 seq;

	if (conn->lost) {
		count(INJECT_H2_UNSYNCED);
		return SK_PASS;
	}
	tp = bpf_skc_to_tcp_sock(msg->sk);
	if (!tp)
		return lose_sync(conn);
	/*
	 * The frame walk holds only if every byte of the connection passes
	 * here, once: the send must start where the last one ended. It does
	 * not when the kernel pushed the last send only in part (its rest,
	 * dropped, comes again from the application) or bytes bypassed us.
	 */
	seq = tp->write_seq;
	if (seq != conn->next_seq)
		return lose_sync(conn);
	conn->next_seq = seq + w.size;
	conn->ninserts = 0;
	w.now = bpf_ktime_get_boot_ns();

	if (conn->skip) {
		/* The rest of a frame begun in an earlier send. */
		if (conn->skip >= w.size) {
			conn->skip -= w.size;
			return SK_PASS;
		}
		w.off = conn->skip;
		conn->skip = 0;
	} else if (conn->partial_len) {
		complete_header(&w);
	}
	if (w.status == WALK_GOING)
		bpf_loop(H2_MAX_FRAMES, walk_frame, &w, 0);
	if (w.status != WALK_END) {
		/* Unparseable, or more frames than walked: the contexts found are lost. */
		if (conn->ninserts)
			count_n(INJECT_H2_LOST_CONTEXT, conn->ninserts);
		return lose_sync(conn);
	}
	if (!conn->ninserts)
		return SK_PASS;
	return h2_rewrite(msg, conn, tp);
}

/*
 * A connection's first send: HTTP/2 with prior knowledge starts with the
 * preface. Only then does the connection get its HTTP/2 state.
 */
static __always_inline void classify(struct sk_msg_md *msg, struct conn_state *conn)
{
	void *data, *data_end;
	struct tcp_sock *tp;
	struct h2_conn *h2;

	conn->proto = CONN_OTHER;
	if (msg->size < H2_PREFACE_LEN || bpf_msg_pull_data(msg, 0, H2_PREFACE_LEN, 0))
		return;
	data = (void *)(long)msg->data;
	data_end = (void *)(long)msg->data_end;
	if (data + H2_PREFACE_LEN > data_end)
		return;
	if (*(__u64 *)data != PREFACE_0 || *(__u64 *)(data + 8) != PREFACE_1 ||
	    *(__u64 *)(data + 16) != PREFACE_2)
		return;
	conn->proto = CONN_H2;
	count(INJECT_H2_CONNECTION);
	tp = bpf_skc_to_tcp_sock(msg->sk);
	h2 = bpf_sk_storage_get(&h2_conns, msg->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!h2)
		return; /* no state: h2_send counts it lost */
	if (!tp) {
		lose_sync(h2);
		return;
	}
	h2->skip = H2_PREFACE_LEN; /* walked over like a frame */
	h2->next_seq = tp->write_seq;
}

SEC("sockops")
int track_sockets(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct conn_state *conn;
	__u64 cookie;

	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (!is_target())
			break;
		conn = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (conn)
			conn->connecting = 1;
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		conn = bpf_sk_storage_get(&conns, sk, 0, 0);
		if (!conn || !conn->connecting)
			break;
		cookie = bpf_get_socket_cookie(skops);
		bpf_sock_hash_update(skops, &sockets, &cookie, BPF_ANY);
		break;
	}
	return 1;
}

SEC("sk_msg")
int inject_traceparent(struct sk_msg_md *msg)
{
	struct outgoing_request *out;
	struct conn_state *conn;
	struct span_context sc;
	struct h2_conn *h2;
	__u64 g, started;
	__u32 tls;

	if (!is_target())
		return verdict(INJECT_NOT_TARGET);
	conn = bpf_sk_storage_get(&conns, msg->sk, 0, 0);
	if (conn && conn->proto == CONN_NEW)
		classify(msg, conn);
	if (conn && conn->proto == CONN_H2) {
		h2 = bpf_sk_storage_get(&h2_conns, msg->sk, 0, 0);
		if (!h2)
			return verdict(INJECT_H2_UNSYNCED); /* its state could not be made */
		return h2_send(msg, h2, current_goroutine());
	}

	g = current_goroutine();
	if (!g)
		return verdict(INJECT_NO_GOROUTINE);
	out = bpf_map_lookup_elem(&shared_outgoing, &g);
	if (!out)
		return verdict(INJECT_NO_CONTEXT);
	sc = out->sc;
	started = out->start_ns;
	tls = out->tls;
	/*
	 * The request head is the first thing this goroutine sends after the
	 * uprobe: whatever becomes of these bytes, the entry is used up, so a
	 * later unrelated write by the same goroutine never inherits it.
	 */
	bpf_map_delete_elem(&shared_outgoing, &g);
	if (bpf_ktime_get_boot_ns() - started > max_context_age_ns)
		return verdict(INJECT_STALE_CONTEXT);
	if (tls)
		return verdict(starts_like_tls(msg) ? INJECT_TLS : INJECT_NO_CONTEXT);
	return verdict(inject(msg, &sc));
}
