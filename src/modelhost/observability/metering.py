"""Metering: what every answered request leaves behind, whatever transport carried it — its
count and latency in the metrics, a usage record for the database writer, a CloudWatch EMF
figure, and its fields on the request's log line.

This is the one seam every endpoint passes. A transport starts a :class:`RequestMeter` when a
request arrives, the endpoint fills in what it learns on the way (the model, its version, the
batch it ran in), and the transport finishes the meter with the status and byte counts of the
answer it actually sent. REST does that in :mod:`modelhost.api.metered`; a gRPC servicer does
the same with endpoint ``"grpc"``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from modelhost.auth.principal import Principal
from modelhost.db.timestamps import utcnow
from modelhost.db.usage import UsageRecord
from modelhost.db.usage_writer import UsageWriter
from modelhost.observability.context import annotate
from modelhost.observability.emf import EmfEmitter
from modelhost.observability.ids import new_id
from modelhost.observability.metrics import Metrics

log = logging.getLogger(__name__)

# The model label of requests that named no model this server has: a client could otherwise
# mint unlimited time series by asking for models that don't exist.
UNRESOLVED = "_unresolved"
_MODEL_NAME_LIMIT = 128


class Metering:
    """Starts request meters and records them where they go when they finish."""

    def __init__(self, metrics: Metrics, usage: UsageWriter, emf: EmfEmitter | None) -> None:
        self._metrics = metrics
        self._usage = usage
        self._emf = emf

    def start(self, principal: Principal, endpoint: str, model: str = "") -> RequestMeter:
        """A meter for one request on ``endpoint`` (the metrics' endpoint label)."""
        return RequestMeter(self, principal, endpoint, model[:_MODEL_NAME_LIMIT])

    def _record(self, meter: RequestMeter, status: int, bytes_in: int, bytes_out: int) -> None:
        elapsed = time.perf_counter() - meter.started
        version = str(meter.version) if meter.version is not None else ""
        model = meter.model if meter.version is not None else UNRESOLVED
        counter, histogram = self._metrics.request_series(model, version, meter.endpoint, status)
        counter.inc()
        histogram.observe(elapsed)
        if self._emf is not None:
            self._emf.record(meter.model, status, elapsed)
        annotate(model=meter.model, version=version, user_id=meter.principal.user_id)
        self._usage.record(
            UsageRecord(
                record_id=new_id(),
                user_id=meter.principal.user_id,
                key_id=meter.principal.key_id,
                model=meter.model,
                version=meter.version,
                status=status,
                latency_ms=elapsed * 1000,
                batch_size=meter.batch_size,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                created_at=utcnow(),
            )
        )


@dataclass(slots=True)
class RequestMeter:
    """One request's meter: the endpoint fills in what it learns, the transport finishes it."""

    _metering: Metering
    principal: Principal
    endpoint: str
    model: str
    started: float = 0.0
    version: int | None = None  # set once the name resolved to a servable version
    batch_size: int = 0
    _finished: bool = False

    def __post_init__(self) -> None:
        self.started = time.perf_counter()

    def name_model(self, model: str) -> None:
        """The model the request is for, when the transport could not tell from its path."""
        self.model = model[:_MODEL_NAME_LIMIT]

    def finish(self, *, status: int, bytes_in: int, bytes_out: int) -> None:
        """Record the request as answered with ``status`` and ``bytes_out`` bytes of body (what
        the client was actually sent) after reading ``bytes_in``. Only the first call counts,
        and it never raises: metering must not turn an answer into an error."""
        if self._finished:
            return
        self._finished = True
        try:
            self._metering._record(self, status, bytes_in, bytes_out)
        except Exception:
            log.exception("metering %s %s failed", self.endpoint, self.model)
