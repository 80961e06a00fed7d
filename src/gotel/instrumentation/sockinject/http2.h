/*
 * HTTP/2 in cleartext for inject.bpf.c (one translation unit; this part needs its counters,
 * state and HTTP/1's formatting): a connection's frames are followed across its sends, and a
 * HEADERS frame of a stream with an entry in shared_outgoing_streams gets a traceparent field
 * (an HPACK literal without indexing) appended to its block, its length fixed.
 */
#pragma once

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
	struct outgoing_stream_key key = {.tgid = current_tgid(), .g = w->g, .stream_id = sid};
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
