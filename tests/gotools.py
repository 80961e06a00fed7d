"""Building and running the Go programs under tests/apps (shared by test suites and bench)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "tests" / "apps"
BUILD = REPO / "tests" / ".build"
# The demo service `gotel demo` ships is also the tests' HTTP server.
DEMO_APP = REPO / "src" / "gotel" / "demoapp"
NAMED_APPS = {"httpserver": DEMO_APP}


def go_binary() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not os.access(found, os.X_OK):
        raise RuntimeError("go toolchain not found: install Go >= 1.21 on PATH")
    return found


def build_app(
    app: str | Path,
    *,
    toolchain: str | None = None,
    stripped: bool = False,
    pie: bool = False,
    name: str | None = None,
    package: str = ".",
) -> Path:
    """Build an app (folder under tests/apps, or a path) once per flag set; returns the binary.
    `package` picks a main package inside the app's module (e.g. "./pgx")."""
    source = Path(app) if Path(app).is_absolute() else NAMED_APPS.get(str(app), APPS / app)
    flags = ["stripped" if stripped else "", "pie" if pie else ""]
    main = package.strip("./").replace("/", "-")
    tag = name or "-".join(filter(None, [source.name, main, toolchain or "default", *flags]))
    out = BUILD / tag
    if out.exists() and out.stat().st_mtime >= _newest_source(source):
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    cmd = [go_binary(), "build", "-o", str(out)]
    if stripped:
        cmd += ["-ldflags=-s -w"]
    if pie:
        cmd += ["-buildmode=pie"]
    env = dict(os.environ, GOTOOLCHAIN=toolchain or "local")
    subprocess.run([*cmd, package], cwd=source, env=env, check=True, capture_output=True)
    return out


def build_app_against(app: str, module: str, version: str, *, stripped: bool = False,
                      siblings: tuple[str, ...] = ()) -> Path:
    """tests/apps/<app> built against another release of one of its modules: a copy whose
    go.mod requires `version` (rebuilt when the app's sources or the version change).
    `siblings` are modules released together with it, required at the same version."""
    source = BUILD / f"src-{app}-{version}"
    digest = hashlib.sha256(version.encode())
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((APPS / app / name).read_bytes())
    stamp = source / ".stamp"
    if not stamp.exists() or stamp.read_text() != digest.hexdigest():
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(APPS / app, source)
        env = dict(os.environ, GOTOOLCHAIN="local")
        requires = [f"-require={m}@{version}" for m in (module, *siblings)]
        if siblings:  # indirect requirements of the newer release would pull it back up
            listed = subprocess.run([go_binary(), "mod", "edit", "-json"], cwd=source, env=env,
                                    check=True, capture_output=True, text=True).stdout
            requires += [f"-droprequire={r['Path']}" for r in json.loads(listed)["Require"]
                         if r.get("Indirect")]
        for command in (["mod", "edit", *requires], ["mod", "tidy"]):
            subprocess.run([go_binary(), *command], cwd=source, env=env, check=True,
                           capture_output=True)
        stamp.write_text(digest.hexdigest())
    suffix = "-stripped" if stripped else ""
    return build_app(source, stripped=stripped, name=f"{app}-{version}{suffix}")


def _newest_source(source: Path) -> float:
    return max(p.stat().st_mtime for p in source.rglob("*") if p.is_file())
