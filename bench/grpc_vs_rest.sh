#!/usr/bin/env bash
# V2 over gRPC vs REST on iris and MiniLM: modelhost and MLServer 1.7.1, one load generator
# (h2load) for both protocols, one run. Installs h2load (apt nghttp2-client) and MLServer +
# torch/transformers (bench/.venv-mlserver) if missing.
# Usage: bench/grpc_vs_rest.sh [--models iris minilm] [--rounds 3] [--seconds 10] [--json FILE]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"
ensure_apt h2load nghttp2-client
require_project_python
ensure_mlserver minilm
exec "$python" "$root/bench/grpc_vs_rest.py" "$@"
