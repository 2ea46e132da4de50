"""Upload-URL claims in this process's memory (one process only; use PostgreSQL for several)."""

from __future__ import annotations

from datetime import datetime

from domain.ports.upload_claims import signature_digest


class MemoryUploadClaims:
    def __init__(self) -> None:
        self._expiries: dict[str, datetime] = {}

    async def claim(self, signature_id: str, *, expires_at: datetime, now: datetime) -> bool:
        # no await before the write: a claim is atomic on the event loop
        for expired in [d for d, at in self._expiries.items() if at <= now]:
            del self._expiries[expired]
        digest = signature_digest(signature_id)
        if digest in self._expiries:
            return False
        self._expiries[digest] = expires_at
        return True

    async def release(self, signature_id: str) -> None:
        self._expiries.pop(signature_digest(signature_id), None)
