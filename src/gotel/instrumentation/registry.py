"""Finds every probe: each library folder's `probe` module exports PROBES."""

from __future__ import annotations

import importlib
import pkgutil

from gotel.instrumentation.probe import Probe


def all_probes() -> list[Probe]:
    import gotel.instrumentation as package

    probes: list[Probe] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        name = f"{package.__name__}.{info.name}.probe"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the probe module
                raise
            continue
        probes.extend(getattr(module, "PROBES", ()))
    return probes
