/* Reading Go values out of the target's memory (read-only, always bounded). */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* A Go string header: pointer and length, as laid out in memory. */
struct go_string {
	__u64 ptr;
	__s64 len;
};

/* An offset the loader could not resolve; fields guarded by it are never read. */
#define GOTEL_OFFSET_ABSENT ((__u64)-1)

static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;

	if (addr)
		bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

static __always_inline __u64 read_ptr_field(__u64 base, __u64 offset)
{
	if (!base || offset == GOTEL_OFFSET_ABSENT)
		return 0;
	return read_u64(base + offset);
}

/*
 * Copy the Go string stored at base+offset into dst (capacity cap, a
 * compile-time constant). Returns the string's full length so that the
 * caller can tell a truncated copy from a whole one; 0 when unreadable.
 */
#define read_go_string(base, offset, dst) \
	read_go_string_n((base), (offset), (dst), sizeof(dst))

static __always_inline __u32 read_go_string_n(__u64 base, __u64 offset, char *dst, __u32 cap)
{
	struct go_string s = {};
	__u64 n;

	if (!base || offset == GOTEL_OFFSET_ABSENT)
		return 0;
	if (bpf_probe_read_user(&s, sizeof(s), (void *)(base + offset)))
		return 0;
	if (s.len <= 0 || !s.ptr)
		return 0;
	n = s.len;
	if (n > cap)
		n = cap;
	/* Bound again in a form the verifier tracks through the helper call. */
	n &= 0xffff;
	if (n > cap)
		return 0;
	if (bpf_probe_read_user(dst, n, (void *)s.ptr))
		return 0;
	return s.len > 0xffffffff ? 0xffffffff : (__u32)s.len;
}
