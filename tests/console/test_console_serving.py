"""How /console is served (types, caching, compression, security headers), that the committed
build matches web/, and the API the console reads: /api/v1/me, /api/v1/stats, X-Batch-Size."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import httpx

from modelhost.console.assets import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
# What web/vite.config.ts hashes into static/source-sha256.txt when it builds.
SOURCES = [
    ".prettierrc.json",
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
]
IRIS = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]
}


def source_hash() -> str:
    files = [WEB / name for name in SOURCES] + [p for p in (WEB / "src").rglob("*") if p.is_file()]
    digest = hashlib.sha256()
    for relative in sorted(p.relative_to(WEB).as_posix() for p in files):
        digest.update(relative.encode() + b"\n" + (WEB / relative).read_bytes() + b"\n")
    return digest.hexdigest()


def test_the_committed_build_is_the_build_of_web() -> None:
    stamp = (STATIC_DIR / "source-sha256.txt").read_text().strip()
    assert stamp == source_hash(), "web/ changed since the last build: run scripts/build-console"


def test_the_page_and_its_assets_are_served_with_strict_headers(client: httpx.Client) -> None:
    for path in ("/console", "/console/"):
        page = client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert not re.search(r"https?:|\*", csp), csp  # no source outside this server
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in page.headers

    assets = re.findall(r'(?:src|href)="(/console/assets/[^"]+)"', page.text)
    assert {Path(a).suffix for a in assets} == {".js", ".css"}
    total = 0
    for asset in assets:
        response = client.get(asset, headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        kind = "text/javascript" if asset.endswith(".js") else "text/css"
        assert response.headers["content-type"] == f"{kind}; charset=utf-8"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["content-encoding"] == "gzip"
        assert "content-security-policy" in response.headers
        total += len(response.content)
        # A browser that has it already gets 304 and no body.
        again = client.get(asset, headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert total < 200_000

    missing = client.get("/console/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_gzip_copy_is_the_file(client: httpx.Client) -> None:
    plain = client.get("/console/", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with client.stream("GET", "/console/", headers={"accept-encoding": "gzip"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "accept-encoding"
        raw = b"".join(response.iter_raw())
    assert len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content


def test_me_says_who_is_calling(client: httpx.Client) -> None:
    # Auth is off on this server: everyone is the anonymous admin.
    me = client.get("/api/v1/me").json()
    assert me == {
        "name": "anonymous",
        "role": "admin",
        "user_id": None,
        "key_id": None,
        "allowed_models": None,
    }


def test_stats_count_what_was_served(client: httpx.Client) -> None:
    def iris() -> dict[str, object]:
        models = client.get("/api/v1/stats").json()["models"]
        return next(m for m in models if m["name"] == "iris-onnx" and m["version"] == "1")

    before = iris()
    answers = [client.post("/v2/models/iris-onnx/infer", json=IRIS) for _ in range(5)]
    assert all(a.status_code == 200 for a in answers)
    assert all(int(a.headers["x-batch-size"]) >= 1 for a in answers)
    after = iris()
    assert after["state"] == "READY" and after["footprint_bytes"] > 0  # type: ignore[operator]

    def ok(stats: dict[str, object]) -> int:
        return int(stats["requests"].get("200", 0))  # type: ignore[attr-defined]

    def count(stats: dict[str, object], histogram: str) -> int:
        return int(stats[histogram]["count"])  # type: ignore[index]

    assert ok(after) - ok(before) == 5
    assert count(after, "latency_seconds") - count(before, "latency_seconds") == 5
    assert count(after, "batch_size") - count(before, "batch_size") >= 1
    latency = after["latency_seconds"]
    assert len(latency["counts"]) == len(latency["bounds"]) + 1  # type: ignore[index]
    assert after["queue"]["capacity"] > 0  # type: ignore[index]
    assert after["last_load"]["seconds"] > 0  # type: ignore[index]
    assert count(after, "loads") >= 1

    # /api/v1/models shows the measured memory and the last use.
    models = {m["name"]: m for m in client.get("/api/v1/models").json()}
    version = models["iris-onnx"]["versions"][0]
    assert version["memory_bytes"] == after["footprint_bytes"]
    assert version["last_used_at"] is not None
