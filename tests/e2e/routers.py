"""Shared by the router tests (gin, echo, chi, gorilla/mux): an app built against a router
release, and the server spans gotel makes of its requests."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from conftest import GoServer, Gotel, read_jsonl
from gotel.goelf import open_binary
from gotools import build_app, build_app_against


def build_router_app(app: str, module: str, version: str, pinned: str, *,
                     stripped: bool = False) -> Path:
    """tests/apps/<app> against its pinned router release or another (a patched copy)."""
    if version == pinned:
        return build_app(app, stripped=stripped)
    return build_app_against(app, module, version, stripped=stripped)


def router_binary(app: str, module: str, version: str, pinned: str, stripped: bool) -> Path:
    """build_router_app, checked: the binary links `version` and has DWARF unless stripped."""
    binary = build_router_app(app, module, version, pinned, stripped=stripped)
    with open_binary(binary) as b:
        assert b.has_dwarf != stripped
        assert b.modules[module] == version
    return binary


def status_of(url: str, method: str = "GET") -> int:
    """The status of one request, error statuses included."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def server_spans_of(binary: Path, probe_name: str, requests: list[tuple[str, str, int]],
                    tmp_path: Path, servers: list[GoServer], gotels: list[Gotel]) -> dict:
    """Run the app under gotel, make the (method, path, status) requests in order; returns the
    SERVER span of each path (each path is requested once)."""
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(binary), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    app = GoServer(binary)
    servers.append(app)
    line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
    assert probe_name not in line.partition("skipped")[2], line
    for method, path, status in requests:
        assert status_of(app.url + path, method) == status, (method, path)
    spans = [s for s in read_jsonl(out, len(requests)) if s["kind"] == "SERVER"]
    by_path = {s["attributes"]["url.path"]: s for s in spans}
    assert len(by_path) == len(requests), spans
    return by_path


def assert_named_by_route(spans: dict, requests: list[tuple[str, str, int, str | None]]) -> None:
    """Each (method, path, status, route) request's SERVER span: `METHOD route` and http.route,
    or, without a route, just `METHOD` and no http.route."""
    for method, path, status, route in requests:
        span = spans[path]
        assert span["attributes"]["http.response.status_code"] == status
        if route is None:
            assert span["name"] == method, span
            assert "http.route" not in span["attributes"], span
        else:
            assert span["name"] == f"{method} {route}", span
            assert span["attributes"]["http.route"] == route


def check_routes(binary: Path, routes: dict[str, tuple[str, str | None]], probe_name: str,
                 tmp_path: Path, servers: list[GoServer], gotels: list[Gotel]) -> None:
    """GET each path twice (a route must not leak into the next request); each SERVER span has
    the (name, http.route) given for its path, route None for a 404."""
    out = tmp_path / "spans.jsonl"
    gotel = Gotel("attach", "--exe", str(binary), "--exporter", "jsonl", "--output", str(out))
    gotels.append(gotel)
    gotel.wait_for("watching for processes")
    app = GoServer(binary)
    servers.append(app)
    line = gotel.wait_for(rf"pid {app.pid} .*attached.*").group(0)
    assert probe_name not in line.partition("skipped")[2], line
    for _ in range(2):
        for path, (_, route) in routes.items():
            assert status_of(f"{app.url}{path}") == (404 if route is None else 200)
    spans = read_jsonl(out, 2 * len(routes))
    assert gotel.stop() == 0, gotel.log
    assert len(spans) == 2 * len(routes), [s["name"] for s in spans]
    for path, (name, route) in routes.items():
        mine = [s for s in spans if s["attributes"].get("url.path") == path]
        assert len(mine) == 2, (path, [s["name"] for s in spans])
        for span in mine:
            assert span["kind"] == "SERVER"
            assert span["name"] == name, (path, span)
            assert span["attributes"].get("http.route") == route, (path, span["attributes"])
