"""Cold loads: from a request for an unloaded 1 GiB safetensors model to its first answer.

Two comparisons, each against the cost of just moving the same bytes, measured in the same run
and interleaved with the loads so machine noise hits both alike:

(a) local store, page cache warm: a request to a running ``modelhost serve`` for the model
    (unloaded just before) until its answer, against ``cat model.safetensors > /dev/null``.
    Goal: <= 1.3x.
(b) P3, S3 (moto's server on loopback), empty artifact cache: a fresh ``modelhost serve`` per
    trial, the time from the request to its first answer (download in parallel ranged GETs,
    sha256 verified, load, forward pass), against (1) one stream: one GET of the object written
    to a file on the same disk (goal: modelhost >= 4x faster) and (2) boto3's
    ``download_file`` with its default transfer manager (8 MiB parts, 10 threads) writing the
    same file to the same disk (goal: modelhost <= 1.0x its time, verification included; its
    own time is printed with and without a sha256 check of its copy). Both through the test
    proxy (``tests/storage/proxy.py``) capped at ``--cap-mb`` MB/s (default 100) per
    connection, as real S3 behaves, and straight to moto without a cap. moto runs from
    ``bench/moto_ranged.py``, whose ranged GETs read only their range (moto's own reads the
    whole object for each). Each timed step starts after the disk is synced and the machine
    sat idle a few seconds, so that every step meets memory in the same state (see
    ``settle``); the cost of filling 1 GiB of never-touched memory is printed too.

The model runs on the torch runtime: ``model.safetensors`` (``--size-mib``, default 1024) holds
square float32 matrices that ``forward`` applies in turn, so the first answer reads every
weight. Its module makes its parameters with ``torch.empty``: the runtime replaces them with
the file's memory-mapped tensors, so no time goes to initialising values that are thrown away.
For one cold load from S3 the server's own phase times (download, verify, deserialize) are
printed; "answer" is the rest of the request: HTTP and the first forward pass.

    .venv/bin/python bench/cold_load.py [--size-mib 1024] [--trials 5] [--s3-trials 3]
                                        [--cap-mb 100] [--skip-local] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import yaml
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.storage.proxy

WIDTH = 4096  # one layer: 4096 x 4096 float32 = 64 MiB
NAME = "stack"
SETTLE_SECONDS = 6.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_REGION": "us-east-1",
}
MODEL_CODE = '''
import torch


class Stack(torch.nn.Module):
    """Square layers applied in turn: one forward pass reads every weight."""

    def __init__(self, layers: int, width: int) -> None:
        super().__init__()
        # torch.empty: nothing to initialise; the runtime assigns the file's tensors.
        self.weights = torch.nn.ParameterList(
            torch.nn.Parameter(torch.empty(width, width), requires_grad=False)
            for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for weight in self.weights:
            x = torch.tanh(x @ weight)
        return x
'''
BODY = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, WIDTH], "data": [0.5] * WIDTH}]}


def write_model(folder: Path, layers: int) -> Path:
    folder.mkdir(parents=True)
    manifest = {
        "runtime": "torch",
        "entry_point": "model:Stack",
        "parameters": {"init": {"layers": layers, "width": WIDTH}},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, WIDTH]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, WIDTH]}],
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / "model.py").write_text(MODEL_CODE)
    rng = np.random.default_rng(0)
    tensors = {
        f"weights.{i}": (rng.random((WIDTH, WIDTH), dtype=np.float32) - 0.5) / 32
        for i in range(layers)
    }
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


class Server:
    """A ``modelhost serve`` process with its own state folder."""

    def __init__(self, repository: str, state: Path, env: dict[str, str]) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = state / "server.log"
        environment = {
            **os.environ,
            "MODELHOST_DATABASE_URL": f"sqlite:///{state}/modelhost.db",
            "MODELHOST_USAGE_JOURNAL": str(state / "usage.journal"),
            "MODELHOST_AUTH": "disabled",
            "MODELHOST_MEMORY_BUDGET": "16GiB",
            **env,
        }
        command = [sys.executable, "-m", "modelhost.cli.main", "serve"]
        command += ["--model-repository", repository, "--port", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=600)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if self.client.get("/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(self.log_path.read_text())
            time.sleep(0.05)

    def infer(self) -> None:
        response = self.client.post(f"/v2/models/{NAME}/infer", json=BODY)
        if response.status_code != 200:
            raise RuntimeError(f"infer failed: {response.status_code} {response.text}")

    def unload(self) -> None:
        self.client.post(f"/v2/repository/models/{NAME}/unload").raise_for_status()

    def last_phases(self) -> dict[str, float]:
        """The phase times the server logged for its last load of the model."""
        for line in reversed(self.log_path.read_text().splitlines()):
            if f"loaded {NAME}/" in line:
                record = json.loads(line)
                return {**record["phases"], "load_total": _load_total(record["message"])}
        raise RuntimeError("the server logged no load")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(60)


def _load_total(message: str) -> float:
    # "loaded stack/1 in 1.234s (...": the server's whole load, fetch included.
    return float(message.split(" in ", 1)[1].split("s", 1)[0])


def settle() -> None:
    """Start a timed step from the same state as the others: disk writes flushed, and (on VMs
    that hand freed memory back to the host, like virtio-balloon free page reporting) memory
    cold, so each step pays the same first-touch price for the memory it fills."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


