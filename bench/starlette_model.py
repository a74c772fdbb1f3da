"""The in-process ceiling of ``bench/overhead_vs_mlserver.py``: the least a V2 JSON endpoint on
Starlette + uvicorn can do to serve a scikit-learn model.

``POST /v2/models/{name}/infer`` parses the V2 JSON body with ``json``, makes the input array,
runs ``model.predict`` in Starlette's thread pool (``run_in_threadpool``, as a server must not
run model code on its event loop) and answers a V2 JSON response with the ``predict`` output.
No auth, no metrics, no usage records, no validation beyond what numpy does. The model is the
joblib file named by ``CEILING_MODEL``. Run it as ``uvicorn --app-dir bench
starlette_model:app --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

import json
import os

import joblib
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = joblib.load(os.environ["CEILING_MODEL"])


async def infer(request: Request) -> Response:
    body = json.loads(await request.body())
    tensor = body["inputs"][0]
    inputs = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    labels = await run_in_threadpool(MODEL.predict, inputs)
    answer = {
        "model_name": request.path_params["name"],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [len(labels)], "data": labels.tolist()}
        ],
    }
    return Response(json.dumps(answer), media_type="application/json")


app = Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"])])
