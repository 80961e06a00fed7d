/* go-redis events: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define REDIS_NAME_SIZE 24    /* one command's name, args[0]: "georadiusbymember_ro" fits */
#define REDIS_BATCH_NAMES 8   /* a pipeline's commands whose names and arities are kept */
#define REDIS_ADDR_SIZE 64    /* Options.Addr: host:port or a socket path */
#define REDIS_NETWORK_SIZE 8  /* Options.Network: "tcp", "unix" */
#define REDIS_ERROR_SIZE 32   /* the head of the error's text: enough for a reply's prefix */

/* What a span covers: one command, or a batch sent in one write. */
enum redis_call_kind {
	REDIS_COMMAND = 0,     /* (*baseClient).process */
	REDIS_PIPELINE = 1,    /* (*baseClient).processPipeline */
	REDIS_TRANSACTION = 2, /* (*baseClient).processTxPipeline: MULTI, the commands, EXEC */
};

/*
 * One finished command or batch. Slot i of names (REDIS_NAME_SIZE bytes, name_lens[i]
 * long) and argcs[i] describe the command (slot 0) or the batch's i-th command; the
 * arguments themselves are never read.
 */
struct redis_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 error_type; /* the error's itab when one was returned, else 0 */
	__s64 db;	  /* Options.DB */
	__u64 batch_size; /* batches: the commands in it (a transaction's without MULTI/EXEC) */
	__u32 pid;
	__u32 trace_flags;
	enum redis_call_kind kind;
	__u32 addr_len;
	__u32 network_len;
	__u32 error_len;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u32 name_lens[REDIS_BATCH_NAMES];
	__u32 argcs[REDIS_BATCH_NAMES]; /* each command's argument count, its name included */
	char names[REDIS_BATCH_NAMES * REDIS_NAME_SIZE];
	char addr[REDIS_ADDR_SIZE];
	char network[REDIS_NETWORK_SIZE];
	char error[REDIS_ERROR_SIZE]; /* only its reply prefix is ever exported */
};
