#!/usr/bin/env bash
# Installs everything gotel needs on a Debian/Ubuntu machine, as root:
# system packages, a Python virtual environment with gotel, the BPF objects.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"

packages=(clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev make python3-venv wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null; then
  echo "setup: a Go toolchain (1.21 or newer) is needed on PATH to build the demo and test programs" >&2
  exit 3
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'

make -s bpf
echo "setup: ready ($(.venv/bin/gotel --version), $(go version | cut -d' ' -f3))"
