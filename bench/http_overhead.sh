#!/usr/bin/env bash
# HTTP overhead benchmark: modelhost V2 JSON infer vs a bare Starlette hello-world, one run.
# Usage: bench/http_overhead.sh [--rounds 3] [--seconds 10] [--connections 32] [--profile FILE]
#        [--batching demo|off|MS ...] [--commit REV] [--json FILE]  (see --help)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_apt wrk
require_project_python
exec "$python" "$root/bench/http_overhead.py" "$@"
