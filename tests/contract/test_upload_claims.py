"""Contract: a presigned upload URL's signature is claimed once, until it expires or is
released; of concurrent claims exactly one wins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from adapters.memory.upload_claims import MemoryUploadClaims
from domain.ports.upload_claims import UploadClaims, signature_digest

if TYPE_CHECKING:
    from adapters.postgres.database import PostgresDatabase

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=10)


@pytest.fixture(params=["memory", "postgres"])
def claims(request: pytest.FixtureRequest) -> UploadClaims:
    if request.param == "memory":
        return MemoryUploadClaims()
    from adapters.postgres.upload_claims import PostgresUploadClaims

    return PostgresUploadClaims(request.getfixturevalue("postgres_database"))


async def test_a_signature_is_claimed_once(claims: UploadClaims) -> None:
    first = await claims.claim("sig-a", expires_at=EXPIRES, now=NOW)
    second = await claims.claim("sig-a", expires_at=EXPIRES, now=NOW + timedelta(minutes=1))

    assert (first, second) == (True, False)


async def test_signatures_are_claimed_apart(claims: UploadClaims) -> None:
    assert await claims.claim("sig-a", expires_at=EXPIRES, now=NOW)
    assert await claims.claim("sig-b", expires_at=EXPIRES, now=NOW)
    assert not await claims.claim("sig-b", expires_at=EXPIRES, now=NOW)


async def test_a_released_signature_can_be_claimed_again(claims: UploadClaims) -> None:
    await claims.claim("sig-a", expires_at=EXPIRES, now=NOW)
    await claims.release("sig-a")
    await claims.release("never-claimed")  # nothing to forget is no error

    assert await claims.claim("sig-a", expires_at=EXPIRES, now=NOW)
    assert not await claims.claim("sig-a", expires_at=EXPIRES, now=NOW)


async def test_an_expired_claim_can_be_claimed_again_until_its_new_expiry(
    claims: UploadClaims,
) -> None:
    await claims.claim("sig-a", expires_at=EXPIRES, now=NOW)
    assert not await claims.claim("sig-a", expires_at=EXPIRES, now=EXPIRES - timedelta(seconds=1))

    later = EXPIRES + timedelta(minutes=10)
    assert await claims.claim("sig-a", expires_at=later, now=EXPIRES)
    assert not await claims.claim("sig-a", expires_at=later, now=later - timedelta(seconds=1))


async def test_claiming_forgets_other_expired_claims_but_not_live_ones(
    claims: UploadClaims,
) -> None:
    await claims.claim("old", expires_at=NOW + timedelta(seconds=1), now=NOW)
    await claims.claim("live", expires_at=EXPIRES, now=NOW)

    assert await claims.claim("new", expires_at=EXPIRES, now=NOW + timedelta(seconds=1))

    assert not await claims.claim("live", expires_at=EXPIRES, now=NOW + timedelta(seconds=2))
    assert await claims.claim("old", expires_at=EXPIRES, now=NOW + timedelta(seconds=2))


async def test_of_concurrent_claims_of_one_signature_exactly_one_wins(
    claims: UploadClaims,
) -> None:
    outcomes = await asyncio.gather(
        *(claims.claim("burst", expires_at=EXPIRES, now=NOW) for _ in range(20))
    )

    assert sum(outcomes) == 1


@pytest.mark.postgres
async def test_postgres_keeps_only_the_digest_of_a_signature(
    postgres_database: PostgresDatabase,
) -> None:
    from adapters.postgres.upload_claims import PostgresUploadClaims

    await PostgresUploadClaims(postgres_database).claim("secret-sig", expires_at=EXPIRES, now=NOW)

    async with postgres_database.pool.acquire() as connection:
        rows = await connection.fetch("SELECT signature_sha256 FROM upload_url_claims")
    assert [row["signature_sha256"] for row in rows] == [signature_digest("secret-sig")]
    assert len(rows[0]["signature_sha256"]) == 64
