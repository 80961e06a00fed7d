"""A real Apache Kafka 4 broker for the tests and benchmarks: one KRaft node (broker and
controller) from the Maven jars of tests/kafka/pom.xml, on free loopback ports in a temp dir.
"""

from __future__ import annotations

import base64
import shutil
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

from gotools import BUILD, REPO

POM = REPO / "tests" / "kafka" / "pom.xml"
LIBS = BUILD / "kafka-libs"
JAVA = "java"
# A small, fast-starting JVM: the broker serves a few test topics on a shared 2-core machine.
JVM_FLAGS = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.awt.headless=true"]
API_VERSIONS = 18  # the ApiVersions request: any Kafka broker answers it before anything else


def kafka_libs() -> Path:
    """The broker's jars (from Maven Central the first time, then from ~/.m2)."""
    if not (LIBS / ".complete").exists():
        if shutil.which("mvn") is None:
            raise RuntimeError("mvn not found: apt-get install maven (scripts/test.sh does)")
        shutil.rmtree(LIBS, ignore_errors=True)
        subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                        f"-DoutputDirectory={LIBS}", "-DincludeScope=runtime"],
                       check=True, capture_output=True)
        (LIBS / ".complete").touch()
    return LIBS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_api_versions(port: int) -> bool:
    header = struct.pack(">hhih", API_VERSIONS, 0, 1, -1)  # key, version, correlation, client
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(header)) + header)
            size = s.recv(4)
            return len(size) == 4 and struct.unpack(">i", size)[0] > 4
    except OSError:
        return False


class KafkaBroker:
    """One KRaft broker+controller. `bootstrap` is its host:port; stop() ends it."""

    def __init__(self, workdir: Path) -> None:
        libs = kafka_libs()
        self.port, controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        data = workdir / "data"
        config = workdir / "server.properties"
        config.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]))
        classpath = f"{libs}/*"
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run([JAVA, *JVM_FLAGS, "-cp", classpath, "kafka.tools.StorageTool", "format",
                        "-t", cluster_id, "-c", str(config)], check=True, capture_output=True)
        self.log = workdir / "broker.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [JAVA, *JVM_FLAGS, "-cp", classpath, "kafka.Kafka", str(config)],
                stdout=out, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"kafka broker exited: {self.log.read_text()[-2000:]}")
            if _answers_api_versions(self.port):
                return
            time.sleep(0.25)
        raise RuntimeError(f"kafka broker not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
