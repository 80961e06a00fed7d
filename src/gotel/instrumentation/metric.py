"""A probe's RED metric as data: the histogram its BPF object aggregates (include/red_metrics.h).

The object counts every request in `red_metrics`, keyed by a `struct red_key` whose fields
(code, port, outcome, word, name, address) mean what the probe says: `attributes` turns one
decoded key into the series' semantic-convention attributes. Several keys may give the same
attributes (an unknown method becomes _OTHER): the reader adds them up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gotel.trace.span import AttributeValue

# Semantic conventions' recommended boundaries (seconds) for request durations
# (http.server.request.duration, rpc.*), and for database operations.
REQUEST_DURATION_BOUNDS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
DB_DURATION_BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

# The attribute of the series that counts requests whose own series found no room.
OVERFLOW_ATTRIBUTE = "otel.metric.overflow"

RedKey = Mapping[str, Any]


@dataclass(frozen=True)
class Metric:
    name: str  # "http.server.request.duration"
    description: str
    attributes: Callable[[RedKey], dict[str, AttributeValue]]
    bounds_s: tuple[float, ...] = REQUEST_DURATION_BOUNDS
    unit: str = "s"

    def bounds_ns(self) -> list[int]:
        return [round(bound * 1e9) for bound in self.bounds_s]


def key_text(raw: bytes) -> str:
    """A char array of a red_key: up to its first NUL, invalid UTF-8 replaced."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
