"""Live progress across processes: ``hounsfield serve`` on PostgreSQL, a job changed by another
process (this test, standing for a worker on another machine) through its own connections and
its own LISTEN/NOTIFY bus, and a websocket client of the server that sees every change."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from adapters.postgres.database import PostgresDatabase
from adapters.postgres.events import PostgresEventBus
from domain.events import JobCompleted, JobProgressed, JobStarted
from domain.identity import Centre
from domain.jobs import Job, JobStage
from domain.services.jobs import job_event
from tests.e2e.test_serve import (
    Server,
    clean_environment,
    free_port,
    hounsfield_command,
)
from tests.fixtures.postgres import create_database, drop_database
from tests.unit.factories import a_job, a_study

WAIT_S = 15.0
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database_url(postgres_server_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(postgres_server_dsn, prefix="hounsfield_ws_e2e")
    try:
        yield dsn
    finally:
        await drop_database(postgres_server_dsn, dsn)


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / "serve.log"
    env = clean_environment(
        HOUNSFIELD_DATA_DIR=str(tmp_path / "data"), HOUNSFIELD_DATABASE_URL=database_url
    )
    create_admin = ["users", "create-admin", "--email", "ops@example.org", "--password-stdin"]
    subprocess.run(
        [*hounsfield_command(), *create_admin],
        input=f"{PASSWORD}\n".encode(),
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*hounsfield_command(), "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    started = Server(process=process, port=port, log=log)
    try:
        started.wait_healthy()
        yield started
    finally:
        if process.poll() is None:
            started.terminate()


async def seed_job(database: PostgresDatabase) -> Job:
    now = datetime.now(UTC)
    centre = Centre(id=uuid.uuid4(), name="Gamma Imaging", created_at=now, updated_at=now)
    study = a_study(centre_id=centre.id, created_at=now, updated_at=now)
    job = a_job(centre_id=centre.id, study_id=study.id, created_at=now, updated_at=now)
    async with database.unit_of_work() as uow:
        await uow.centres.add(centre)
        await uow.studies.add(study)
        await uow.jobs.add(job.enqueue(at=now))
        await uow.commit()
        return job.enqueue(at=now)


async def work_on(database: PostgresDatabase, job: Job, steps: int) -> None:
    """What a worker does: change the row, publish the event after the commit."""
    moves: list[tuple[type[Any], Callable[[Job, datetime], Job]]] = [
        (JobStarted, lambda j, at: j.start(at=at, lease_until=at))
    ]
    for step in range(1, steps + 1):
        moves.append(
            (
                JobProgressed,
                lambda j, at, step=step: j.report_progress(
                    stage=JobStage.INFERENCE, progress=step / (steps + 1), at=at
                ),
            )
        )
    moves.append((JobCompleted, lambda j, at: j.complete(at=at)))
    for kind, move in moves:
        async with database.unit_of_work() as uow:
            current = await uow.jobs.get(job.id)
            assert current is not None
            stored = await uow.jobs.update(move(current, datetime.now(UTC)))
            uow.collect(job_event(kind, stored))
            await uow.commit()


async def test_a_websocket_client_of_the_server_sees_changes_made_by_another_process(
    server: Server, database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT_S) as http:
        signed_in = await http.post(
            "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
        )
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["access_token"]
    worker_bus = PostgresEventBus(dsn=database_url)
    database = await PostgresDatabase.connect(database_url, event_bus=worker_bus)
    try:
        job = await seed_job(database)
        url = f"ws://127.0.0.1:{server.port}/ws/jobs/{job.id}?token={token}"
        async with connect(url, open_timeout=WAIT_S) as websocket:
            async with asyncio.timeout(WAIT_S):
                first = msgspec.json.decode(await websocket.recv())
            assert (first["type"], first["status"]) == ("job", "queued")

            await work_on(database, job, steps=8)

            received = []
            async with asyncio.timeout(WAIT_S):
                try:
                    while True:
                        received.append(msgspec.json.decode(await websocket.recv()))
                except ConnectionClosed as closed:
                    close_code = closed.rcvd.code if closed.rcvd else None
    finally:
        await database.close()
        await worker_bus.aclose()

    assert [m["status"] for m in received] == ["running"] * 9 + ["completed"]
    progress = [m["progress"] for m in received]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert close_code == 1000
