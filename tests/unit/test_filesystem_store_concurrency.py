"""Many first writes into a fresh filesystem store at once all land (none races on mkdir)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.storage.filesystem import FilesystemBlobStore


async def test_concurrent_first_puts_into_a_fresh_store_all_succeed(tmp_path: Path):
    for attempt in range(20):
        store = FilesystemBlobStore(tmp_path / f"fresh-{attempt}" / "blobs")
        keys = [f"centres/c/studies/s/{n}.dcm" for n in range(8)]

        await asyncio.gather(*(store.put(key, key.encode()) for key in keys))

        assert [await store.get(key) for key in keys] == [key.encode() for key in keys]
