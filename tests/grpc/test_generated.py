"""The committed generated modules are what scripts/generate-grpc makes from the .proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = Path("modelhost/grpc/generated")


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "generate-grpc"), str(tmp_path)],
        check=True,
        timeout=60,
        env={"MODELHOST_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    for name in ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi"):
        fresh = (tmp_path / GENERATED / name).read_text()
        committed = (ROOT / "src" / GENERATED / name).read_text()
        assert fresh == committed, f"{name} is stale: run scripts/generate-grpc"


def test_messages_live_beside_a_clients_copy_of_the_protocol() -> None:
    """tritonclient declares the same inference.* messages in protobuf's default pool; ours are
    in a pool of their own, so both load in one process and read each other's bytes."""
    from tritonclient.grpc import service_pb2

    from modelhost.grpc.generated import grpc_predict_v2_pb2 as pb

    ours = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"\x00\x01"])
    ours.inputs.add(name="x", datatype="UINT8", shape=[2])
    theirs = service_pb2.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.model_name == "m" and list(theirs.inputs[0].shape) == [2]
    assert theirs.raw_input_contents[0] == b"\x00\x01"
