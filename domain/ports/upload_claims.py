"""Which presigned upload URLs were used: shared by every API process, so a URL is single use
however many processes serve it."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Protocol


def signature_digest(signature_id: str) -> str:
    """The SHA-256 hex digest adapters record instead of the signature: a leaked table of
    claims holds nothing that could be replayed as a URL."""
    return hashlib.sha256(signature_id.encode()).hexdigest()


class UploadClaims(Protocol):
    async def claim(self, signature_id: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record ``signature_id`` as used until ``expires_at``: ``True`` when it was free (never
        claimed, released, or its claim expired by ``now``), ``False`` when it is claimed.

        Atomic across processes: of concurrent claims of one signature exactly one wins.
        Claims that expired by ``now`` may be forgotten on the way.
        """

    async def release(self, signature_id: str) -> None:
        """Forget the claim of ``signature_id`` (its upload failed, so the URL may be retried)."""
