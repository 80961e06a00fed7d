"""Finds every probe and extension: each library folder's `probe` module exports PROBES,
its `extension` module (if any) EXTENSIONS, the classes of its extensions."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from gotel.instrumentation.extension import Extension
from gotel.instrumentation.probe import Probe


def _collect(module_name: str, attribute: str) -> list[Any]:
    import gotel.instrumentation as package

    found: list[Any] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        name = f"{package.__name__}.{info.name}.{module_name}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module
                raise
            continue
        found.extend(getattr(module, attribute, ()))
    return found


def all_probes() -> list[Probe]:
    return _collect("probe", "PROBES")


def all_extensions() -> list[Extension]:
    """A new instance of every extension: an agent's own (they keep state across its
    processes, e.g. one socket injector per cgroup)."""
    return [factory() for factory in _collect("extension", "EXTENSIONS")]
