#!/usr/bin/env bash
# Sets up (idempotent), lints, and runs the whole test suite as root with real BPF.
# Any skipped test fails the run (tests/conftest.py): this installs everything they need.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"

# Test-only tools: gcc for externally linked Go binaries, binutils (objdump, objcopy) to
# check gotel's ELF reader against, real PostgreSQL and Redis servers for the database probes,
# Java and Maven for a real Kafka broker (its jars come from Maven Central, cached in ~/.m2).
packages=(gcc binutils postgresql redis-server openjdk-17-jre-headless maven)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The oldest Go releases gotel supports, from the module proxy (cached after the first run).
for toolchain in go1.21.13 go1.22.12; do
  GOTOOLCHAIN="$toolchain" go version >/dev/null
done
# The Kafka broker's jars (tests/kafka/pom.xml), fetched once into tests/.build/kafka-libs.
(cd tests && ../.venv/bin/python -c "from kafka_broker import kafka_libs; kafka_libs()")

.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest tests -rs "$@"
