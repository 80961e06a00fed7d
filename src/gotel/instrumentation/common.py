"""Struct fields every probe that takes part in span parenting needs (see include/*.h)."""

from __future__ import annotations

from gotel.instrumentation.probe import StructField

GOROUTINE_FIELDS = (
    StructField("runtime.g", "goid", "off_g_goid"),
    StructField("runtime.g", "parentGoid", "off_g_parent_goid", required=False),
)

# Every context type with a parent (cancelCtx, valueCtx, timerCtx, ...) embeds it first.
CONTEXT_FIELDS = (
    StructField("context.cancelCtx", "Context", "off_context_parent", required=False),
)
