"""The demo's fallback backend: a small OTLP/HTTP trace receiver, run as its own process.

    python -m gotel.demos.emojivoto.receiver --out spans.jsonl

Serves `POST /v1/traces` (protobuf, optionally gzip or deflate) on 127.0.0.1, decodes each
request with gotel's own decoder (gotel.export.otlp_decode) and appends one JSON line per
span in the demo's TraceSpan form. Prints `ready http=PORT` once listening; exits on SIGTERM
or SIGINT. It needs nothing beyond gotel itself, so it works wherever gotel is installed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import threading
import zlib
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from gotel.demos.emojivoto.traces import span_from_otlp
from gotel.export.otlp_decode import decode_request
from gotel.export.protobuf import DecodeError

TRACES_PATH = "/v1/traces"
MAX_BODY = 64 << 20  # bytes; a larger request is refused, not read


class SpanFile:
    """The JSON lines file, written whole line by whole line from the server's threads."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def add(self, payload: bytes) -> int:
        """Decode one ExportTraceServiceRequest and append its spans; how many there were."""
        lines = [
            json.dumps(asdict(span_from_otlp(resource, span))) + "\n"
            for resource, spans in decode_request(payload)
            for span in spans
        ]
        with self._lock:
            self._stream.writelines(lines)
            self._stream.flush()  # the demo reads the file while the receiver runs
        return len(lines)


def make_server(port: int, spans: SpanFile) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True
                self._reply(413, b"request too large", "text/plain")
                return
            body = self.rfile.read(length)
            if self.path.split("?")[0] != TRACES_PATH:
                self._reply(404, b"not found", "text/plain")
                return
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                self._reply(415, b"only application/x-protobuf here", "text/plain")
                return
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            try:
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                spans.add(body)
            except (DecodeError, OSError, EOFError, zlib.error) as exc:
                self._reply(400, f"bad request: {exc}".encode(), "text/plain")
                return
            # An empty ExportTraceServiceResponse: all accepted.
            self._reply(200, b"", "application/x-protobuf")

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON lines file, appended to")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with open(args.out, "a", encoding="utf-8") as stream:
        server = make_server(args.port, SpanFile(stream))
        thread = threading.Thread(target=server.serve_forever, name="otlp-http")
        thread.start()
        print(f"ready http={server.server_address[1]}", flush=True)
        while not stop.wait(0.5):  # a timed wait keeps the main thread responsive to signals
            pass
        server.shutdown()
        server.server_close()
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
