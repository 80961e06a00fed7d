// SPDX-License-Identifier: GPL-2.0
/*
 * database/sql client spans, driver-agnostic: every Query, Exec and Prepare on
 * a DB, Conn or Tx goes through (*DB).queryDC, execDC or prepareDC, whose
 * arguments (context, query string) sit in registers at entry; transactions
 * are (*DB).BeginTx and (*Tx).Commit/Rollback. One span per call, entry and
 * every RET. sql.Open is probed too: when gotel sees it, the DB's driver name
 * and data source name (for host and port) go with every span of that DB.
 * A prepared statement's executions ((*Stmt).ExecContext, QueryContext) take
 * their query text from the prepareDC call that made the *Stmt: no struct offset.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "include/go_abi.h"
#include "include/go_types.h"
#include "include/goroutine.h"
#include "include/span_context.h"
#include "include/trace_context.h"
#include "include/events.h"
#include "events.h"

char LICENSE[] SEC("license") = "GPL";

/* enum sql_system: the database the linked driver modules imply, if only one. */
volatile const enum sql_system system_hint = SQL_SYSTEM_UNKNOWN;

/* A call in progress, keyed by the calling goroutine's id. */
struct sql_call {
	__u64 start_ns;
	__u64 db; /* *DB: finds the DB's Open details */
	__u64 query_ptr; /* tells a restart after stack growth from a new call */
	enum sql_operation operation; /* typed: puts the enum in BTF for the agent's tests */
	__u32 query_len;
	struct span_context sc;
	__u8 parent_span_id[SPAN_ID_SIZE];
	char query[SQL_QUERY_SIZE];
};

/* What sql.Open was given, for the DB it returned. */
struct sql_db {
	__u32 driver_len;
	__u32 dsn_len;
	char driver[SQL_DRIVER_SIZE];
	char dsn[SQL_DSN_SIZE];
};

GOTEL_PROCESS_HASH(sql_calls, struct sql_call, 16384);

/* Goroutine inside sql.Open -> its arguments, until the RET gives the *DB. */
GOTEL_PROCESS_HASH(sql_opening, struct sql_db, 1024);

/* *DB -> its Open arguments. */
GOTEL_PROCESS_HASH(sql_dbs, struct sql_db, 4096);

/* *Stmt -> its DB and query, from prepareDC's RET (no struct offset needed). */
struct sql_stmt {
	__u64 db;
	__u32 query_len;
	__u32 _pad;
	char query[SQL_QUERY_SIZE];
};

GOTEL_PROCESS_HASH(sql_stmts, struct sql_stmt, 4096);

/* *Tx -> its *DB, from BeginTx's RET (no struct offset needed). */
GOTEL_PROCESS_HASH(sql_txs, __u64, 16384);

/* Too big for the BPF stack: built here, then copied into the maps. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sql_call);
} sql_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sql_db);
} sql_db_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sql_stmt);
} sql_stmt_scratch SEC(".maps");

GOTEL_EVENT_TYPE(sql_client_event);

/* Copy a Go string given as (ptr, len) registers; returns its full length. */
static __always_inline __u32 read_string_regs(__u64 ptr, __s64 len, char *dst, __u32 cap)
{
	__u64 n;

	if (!ptr || len <= 0)
		return 0;
	n = len > cap ? cap : len;
	n &= 0xffff;
	if (n > cap || bpf_probe_read_user(dst, n, (void *)ptr))
		return 0;
	return len > 0xffffffff ? 0xffffffff : (__u32)len;
}

/* Start a call's span; its query is read from the program (query_ptr, query_len) or, for a
 * prepared statement's execution, copied from what its prepareDC saw (stmt). */
static __always_inline int call_start_query(struct pt_regs *ctx, enum sql_operation op, __u64 db,
					    __u64 goctx, __u64 query_ptr, __s64 query_len,
					    const struct sql_stmt *stmt)
{
	__u64 g = GO_G(ctx), goid = goroutine_id(g);
	struct sql_call *seen, *call;
	struct span_context parent = {};
	__u32 zero = 0;

	if (!goid)
		return 0;
	seen = process_lookup(&sql_calls, goid);
	if (seen && seen->operation == op && seen->db == db && seen->query_ptr == query_ptr)
		return 0; /* restarted after a stack growth */
	call = bpf_map_lookup_elem(&sql_scratch, &zero);
	if (!call)
		return 0;
	call->start_ns = bpf_ktime_get_boot_ns();
	call->db = db;
	call->query_ptr = query_ptr;
	call->operation = op;
	if (stmt) {
		call->query_len = stmt->query_len;
		bpf_probe_read_kernel(call->query, sizeof(call->query), stmt->query);
	} else {
		call->query_len = read_string_regs(query_ptr, query_len, call->query,
						   sizeof(call->query));
	}
	__builtin_memset(call->parent_span_id, 0, SPAN_ID_SIZE);
	if (find_parent_span(goctx, g, goid, &parent)) {
		span_start(&call->sc, &parent);
		__builtin_memcpy(call->parent_span_id, parent.span_id, SPAN_ID_SIZE);
	} else {
		span_start(&call->sc, 0);
	}
	process_update(&sql_calls, goid, call, BPF_ANY);
	return 0;
}

