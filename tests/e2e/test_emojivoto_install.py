"""The emojivoto demo after `pip install`: a wheel of gotel built from a copy of the sources,
installed into a fresh virtualenv outside the checkout, used from a directory outside it.

It holds the services' Go sources and the fallback receiver; `gotel demo emojivoto --help`
works; the services build from the installed package and run; the installed receiver takes
an OTLP request. The scenario itself runs once, in test_emojivoto.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from gotel.export.otlp_encode import encode_request
from gotel.trace.span import Span, SpanKind
from gotools import REPO

PACKAGE = REPO / "src" / "gotel" / "demos" / "emojivoto"
INSTALL_TIMEOUT_S = 600  # pip fetches gotel's dependencies (or takes them from its cache)


@dataclass
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path  # a working directory outside the checkout

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            list(argv),
            cwd=self.elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, timeout: float = 300) -> str:
        done = self.run(str(self.venv / "bin" / "python"), "-c", code, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done.stdout


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("emojivoto-install")
    assert not work.is_relative_to(REPO)
    source = work / "source"  # a copy: building leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", str(source), "-w", str(work / "wheels")], work)
    (wheel,) = (work / "wheels").glob("gotel-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], work)
    _run(
        [str(venv / "bin" / "pip"), "--disable-pip-version-check", "-q", "install", str(wheel)],
        work,
    )
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return Installed(wheel, venv, elsewhere)


def test_the_wheel_holds_the_go_sources_and_the_receiver(installed: Installed) -> None:
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = [
        path for path in PACKAGE.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    ]
    wanted = {"gotel/" + p.relative_to(REPO / "src" / "gotel").as_posix() for p in shipped}
    assert {n for n in wanted if n.endswith(".go")} >= {
        f"gotel/demos/emojivoto/services/cmd/{name}/main.go"
        for name in ("emoji", "voting", "web", "vote-bot")
    }
    assert "gotel/demos/emojivoto/receiver.py" in wanted
    assert "gotel/demos/emojivoto/services/go.sum" in wanted
    assert sorted(wanted - in_wheel) == []


def test_gotel_demo_emojivoto_help_works_outside_the_checkout(installed: Installed) -> None:
    done = installed.run(str(installed.venv / "bin" / "gotel"), "demo", "emojivoto", "--help")
    assert done.returncode == 0, done.stderr
    assert "emojivoto" in done.stdout and "--requests" in done.stdout
    where = json.loads(
        installed.python(
            "import json, gotel, gotel.demos.emojivoto.build as b;"
            "print(json.dumps([gotel.__file__, str(b.SERVICES_SOURCE)]))"
        )
    )
    for path in where:
        assert Path(path).is_relative_to(installed.venv), path


def test_the_services_build_from_the_installed_package_and_run(installed: Installed) -> None:
    out = installed.elsewhere / "bin"
    installed.python(
        "from pathlib import Path; from gotel.demos.emojivoto.build import build_services;"
        f"build_services(Path({str(out)!r}))",
        timeout=900,
    )
    for name in ("emoji", "voting", "web", "vote-bot"):
        assert (out / name).is_file(), name
    proc = subprocess.Popen(
        [str(out / "emoji"), "-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "listening on 127.0.0.1:" in _first_line(proc)
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


def test_the_installed_receiver_takes_an_otlp_request(installed: Installed) -> None:
    spans = installed.elsewhere / "spans.jsonl"
    proc = subprocess.Popen(
        [
            str(installed.venv / "bin" / "python"),
            "-m",
            "gotel.demos.emojivoto.receiver",
            "--out",
            str(spans),
        ],
        cwd=installed.elsewhere,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = _first_line(proc)
        assert ready.startswith("ready http="), ready
        port = int(ready.split("=")[1])
        span = Span("x", SpanKind.SERVER, b"\x01" * 16, b"\x02" * 8, None, 1000, 2000)
        request = encode_request({"service.name": "web"}, [span], "0.1.0")
        post = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/traces",
            data=request,
            method="POST",
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(post, timeout=10) as response:
            assert response.status == 200
        (line,) = spans.read_text().splitlines()
        assert json.loads(line) | {"attributes": {}} == {
            "trace_id": "01" * 16,
            "span_id": "02" * 8,
            "parent_id": None,
            "service": "web",
            "name": "x",
            "kind": "SERVER",
            "start_us": 1,
            "duration_us": 1,
            "error": False,
            "attributes": {},
        }
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        proc.stdout.close()  # type: ignore[union-attr]


def _first_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return line[0].strip() if line else ""
