"""Outgoing W3C traceparent inserted at the socket layer (sockops + sk_msg)."""

from gotel.instrumentation.sockinject.injector import SocketInjector

__all__ = ["SocketInjector"]
