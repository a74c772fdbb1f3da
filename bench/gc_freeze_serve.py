"""``modelhost serve`` with ``gc.freeze()`` once the server is ready (``--gc-freeze`` variant).

A server that imported its runtimes (sklearn, torch, transformers, SQLAlchemy...) tracks a few
hundred thousand objects from those imports; every full (generation 2) collection walks them all
and stops the event loop meanwhile. Freezing them after startup takes them out of every later
collection. This launcher does that from outside, so the bench can compare it with the stock
server:

    python bench/gc_freeze_serve.py serve --model-repository DIR --port P ...
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import urllib.request


def freeze_when_ready(url: str) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.2)
    gc.collect()
    gc.freeze()
    print(f"gc_freeze_serve: froze {gc.get_freeze_count()} objects", file=sys.stderr, flush=True)


def main() -> None:
    arguments = sys.argv[1:]
    port = arguments[arguments.index("--port") + 1] if "--port" in arguments else "8080"
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    threading.Thread(target=freeze_when_ready, args=(url,), daemon=True).start()
    from modelhost.cli.main import app

    sys.argv = ["modelhost", *arguments]
    app()


if __name__ == "__main__":
    main()
