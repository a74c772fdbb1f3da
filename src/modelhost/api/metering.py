"""What each inference request leaves behind when it ends: a usage record for the database
writer, its count and latency in the metrics, and its fields on the request's log line."""

from __future__ import annotations

import time
from dataclasses import dataclass

from modelhost.auth.principal import Principal
from modelhost.db.timestamps import utcnow
from modelhost.db.usage import UsageRecord
from modelhost.observability.context import annotate
from modelhost.observability.ids import new_id
from modelhost.services import Services

UNRESOLVED = "_unresolved"


@dataclass
class RequestMeter:
    """Filled in as a request goes; :meth:`finish` hands everything over (never raises)."""

    services: Services
    principal: Principal
    endpoint: str
    model: str
    started: float
    status: int = 500
    version: int | None = None
    batch_size: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def start(
        cls, services: Services, principal: Principal, endpoint: str, model: str
    ) -> RequestMeter:
        return cls(services, principal, endpoint, model[:128], time.perf_counter())

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        version = str(self.version) if self.version is not None else ""
        # Names that resolved to no model stay out of the labels: a client could otherwise
        # mint unlimited time series by asking for models that don't exist.
        model = self.model if self.version is not None else UNRESOLVED
        counter, histogram = self.services.metrics.request_series(
            model, version, self.endpoint, self.status
        )
        counter.inc()
        histogram.observe(elapsed)
        if self.services.emf is not None:
            self.services.emf.record(self.model, self.status, elapsed)
        annotate(model=self.model, version=version, user_id=self.principal.user_id)
        self.services.usage_writer.record(
            UsageRecord(
                record_id=new_id(),
                user_id=self.principal.user_id,
                key_id=self.principal.key_id,
                model=self.model,
                version=self.version,
                status=self.status,
                latency_ms=elapsed * 1000,
                batch_size=self.batch_size,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                created_at=utcnow(),
            )
        )
