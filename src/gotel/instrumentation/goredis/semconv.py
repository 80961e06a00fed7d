"""Redis semantic conventions (database spans, 1.37): names, query text, error classes."""

from __future__ import annotations

import re

SYSTEM = "redis"
NIL = "redis: nil"  # go-redis's reply for a missing key: an outcome, not an error
OTHER = "_OTHER"

# A command name as go-redis sends it ("get", "client", "ft.search", "json.set").
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.|-]*")
# A simple-error reply starts with an upper-case prefix: "ERR ...", "WRONGTYPE ...".
_PREFIX = re.compile(r"([A-Z][A-Z0-9_-]*)(?: |$)")


def command_name(raw: str) -> str:
    """The operation name of a command's args[0], upper case; "" when it is not a name."""
    return raw.upper() if _NAME.fullmatch(raw) else ""


def query_text(name: str, argc: int) -> str:
    """"SET ? ?": the command, then one placeholder per argument. Values never appear."""
    return name + " ?" * max(argc - 1, 0)


def batch_operation(prefix: str, names: list[str], complete: bool) -> str:
    """"PIPELINE GET" when every command of the batch is known to be GET, else "PIPELINE"."""
    if complete and names and all(n and n == names[0] for n in names):
        return f"{prefix} {names[0]}"
    return prefix


def batch_query_text(texts: list[str]) -> str:
    """One text when every command has the same, else all of them joined by "; "."""
    if texts and all(t == texts[0] for t in texts):
        return texts[0]
    return "; ".join(texts)


def error_class(text: str, length: int) -> str | None:
    """What a returned error says about the call: None when it is redis.Nil (no error), the
    reply's prefix ("ERR", "WRONGTYPE") for an error reply, else _OTHER.

    `text` is the head of the error's message (`length` its full length); anything but the
    prefix may hold the command's values, so nothing else of it is exported.
    """
    if length == len(NIL) and text == NIL:
        return None
    if text.isprintable() and (m := _PREFIX.match(text)):
        return m.group(1)
    return OTHER
