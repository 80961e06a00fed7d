#!/usr/bin/env bash
# Sets up (idempotent), lints, and runs the whole test suite as root with real BPF.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -d /usr/local/go/bin ] && export PATH="/usr/local/go/bin:$PATH"
.venv/bin/ruff check src tests bench
exec .venv/bin/python -m pytest tests "$@"
