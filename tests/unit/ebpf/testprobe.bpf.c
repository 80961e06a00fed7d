// SPDX-License-Identifier: GPL-2.0
// Test program for gotel.ebpf: one uprobe on a Go function, events to a ring buffer.
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum event_kind {
	EVENT_KIND_CALL = 1,
	EVENT_KIND_BIG = 2, // the argument reached big_threshold
};

struct pair {
	__u32 lo;
	__u32 hi;
};

// Mixed sizes on purpose: a 1-byte hole after `flag` and 4 bytes of tail padding
// exercise the decoder's handling of compiler-inserted padding.
struct event {
	__u64 ts;
	__u64 arg;     // Go's first integer argument (RAX)
	__u64 product; // arg * multiplier
	__u32 pid;
	enum event_kind kind;
	__u16 aux; // low bits of the second argument (RBX)
	__u8 flag;
	__u32 seq;
	struct pair halves;
	__u16 hist[3];
	char tag[12];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); // tests resize it before load
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

// Also what puts struct event into BTF for the Python decoder.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

volatile const __u64 multiplier = 1;
volatile const __s32 min_arg = -1; // events only for arguments >= min_arg
volatile const __u64 big_threshold = ~0ULL;
volatile const char tag_text[12] = "default";
volatile const __u8 discard_odd = 0; // reserve then discard records of odd arguments

static __u32 seq; // calls are sequential in the test: no atomic needed

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&drops, &zero);

	if (lost)
		__sync_fetch_and_add(lost, 1);
}

SEC("uprobe")
int on_call(struct pt_regs *ctx)
{
	__u64 arg = ctx->rax;
	__u32 zero = 0;

	if ((__s64)arg < (__s64)min_arg)
		return 0;
	if (discard_odd && (arg & 1)) {
		// A discarded record still occupies ring space: the reader must skip it.
		struct event *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

		if (r)
			bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		else
			count_drop();
		return 0;
	}
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->ts = bpf_ktime_get_boot_ns();
	e->arg = arg;
	e->product = arg * multiplier;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->kind = arg >= big_threshold ? EVENT_KIND_BIG : EVENT_KIND_CALL;
	e->aux = ctx->rbx;
	e->flag = arg & 1;
	e->seq = seq++;
	e->halves.lo = arg;
	e->halves.hi = arg >> 32;
	e->hist[0] = 1;
	e->hist[1] = 2;
	e->hist[2] = 3;
	// Byte by byte through the volatile: a memcpy from a cast would let clang fold
	// the compile-time default into the program.
	for (int i = 0; i < sizeof(e->tag); i++)
		e->tag[i] = tag_text[i];
	if (bpf_ringbuf_output(&events, e, sizeof(*e), BPF_RB_NO_WAKEUP))
		count_drop(); // ring full: counted, never silent
	return 0;
}
