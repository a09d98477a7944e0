#!/usr/bin/env bash
# Fault drills (SIGKILL/resume, transient faults, rate limit) against a loopback fake server.
#   bash benchmarks/drill.sh [--small]
# Uses the repo's .venv/bin/python if it exists, else python3 (as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
exec "$PY" benchmarks/drill.py "$@"
