"""moto's S3 server, with ranged GETs that read only their range (for bench/cold_load.py).

moto 5 answers a ranged GET by reading the whole object out of its spooled temporary file and
slicing it: on a 1 GiB object every ranged GET costs moto 0.5-0.9 s of CPU whatever the range,
which no real S3 does, and which would make any client that reads in parallel parts (boto3's
transfer manager as much as modelhost) look slow for a reason that is moto's alone. This
launcher changes only that: for a GET with a Range header, the object's value is a view that
reads the requested slice from the same file; everything else is moto as it is.

    python bench/moto_ranged.py -H 127.0.0.1 -p PORT      (moto.server's own arguments)
"""

from __future__ import annotations

import threading
from typing import Any

from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.server import main

_ranged = threading.local()  # moto serves each request on its own thread


class _RangeView:
    """What moto's range handling needs of an object's value: its length and one slice."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def __len__(self) -> int:
        return int(self._key.size)

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(len(self))
        with self._key.lock:
            buffer = self._key._value_buffer
            buffer.seek(start)
            data: bytes = buffer.read(stop - start)
            return data


_value = FakeKey.value


def _value_or_view(self: Any) -> Any:
    if getattr(_ranged, "active", False):
        return _RangeView(self)
    return _value.fget(self)  # type: ignore[attr-defined]


FakeKey.value = property(_value_or_view, _value.fset)  # type: ignore[assignment, attr-defined]
_get_object = S3Response.get_object


def _get_object_ranged(self: Any) -> Any:
    rspec = self.headers.get("range") or ""
    # Only a plain "bytes=start-end" is served from the view; anything else as moto does.
    _ranged.active = rspec.startswith("bytes=") and "," not in rspec and "-" in rspec[6:]
    try:
        return _get_object(self)
    finally:
        _ranged.active = False


S3Response.get_object = _get_object_ranged  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
