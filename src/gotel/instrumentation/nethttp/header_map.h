/*
 * Finding one header in a Go http.Header (map[string][]string) from the
 * kernel, read-only and bounded. Go 1.24 replaced the bucket map (hmap) with
 * Swiss tables; both layouts are walked, chosen by the loader from DWARF.
 */
#pragma once

#include "include/go_types.h"

enum header_map_layout {
	HEADER_MAP_NONE = 0,
	HEADER_MAP_BUCKETS = 1, /* Go <= 1.23: runtime.hmap */
	HEADER_MAP_SWISS = 2,   /* Go >= 1.24: internal/runtime/maps.Map */
};

volatile const __u32 header_map_layout = HEADER_MAP_NONE;
volatile const __u64 off_hmap_b = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_hmap_buckets = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_hmap_oldbuckets = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_swiss_dir_ptr = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_swiss_dir_len = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_swiss_table_groups = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_swiss_groups_data = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_swiss_groups_mask = GOTEL_OFFSET_ABSENT;

/* Sizes fixed by the Go ABI for map[string][]string: string 16 bytes, slice 24. */
#define MAP_SLOTS 8
#define KEY_SIZE 16
#define ELEM_SIZE 24
/* Bucket map: tophash[8], keys[8], elems[8], overflow pointer. */
#define BUCKET_KEYS 8
#define BUCKET_ELEMS (BUCKET_KEYS + MAP_SLOTS * KEY_SIZE)
#define BUCKET_OVERFLOW (BUCKET_ELEMS + MAP_SLOTS * ELEM_SIZE)
#define BUCKET_MAX_LOG2 4 /* 16 buckets: ~100 headers */
#define TOPHASH_MIN 5	  /* below: empty or evacuated */
/* Swiss group: one control word, then 8 (key, elem) slots. */
#define SLOT_SIZE (KEY_SIZE + ELEM_SIZE)
#define GROUP_SIZE (8 + MAP_SLOTS * SLOT_SIZE)
#define SWISS_MAX_TABLES 4
#define SWISS_MAX_GROUPS 8

#define HEADER_VALUE_MAX 64

/* Canonical header keys (textproto) the server looks for. */
static const char traceparent_key[] = "Traceparent";
#define TRACEPARENT_KEY_LEN (sizeof(traceparent_key) - 1)

/* Is the Go string at key equal to "Traceparent"? */
static __always_inline int key_is_traceparent(__u64 key)
{
	struct go_string s = {};
	char buf[TRACEPARENT_KEY_LEN];

	if (bpf_probe_read_user(&s, sizeof(s), (void *)key) || s.len != TRACEPARENT_KEY_LEN)
		return 0;
	if (bpf_probe_read_user(buf, sizeof(buf), (void *)s.ptr))
		return 0;
	for (int i = 0; i < TRACEPARENT_KEY_LEN; i++)
		if (buf[i] != traceparent_key[i])
			return 0;
	return 1;
}

/* Copy the first value of the []string at elem; returns its length (0: none). */
static __always_inline __u32 first_value(__u64 elem, __u8 *out)
{
	__u64 values = read_u64(elem), count = read_u64(elem + 8);

	if (!values || !count)
		return 0;
	return read_go_string_n(values, 0, (char *)out, HEADER_VALUE_MAX);
}

static __always_inline __u32 scan_bucket(__u64 bucket, __u8 *out)
{
	__u8 tophash[MAP_SLOTS];

	if (bpf_probe_read_user(tophash, sizeof(tophash), (void *)bucket))
		return 0;
	for (int i = 0; i < MAP_SLOTS; i++) {
		if (tophash[i] < TOPHASH_MIN)
			continue;
		if (key_is_traceparent(bucket + BUCKET_KEYS + i * KEY_SIZE))
			return first_value(bucket + BUCKET_ELEMS + i * ELEM_SIZE, out);
	}
	return 0;
}

static __always_inline __u32 find_in_buckets(__u64 hmap, __u8 *out)
{
	__u8 b = 0;
	__u64 buckets, n;
	__u32 len;

	/* Mid-growth some entries still sit in the old array: leave it alone. */
	if (read_ptr_field(hmap, off_hmap_oldbuckets))
		return 0;
	if (bpf_probe_read_user(&b, 1, (void *)(hmap + off_hmap_b)) || b > BUCKET_MAX_LOG2)
		return 0;
	buckets = read_ptr_field(hmap, off_hmap_buckets);
	n = 1ULL << b;
	for (int i = 0; i < (1 << BUCKET_MAX_LOG2) && i < n && buckets; i++) {
		__u64 bucket = buckets + i * (BUCKET_OVERFLOW + 8);

		/* One overflow bucket per bucket is plenty for a header map. */
		for (int j = 0; j < 2 && bucket; j++) {
			len = scan_bucket(bucket, out);
			if (len)
				return len;
			bucket = read_u64(bucket + BUCKET_OVERFLOW);
		}
	}
	return 0;
}

static __always_inline __u32 scan_group(__u64 group, __u8 *out)
{
	__u8 ctrl[MAP_SLOTS];

	if (bpf_probe_read_user(ctrl, sizeof(ctrl), (void *)group))
		return 0;
	for (int i = 0; i < MAP_SLOTS; i++) {
		if (ctrl[i] & 0x80) /* empty or deleted */
			continue;
		if (key_is_traceparent(group + 8 + i * SLOT_SIZE))
			return first_value(group + 8 + i * SLOT_SIZE + KEY_SIZE, out);
	}
	return 0;
}

static __always_inline __u32 find_in_swiss(__u64 m, __u8 *out)
{
	__u64 dir = read_ptr_field(m, off_swiss_dir_ptr);
	__u64 dir_len = read_ptr_field(m, off_swiss_dir_len);
	__u32 len;

	if (!dir)
		return 0;
	if (dir_len == 0) /* a small map: dirPtr is its only group */
		return scan_group(dir, out);
	for (int t = 0; t < SWISS_MAX_TABLES && t < dir_len; t++) {
		__u64 table = read_u64(dir + t * 8);
		__u64 groups, mask;

		if (!table)
			continue;
		groups = read_ptr_field(table + off_swiss_table_groups, off_swiss_groups_data);
		mask = read_ptr_field(table + off_swiss_table_groups, off_swiss_groups_mask);

		for (int g = 0; g < SWISS_MAX_GROUPS && g <= mask && groups; g++) {
			len = scan_group(groups + g * GROUP_SIZE, out);
			if (len)
				return len;
		}
	}
	return 0;
}

/* The first value of the Traceparent header in the map m; 0 when absent. */
static __always_inline __u32 find_traceparent_header(__u64 m, __u8 *out)
{
	if (!m)
		return 0;
	switch (header_map_layout) {
	case HEADER_MAP_BUCKETS:
		return find_in_buckets(m, out);
	case HEADER_MAP_SWISS:
		return find_in_swiss(m, out);
	}
	return 0;
}
