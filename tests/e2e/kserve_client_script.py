"""Runs in a virtualenv of its own with the KServe SDK: drives a modelhost server through
``kserve.InferenceRESTClient`` exactly as a KServe user would, and prints what came back."""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    results: dict[str, object] = {
        "live": await client.is_server_live(url, headers=headers),
        "ready": await client.is_server_ready(url, headers=headers),
    }
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    for binary in (False, True):
        tensor = InferInput(name="input", shape=list(rows.shape), datatype="FP32")
        tensor.set_data_from_numpy(rows, binary_data=binary)
        request = InferRequest(
            model_name="iris-onnx", infer_inputs=[tensor], request_id=f"k-{binary}"
        )
        response = await client.infer(url, request, model_name="iris-onnx", headers=headers)
        output = response.outputs[0]
        results[f"binary={binary}"] = {
            "id": response.id,
            "name": output.name,
            "datatype": output.datatype,
            "shape": output.shape,
            "data": output.as_numpy().tolist(),
        }
    results["model_ready"] = await client.is_model_ready(url, "iris-onnx", headers=headers)
    await client.close()
    print(json.dumps(results))


asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
