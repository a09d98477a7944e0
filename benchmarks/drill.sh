#!/usr/bin/env bash
# Fault drills (SIGKILL/resume, transient faults, rate limit) against a loopback fake server.
#   bash benchmarks/drill.sh [--small]
# Uses the repo's .venv/bin/python if it exists, else python3 (as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
if ! "$PY" -c "import llmexp, pandas" 2>/dev/null; then
  echo "drill: $PY cannot import llmexp; run the README's setup command first (it creates .venv)" >&2
  exit 2
fi
exec "$PY" benchmarks/drill.py "$@"
