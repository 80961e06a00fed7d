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
 *
 * This file: the maps, counters, the sockops program and the sk_msg entry;
 * http1.h and http2.h: the two insertions (included below, one object).
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

/* Messages by sending process and outcome: one injector serves every target of a cgroup. */
struct reason_key {
	__u32 pid; /* the sender, as the agent knows it */
	__u32 reason; /* enum inject_reason */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64 * INJECT_REASON_COUNT); /* target_tgids' size, every reason */
	__type(key, struct reason_key);
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
	struct reason_key key = {.pid = agent_pid(), .reason = reason};
	__u64 *total = bpf_map_lookup_elem(&inject_reasons, &key), zero = 0;

	if (!total) {
		/* EEXIST: another CPU made it first. */
		bpf_map_update_elem(&inject_reasons, &key, &zero, BPF_NOEXIST);
		total = bpf_map_lookup_elem(&inject_reasons, &key);
	}
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
	__u32 pid = agent_pid(); /* the loader fills target_tgids with the pids it knows */

	return bpf_map_lookup_elem(&target_tgids, &pid) != 0;
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

/* The insertions: they use the state and counters above. */
#include "http1.h"
#include "http2.h"

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
	out = process_lookup(&shared_outgoing, g);
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
	process_delete(&shared_outgoing, g);
	if (bpf_ktime_get_boot_ns() - started > max_context_age_ns)
		return verdict(INJECT_STALE_CONTEXT);
	if (tls)
		return verdict(starts_like_tls(msg) ? INJECT_TLS : INJECT_NO_CONTEXT);
	return verdict(inject(msg, &sc));
}
