"""The deployment files, checked statically (no Docker engine or cluster here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gotel.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
# What gotel needs, and nothing more: never privileged, never SYS_ADMIN.
ALLOWED_CAPS = {"BPF", "PERFMON", "SYS_PTRACE", "NET_ADMIN", "DAC_READ_SEARCH"}  # privileges.LEAST


def gotel_containers(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    containers = []
    for doc in docs:
        spec = doc["spec"]["template"]["spec"]
        containers += [c for c in spec["containers"] if c["name"] == "gotel"]
    return containers


def test_manifests_exist():
    assert {p.name for p in MANIFESTS} >= {"sidecar.yaml", "daemonset.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_least_privilege(path):
    containers = gotel_containers(path)
    assert containers
    for c in containers:
        sc = c["securityContext"]
        assert sc.get("privileged") is False
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert set(sc["capabilities"]["add"]) <= ALLOWED_CAPS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_container_args_are_valid_gotel_commands(path):
    for c in gotel_containers(path):
        args = build_parser().parse_args(c["args"])  # exits 2 on a bad command line
        assert args.command == "attach"


def test_sidecar_shares_the_process_namespace():
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "sidecar.yaml").read_text())
    assert doc["spec"]["template"]["spec"]["shareProcessNamespace"] is True


def test_daemonset_sees_host_processes():
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "daemonset.yaml").read_text())
    assert doc["spec"]["template"]["spec"]["hostPID"] is True


def test_dockerfile_copies_what_exists_and_builds_bpf():
    text = (DEPLOY / "Dockerfile").read_text()
    root = DEPLOY.parent
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (root / src).exists(), src
    assert "make bpf" in text
    assert re.search(r"^bpf:", (root / "Makefile").read_text(), re.M)
    assert 'ENTRYPOINT ["/opt/gotel/bin/gotel"]' in text
