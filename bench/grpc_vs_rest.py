"""V2 inference over gRPC vs REST, on modelhost and on MLServer 1.7.1, side by side in one run.

For each model, two servers run at once, both pinned to the server core (``taskset -c 0``), each
serving the model over REST and gRPC from one process: ``modelhost serve --grpc-port`` and
MLServer 1.7.1 (``bench/.venv-mlserver``, ``parallel_workers: 0``). One load generator, h2load
(nghttp2), pinned to the client core, loads the four targets (server x protocol) in turn,
rotating the order each round, with the same connections and one request in flight on each:
REST over HTTP/1.1 (``--h1``) with a JSON body, gRPC over HTTP/2 with the tensor in
``raw_input_contents`` (what tritonclient and the KServe SDK send). Every server does the same
model work per request:

* ``iris``: the demo's fitted scikit-learn LogisticRegression (``model.joblib``), one FP64 row
  ``[1, 4]``, both outputs (modelhost's ``label`` and ``probabilities``; MLServer's ``predict``
  and ``predict_proba``, asked for by name); no batching on either server (MLServer's default);
  32 connections.
* ``minilm``: all-MiniLM-L6-v2 on torch, one sentence per request (BYTES ``[1]``), its
  embedding (FP32 ``[1, 384]``) and token count; dynamic batching on both (modelhost
  ``max_batch_size: 64``, ``max_delay_ms: 5``; MLServer adaptive batching 64 / 5 ms, the runtime
  in ``bench/mlserver_minilm``); 64 connections. modelhost serves it with its ``transformers``
  runtime (torch, as MLServer's), not the demo's ONNX Runtime one.

Before the rounds every target's answer is checked against the others' (iris: the same labels
and probabilities; MiniLM: cosine similarity of the embeddings >= 0.9999). A gRPC error is an
HTTP 200 with a trailer, which h2load counts as a success: each gRPC round also checks that the
response bytes amount to a full answer per request, and modelhost's /metrics that it answered
every gRPC call OK.

Printed: req/s per round, p50/p99 latency (h2load's per-request log), the server's CPU time per
request (/proc), and the ratios gRPC / REST on each server and modelhost / MLServer per protocol.

    bench/grpc_vs_rest.sh [--models iris minilm] [--rounds 3] [--seconds 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import struct
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import numpy as np

import batching
import harness
import overhead_vs_mlserver
from harness import Target, WrkResult

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
SENTENCE = batching.SENTENCES[0]


@dataclass
class Load:
    """How h2load sends one target's requests."""

    url: str
    body: Path
    headers: tuple[str, ...]
    h1: bool
    response_bytes: int = 0  # gRPC: the DATA bytes of one full answer (its frame included)


@dataclass
class Group:
    """One model's two servers and their four targets."""

    model: str
    connections: int
    batched: bool


GROUPS = {"iris": Group("iris", 32, batched=False), "minilm": Group("minilm", 64, batched=True)}


def main() -> int:
    args = parse_args()
    harness.require_tools("h2load", "taskset")
    harness.check_cores(args.server_core, args.client_core)

    def body(work: Path, processes: list[subprocess.Popen[bytes]]) -> int:
        info = harness.machine_info(("grpcio", "protobuf", "torch", "transformers"))
        info["mlserver"] = harness.mlserver_versions()
        info["h2load"] = subprocess.run(
            ["h2load", "--version"], capture_output=True, text=True
        ).stdout.strip()
        harness.print_machine_info(info)
        print(
            f"settings: {args.rounds} rounds x {args.seconds} s per target, h2load -m1 "
            f"(connections per model below), warm-up {args.warmup_seconds} s per target\n"
        )
        results: dict[str, Any] = {"machine": info, "settings": vars(args) | {"json": None}}
        ok = True
        for name in args.models:
            ok = run_group(args, GROUPS[name], work, processes, results) and ok
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        return 0 if ok else 1

    return harness.guarded_main(body, "modelhost-bench-grpc-")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", choices=sorted(GROUPS), default=["iris", "minilm"],
        help="which models (default: both)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    parser.add_argument("--seconds", type=int, default=10, help="h2load seconds per round (10)")
    parser.add_argument("--warmup-seconds", type=int, default=2, help="uncounted warm-up (2)")
    parser.add_argument("--server-core", type=int, default=0, help="core of the servers (0)")
    parser.add_argument("--client-core", type=int, default=1, help="core of h2load (1)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be at least 1")
    return args


