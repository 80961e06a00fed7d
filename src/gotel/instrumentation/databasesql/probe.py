"""database/sql instrumentation: client spans for queries, statements and transactions of
any driver, with the query text's literal values replaced by `?`."""

from __future__ import annotations

from collections.abc import Mapping

from gotel.instrumentation.common import CONTEXT_FIELDS, GOROUTINE_FIELDS
from gotel.instrumentation.databasesql.semconv import (
    DRIVER_SYSTEMS,
    OTHER_SQL,
    keep_values,
    operation_and_collection,
    redact,
    server_of,
)
from gotel.instrumentation.events import truncated
from gotel.instrumentation.metric import DB_DURATION_BOUNDS, Metric, RedKey, key_text
from gotel.instrumentation.probe import STD, Event, Hook, Probe, object_path
from gotel.trace import SpanData, SpanKind

SCOPE = "gotel/database/sql"

# Values of `enum sql_operation` and `enum sql_system` in events.h.
OPERATIONS = {1: "", 2: "", 3: "", 4: "BEGIN", 5: "COMMIT", 6: "ROLLBACK"}
OP_PREPARE = 3
SYSTEMS = {1: "postgresql", 2: "sqlite", 3: "mysql"}
SYSTEM_CODES = {name: code for code, name in SYSTEMS.items()}
# red_key.outcome: the sql_operation, and these bits (client_metrics.h).
_METRIC_FAILED = 0x100
_METRIC_DSN_CUT = 0x200

# Driver modules -> the database they speak: tells the system of a DB whose sql.Open gotel
# did not see (it attached later, or the program used sql.OpenDB with a connector).
DRIVER_MODULES = {
    "github.com/jackc/pgx/v5": "postgresql",
    "github.com/jackc/pgx/v4": "postgresql",
    "github.com/lib/pq": "postgresql",
    "modernc.org/sqlite": "sqlite",
    "github.com/mattn/go-sqlite3": "sqlite",
    "github.com/glebarez/go-sqlite": "sqlite",
    "github.com/go-sql-driver/mysql": "mysql",
}


def system_hint(modules: Mapping[str, str]) -> dict[str, int]:
    systems = {DRIVER_MODULES[m] for m in modules if m in DRIVER_MODULES}
    return {"system_hint": SYSTEM_CODES[systems.pop()]} if len(systems) == 1 else {}


def sql_span(event: Event) -> SpanData:
    driver = event["driver"]
    system = DRIVER_SYSTEMS.get(driver) or SYSTEMS.get(event["system_hint"]) or OTHER_SQL
    attrs: dict[str, object] = {"db.system.name": system}
    fixed = OPERATIONS.get(event["operation"], "")
    query = event["query"]
    if fixed:
        operation, collection = fixed, ""
    else:
        operation, collection = operation_and_collection(query)
        if event["operation"] == OP_PREPARE and operation:
            attrs["db.operation.parameter.prepare"] = True  # not semconv: marks a Prepare
        if query:
            attrs["db.query.text"] = query if keep_values() else redact(query)
            if truncated(event, "query"):
                attrs["gotel.truncated"] = "db.query.text"
    if operation:
        attrs["db.operation.name"] = operation
    if collection:
        attrs["db.collection.name"] = collection
    host, port, namespace = server_of(event["dsn"], system)
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    if namespace:
        attrs["db.namespace"] = namespace
    error = bool(event["error_type"])
    if error:
        attrs["error.type"] = "_OTHER"  # the driver's error type is not resolved yet
    name = " ".join(filter(None, (operation, collection))) or system
    if event["operation"] == OP_PREPARE:
        name = f"PREPARE {name}" if operation else "PREPARE"
    return SpanData(name, SpanKind.CLIENT, attrs, error)


def metric_attributes(key: RedKey) -> dict[str, object]:
    """db.client.operation.duration's attributes: system, operation (the query's first word:
    a collection would need the whole text, whose literals must not make series), server
    address, port and namespace from the DSN, error.type."""
    system = DRIVER_SYSTEMS.get(key_text(key["address"])) or SYSTEMS.get(key["code"]) or OTHER_SQL
    attrs: dict[str, object] = {"db.system.name": system}
    outcome = key["outcome"]
    operation = OPERATIONS.get(outcome & 0xFF, "") or operation_and_collection(
        key_text(key["word"]))[0]
    if operation:
        attrs["db.operation.name"] = operation
    if not outcome & _METRIC_DSN_CUT:  # a cut DSN may have lost its host or port
        host, port, namespace = server_of(key_text(key["name"]), system)
        if host:
            attrs["server.address"] = host
        if port:
            attrs["server.port"] = port
        if namespace:
            attrs["db.namespace"] = namespace
    if outcome & _METRIC_FAILED:
        attrs["error.type"] = "_OTHER"
    return attrs


METRIC = Metric(
    "db.client.operation.duration",
    "Duration of database client operations.",
    metric_attributes,
    DB_DURATION_BOUNDS,
)


CLIENT = Probe(
    name="database/sql client",
    module=STD,
    bpf_object=object_path(__file__, "client.bpf.o"),
    hooks=(
        Hook("database/sql.(*DB).queryDC", entry="query_entry", returns="query_return"),
        Hook("database/sql.(*DB).execDC", entry="exec_entry", returns="exec_return"),
        Hook("database/sql.(*DB).prepareDC", entry="prepare_entry", returns="prepare_return",
             optional=True),
        # A prepared statement's executions, with the query its prepareDC was given.
        Hook("database/sql.(*Stmt).ExecContext", entry="stmt_exec_entry",
             returns="exec_return", optional=True),
        Hook("database/sql.(*Stmt).QueryContext", entry="stmt_query_entry",
             returns="query_return", optional=True),
        Hook("database/sql.(*Stmt).Close", entry="stmt_close_entry", optional=True),
        Hook("database/sql.(*DB).BeginTx", entry="begin_entry", returns="begin_return",
             optional=True),
        Hook("database/sql.(*Tx).Commit", entry="commit_entry", returns="tx_end_return",
             optional=True),
        Hook("database/sql.(*Tx).rollback", entry="rollback_entry", returns="tx_end_return",
             optional=True),
        Hook("database/sql.Open", entry="open_entry", returns="open_return", optional=True),
    ),
    fields=(*GOROUTINE_FIELDS, *CONTEXT_FIELDS),
    event="sql_client_event",
    describe=sql_span,
    scope=SCOPE,
    module_constants=system_hint,
    metric=METRIC,
)

PROBES = (CLIENT,)
