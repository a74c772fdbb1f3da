#!/usr/bin/env bash
# V2 JSON infer on iris: modelhost (usage records on/off, batching on/off) vs MLServer 1.7.1 vs
# the Starlette ceiling, one run. Installs wrk (apt) and MLServer (bench/.venv-mlserver) if missing.
# Usage: bench/overhead_vs_mlserver.sh [--rounds 3] [--seconds 10] [--connections 32]
#        [--only NAME ...] [--profile FILE] [--json FILE]  (see --help)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_apt wrk
require_project_python
ensure_mlserver
exec "$python" "$root/bench/overhead_vs_mlserver.py" "$@"
