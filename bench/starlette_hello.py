"""The ceiling for ``bench/http_overhead.py``: a bare Starlette app on the same server stack.

``POST /hello`` reads the JSON body and answers a small JSON object: the least work any JSON
endpoint on Starlette + uvicorn (uvloop, httptools) can do per request. Run it as
``uvicorn --app-dir bench starlette_hello:app --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"hello": "world", "inputs": len(body.get("inputs", []))})


app = Starlette(routes=[Route("/hello", hello, methods=["POST"])])
