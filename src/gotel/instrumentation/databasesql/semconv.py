"""Database client semantic conventions for SQL: query text without values, operation and
collection names, and the server from a data source name."""

from __future__ import annotations

import functools
import os
import re
from urllib.parse import unquote, urlsplit

from gotel.instrumentation.decode import split_host_port
from gotel.trace.env import GOTEL_DB_QUERY_VALUES

# sql.Open's driver name -> db.system.name (semconv's well-known values).
DRIVER_SYSTEMS = {
    "pgx": "postgresql",
    "pgx/v4": "postgresql",
    "pgx/v5": "postgresql",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "cloudsqlpostgres": "postgresql",
    "sqlite": "sqlite",
    "sqlite3": "sqlite",
    "mysql": "mysql",
    "sqlserver": "microsoft.sql_server",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
    "godror": "oracle.db",
    "clickhouse": "clickhouse",
}
OTHER_SQL = "other_sql"
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "microsoft.sql_server": 1433}

# A literal: a quoted string ('' escapes a quote; E'' and N'' prefixes included), or a number
# that is not part of a name or a $1 / ?1 / :1 placeholder.
_LITERAL = re.compile(
    r"""(?:\b[EeNnXxBb])?'(?:[^']|'')*'?"""
    r"""|(?<![\w$?:@.])[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)\b""",
)
_WORD = re.compile(r"\s*([A-Za-z]+)")
_NAME = r"""((?:[A-Za-z_][\w$]*|"[^"]+"|`[^`]+`)(?:\.(?:[A-Za-z_][\w$]*|"[^"]+"|`[^`]+`))?)"""
# Where a statement names the one table it is about.
_COLLECTION = {
    "SELECT": re.compile(r"\bFROM\s+" + _NAME, re.I),
    "INSERT": re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+" + _NAME, re.I),
    "REPLACE": re.compile(r"^\s*REPLACE\s+INTO\s+" + _NAME, re.I),
    "UPDATE": re.compile(r"^\s*UPDATE\s+(?:OR\s+\w+\s+)?" + _NAME, re.I),
    "DELETE": re.compile(r"^\s*DELETE\s+FROM\s+" + _NAME, re.I),
    "CREATE": re.compile(r"^\s*CREATE\s+(?:TEMP\w*\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME,
                         re.I),
    "DROP": re.compile(r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?" + _NAME, re.I),
    "TRUNCATE": re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?" + _NAME, re.I),
}

# Where a SELECT's FROM list ends.
_FROM_END = re.compile(r"\b(?:WHERE|GROUP|ORDER|LIMIT|OFFSET|HAVING|UNION|WINDOW|FOR)\b|;", re.I)


def _one_table(query: str, at: int) -> bool:
    """Whether the FROM list starting at `at` names a single table (no join, list, subquery)."""
    m = _FROM_END.search(query, at)
    from_list = query[at : m.start() if m else len(query)]
    return not re.search(r",|\(|\bJOIN\b", from_list, re.I)


def keep_values() -> bool:
    return os.environ.get(GOTEL_DB_QUERY_VALUES, "").lower() == "keep"


@functools.lru_cache(maxsize=2048)
def redact(query: str) -> str:
    """The query with every literal value replaced by `?`."""
    return _LITERAL.sub("?", query)


@functools.lru_cache(maxsize=2048)
def operation_and_collection(query: str) -> tuple[str, str]:
    """("SELECT", "items") for `SELECT ... FROM items WHERE ...`; "" where not simple."""
    m = _WORD.match(query)
    if not m:
        return "", ""
    operation = m.group(1).upper()
    pattern = _COLLECTION.get(operation)
    found = pattern.search(query) if pattern else None
    if not found or (operation == "SELECT" and not _one_table(query, found.start())):
        return operation, ""
    return operation, found.group(1).replace('"', "").replace("`", "")


@functools.lru_cache(maxsize=256)
def server_of(dsn: str, system: str) -> tuple[str, int | None, str]:
    """(server.address, server.port, db.namespace) from a data source name; "" where it has
    none (SQLite files). The DSN's other parts (user, password, options) are never kept."""
    if not dsn or system == "sqlite":
        return "", None, ""
    if "://" in dsn:
        try:
            url = urlsplit(dsn)
            host, port = url.hostname or "", url.port
        except ValueError:
            return "", None, ""
        port = (port or DEFAULT_PORTS.get(system)) if host else None
        return unquote(host), port, unquote(url.path.lstrip("/"))
    if m := re.search(r"@(?:tcp|unix)\(([^)]*)\)/?([^?]*)", dsn):  # MySQL: user:pw@tcp(h:p)/db
        host, port = split_host_port(m.group(1))
        return host, port or DEFAULT_PORTS.get(system), m.group(2)
    pairs = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)", dsn))  # key=value form
    if pairs:
        values = {k.lower(): v.strip("'") for k, v in pairs.items()}
        host = values.get("host", "").split(",")[0]
        port_text = values.get("port", "").split(",")[0]
        port = int(port_text) if port_text.isdigit() else DEFAULT_PORTS.get(system)
        return host, port if host else None, values.get("dbname", values.get("database", ""))
    return "", None, ""
