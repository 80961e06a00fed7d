/* database/sql events: the one definition of their layout; Python reads it from BTF. */
#pragma once

#include <linux/types.h>

#define SQL_QUERY_SIZE 512
#define SQL_DRIVER_SIZE 32
#define SQL_DSN_SIZE 192

/* What a span is of: the database/sql function it covers. */
enum sql_operation {
	SQL_OP_QUERY = 1,    /* (*DB).queryDC: Query, QueryRow on a DB, Conn or Tx */
	SQL_OP_EXEC = 2,     /* (*DB).execDC: Exec on a DB, Conn or Tx */
	SQL_OP_PREPARE = 3,  /* (*DB).prepareDC: Prepare on a DB or Conn */
	SQL_OP_BEGIN = 4,    /* (*DB).BeginTx */
	SQL_OP_COMMIT = 5,   /* (*Tx).Commit */
	SQL_OP_ROLLBACK = 6, /* (*Tx).Rollback */
};

/* The database system, when only the linked driver modules tell it (set by the loader). */
enum sql_system {
	SQL_SYSTEM_UNKNOWN = 0,
	SQL_SYSTEM_POSTGRESQL = 1,
	SQL_SYSTEM_SQLITE = 2,
	SQL_SYSTEM_MYSQL = 3,
};

/* One finished database/sql call. */
struct sql_client_event {
	__u64 start_ns; /* CLOCK_BOOTTIME */
	__u64 end_ns;
	__u64 error_type; /* the returned error's itab, 0: no error */
	__u32 pid;
	__u32 trace_flags;
	__u8 trace_id[16];
	__u8 span_id[8];
	__u8 parent_span_id[8]; /* zero: a root span */
	__u32 operation; /* enum sql_operation */
	__u32 system_hint; /* enum sql_system from the binary's driver modules */
	__u32 query_len;
	__u32 driver_len; /* sql.Open's driverName, when gotel saw the Open */
	__u32 dsn_len;	  /* sql.Open's dataSourceName: parsed for host and port, never exported */
	__u32 _pad;
	char query[SQL_QUERY_SIZE];
	char driver[SQL_DRIVER_SIZE];
	char dsn[SQL_DSN_SIZE];
};
