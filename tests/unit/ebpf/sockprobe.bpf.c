// SPDX-License-Identifier: GPL-2.0
// Test programs for gotel.ebpf's cgroup and socket-map attachments.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 64);
	__type(key, __u64); // socket cookie
	__type(value, __u64);
} socks SEC(".maps");

// How often each sockops op ran, by BPF_SOCK_OPS_* value.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u64);
} ops_seen SEC(".maps");

// [0] messages, [1] bytes seen by the sk_msg program.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sent SEC(".maps");

static __always_inline void add(void *map, __u32 key, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("sockops")
int on_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;

	add(&ops_seen, skops->op, 1);
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		cookie = bpf_get_socket_cookie(skops);
		bpf_sock_hash_update(skops, &socks, &cookie, BPF_ANY);
	}
	return 1;
}

SEC("sk_msg")
int on_msg(struct sk_msg_md *msg)
{
	add(&sent, 0, 1);
	add(&sent, 1, msg->size);
	return SK_PASS;
}
