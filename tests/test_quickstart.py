"""The README's demo command, run as a newcomer would: in a fresh clone, with nothing set up.

The clone's virtualenv (``scripts/bootstrap all``, the demo command's first step and nearly all
of its time) is made when the run starts, in the background (:mod:`tests.support.early`); the
test then runs the whole demo command in that clone, its bootstrap included.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import early
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO_TEST = "tests/test_quickstart.py::test_demo_command_serves_the_demo_models_from_a_fresh_clone"


def newcomers_environment() -> dict[str, str]:
    """This process's environment without our settings or our virtualenv."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MODELHOST_", "VIRTUAL_ENV"))}


def bootstrap_a_fresh_clone() -> early.SetUp:
    folder = early.scratch()
    command = f"git clone --quiet {ROOT} clone && cd clone && scripts/bootstrap all"
    log = folder / "bootstrap.log"
    return early.SetUp(["bash", "-c", command], cwd=folder, log=log, env=newcomers_environment())


EARLY = {DEMO_TEST: bootstrap_a_fresh_clone}


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in section.strip().splitlines()]


def test_readme_has_exactly_the_two_commands_and_ci_runs_the_test_one() -> None:
    demo, test = quick_start_commands()
    assert (demo, test) == ("./scripts/demo", "./scripts/test")
    assert re.search(r"^exec scripts/test\b", (ROOT / ".ci/run").read_text(), re.MULTILINE)


def test_demo_command_serves_the_demo_models_from_a_fresh_clone(tmp_path: Path) -> None:
    bootstrapped = early.started(DEMO_TEST)
    if bootstrapped is None:  # run on its own: nothing was started ahead
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    else:
        code, output = bootstrapped.wait(timeout=900)
        assert code == 0, output[-6000:]
        clone = early.scratch() / "clone"
    port = free_port()
    demo = quick_start_commands()[0]
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - closed below
    env = newcomers_environment()
    process = subprocess.Popen(
        demo,
        shell=True,
        cwd=clone,
        env={**env, "MODELHOST_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # a fresh virtualenv is installed first
        while True:
            assert process.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo never became ready"
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        # Auth is on: the demo made an admin key and left it where the README says.
        key = (clone / ".modelhost-demo-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        assert key.startswith("mh_")
        assert httpx.get(f"{url}/v2/models/iris-onnx").status_code == 401
        row = [5.1, 3.5, 1.4, 0.2]  # an iris setosa
        for name, datatype in (("iris-onnx", "FP32"), ("iris-sklearn", "FP64")):
            body = {
                "inputs": [{"name": "input", "datatype": datatype, "shape": [1, 4], "data": row}]
            }
            response = httpx.post(
                f"{url}/v2/models/{name}/infer", json=body, headers=headers, timeout=60
            )
            assert response.status_code == 200, response.text
            outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
            probabilities = outputs["probabilities"]
            assert probabilities.index(max(probabilities)) == 0
        embeddings = httpx.post(
            f"{url}/v1/embeddings",
            json={"model": "minilm", "input": ["a cat sat on the mat", "stocks fell sharply"]},
            headers=headers,
            timeout=120,
        )
        assert embeddings.status_code == 200, embeddings.text
        assert [len(item["embedding"]) for item in embeddings.json()["data"]] == [384, 384]
        # The demo uses the embedded defaults: a model folder and a SQLite file in the clone.
        assert (clone / "demo-models" / "iris-onnx" / "1" / "model.onnx").is_file()
        assert (clone / "modelhost.db").is_file()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()
