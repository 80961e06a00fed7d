"""RPC semantic conventions (1.37) for gRPC spans: names, attributes, which codes are errors."""

from __future__ import annotations

from gotel.instrumentation.decode import split_host_port

SYSTEM = "grpc"

# google.golang.org/grpc/codes, by value.
CODE_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
OK = 0
CANCELLED = 1
UNKNOWN = 2

# A server span is an Error only for these: the others are the caller's fault.
SERVER_ERROR_CODES = frozenset(
    {
        CODE_NAMES.index("UNKNOWN"),
        CODE_NAMES.index("DEADLINE_EXCEEDED"),
        CODE_NAMES.index("UNIMPLEMENTED"),
        CODE_NAMES.index("INTERNAL"),
        CODE_NAMES.index("UNAVAILABLE"),
        CODE_NAMES.index("DATA_LOSS"),
    }
)


def code_name(code: int) -> str:
    return CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else str(code)


def method_attributes(full_method: str) -> tuple[str, dict[str, str]]:
    """"/package.Service/Method" -> span name "package.Service/Method" and rpc.* attributes.

    rpc.service holds the service alone, never the full method.
    """
    trimmed = full_method.removeprefix("/")
    service, sep, method = trimmed.rpartition("/")
    attrs = {"rpc.system": SYSTEM}
    if not sep or not service or not method:  # malformed: grpc rejects it, we keep what came
        return trimmed or SYSTEM, attrs
    attrs["rpc.service"] = service
    attrs["rpc.method"] = method
    return trimmed, attrs


def target_address(target: str) -> tuple[str, int | None]:
    """A dial target or authority -> (server.address, server.port).

    "host:port", "dns:///host:port", "dns://resolver/host:port", "passthrough:///host:port",
    "unix:///path" or "unix:path" (the socket path, no port).
    """
    scheme, sep, rest = target.partition(":")
    if sep and scheme in ("unix", "unix-abstract"):
        return rest.removeprefix("//"), None
    if sep and rest.startswith("//"):
        target = rest[2:].partition("/")[2]  # after the URL's authority (the resolver)
    return split_host_port(target)
