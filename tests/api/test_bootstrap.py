"""The composition root: what it builds from settings, and what it keeps in the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.memory import MemoryBlobStore, MemoryDatabase
from domain.errors import InvalidInput
from entrypoints.bootstrap import bootstrap
from entrypoints.settings import SettingsError
from tests.api.conftest import settings_for


async def test_the_generated_secret_is_private_and_kept_across_starts(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")

    first = await bootstrap(settings, database="memory")
    await first.aclose()
    second = await bootstrap(settings, database="memory")
    await second.aclose()

    secret_file = tmp_path / "data" / "secret_key"
    assert first.secret_key == second.secret_key
    assert len(first.secret_key) >= 32
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0


async def test_a_configured_secret_key_is_used_and_nothing_is_generated(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", secret_key="k" * 40)

    container = await bootstrap(settings, database="memory")
    await container.aclose()

    assert container.secret_key == b"k" * 40
    assert not (tmp_path / "data" / "secret_key").exists()


async def test_a_secret_file_others_can_read_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    secret_file = tmp_path / "data" / "secret_key"
    secret_file.write_bytes(b"s" * 64)
    secret_file.chmod(0o644)

    with pytest.raises(SettingsError) as caught:
        await bootstrap(settings_for(tmp_path / "data"), database="memory")

    assert "secret_key" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_a_storage_url_the_adapters_refuse_stops_bootstrap(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data", storage_url="s3://scans?colour=blue")

    with pytest.raises(InvalidInput, match="colour"):
        await bootstrap(settings, database="memory")


async def test_overrides_replace_the_adapters_the_settings_describe(tmp_path: Path) -> None:
    database, store = MemoryDatabase(), MemoryBlobStore()

    container = await bootstrap(
        settings_for(tmp_path / "data"), database=database, blob_store=store
    )
    await container.aclose()

    assert container.database is database
    assert container.blob_store is store
    assert {probe.component for probe in container.health_probes} == {
        "database",
        "storage",
        "queue",
        "models",
    }
