"""The KServe SDK's own virtualenv: its pins clash with this project's (psutil, protobuf).

Made once (about 45 s) and reused: ``.venv-kserve`` at the repo root. The suite starts making it
in the background when the run starts (:mod:`tests.support.early`); a file lock makes the test
wait for that instead of making a second one beside it.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KSERVE_VENV = ROOT / ".venv-kserve"
KSERVE = "kserve==0.21.0"


def kserve_python() -> Path:
    python = KSERVE_VENV / "bin" / "python"
    marker = KSERVE_VENV / f".installed-{KSERVE}"
    with open(ROOT / ".venv-kserve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(KSERVE_VENV)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", KSERVE], check=True, timeout=900
            )
            marker.write_text("")
    return python


if __name__ == "__main__":
    print(kserve_python())