def fresh_memory_seconds() -> float:
    """Seconds to fill 1 GiB of memory this process never touched: what the machine charges
    for the pages a cold load fills (the artifact cache's copy, in the page cache)."""
    settle()
    return timed(lambda: np.ones(1 << 27))


def bench_local(model: Path, root: Path, trials: int) -> dict[str, Any]:
    weights = model / "model.safetensors"

    def cat() -> None:
        with open(os.devnull, "wb") as sink:
            subprocess.run(["cat", str(weights)], stdout=sink, check=True)

    for _ in range(2):
        cat()  # the page cache is warm from here on
    server = Server(str(model.parent.parent), root / "local-server", {})
    try:
        first = timed(server.infer)  # also pays one-off costs (torch's first forward pass)
        cats, loads = [], []
        for _ in range(trials):
            server.unload()
            cats.append(timed(cat))
            loads.append(timed(server.infer))
        phases = server.last_phases()
    finally:
        server.stop()
    return {"cat_s": cats, "load_s": loads, "first_load_s": first, "phases": phases}


class Moto:
    """moto's S3 server (``bench/moto_ranged.py``: ranged GETs read only their range)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        launcher = Path(__file__).resolve().parent / "moto_ranged.py"
        command = [sys.executable, str(launcher), "-H", "127.0.0.1", "-p", str(self.port)]
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **CREDENTIALS}
            )
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("moto did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def boto3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=CREDENTIALS["AWS_REGION"],
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def upload_version(client: Any, model: Path, prefix: str) -> None:
    """The version as ``modelhost models push`` lays it out (its files, then the file index),
    written with single PUTs: moto on a busy machine can take longer to assemble a 1 GiB
    multipart upload than a client waits for it, and the bench measures loads, not pushes."""
    from boto3.s3.transfer import TransferConfig

    from modelhost.storage.base import FileInfo
    from modelhost.storage.index import INDEX_PATH, encode_index

    whole = TransferConfig(multipart_threshold=1 << 40)
    index = {}
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        relative = path.relative_to(model).as_posix()
        client.upload_file(str(path), "bench", f"{prefix}/{relative}", Config=whole)
        index[relative] = FileInfo(path.stat().st_size, sha256_file(path))
    client.put_object(Bucket="bench", Key=f"{prefix}/{INDEX_PATH}", Body=encode_index(index))


def one_stream(client: Any, key: str, out: Path) -> None:
    body = client.get_object(Bucket="bench", Key=key)["Body"]
    with open(out, "wb") as file:
        while chunk := body.read(8 << 20):
            file.write(chunk)


def bench_s3(model: Path, root: Path, trials: int, cap: float) -> dict[str, Any]:
    """P3: per trial, with the proxy's per-connection cap and straight to moto (no cap): one
    stream, boto3's download_file (+ its sha256 check, for reference), modelhost's cold load."""
    from tests.storage.proxy import ThrottledProxy

    moto = Moto(root / "moto.log")
    proxy = ThrottledProxy(moto.port, rate=cap, read_bytes=1 << 20)
    try:
        direct = boto3_client(moto.endpoint)
        direct.create_bucket(Bucket="bench")
        push_s = timed(partial(upload_version, direct, model, f"repo/{NAME}/1"))
        key = f"repo/{NAME}/1/model.safetensors"
        expected = sha256_file(model / "model.safetensors")
        downloads = root / "downloads"  # the same disk as the artifact cache (root)
        downloads.mkdir()
        modes = {"capped": proxy.endpoint, "uncapped": moto.endpoint}
        results: dict[str, dict[str, Any]] = {
            mode: {"one_stream_s": [], "download_file_s": [], "sha256_s": [], "load_s": [],
                   "phases": []}
            for mode in modes
        }  # fmt: skip
        for trial in range(trials):
            for mode, endpoint in modes.items():
                client, out = boto3_client(endpoint), downloads / f"{mode}-{trial}"
                result = results[mode]

                settle()
                result["one_stream_s"].append(timed(partial(one_stream, client, key, out)))
                out.unlink()
                settle()
                result["download_file_s"].append(
                    timed(partial(client.download_file, "bench", key, str(out)))
                )
                started = time.perf_counter()
                if sha256_file(out) != expected:
                    raise RuntimeError("boto3's download_file wrote a wrong copy")
                result["sha256_s"].append(time.perf_counter() - started)
                out.unlink()
                cache = root / f"cache-{mode}-{trial}"
                server = Server(
                    "s3://bench/repo",
                    root / f"s3-server-{mode}-{trial}",
                    {**CREDENTIALS, "MODELHOST_S3_ENDPOINT": endpoint,
                     "MODELHOST_CACHE_DIR": str(cache)},
                )  # fmt: skip
                try:
                    settle()
                    result["load_s"].append(timed(server.infer))
                    result["phases"].append(server.last_phases())
                finally:
                    server.stop()
                shutil.rmtree(cache, ignore_errors=True)
                print(
                    f"  trial {trial + 1} {mode:8s}: one stream {result['one_stream_s'][-1]:.2f}s"
                    f", download_file {result['download_file_s'][-1]:.2f}s"
                    f" (+ sha256 {result['sha256_s'][-1]:.2f}s)"
                    f", modelhost cold load {result['load_s'][-1]:.2f}s",
                    flush=True,
                )
    finally:
        proxy.close()
        moto.stop()
    return {"modes": results, "push_s": push_s, "cap_bytes_per_s": cap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--s3-trials", type=int, default=3)
    parser.add_argument(
        "--cap-mb", type=float, default=100.0, help="per-connection cap in MB/s (default 100)"
    )
    parser.add_argument("--skip-local", action="store_true", help="only the S3 comparison (P3)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model", type=Path, help="reuse this model folder (made if absent)")
    args = parser.parse_args()
    layers = max(1, args.size_mib // 64)
    with tempfile.TemporaryDirectory(prefix="modelhost-cold-") as tmp:
        root = Path(tmp)
        model = args.model or root / "models" / NAME / "1"
        if not model.exists():
            write_model(model, layers)
        size = (model / "model.safetensors").stat().st_size
        print(f"model.safetensors: {size / (1 << 20):.0f} MiB; {os.cpu_count()} CPUs; "
              f"source {_source()}; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        local = None if args.skip_local else bench_local(model, root, args.trials)
        s3 = bench_s3(model, root, args.s3_trials, args.cap_mb * 1e6)
        memory = [fresh_memory_seconds() for _ in range(2)]
    report(size, local, s3, memory)
    if args.json:
        document = {"size": size, "local": local, "s3": s3, "fresh_memory_s": memory}
        args.json.write_text(json.dumps(document, indent=1))


def report(
    size: int, local: dict[str, Any] | None, s3: dict[str, Any], memory: list[float]
) -> None:
    median = statistics.median
    print(f"\nload average {os.getloadavg()[0]:.1f}")
    if local is not None:
        cat, load = median(local["cat_s"]), median(local["load_s"])
        print("\n(a) local store, warm page cache")
        print(f"  cat > /dev/null   median {cat:.3f}s  runs {_runs(local['cat_s'])}")
        print(f"  request → answer  median {load:.3f}s  runs {_runs(local['load_s'])}")
        print(f"  first load of the process (not counted): {local['first_load_s']:.3f}s")
        print(f"  ratio {load / cat:.2f}x (goal <= 1.3x)")
    cap = s3["cap_bytes_per_s"] / 1e6
    print(
        f"\n(b) P3: S3 (moto on loopback, ranged GETs as S3 serves them), empty artifact cache; "
        f"push took {s3['push_s']:.1f}s"
    )
    for mode, result in s3["modes"].items():
        how = f"through the proxy, {cap:g} MB/s per connection" if mode == "capped" else "no cap"
        one, boto, load = (median(result[k]) for k in ("one_stream_s", "download_file_s", "load_s"))
        sha = median(result["sha256_s"])
        print(f"  {mode} ({how}):")
        for label, times in (
            ("one stream (boto3 get_object to a file)", result["one_stream_s"]),
            ("boto3 download_file (default transfer manager)", result["download_file_s"]),
            ("  + its sha256 check, for reference", result["sha256_s"]),
            ("modelhost request → first answer (verified)", result["load_s"]),
        ):
            value = median(times)
            print(f"    {label:48s} median {value:6.3f}s = {size / 1e6 / value:6.0f} MB/s"
                  f"  runs {_runs(times)}")  # fmt: skip
        goal_one = " (goal >= 4x)" if mode == "capped" else ""
        goal_boto = " (goal <= 1.0x)" if mode == "capped" else ""
        print(f"    one stream / modelhost        {one / load:5.2f}x faster{goal_one}")
        print(f"    modelhost / download_file     {load / boto:5.2f}x its time{goal_boto}; "
              f"with its sha256 check {load / (boto + sha):.2f}x")  # fmt: skip
        middle = sorted(range(len(result["load_s"])), key=lambda i: result["load_s"][i])
        phases = result["phases"][middle[len(middle) // 2]]
        answer = result["load_s"][middle[len(middle) // 2]] - phases["load_total"]
        print(
            "    phases of the median cold load: "
            + ", ".join(f"{k} {v:.3f}s" for k, v in phases.items() if k != "load_total")
            + f"; server load total {phases['load_total']:.3f}s; answer (HTTP + forward) "
            f"{answer:.3f}s"
        )
    print(
        f"\nfilling 1 GiB of memory never touched before (after {SETTLE_SECONDS:g}s idle): "
        f"{_runs(memory)} s"
    )


def _source() -> str:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                          text=True)  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return done.stdout.strip() + (" + uncommitted changes in src/" if dirty else "")


def _runs(times: list[float]) -> str:
    return " ".join(f"{t:.3f}" for t in times)


if __name__ == "__main__":
    main()
