/*
 * HTTP/1 insertion for inject.bpf.c (one translation unit; this part needs its counters and
 * state): a message that starts with a request line whose sending goroutine has an entry in
 * shared_outgoing gets one traceparent line right after that line.
 */
#pragma once

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
