"""Build the images the deploy tests run, ahead of them (scripts/test starts this in the
background while the other tests run; the tests' fixtures then find the images built, or wait
for the build under the same lock). ``python -m tests.deploy.prepare``."""

from __future__ import annotations

import time

from tests.deploy.podman import BAKED_MODEL_DIR, TEST_EXTRAS, build_image


def main() -> None:
    for model_dir in (None, BAKED_MODEL_DIR):
        started = time.monotonic()
        tag, seconds = build_image(TEST_EXTRAS, model_dir=model_dir)
        state = f"built in {seconds:.0f}s" if seconds else "cached"
        print(
            f"{tag} ({model_dir or 'no baked models'}): {state}, "
            f"{time.monotonic() - started:.0f}s with the base image",
            flush=True,
        )


if __name__ == "__main__":
    main()
