"""Upload-URL claims in PostgreSQL, so a presigned URL is single use across API processes."""

from __future__ import annotations

from datetime import datetime

from adapters.postgres.database import PostgresDatabase
from domain.ports.upload_claims import signature_digest

# One statement decides a claim: the insert wins unless a live claim holds the digest (an
# expired one is taken over in place). On the way it removes a bounded batch of other
# expired claims; SKIP LOCKED keeps concurrent purges from waiting on (or deadlocking with)
# each other, and leaving out $1 keeps the purge off the row the insert decides on.
_CLAIM = """
WITH purged AS (
    DELETE FROM upload_url_claims WHERE signature_sha256 IN (
        SELECT signature_sha256 FROM upload_url_claims
        WHERE expires_at <= $3 AND signature_sha256 <> $1
        LIMIT 100 FOR UPDATE SKIP LOCKED
    )
)
INSERT INTO upload_url_claims (signature_sha256, expires_at) VALUES ($1, $2)
ON CONFLICT (signature_sha256) DO UPDATE SET expires_at = EXCLUDED.expires_at
WHERE upload_url_claims.expires_at <= $3
RETURNING 1
"""
_RELEASE = "DELETE FROM upload_url_claims WHERE signature_sha256 = $1"


class PostgresUploadClaims:
    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    async def claim(self, signature_id: str, *, expires_at: datetime, now: datetime) -> bool:
        digest = signature_digest(signature_id)
        async with self._database.pool.acquire() as connection:
            won = await connection.fetchval(_CLAIM, digest, expires_at, now)
        return won is not None

    async def release(self, signature_id: str) -> None:
        async with self._database.pool.acquire() as connection:
            await connection.execute(_RELEASE, signature_digest(signature_id))
