// SPDX-License-Identifier: GPL-2.0
// Compiles fine, but the verifier must reject it: it reads past a map value.
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("uprobe")
int out_of_bounds(struct pt_regs *ctx)
{
	__u32 zero = 0;
	volatile __u64 *v = bpf_map_lookup_elem(&values, &zero);

	if (!v)
		return 0;
	return v[1]; // value_size is 8: offset 8 is out of bounds
}
