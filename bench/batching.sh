#!/usr/bin/env bash
# Dynamic batching on MiniLM embeddings, 64 clients: modelhost batched vs unbatched vs MLServer's
# adaptive batching, one run. Installs wrk (apt) and MLServer + torch/transformers
# (bench/.venv-mlserver) if missing.
# Usage: bench/batching.sh [--rounds 3] [--seconds 10] [--connections 64] [--only NAME ...]
#        [--profile FILE] [--json FILE]  (see --help)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_apt wrk
require_project_python
ensure_mlserver minilm
exec "$python" "$root/bench/batching.py" "$@"