# --- the servers and what they are sent ---------------------------------------------------------


def repositories(group: Group, work: Path) -> tuple[Path, Path]:
    """modelhost's model repository and MLServer's, for ``group``'s model."""
    from modelhost.demo_models import build_demo_models

    demo = work / "demo-models"
    if not demo.exists():
        build_demo_models(demo)
    if group.model == "iris":
        modelhost = harness.edit_manifest(
            demo, work / "iris-models", "iris-sklearn", lambda m: m.pop("batching")
        )
        return modelhost, overhead_vs_mlserver.mlserver_repository(
            demo, work, "mlserver-iris", batched=False
        )

    def on_torch(manifest: dict[str, Any]) -> None:
        manifest["runtime"] = "transformers"  # as MLServer's runtime: torch, not ONNX Runtime
        manifest["batching"] = {"max_delay_ms": 5}
        manifest["max_batch_size"] = 64

    modelhost = harness.edit_manifest(demo, work / "minilm-models", "minilm", on_torch)
    return modelhost, batching.mlserver_repository(work, "mlserver-minilm", batched=True)


def requests_for(group: Group, server: str) -> tuple[str, dict[str, Any], bytes]:
    """The model's name, the REST body and the gRPC message ``server`` is sent."""
    from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb

    if group.model == "iris":
        name, tensor = "iris-sklearn", {"name": "input", "datatype": "FP64", "shape": [1, 4]}
        raw = np.array([IRIS_ROW], dtype=np.float64).tobytes()
        rest: dict[str, Any] = {"inputs": [{**tensor, "data": IRIS_ROW}]}
        wanted = ["predict", "predict_proba"] if server == "mlserver" else []
    else:
        name, tensor = "minilm", {"name": "text", "datatype": "BYTES", "shape": [1]}
        text = SENTENCE.encode()
        raw = struct.pack("<I", len(text)) + text
        rest = {"inputs": [{**tensor, "data": [SENTENCE]}]}
        wanted = []
    message = pb.ModelInferRequest(model_name=name, raw_input_contents=[raw])
    message.inputs.add(**tensor)
    for output in wanted:
        message.outputs.add(name=output)
    if wanted:
        rest["outputs"] = [{"name": output} for output in wanted]
    return name, rest, message.SerializeToString()


def grpc_call(address: str, message: bytes) -> bytes:
    with grpc.insecure_channel(address) as channel:
        answer: bytes = channel.unary_unary(GRPC_PATH)(message, timeout=120)
        return answer


