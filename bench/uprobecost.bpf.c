// SPDX-License-Identifier: GPL-2.0
/*
 * The cheapest useful uprobe program: count hits in a per-CPU array. The
 * count lets the benchmark check the probe really fired once per call, and a
 * per-CPU slot keeps the program itself to a few nanoseconds, so what is
 * timed is the uprobe mechanism (trap, instruction emulation or single-step,
 * BPF dispatch), not the program.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

SEC("uprobe")
int count_hit(struct pt_regs *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&hits, &key);

	if (count)
		*count += 1;
	return 0;
}
