"""chi routes on net/http server spans, end to end: tests/apps/chiapp, real BPF.

A request through two Mount-ed sub-routers and a Route group is named by its whole pattern,
a plain route by its own, a 404 by its method alone. Built against two chi releases (the
oldest and newest of the last three years), stripped (offsets from gotel's database) and not.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import urllib.error
from pathlib import Path

import pytest

from conftest import GoServer, Gotel, get, read_jsonl
from gotel.goelf import open_binary
from gotel.instrumentation.chi import probe
from gotools import APPS, BUILD, build_app, go_binary

pytestmark = pytest.mark.usefixtures("require_root")

MODULE = probe.MODULE
APP_NAME = "chiapp"
PINNED = "v5.5.0"  # tests/apps/chiapp/go.mod
OLDER = "v5.0.11"  # before chi called RoutePattern itself, or set Request.Pattern
# path -> (span name, http.route); None: no route.
ROUTES = {
    "/api/v1/users/42": ("GET /api/v1/users/{id}", "/api/v1/users/{id}"),
    "/api/v1/users/42/posts/7": ("GET /api/v1/users/{id}/posts/{post}",
                                 "/api/v1/users/{id}/posts/{post}"),
    "/health": ("GET /health", "/health"),
    "/nope": ("GET", None),
}


def build_router_app(app: str, module: str, pinned: str, version: str, *,
                     stripped: bool) -> Path:
    """The app against its pinned release or another one (a patched copy)."""
    if version == pinned:
        return build_app(app, stripped=stripped)
    source = BUILD / f"src-{app}-{version}"
    digest = hashlib.sha256(version.encode())
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((APPS / app / name).read_bytes())
    stamp = source / ".stamp"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(APPS / app, source)
        env = dict(os.environ, GOTOOLCHAIN="local")
        for command in (["mod", "edit", f"-require={module}@{version}"], ["mod", "tidy"]):
            subprocess.run([go_binary(), *command], cwd=source, env=env, check=True,
                           capture_output=True)
        stamp.write_text(digest.hexdigest())
    suffix = "-stripped" if stripped else ""
    return build_app(source, stripped=stripped, name=f"{app}-{version}{suffix}")


def status(url: str) -> int:
    try:
        return get(url)
    except urllib.error.HTTPError as exc:
        return exc.code


def check_routes(binary: Path, routes: dict[str, tuple[str, str | None]], probe_name: str,
                 tmp_path: Path, servers: list, gotels: list) -> None:
    """Each path requested twice (a route must not leak into the next request)."""
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
            assert status(f"{app.url}{path}") == (404 if route is None else 200)
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


@pytest.mark.parametrize(("version", "stripped"), [
    (PINNED, False), (PINNED, True), (OLDER, False), (OLDER, True),
])
def test_server_spans_are_named_by_the_full_chi_pattern(version, stripped, tmp_path,
                                                        servers, gotels):
    binary = build_router_app(APP_NAME, MODULE, PINNED, version, stripped=stripped)
    with open_binary(binary) as b:
        assert b.has_dwarf != stripped
        assert b.modules[MODULE] == version
    check_routes(binary, ROUTES, probe.ROUTE.name, tmp_path, servers, gotels)