static __always_inline int call_start(struct pt_regs *ctx, enum sql_operation op, __u64 db,
				      __u64 goctx, __u64 query_ptr, __s64 query_len)
{
	return call_start_query(ctx, op, db, goctx, query_ptr, query_len, 0);
}

#include "client_metrics.h"
#include "include/maps.h"

static __always_inline int call_end(struct pt_regs *ctx, __u64 error_itab)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct sql_call *call = process_lookup(&sql_calls, goid);
	struct sql_client_event *e;
	struct sql_db *info;
	__u64 db;

	if (!call)
		return 0;
	record_call_metrics(call, error_itab);
	if (!(call->sc.flags & TRACE_FLAG_SAMPLED))
		goto done;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	e->start_ns = call->start_ns;
	e->end_ns = bpf_ktime_get_boot_ns();
	e->error_type = error_itab;
	e->pid = agent_pid();
	e->trace_flags = call->sc.flags;
	__builtin_memcpy(e->trace_id, call->sc.trace_id, sizeof(e->trace_id));
	__builtin_memcpy(e->span_id, call->sc.span_id, sizeof(e->span_id));
	__builtin_memcpy(e->parent_span_id, call->parent_span_id, sizeof(e->parent_span_id));
	e->operation = call->operation;
	e->system_hint = system_hint;
	e->query_len = call->query_len;
	bpf_probe_read_kernel(e->query, sizeof(e->query), call->query);
	e->_pad = 0;

	db = call->db;
	info = db ? process_lookup(&sql_dbs, db) : 0;
	if (info) {
		e->driver_len = info->driver_len;
		e->dsn_len = info->dsn_len;
		bpf_probe_read_kernel(e->driver, sizeof(e->driver), info->driver);
		bpf_probe_read_kernel(e->dsn, sizeof(e->dsn), info->dsn);
	} else {
		e->driver_len = e->dsn_len = 0;
		e->driver[0] = e->dsn[0] = 0;
	}
	submit_event(e);
done:
	process_delete(&sql_calls, goid);
	return 0;
}

/* func (db *DB) queryDC(ctx, txctx context.Context, dc *driverConn,
 *     releaseConn func(error), query string, args []any) (*Rows, error) */
SEC("uprobe")
int query_entry(struct pt_regs *ctx)
{
	return call_start(ctx, SQL_OP_QUERY, GO_PARAM1(ctx), GO_PARAM3(ctx), GO_PARAM8(ctx),
			  GO_PARAM9(ctx));
}

SEC("uprobe")
int query_return(struct pt_regs *ctx)
{
	return call_end(ctx, GO_PARAM2(ctx)); /* error in RBX:RCX */
}

/* func (db *DB) execDC(ctx context.Context, dc *driverConn, release func(error),
 *     query string, args []any) (res Result, err error) */
SEC("uprobe")
int exec_entry(struct pt_regs *ctx)
{
	return call_start(ctx, SQL_OP_EXEC, GO_PARAM1(ctx), GO_PARAM3(ctx), GO_PARAM6(ctx),
			  GO_PARAM7(ctx));
}

SEC("uprobe")
int exec_return(struct pt_regs *ctx)
{
	return call_end(ctx, GO_PARAM3(ctx)); /* Result in RAX:RBX, error in RCX:RDI */
}

/* func (db *DB) prepareDC(ctx context.Context, dc *driverConn, release func(error),
 *     cg stmtConnGrabber, query string) (*Stmt, error) */
SEC("uprobe")
int prepare_entry(struct pt_regs *ctx)
{
	return call_start(ctx, SQL_OP_PREPARE, GO_PARAM1(ctx), GO_PARAM3(ctx), GO_PARAM8(ctx),
			  GO_PARAM9(ctx));
}

SEC("uprobe")
int prepare_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), stmt = GO_PARAM1(ctx);
	struct sql_call *call = process_lookup(&sql_calls, goid);
	struct sql_stmt *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&sql_stmt_scratch, &zero);
	if (call && stmt && s && call->operation == SQL_OP_PREPARE) {
		s->db = call->db;
		s->query_len = call->query_len;
		s->_pad = 0;
		bpf_probe_read_kernel(s->query, sizeof(s->query), call->query);
		process_update(&sql_stmts, stmt, s, BPF_ANY);
	}
	return call_end(ctx, GO_PARAM2(ctx));
}

