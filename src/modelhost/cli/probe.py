"""The container's health check: exit 0 when this process's server answers ready.

``python -m modelhost.cli.probe`` asks ``/v2/health/ready`` on ``MODELHOST_PORT`` over loopback.
It imports nothing of the server so a probe every few seconds stays cheap.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("MODELHOST_PORT", "8080")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=3) as r:
            return 0 if r.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