def decoded_outputs(answer: dict[str, Any] | bytes) -> dict[str, np.ndarray]:
    """Outputs by name (REST JSON or a gRPC response's raw contents), as float64 arrays."""
    if isinstance(answer, dict):
        return {o["name"]: np.array(o["data"], dtype=np.float64) for o in answer["outputs"]}
    from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb
    from modelhost.tensors.raw import from_bytes

    response = pb.ModelInferResponse.FromString(answer)
    return {
        output.name: from_bytes(output.name, output.datatype, tuple(output.shape), raw)
        .astype(np.float64)
        .reshape(-1)
        for output, raw in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def check_same_answers(group: Group, answers: dict[str, dict[str, np.ndarray]]) -> None:
    """Every target computed the same thing (output names differ between the servers)."""
    if group.model == "iris":
        labels = {name: a.get("label", a.get("predict")) for name, a in answers.items()}
        probabilities = {
            name: a.get("probabilities", a.get("predict_proba")) for name, a in answers.items()
        }
        first = next(iter(answers))
        for name in answers:
            assert np.array_equal(labels[name], labels[first]), (name, labels)
            np.testing.assert_allclose(probabilities[name], probabilities[first], rtol=1e-6)
        print(f"all targets: label {labels[first].tolist()}, probabilities "
              f"{np.round(probabilities[first], 4).tolist()}")  # fmt: skip
        return
    vectors = {name: a["embedding"] for name, a in answers.items()}
    first = next(iter(vectors))
    for name, vector in vectors.items():
        cosine = float(vector @ vectors[first] / np.linalg.norm(vector) / np.linalg.norm(
            vectors[first]))  # fmt: skip
        assert cosine >= 0.9999, f"{name} vs {first}: cosine {cosine}"
        print(f"{name}: embedding cosine vs {first} {cosine:.6f}")


# --- h2load ------------------------------------------------------------------------------------


def h2load(load: Load, core: int, connections: int, seconds: int, log: Path | None) -> WrkResult:
    command = [
        "taskset", "-c", str(core), "h2load", "-t1", f"-c{connections}", "-m1",
        f"-D{seconds}", f"-d{load.body}",
    ]  # fmt: skip
    for header in load.headers:
        command += ["-H", header]
    if load.h1:
        command.append("--h1")
    if log is not None:
        command.append(f"--log-file={log}")
    done = subprocess.run(
        [*command, load.url], capture_output=True, text=True, timeout=seconds + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return parse_h2load(done.stdout, load, log)


def parse_h2load(output: str, load: Load, log: Path | None) -> WrkResult:
    def number(pattern: str) -> float:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"no {pattern!r} in h2load's output:\n{output}")
        return float(match.group(1))

    rate = number(r"finished in [\d.]+\w+, ([\d.]+) req/s")
    succeeded = int(number(r"(\d+) succeeded"))
    failed = sum(int(number(rf"(\d+) {what}")) for what in ("failed", "errored", "timeout"))
    two_xx = int(number(r"status codes: (\d+) 2xx"))
    data = int(number(r"\((\d+)\) data"))
    short = 0
    if load.response_bytes and data < succeeded * load.response_bytes:
        # Some answers were trailers only: gRPC errors behind an HTTP 200.
        short = succeeded - data // load.response_bytes
    p50 = p99 = 0.0
    if log is not None and log.exists():
        durations = sorted(
            int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line
        )
        if durations:
            cuts = statistics.quantiles(durations, n=100)
            p50, p99 = cuts[49], cuts[98]
        log.unlink()
    return WrkResult(
        requests_per_second=rate,
        requests=succeeded,
        p50_ms=p50,
        p99_ms=p99,
        non_2xx=succeeded - two_xx + short,
        socket_errors=failed,
    )


def grpc_failures(base: str) -> float:
    """gRPC calls modelhost answered with an error: any status label but 200, and 499 (the
    calls h2load leaves in flight when a run ends are cancelled, not failed)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("modelhost_requests_total{")
        and 'endpoint="grpc"' in line
        and 'status="200"' not in line
        and 'status="499"' not in line
    )


# --- one model's run ---------------------------------------------------------------------------


def run_group(
    args: argparse.Namespace,
    group: Group,
    work: Path,
    processes: list[subprocess.Popen[bytes]],
    results: dict[str, Any],
) -> bool:
    print(f"=== {group.model}: {group.connections} connections, "
          f"{'batched' if group.batched else 'unbatched'} on both servers ===")  # fmt: skip
    modelhost_models, mlserver_models = repositories(group, work)
    core = args.server_core
    ports = {"modelhost": harness.free_port(), "mlserver": harness.free_port()}
    servers = {
        "modelhost": harness.start_modelhost(
            f"{group.model}-modelhost", modelhost_models, work, processes, core=core,
            env={"MODELHOST_GRPC_PORT": str(ports["modelhost"])},
        ),
        "mlserver": harness.start_mlserver(
            f"{group.model}-mlserver", mlserver_models, work, processes, core=core,
            grpc_port=ports["mlserver"],
        ),
    }  # fmt: skip
    targets: list[Target] = []
    loads: dict[str, Load] = {}
    answers: dict[str, dict[str, np.ndarray]] = {}
    for server, (process, base) in servers.items():
        log = work / f"{group.model}-{server}.log"
        harness.wait_ready(process, f"{base}/v2/health/ready", log, timeout=180)
        model, rest_body, message = requests_for(group, server)
        rest_text = json.dumps(rest_body, separators=(",", ":"))
        url = f"{base}/v2/models/{model}/infer"
        harness.wait_ready(process, None, log, probe=url, body=rest_text, timeout=180)  # loads it
        address = f"127.0.0.1:{ports[server]}"
        answer = grpc_call(address, message)
        answers[f"{server} REST"] = decoded_outputs(harness.post_json(url, rest_text))
        answers[f"{server} gRPC"] = decoded_outputs(answer)

        rest_file = work / f"{group.model}-{server}.json"
        rest_file.write_text(rest_text)
        grpc_file = work / f"{group.model}-{server}.grpc"
        grpc_file.write_bytes(struct.pack(">BI", 0, len(message)) + message)  # gRPC's framing
        loads[f"{server} REST"] = Load(url, rest_file, ("content-type: application/json",), True)
        loads[f"{server} gRPC"] = Load(
            f"http://{address}{GRPC_PATH}",
            grpc_file,
            ("content-type: application/grpc", "te: trailers"),
            False,
            response_bytes=len(answer) + 5,
        )
        for protocol in ("REST", "gRPC"):
            name = f"{server} {protocol}"
            targets.append(Target(name, loads[name].url, process.pid, loads[name].body,
                                  cpu_bound=not group.batched))  # fmt: skip
    check_same_answers(group, answers)
    print(f"servers on core {core}, h2load on core {args.client_core}; "
          f"load {harness.load_average()}\n")  # fmt: skip

    failures_before = grpc_failures(servers["modelhost"][1])
    if args.warmup_seconds:
        for target in targets:
            h2load(loads[target.name], args.client_core, group.connections,
                   args.warmup_seconds, None)  # fmt: skip
    width = max(len(target.name) for target in targets)
    load_averages = []
    for round_number in range(1, args.rounds + 1):
        shift = (round_number - 1) % len(targets)
        for target in targets[shift:] + targets[:shift]:
            run = partial(h2load, loads[target.name], args.client_core, group.connections,
                          args.seconds, work / "h2load.log")  # fmt: skip
            result = harness.measured(target, run)
            print(
                f"round {round_number} {target.name:<{width}} "
                f"{result.requests_per_second:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                f"p99 {result.p99_ms:7.2f} ms  server CPU {100 * result.server_cpu:3.0f}%  "
                f"failed {result.non_2xx + result.socket_errors}",
                flush=True,
            )
        load_averages.append(harness.load_average())
        print(f"  load average after round {round_number}: {load_averages[-1]}", flush=True)
    harness.report_rounds(targets, args.rounds, core, args.client_core)
    grpc_errors = grpc_failures(servers["modelhost"][1]) - failures_before
    ratios = report(targets)

    ok = True
    if grpc_errors:
        print(f"FAILED: modelhost answered {grpc_errors:.0f} gRPC calls with an error",
              file=sys.stderr)  # fmt: skip
        ok = False
    for server, (process, _) in servers.items():
        if process.poll() is not None:
            print(f"{server} exited ({process.returncode}) during the run", file=sys.stderr)
            ok = False
        harness.stop(process)
    failed = [target.name for target in targets if target.failed]
    if failed:
        print(f"FAILED: errors from {failed}", file=sys.stderr)
        ok = False
    results[group.model] = {
        "connections": group.connections,
        "load_averages": load_averages,
        "targets": {t.name: [vars(r) for r in t.results] for t in targets},
        "median_rps": {t.name: t.median_rps for t in targets},
        "cpu_us_per_request": {t.name: t.cpu_us_per_request for t in targets},
        "ratios": ratios,
    }
    print()
    return ok


def report(targets: list[Target]) -> dict[str, dict[str, float]]:
    by_name = {target.name: target for target in targets}
    ratios: dict[str, dict[str, float]] = {}
    print()
    for label, faster, slower in (
        ("modelhost gRPC / REST", "modelhost gRPC", "modelhost REST"),
        ("MLServer gRPC / REST", "mlserver gRPC", "mlserver REST"),
        ("modelhost / MLServer, gRPC", "modelhost gRPC", "mlserver gRPC"),
        ("modelhost / MLServer, REST", "modelhost REST", "mlserver REST"),
    ):
        a, b = by_name[faster], by_name[slower]
        rps = a.median_rps / b.median_rps
        cpu = b.cpu_us_per_request / a.cpu_us_per_request
        ratios[label] = {"rps": rps, "cpu_time": cpu}
        print(f"{label:<28} req/s ratio {rps:6.3f}   CPU-time ratio {cpu:6.3f}")
    return ratios


if __name__ == "__main__":
    sys.exit(main())