/* func (s *Stmt) ExecContext(ctx context.Context, args ...any) (Result, error);
 * func (s *Stmt) QueryContext(ctx context.Context, args ...any) (*Rows, error) */
static __always_inline int stmt_start(struct pt_regs *ctx, enum sql_operation op)
{
	__u64 stmt = GO_PARAM1(ctx);
	struct sql_stmt *s = process_lookup(&sql_stmts, stmt);

	if (!s)
		return 0; /* prepared before gotel attached (or by Tx.Stmt): its query is unknown */
	return call_start_query(ctx, op, s->db, GO_PARAM3(ctx), stmt, 0, s);
}

SEC("uprobe")
int stmt_exec_entry(struct pt_regs *ctx)
{
	return stmt_start(ctx, SQL_OP_EXEC);
}

SEC("uprobe")
int stmt_query_entry(struct pt_regs *ctx)
{
	return stmt_start(ctx, SQL_OP_QUERY);
}

SEC("uprobe")
int stmt_close_entry(struct pt_regs *ctx)
{
	__u64 stmt = GO_PARAM1(ctx);

	process_delete(&sql_stmts, stmt);
	return 0;
}

/* func (db *DB) BeginTx(ctx context.Context, opts *TxOptions) (*Tx, error) */
SEC("uprobe")
int begin_entry(struct pt_regs *ctx)
{
	return call_start(ctx, SQL_OP_BEGIN, GO_PARAM1(ctx), GO_PARAM3(ctx), 0, 0);
}

SEC("uprobe")
int begin_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), tx = GO_PARAM1(ctx);
	struct sql_call *call = process_lookup(&sql_calls, goid);

	if (call && tx) {
		__u64 db = call->db;

		process_update(&sql_txs, tx, &db, BPF_ANY);
	}
	return call_end(ctx, GO_PARAM2(ctx));
}

/*
 * func (tx *Tx) Commit() error; func (tx *Tx) rollback(discardConn bool) error (Rollback is
 * inlined into its callers). No context argument: the parent is the goroutine's span.
 *
 * The first of them on a Tx ends it; any later one does nothing but return ErrTxDone (the
 * Tx's own goroutine rolls back once Commit cancels its context). So a span is made only by
 * the call that takes the Tx out of sql_txs: deleting is atomic, one caller wins.
 */
static __always_inline int tx_end_start(struct pt_regs *ctx, enum sql_operation op)
{
	__u64 tx = GO_PARAM1(ctx), *found = process_lookup(&sql_txs, tx), db;

	if (!found)
		return 0; /* ended already, or begun before gotel attached */
	db = *found;
	if (process_delete(&sql_txs, tx))
		return 0; /* another goroutine ended it first */
	return call_start(ctx, op, db, 0, tx, 0);
}

SEC("uprobe")
int commit_entry(struct pt_regs *ctx)
{
	return tx_end_start(ctx, SQL_OP_COMMIT);
}

SEC("uprobe")
int rollback_entry(struct pt_regs *ctx)
{
	return tx_end_start(ctx, SQL_OP_ROLLBACK);
}

SEC("uprobe")
int tx_end_return(struct pt_regs *ctx)
{
	return call_end(ctx, GO_PARAM1(ctx)); /* error in RAX:RBX */
}

/* func Open(driverName, dataSourceName string) (*DB, error) */
SEC("uprobe")
int open_entry(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx));
	struct sql_db *info;
	__u32 zero = 0;

	if (!goid)
		return 0;
	info = bpf_map_lookup_elem(&sql_db_scratch, &zero);
	if (!info)
		return 0;
	info->driver_len = read_string_regs(GO_PARAM1(ctx), GO_PARAM2(ctx), info->driver,
					    sizeof(info->driver));
	info->dsn_len = read_string_regs(GO_PARAM3(ctx), GO_PARAM4(ctx), info->dsn,
					 sizeof(info->dsn));
	process_update(&sql_opening, goid, info, BPF_ANY);
	return 0;
}

SEC("uprobe")
int open_return(struct pt_regs *ctx)
{
	__u64 goid = goroutine_id(GO_G(ctx)), db = GO_PARAM1(ctx);
	struct sql_db *info = process_lookup(&sql_opening, goid);

	if (info && db)
		process_update(&sql_dbs, db, info, BPF_ANY);
	process_delete(&sql_opening, goid);
	return 0;
}
