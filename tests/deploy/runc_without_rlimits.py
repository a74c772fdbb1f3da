#!/usr/bin/env python3
"""An OCI runtime for podman on machines whose sandbox forbids setrlimit: runc, minus rlimits.

Here ``podman run`` fails with ``setrlimit ... Operation not permitted`` whatever the values,
because podman always writes ``process.rlimits`` into the container's ``config.json``. This
wrapper deletes that key from the bundle's config, then execs runc with the same arguments.
The tests pass it as ``podman --runtime`` only where a plain ``podman run`` fails that way.
"""

from __future__ import annotations

import json
import os
import shutil
import sys


def option(args: list[str], long: str, short: str) -> str | None:
    for i, arg in enumerate(args):
        if arg in (long, short) and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(long + "="):
            return arg.split("=", 1)[1]
    return None


def strip_rlimits(path: str, process_key: str | None) -> None:
    if not os.path.exists(path):
        return
    with open(path) as file:
        config = json.load(file)
    process = config.get(process_key, {}) if process_key else config
    if process.pop("rlimits", None) is not None:
        with open(path, "w") as file:
            json.dump(config, file)


def main() -> None:
    args = sys.argv[1:]
    # `runc create --bundle DIR`: the container's process is in DIR/config.json.
    bundle = option(args, "--bundle", "-b")
    if bundle is None and ("create" in args or "run" in args):
        bundle = os.getcwd()  # runc's default bundle
    if bundle is not None:
        strip_rlimits(os.path.join(bundle, "config.json"), "process")
    # `runc exec --process FILE` (podman exec, health checks): the process is the whole file.
    if "exec" in args:
        process = option(args, "--process", "-p")
        if process is not None:
            strip_rlimits(process, None)
    runc = os.environ.get("MODELHOST_TEST_RUNC") or shutil.which("runc") or "/usr/sbin/runc"
    os.execv(runc, [runc, *args])


if __name__ == "__main__":
    main()
