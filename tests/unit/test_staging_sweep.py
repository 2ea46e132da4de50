"""The sweep of abandoned staged uploads: the domain function on the memory store with a
manual clock, and the periodic task each API process runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import structlog

from adapters.memory.blobs import MemoryBlobStore
from adapters.memory.clock import ManualClock
from domain.errors import Unavailable
from domain.ports.blobs import BlobEntry
from domain.services.staging import PRESIGN_TTL_S, sweep_staging
from entrypoints.jobs import staging_sweeping, sweep_staging_once
from entrypoints.settings import Settings, SettingsError

DAY_S = 86400.0
PATIENT_FILE = "Doe_Jane_1970-01-01.dcm"
"""A client's file name, as careless as they come: it must never reach a log."""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def blobs(clock: ManualClock) -> MemoryBlobStore:
    return MemoryBlobStore(clock=clock)


def staged(centre: str, upload: str, name: str = PATIENT_FILE) -> str:
    return f"staging/{centre}/{upload}/{name}"


async def test_staged_uploads_older_than_the_limit_are_deleted_and_newer_ones_kept(
    blobs: MemoryBlobStore, clock: ManualClock
) -> None:
    await blobs.put(staged("c1", "old1"), b"abandoned")
    await blobs.put(staged("c2", "old2"), b"abandoned too")
    clock.advance(seconds=DAY_S - 60)
    await blobs.put(staged("c1", "new"), b"still waiting for its ingest")
    clock.advance(seconds=120)

    deleted = await sweep_staging(blobs, now=clock.now(), older_than_s=DAY_S)

    assert deleted == 2
    assert {entry.key async for entry in blobs.list_prefix("")} == {staged("c1", "new")}


async def test_only_staging_is_swept(blobs: MemoryBlobStore, clock: ManualClock) -> None:
    kept = ["centres/c1/studies/s1/1.dcm", "staging2/c1/u1/x.dcm", "stagingfile.bin"]
    for key in kept:
        await blobs.put(key, b"stored long ago")
    clock.advance(seconds=10 * DAY_S)

    deleted = await sweep_staging(blobs, now=clock.now(), older_than_s=DAY_S)

    assert deleted == 0
    assert {entry.key async for entry in blobs.list_prefix("")} == set(kept)


async def test_an_upload_exactly_as_old_as_the_limit_is_kept(
    blobs: MemoryBlobStore, clock: ManualClock
) -> None:
    await blobs.put(staged("c1", "u1"), b"x")
    clock.advance(seconds=DAY_S)

    assert await sweep_staging(blobs, now=clock.now(), older_than_s=DAY_S) == 0
    assert await blobs.exists(staged("c1", "u1"))


async def test_the_sweep_logs_counts_and_never_a_file_name(
    blobs: MemoryBlobStore, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    await blobs.put(staged("c1", "u1"), b"x")
    clock.advance(seconds=2 * DAY_S)

    with caplog.at_level(logging.DEBUG):
        await sweep_staging(blobs, now=clock.now(), older_than_s=DAY_S)

    assert "deleted 1 abandoned uploads" in caplog.text
    assert PATIENT_FILE not in caplog.text and "Doe" not in caplog.text


class UndeletableBlobStore(MemoryBlobStore):
    """Refuses to delete one key, as a store that lost a permission would."""

    def __init__(self, clock: ManualClock, refused: str) -> None:
        super().__init__(clock=clock)
        self.refused = refused

    async def delete(self, key: str) -> None:
        if key == self.refused:
            raise Unavailable(f"could not delete blob {key!r}")
        await super().delete(key)


async def test_an_upload_that_cannot_be_deleted_is_counted_and_the_rest_are_swept(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    blobs = UndeletableBlobStore(clock, refused=staged("c1", "stuck"))
    await blobs.put(staged("c1", "stuck"), b"x")
    await blobs.put(staged("c1", "gone"), b"y")
    clock.advance(seconds=2 * DAY_S)

    with caplog.at_level(logging.DEBUG):
        deleted = await sweep_staging(blobs, now=clock.now(), older_than_s=DAY_S)

    assert deleted == 1
    assert {entry.key async for entry in blobs.list_prefix("staging")} == {staged("c1", "stuck")}
    assert "could not delete 1 abandoned uploads" in caplog.text
    assert PATIENT_FILE not in caplog.text


class UnlistableBlobStore(MemoryBlobStore):
    """Fails the first ``failures`` listings with a message naming a staged key."""

    def __init__(self, clock: ManualClock, failures: int) -> None:
        super().__init__(clock=clock)
        self.failures = failures
        self.listings = 0
        self.deleted = asyncio.Event()

    async def list_prefix(self, prefix: str) -> AsyncIterator[BlobEntry]:
        self.listings += 1
        if self.listings <= self.failures:
            raise Unavailable(f"could not list {staged('c1', 'u1')!r}")
        async for entry in super().list_prefix(prefix):
            yield entry

    async def delete(self, key: str) -> None:
        await super().delete(key)
        self.deleted.set()


async def test_a_failed_sweep_is_logged_by_type_without_the_message() -> None:
    blobs = UnlistableBlobStore(ManualClock(), failures=1)

    with structlog.testing.capture_logs() as logs:
        deleted = await sweep_staging_once(blobs, ManualClock().now(), older_than_s=DAY_S)

    assert deleted == 0
    assert logs == [{"event": "staging sweep failed", "error": "Unavailable", "log_level": "error"}]


async def test_the_periodic_sweep_runs_at_once_and_again_after_a_failure(
    clock: ManualClock,
) -> None:
    blobs = UnlistableBlobStore(clock, failures=1)
    await blobs.put(staged("c1", "u1"), b"x")
    clock.advance(seconds=2 * DAY_S)

    async with staging_sweeping(blobs, clock, older_than_s=DAY_S, interval_s=0.01):
        await asyncio.wait_for(blobs.deleted.wait(), timeout=5)

    assert not await blobs.exists(staged("c1", "u1"))
    assert blobs.listings >= 2  # the first failed; the process went on sweeping


async def test_the_memory_store_dates_objects_by_its_clock(
    blobs: MemoryBlobStore, clock: ManualClock
) -> None:
    await blobs.put("a.bin", b"1")
    clock.advance(seconds=30)
    await blobs.put("b.bin", b"2")

    dates = {entry.key: entry.modified_at async for entry in blobs.list_prefix("")}

    assert dates == {"a.bin": clock.now() - timedelta(seconds=30), "b.bin": clock.now()}


def test_the_staging_ttl_setting_defaults_to_a_day() -> None:
    assert Settings.from_env({}, config_file=None).staging_ttl_s == DAY_S


@pytest.mark.parametrize("value", ["600", "60", "0", "-1", "inf", "nan", "soon"])
def test_a_staging_ttl_setting_not_beyond_the_upload_urls_life_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"HOUNSFIELD_STAGING_TTL_S": value}, config_file=None)

    message = str(caught.value)
    assert message.startswith(
        f"HOUNSFIELD_STAGING_TTL_S must be a number of seconds greater than {PRESIGN_TTL_S}"
    )
    assert "\n" not in message


def test_a_staging_ttl_setting_just_beyond_the_upload_urls_life_passes() -> None:
    settings = Settings.from_env({"HOUNSFIELD_STAGING_TTL_S": "601"}, config_file=None)

    assert settings.staging_ttl_s == 601.0
