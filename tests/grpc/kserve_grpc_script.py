"""Runs in the KServe SDK's own virtualenv: drives modelhost's gRPC port with
``kserve.InferenceGRPCClient`` (and, for the RPCs that client has no method for, the SDK's own
generated stub), and prints what came back as JSON for the test to check.

Usage: python kserve_grpc_script.py ADDRESS ADMIN_KEY USER_KEY SAMPLES.json
(SAMPLES: {datatype: {"shape": [...], "data": [...]}}, BYTES elements base64-encoded.)
"""

import asyncio
import base64
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from kserve.protocol.infer_type import RequestedOutput

DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


def to_array(datatype, sample):
    data = sample["data"]
    if datatype == "BYTES":
        data = [base64.b64decode(item) for item in data]
    return np.array(data, dtype=DTYPES[datatype]).reshape(sample["shape"])


def to_json(datatype, array):
    flat = array.reshape(-1).tolist()
    if datatype == "BYTES":
        flat = [base64.b64encode(item).decode() for item in flat]
    return {"datatype": datatype, "shape": list(array.shape), "data": flat}


def tensor(name, array, datatype, binary):
    item = InferInput(name=name, shape=list(array.shape), datatype=datatype)
    item.set_data_from_numpy(array, binary_data=binary)
    return item


def error(exc):
    return {"code": exc.code().name, "details": exc.details()}


async def round_trip(client, admin, model, arrays, binary):
    inputs = [tensor(f"IN_{dt}", array, dt, binary) for dt, array in arrays.items()]
    response = await client.infer(InferRequest(model, inputs, request_id="rt"), headers=admin)
    return {
        output.name.removeprefix("OUT_"): to_json(output.datatype, output.as_numpy())
        for output in response.outputs
    }


async def expect_error(call):
    try:
        await call
    except grpc.RpcError as exc:
        return error(exc)
    return {"code": "OK", "details": ""}


async def main(address, admin_key, user_key, samples_path):
    admin = (("authorization", f"Bearer {admin_key}"),)
    user = (("authorization", f"Bearer {user_key}"),)
    samples = json.load(open(samples_path))
    arrays = {dt: to_array(dt, sample) for dt, sample in samples.items()}
    out = {}
    # retries=0: the SDK would otherwise retry UNAVAILABLE, hiding the full queue from the test.
    client = InferenceGRPCClient(address, timeout=30, retries=0)
    stub = GRPCInferenceServiceStub(client._channel)

    out["live"] = await client.is_server_live()
    out["ready"] = await client.is_server_ready()
    metadata = await stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=admin)
    out["server_metadata"] = {"name": metadata.name, "extensions": list(metadata.extensions)}
    model = await stub.ModelMetadata(pb.ModelMetadataRequest(name="iris-onnx"), metadata=admin)
    out["model_metadata"] = {
        "name": model.name,
        "versions": list(model.versions),
        "platform": model.platform,
        "inputs": [[t.name, t.datatype, list(t.shape)] for t in model.inputs],
        "outputs": [[t.name, t.datatype, list(t.shape)] for t in model.outputs],
    }

    # The repository extension with KServe's messages (the model's name in field 1).
    unloaded = await stub.RepositoryModelUnload(
        pb.RepositoryModelUnloadRequest(model_name="iris-onnx"), metadata=admin
    )
    out["unloaded"] = [unloaded.model_name, unloaded.isUnloaded]
    out["ready_after_unload"] = await client.is_model_ready("iris-onnx", headers=admin)
    loaded = await stub.RepositoryModelLoad(
        pb.RepositoryModelLoadRequest(model_name="iris-onnx"), metadata=admin
    )
    out["loaded"] = [loaded.model_name, loaded.isLoaded]
    out["ready_after_load"] = await client.is_model_ready("iris-onnx", headers=admin)

    for binary in (True, False):
        request = InferRequest("iris-onnx", [tensor("input", IRIS, "FP32", binary)], "k")
        response = await client.infer(request, headers=admin)
        (output,) = response.outputs
        out[f"iris binary={binary}"] = {
            "id": response.id,
            "raw": len(response.outputs[0]._raw_data or b"") > 0,
            **to_json(output.datatype, output.as_numpy()),
        }
    requested = InferRequest(
        "iris-sklearn",
        [tensor("input", IRIS.astype(np.float64), "FP64", True)],
        request_outputs=[RequestedOutput("label")],
    )
    response = await client.infer(requested, headers=admin)
    out["requested"] = {o.name: to_json(o.datatype, o.as_numpy()) for o in response.outputs}

    out["identity raw"] = await round_trip(client, admin, "identity", arrays, True)
    typed = {dt: array for dt, array in arrays.items() if dt != "FP16"}
    out["identity typed"] = await round_trip(client, admin, "identity-typed", typed, False)

    iris_request = InferRequest("iris-onnx", [tensor("input", IRIS, "FP32", True)])
    out["no key"] = await expect_error(client.infer(iris_request))
    out["user on admin rpc"] = await expect_error(
        stub.RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(model_name="iris-onnx"), metadata=user
        )
    )
    unknown = InferRequest("no-such-model", [tensor("input", IRIS, "FP32", True)])
    out["unknown model"] = await expect_error(client.infer(unknown, headers=admin))

    def slow(model, value):
        x = np.array([value], dtype=np.float32)
        return InferRequest(model, [tensor("x", x, "FP32", True)])

    await stub.RepositoryModelLoad(
        pb.RepositoryModelLoadRequest(model_name="slow-deadline-kserve"), metadata=admin
    )
    holder = asyncio.create_task(client.infer(slow("slow-deadline-kserve", 1.0), headers=admin))
    await asyncio.sleep(0.2)  # the first call holds the model's only instance
    out["deadline"] = await expect_error(
        client.infer(slow("slow-deadline-kserve", 2.0), timeout=0.3, headers=admin)
    )
    await holder

    await stub.RepositoryModelLoad(
        pb.RepositoryModelLoadRequest(model_name="slow-queue-kserve"), metadata=admin
    )
    results = await asyncio.gather(
        *(
            expect_error(client.infer(slow("slow-queue-kserve", v), headers=admin))
            for v in (1.0, 2.0, 3.0, 4.0)
        )
    )
    out["full queue"] = sorted(result["code"] for result in results)
    out["full queue details"] = [r["details"] for r in results if r["code"] != "OK"]
    await client.close()
    print(json.dumps(out))


asyncio.run(main(*sys.argv[1:5]))
