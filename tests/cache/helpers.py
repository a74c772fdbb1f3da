"""Small HTTP helpers for the cache tests."""

from __future__ import annotations

from typing import Any

import httpx


def infer_body(values: list[float]) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [len(values)], "data": values}]}


def cache_state(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/v1/cache")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


def model_state(client: httpx.Client, name: str) -> dict[str, Any] | None:
    return next((m for m in cache_state(client)["models"] if m["name"] == name), None)


def index_states(client: httpx.Client) -> dict[str, str]:
    response = client.post("/v2/repository/index")
    response.raise_for_status()
    return {f"{e['name']}/{e['version']}": e["state"] for e in response.json()}
