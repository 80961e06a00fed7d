"""`gotel demo emojivoto`: four Go services traced by one gotel into Jaeger.

Everything it runs ships in this package: the services' Go sources (services/), the Jaeger
build (build), the fallback OTLP receiver (receiver); nothing outside it is needed.
"""

from gotel.demos.emojivoto.scenario import run_emojivoto

__all__ = ["run_emojivoto"]
