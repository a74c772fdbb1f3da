"""Usage records of inference requests, handed to the background writer as each one ends."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from modelhost.auth.principal import Principal
from modelhost.db.timestamps import utcnow
from modelhost.db.usage import UsageRecord
from modelhost.db.usage_writer import UsageWriter


@dataclass
class UsageMeter:
    """Filled in as a request goes; :meth:`finish` hands the record over (never raises)."""

    writer: UsageWriter
    principal: Principal
    model: str
    started: float
    status: int = 500
    version: int | None = None
    batch_size: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def start(cls, writer: UsageWriter, principal: Principal, model: str) -> UsageMeter:
        return cls(writer, principal, model[:128], time.perf_counter())

    def finish(self) -> None:
        self.writer.record(
            UsageRecord(
                record_id=str(uuid.uuid4()),
                user_id=self.principal.user_id,
                key_id=self.principal.key_id,
                model=self.model,
                version=self.version,
                status=self.status,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                batch_size=self.batch_size,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                created_at=utcnow(),
            )
        )
