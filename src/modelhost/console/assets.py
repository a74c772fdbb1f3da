"""The console's built files, read once into memory and served with strict headers.

The files are a few tens of kilobytes: holding them (and a gzip copy of each) in memory keeps
file reads off the event loop and lets every response be answered without a disk access.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

# The console talks only to the server it came from, and nothing may frame it or run inline code.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
# Files under assets/ carry a hash of their content in their name: they never change.
IMMUTABLE = "public, max-age=31536000, immutable"
# The page itself names the current assets, so the browser must check it every time.
REVALIDATE = "no-cache"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = (".html", ".js", ".css", ".svg", ".json", ".txt")


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as it is sent: its bytes, a gzip copy when that is smaller, and its headers."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    cache_control: str
    etag: str


class ConsoleAssets:
    """The built console, keyed by the path under ``/console/`` (``""`` is the page)."""

    def __init__(self, files: dict[str, Asset]) -> None:
        self.files = files

    @classmethod
    def load(cls, directory: Path = STATIC_DIR) -> ConsoleAssets:
        files: dict[str, Asset] = {}
        if directory.is_dir():
            for path in sorted(p for p in directory.rglob("*") if p.is_file()):
                relative = path.relative_to(directory).as_posix()
                files[relative] = _asset(relative, path.read_bytes())
        if "index.html" in files:
            files[""] = files["index.html"]
        return cls(files)

    def get(self, path: str) -> Asset | None:
        return self.files.get(path)

    @property
    def total_bytes(self) -> int:
        return sum(len(a.body) for p, a in self.files.items() if p)


def _asset(relative: str, body: bytes) -> Asset:
    suffix = Path(relative).suffix
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(relative)[0]
    gzipped = gzip.compress(body, compresslevel=9, mtime=0) if suffix in _COMPRESSIBLE else None
    return Asset(
        body=body,
        gzipped=gzipped if gzipped is not None and len(gzipped) < len(body) else None,
        content_type=content_type or "application/octet-stream",
        cache_control=IMMUTABLE if relative.startswith("assets/") else REVALIDATE,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
    )
