"""Latency of live progress: a worker's progress event, published on the PostgreSQL
LISTEN/NOTIFY bus from its own connection, until a websocket client of ``hounsfield serve``
has it.

    .venv/bin/python -m tests.benchmarks.live_progress [--events 300]

prints the Markdown section; ``just bench`` puts it on docs/benchmarks.md with the others.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
from websockets.asyncio.client import connect

from adapters.postgres.database import PostgresDatabase
from adapters.postgres.embedded import EmbeddedPostgres
from adapters.postgres.events import PostgresEventBus
from domain.events import JobProgressed
from domain.identity import Centre
from domain.jobs import Job, JobStage, JobStatus
from domain.studies import Study, new_study_code
from tests.benchmarks.processes import (
    ADMIN_PASSWORD,
    BenchmarkError,
    clean_environment,
    serve_with_admin,
)
from tests.benchmarks.results import Table

WAIT_S = 10.0
GAP_S = 0.005
"""Pause between events: a worker reports progress now and then, not in a tight loop."""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def _seed(database: PostgresDatabase) -> Job:
    now = datetime.now(UTC)
    centre = Centre(id=uuid.uuid4(), name="Benchmark centre", created_at=now, updated_at=now)
    study = Study(
        id=uuid.uuid4(),
        centre_id=centre.id,
        code=new_study_code(),
        study_instance_uid=f"2.25.{uuid.uuid4().int}",
        created_at=now,
        updated_at=now,
    )
    job = Job(
        id=uuid.uuid4(),
        centre_id=centre.id,
        study_id=study.id,
        model_id="demo-lesion-unet",
        status=JobStatus.RUNNING,
        stage=JobStage.INFERENCE,
        created_at=now,
        updated_at=now,
    )
    async with database.unit_of_work() as uow:
        await uow.centres.add(centre)
        await uow.studies.add(study)
        await uow.jobs.add(job)
        await uow.commit()
    return job


async def _latencies(base_url: str, dsn: str, events: int) -> list[float]:
    """Seconds from the start of each ``publish`` to the websocket client's receipt."""
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_S) as http:
        response = await http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
    if response.status_code != 200:
        raise BenchmarkError(f"signing in failed: {response.status_code} {response.text[:200]}")
    token = response.json()["access_token"]
    worker_bus = PostgresEventBus(dsn=dsn)  # the worker's own connections
    database = await PostgresDatabase.connect(dsn, max_size=2)
    try:
        job = await _seed(database)
        ws_url = base_url.replace("http://", "ws://") + f"/ws/jobs/{job.id}?token={token}"
        async with connect(ws_url, open_timeout=WAIT_S) as websocket:
            async with asyncio.timeout(WAIT_S):
                await websocket.recv()  # the current state
            latencies: list[float] = []
            for step in range(1, events + 1):
                event = JobProgressed(
                    at=datetime.now(UTC),
                    centre_id=job.centre_id,
                    job_id=job.id,
                    status=JobStatus.RUNNING,
                    stage=JobStage.INFERENCE,
                    progress=step / (events + 1),
                    message=f"patch {step} of {events}",
                )
                started = time.perf_counter()
                await worker_bus.publish(event)
                async with asyncio.timeout(WAIT_S):
                    received = msgspec.json.decode(await websocket.recv())
                latencies.append(time.perf_counter() - started)
                if received.get("message") != event.message:
                    raise BenchmarkError(f"unexpected message on the websocket: {received}")
                await asyncio.sleep(GAP_S)
            return latencies
    finally:
        await database.close()
        await worker_bus.aclose()


def benchmark(workdir: Path, *, events: int = 300) -> Table:
    table = Table(
        title="Live progress: worker event to websocket client",
        headers=["events", "median ms", "p95 ms", "p99 ms", "max ms"],
        notes=[
            "`hounsfield serve` (one process) on an embedded PostgreSQL in a temporary"
            " directory; a websocket client on `/ws/jobs/{id}` in the benchmark process. The"
            " benchmark process also plays the worker: a `PostgresEventBus` with its own"
            " connections publishes one `JobProgressed` at a time (NOTIFY), and the latency is"
            " from the start of `publish` to the client's receipt of the update (NOTIFY ->"
            " the server's listening connection -> visibility-checked stream -> websocket"
            f" frame). {GAP_S * 1000:g} ms pause between events; the first state is not counted."
        ],
    )
    server_db = EmbeddedPostgres(workdir / "pg", database="hounsfield")
    dsn = server_db.start()
    serve = None
    try:
        env = clean_environment(
            HOUNSFIELD_DATA_DIR=str(workdir / "data"),
            HOUNSFIELD_DATABASE_URL=dsn,
            HOUNSFIELD_LOG_LEVEL="warning",
        )
        serve, base_url = serve_with_admin(workdir, env)
        seconds = asyncio.run(_latencies(base_url, dsn, events))
    finally:
        if serve is not None:
            serve.stop()
        server_db.stop()
    ms = [s * 1000 for s in seconds]
    table.rows.append(
        [
            str(len(ms)),
            f"{statistics.median(ms):.2f}",
            f"{_percentile(ms, 0.95):.2f}",
            f"{_percentile(ms, 0.99):.2f}",
            f"{max(ms):.2f}",
        ]
    )
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.live_progress")
    parser.add_argument("--events", type=int, default=300, help="progress events to time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hounsfield-bench-") as workdir:
        table = benchmark(Path(workdir), events=args.events)
    print("\n".join(table.markdown()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
