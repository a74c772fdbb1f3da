#!/usr/bin/env bash
# HTTP overhead benchmark: modelhost V2 JSON infer vs a bare Starlette hello-world, one run.
# Usage: bench/http_overhead.sh [--rounds 3] [--seconds 10] [--connections 32] [--profile FILE]
#        [--batching demo|off|MS ...] [--gc-freeze] [--commit REV] [--json FILE]  (see --help)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MODELHOST_PYTHON:-$root/.venv/bin/python}"
if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found: installing it with apt-get" >&2
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq wrk
fi
if [ ! -x "$python" ]; then
    echo "$python not found: create the virtualenv (python -m venv .venv && .venv/bin/pip install -e '.[all,dev]')" >&2
    exit 2
fi
exec "$python" "$root/bench/http_overhead.py" "$@"
