#!/usr/bin/env bash
# Overload: 2x modelhost's measured capacity for 20 s, open loop, with deadlines and a bounded
# queue; status counts, admitted p99 vs the deadline, RSS, time back to normal. Installs wrk
# (apt) and aiohttp (into the project's venv) if missing.
# Usage: bench/overload.sh [--model minilm|iris-sklearn] [--factor 2] [--burst-seconds 20]
#        [--deadline-ms 1000] [--max-queue-size 128] [--json FILE]  (see --help)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_apt wrk
require_project_python
if ! "$python" -c "import aiohttp" 2>/dev/null; then
    echo "aiohttp not found: installing it into $("$python" -c 'import sys; print(sys.prefix)')" >&2
    "$python" -m pip install -q aiohttp
fi
exec "$python" "$root/bench/overload.py" "$@"
