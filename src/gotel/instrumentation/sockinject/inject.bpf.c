// SPDX-License-Identifier: GPL-2.0
/*
 * W3C traceparent for outgoing HTTP/1 requests, inserted at the socket layer:
 * nothing is written into the target's memory (lockdown forbids
 * bpf_probe_write_user).
 *
 * track_sockets (sockops, attached to the target's cgroup) puts the target's
 * active TCP sockets into `sockets`; inject_traceparent (sk_msg, attached to
 * that sockhash) runs on every send of those sockets. When the sending
 * goroutine has an entry in shared_outgoing (filled by a uprobe on the
 * client's write path) and the message starts with an HTTP/1 request line,
 * one traceparent line is inserted right after the request line. Anything
 * that cannot be parsed with certainty is sent untouched, the reason counted.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/outgoing.h"
#include "inject.h"

char LICENSE[] SEC("license") = "GPL";

/* Where Go keeps g relative to the thread's FS base (internal linking: -8). */
volatile const __s64 g_tls_offset = -8;
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

/*
 * Sockets a target process is connecting. sockops sees the process only at
 * connect(); the handshake completes in softirq, where the current task is
 * anyone, and only then may the socket enter the sockhash.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} connecting SEC(".maps");

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

/* Just what CO-RE needs to find the FS base; relocated against the kernel's BTF. */
struct thread_struct {
	unsigned long fsbase;
} __attribute__((preserve_access_index));

struct task_struct {
	struct thread_struct thread;
} __attribute__((preserve_access_index));

#define HEAD_MASK (INJECT_HEAD_MAX - 1)
#define BYTES_ONES 0x0101010101010101ULL
#define BYTES_LOW7 0x7f7f7f7f7f7f7f7fULL
#define CRLF16 0x0a0d		  /* "\r\n" read as a little-endian u16 */
#define TRACEPAR64 0x7261706563617274ULL /* "tracepar" */
#define ENT_COLON32 0x3a746e65		  /* "ent:" */
#define HTTP_1_DOT 0x002e312f50545448ULL  /* "HTTP/1." and the minor digit's byte */

static __always_inline int verdict(enum inject_reason reason)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&inject_reasons, &key);

	/* Atomic: another sender can preempt this one on the same CPU. */
	if (n)
		__sync_fetch_and_add(n, 1);
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

SEC("sockops")
int track_sockets(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	__u64 cookie;
	__u8 *mark;

	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (!is_target())
			break;
		mark = bpf_sk_storage_get(&connecting, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (mark)
			*mark = 1;
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		mark = bpf_sk_storage_get(&connecting, sk, 0, 0);
		if (!mark || !*mark)
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
	struct span_context sc;
	__u64 g, started;

	if (!is_target())
		return verdict(INJECT_NOT_TARGET);
	g = current_goroutine();
	if (!g)
		return verdict(INJECT_NO_GOROUTINE);
	out = bpf_map_lookup_elem(&shared_outgoing, &g);
	if (!out)
		return verdict(INJECT_NO_CONTEXT);
	sc = out->sc;
	started = out->start_ns;
	/*
	 * The request head is the first thing this goroutine sends after the
	 * uprobe: whatever becomes of these bytes, the entry is used up, so a
	 * later unrelated write by the same goroutine never inherits it.
	 */
	bpf_map_delete_elem(&shared_outgoing, &g);
	if (bpf_ktime_get_boot_ns() - started > max_context_age_ns)
		return verdict(INJECT_STALE_CONTEXT);
	return verdict(inject(msg, &sc));
}
