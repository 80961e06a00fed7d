"""Each probe's red_key -> metric attributes: the semantic conventions, low cardinality only."""

from __future__ import annotations

from gotel.instrumentation.databasesql import probe as databasesql
from gotel.instrumentation.goredis import probe as goredis
from gotel.instrumentation.grpc import probe as grpc
from gotel.instrumentation.nethttp import probe as nethttp


def key(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"pid": 1, "code": 0, "port": 0, "outcome": 0, "word": b"",
                               "name": b"", "address": b""}
    return {**base, **fields}


def test_http_server_route_method_status_never_the_path():
    attrs = nethttp.SERVER.metric.attributes(key(code=201, word=b"POST", name=b"POST /items"))
    assert attrs == {"http.request.method": "POST", "http.route": "/items",
                     "http.response.status_code": 201, "url.scheme": "http"}
    failed = nethttp.SERVER.metric.attributes(key(code=503, word=b"GET", name=b"/x/{id}",
                                                  outcome=1))
    assert failed["error.type"] == "503" and failed["url.scheme"] == "https"
    # No WriteHeader: 200. An unknown method: _OTHER, without the unbounded original.
    other = nethttp.SERVER.metric.attributes(key(word=b"PURGE1"))
    assert other == {"http.request.method": "_OTHER", "http.response.status_code": 200,
                     "url.scheme": "http"}


def test_http_client_address_port_and_errors():
    metric = nethttp.CLIENT.metric
    assert metric.attributes(key(code=200, word=b"GET", address=b"api.example:8080")) == {
        "http.request.method": "GET", "server.address": "api.example", "server.port": 8080,
        "http.response.status_code": 200}
    https = metric.attributes(key(code=404, word=b"GET", address=b"example.org", outcome=2))
    assert https["server.port"] == 443 and https["error.type"] == "404"
    failed = metric.attributes(key(word=b"GET", address=b"down:1", outcome=1))
    assert failed["error.type"] == "_OTHER" and "http.response.status_code" not in failed


def test_grpc_server_codes_and_error_type():
    metric = grpc.SERVER.metric
    ok = metric.attributes(key(name=b"/grpc.health.v1.Health/Check", outcome=grpc.STATUS_READ))
    assert ok == {"rpc.system": "grpc", "rpc.service": "grpc.health.v1.Health",
                  "rpc.method": "Check", "rpc.grpc.status_code": 0}
    # NOT_FOUND is the caller's fault: no error.type on the server; UNIMPLEMENTED is one.
    assert "error.type" not in metric.attributes(key(name=b"/s/M", code=5, outcome=2))
    assert metric.attributes(key(name=b"/s/M", code=12, outcome=2))["error.type"] == (
        "UNIMPLEMENTED")
    # No status written on grpc's own transport: the stream was gone (CANCELLED), as on spans.
    gone = metric.attributes(key(name=b"/s/M", outcome=grpc.SERVER_HTTP2_TRANSPORT))
    assert gone["rpc.grpc.status_code"] == 1


def test_grpc_client_codes_address_and_error_type():
    metric = grpc.CLIENT.metric
    ok = metric.attributes(key(name=b"/s.S/M", outcome=grpc.STATUS_OK, address=b"10.0.0.1:50051"))
    assert ok == {"rpc.system": "grpc", "rpc.service": "s.S", "rpc.method": "M",
                  "rpc.grpc.status_code": 0, "server.address": "10.0.0.1", "server.port": 50051}
    not_found = metric.attributes(key(name=b"/s.S/M", code=5, outcome=grpc.STATUS_READ))
    assert not_found["error.type"] == "NOT_FOUND"
    other = metric.attributes(key(name=b"/s.S/M", outcome=grpc.STATUS_NOT_STATUS))
    assert other["rpc.grpc.status_code"] == 2 and other["error.type"] == "_OTHER"


def test_database_sql_system_operation_server_and_no_dsn():
    metric = databasesql.CLIENT.metric
    dsn = b"postgres://app:hunter2@db.internal:6543/shop?sslmode=disable"
    attrs = metric.attributes(key(word=b"select", outcome=1, address=b"pgx", name=dsn))
    assert attrs == {"db.system.name": "postgresql", "db.operation.name": "SELECT",
                     "server.address": "db.internal", "server.port": 6543,
                     "db.namespace": "shop"}
    assert "hunter2" not in repr(attrs)
    # A transaction's end has no text; a failure is error.type; the driver's hint stands in.
    failed = metric.attributes(key(outcome=5 | 0x100, code=2))
    assert failed == {"db.system.name": "sqlite", "db.operation.name": "COMMIT",
                      "error.type": "_OTHER"}
    # A DSN the key cut short gives no server attributes rather than wrong ones.
    cut = metric.attributes(key(word=b"INSERT", outcome=2 | 0x200, address=b"pgx", name=dsn))
    assert "server.address" not in cut and cut["db.operation.name"] == "INSERT"
    assert metric.bounds_s == (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


def test_go_redis_command_batch_server_and_reply_prefix():
    metric = goredis.CLIENT.metric
    get = metric.attributes(key(word=b"get", code=3, address=b"127.0.0.1:6380"))
    assert get == {"db.system.name": "redis", "db.operation.name": "GET",
                   "server.address": "127.0.0.1", "server.port": 6380, "db.namespace": "3"}
    assert metric.attributes(key(outcome=1))["db.operation.name"] == "PIPELINE"
    assert metric.attributes(key(outcome=2))["db.operation.name"] == "MULTI"
    unix = metric.attributes(key(word=b"set", outcome=0x100, address=b"/run/redis.sock"))
    assert unix["server.address"] == "/run/redis.sock" and "server.port" not in unix
    # An error's head: a reply prefix, redis.Nil (no error), anything else _OTHER.
    wrong = metric.attributes(key(word=b"incr", port=1, name=b"ERR value is not"))
    assert (wrong["error.type"], wrong["db.response.status_code"]) == ("ERR", "ERR")
    assert "error.type" not in metric.attributes(key(word=b"get", port=1, name=b"redis: nil"))
    assert metric.attributes(key(word=b"get", port=1, name=b"dial tcp 10.0.0"))[
        "error.type"] == "_OTHER"
