// SPDX-License-Identifier: GPL-2.0
/*
 * Every exec on the machine, as it happens: the process id and the file it
 * executes, sent to the agent through a ring buffer so that it can attach to a
 * matching program before that program gets far.
 *
 * A BTF tracepoint (tp_btf) on sched_process_exec: it needs neither kprobes
 * (often compiled out) nor a mounted tracefs, and reads only kernel memory,
 * which lockdown allows. The tracepoint fires once the new image is in place,
 * so /proc/<pid>/exe already names the new file.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "include/process.h"

char LICENSE[] SEC("license") = "GPL";

/* Only the field read here; CO-RE finds its offset in the running kernel's BTF. */
struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

struct task_struct;

#define EXEC_FILENAME_LEN 256

struct exec_event {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns() at exec */
	__u32 pid;     /* the process id, in the agent's pid namespace */
	__u32 filename_len;
	char filename[EXEC_FILENAME_LEN]; /* as given to execve: may be relative */
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18); /* ~900 execs between two drains */
} execs SEC(".maps");

/* Execs the ring had no room for; the agent falls back to a /proc scan when it grows. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} execs_lost SEC(".maps");

/* Publishes struct exec_event in BTF, where the agent reads its layout. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_event);
} exec_event_layout SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	__u32 pid = current_tgid();
	struct bpf_pidns_info ns;
	struct exec_event *e;

	if (agent_pidns_ino) {
		/* A process outside the agent's pid namespace is never one of its targets; its
		 * kernel tgid may even be another process's pid in there. */
		if (bpf_get_ns_current_pid_tgid(agent_pidns_dev, agent_pidns_ino, &ns, sizeof(ns)))
			return 0;
		pid = ns.tgid;
	}
	e = bpf_ringbuf_reserve(&execs, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&execs_lost, &zero);

		if (lost)
			__sync_fetch_and_add(lost, 1);
		return 0;
	}
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->pid = pid;
	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), bprm->filename);
	e->filename_len = n > 0 ? n - 1 : 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
