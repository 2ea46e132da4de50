"""Durable jobs with real processes.

* ``hounsfield serve`` (API only) + two ``hounsfield worker`` processes on one PostgreSQL and
  one broker (Redis, then RabbitMQ): 20 analyses of a small synthetic CT series with the demo
  model; one worker is killed with SIGKILL while it runs jobs; every job still completes,
  exactly once (one result per job), the killed worker's jobs on a second attempt, and a
  websocket client on ``/ws`` sees every job reach ``completed`` with progress that never
  goes backwards.
* ``hounsfield serve`` on the embedded default (in-process queue), stopped with SIGTERM while
  jobs wait and started again: none of them is lost.

Leases, sweeps and backoff are short in these tests' settings so that a dead worker's job is
taken over within seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.test_serve import Server, clean_environment, free_port, hounsfield_command
from tests.fixtures.imaging import synthetic_ct_series
from tests.fixtures.postgres import create_database, drop_database
from tests.fixtures.services import require_server

JOBS = 20
MODEL = "demo-lesion-unet"
PASSWORD = "correct horse battery staple"
ADMIN_OPTIONS = ["--email", "ops@example.org", "--password-stdin"]
FINISH_TIMEOUT_S = 240.0
REDIS_URL = os.environ.get("HOUNSFIELD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HOUNSFIELD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
BROKERS = {"redis": ("Redis", REDIS_URL), "rabbitmq": ("RabbitMQ", AMQP_URL)}
FAST_JOBS = {
    "HOUNSFIELD_JOB_LEASE_S": "3",
    "HOUNSFIELD_JOB_SWEEP_INTERVAL_S": "1",
    "HOUNSFIELD_JOB_RETRY_BACKOFF_S": "0.5",
    "HOUNSFIELD_JOB_RETRY_BACKOFF_MAX_S": "1",
    "HOUNSFIELD_JOB_REQUEUE_AFTER_S": "8",
    "HOUNSFIELD_LOG_LEVEL": "warning",
    "HOUNSFIELD_RATE_LIMIT_READS_PER_MINUTE": "100000",  # the test polls
}

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc"),
]


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Client:
    """Signs in once as the admin and acts for one centre through an API key."""

    base_url: str
    headers: dict[str, str]

    @classmethod
    def for_server(cls, server: Server) -> Client:
        token = httpx.post(
            f"{server.base_url}/api/v1/auth/token",
            data={"username": "admin", "password": PASSWORD},
            timeout=30,
        )
        assert token.status_code == 200, token.text
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        centre = httpx.post(
            f"{server.base_url}/api/v1/centres", headers=admin, json={"name": "E2E"}, timeout=30
        )
        assert centre.status_code == 201, centre.text
        key = httpx.post(
            f"{server.base_url}/api/v1/api-keys",
            headers=admin,
            json={
                "name": "e2e",
                "centre_id": centre.json()["id"],
                "scopes": ["studies:write", "studies:read", "jobs:write", "jobs:read"],
            },
            timeout=30,
        )
        assert key.status_code == 201, key.text
        return cls(base_url=f"{server.base_url}/api/v1", headers={"X-API-Key": key.json()["key"]})

    def upload_series(self, **geometry: Any) -> str:
        """A synthetic CT series: small by default, ``geometry`` as ``synthetic_ct_series``."""
        files = synthetic_ct_series(**{"slices": 16, "rows": 48, "columns": 48, **geometry}).files
        response = httpx.post(
            f"{self.base_url}/studies",
            headers=self.headers,
            files=[("files", (f"{n}.dcm", data)) for n, data in enumerate(files)],
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["studies"][0]["id"])

    def submit(self, study_id: str, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            response = httpx.post(
                f"{self.base_url}/jobs",
                headers=self.headers,
                json={"study_id": study_id, "model_id": MODEL},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        return ids

    def jobs(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.base_url}/jobs", headers=self.headers, params={"limit": 1000}, timeout=30
        )
        assert response.status_code == 200, response.text
        return list(response.json())

    def wait_until(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float, why: str
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            jobs = self.jobs()
            if done(jobs):
                return jobs
            time.sleep(0.1)
        states = sorted((j["status"], j["attempts"], j["error_message"]) for j in self.jobs())
        pytest.fail(f"{why} within {timeout_s:g} s; jobs: {states}")


class Watcher(threading.Thread):
    """A websocket client on ``/ws`` following every job: what it saw, per job."""

    def __init__(self, server: Server, headers: dict[str, str], job_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.url = f"ws://127.0.0.1:{server.port}/ws"
        self.headers = headers
        self.job_ids = job_ids
        self.progress: dict[str, list[float]] = {job_id: [] for job_id in job_ids}
        self.last: dict[str, str] = {}
        self.errors: list[Any] = []
        self.subscribed = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.url, additional_headers=self.headers, open_timeout=30) as ws:
                for job_id in self.job_ids:
                    ws.send(json.dumps({"action": "subscribe", "job_id": job_id}))
                self.subscribed.set()
                deadline = time.monotonic() + FINISH_TIMEOUT_S
                while time.monotonic() < deadline and not self.done():
                    try:
                        message = json.loads(ws.recv(timeout=1))
                    except TimeoutError:
                        continue
                    if message["type"] == "job":
                        self.progress[message["job_id"]].append(message["progress"])
                        self.last[message["job_id"]] = message["status"]
                    elif message["type"] == "error":
                        self.errors.append(message)
        except Exception as err:  # reported by the test's assertions
            self.errors.append(repr(err))
        finally:
            self.subscribed.set()

    def done(self) -> bool:
        return all(self.last.get(job_id) == "completed" for job_id in self.job_ids)


def count(jobs: list[dict[str, Any]], status: str) -> int:
    return sum(1 for job in jobs if job["status"] == status)


async def results_per_job(dsn: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT job_id, count(*) AS n FROM analysis_results GROUP BY job_id"
        )
    finally:
        await connection.close()
    return {str(row["job_id"]): int(row["n"]) for row in rows}


def start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [*hounsfield_command(), *args], env=env, cwd=cwd, stdout=output, stderr=output
        )


def create_admin(env: dict[str, str], cwd: Path) -> None:
    subprocess.run(
        [*hounsfield_command(), "users", "create-admin", *ADMIN_OPTIONS],
        input=f"{PASSWORD}\n".encode(),
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=180,
    )


def stop(process: subprocess.Popen[bytes], timeout_s: float = 60) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
    return process.returncode


@pytest.fixture
async def database_url(postgres_server_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(postgres_server_dsn, prefix="hounsfield_jobs_e2e")
    try:
        yield dsn
    finally:
        await drop_database(postgres_server_dsn, dsn)


@pytest.fixture(params=list(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    name, url = BROKERS[request.param]
    parts = urlsplit(url)
    require_server(name, parts.hostname or "127.0.0.1", parts.port or 0)
    return url


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process a test starts; whatever is still running at the end is stopped."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process, timeout_s=30)


def start_api(
    tmp_path: Path,
    database_url: str,
    broker_url: str,
    processes: list[subprocess.Popen[bytes]],
) -> tuple[dict[str, str], Server]:
    """``hounsfield serve`` that only queues (jobs go to the broker, on a queue of its own)
    with an admin, healthy; its environment serves the workers a test starts."""
    env = clean_environment(
        HOUNSFIELD_DATA_DIR=str(tmp_path / "data"),
        HOUNSFIELD_DATABASE_URL=database_url,
        HOUNSFIELD_BROKER_URL=broker_url,
        HOUNSFIELD_JOB_QUEUE_NAME=f"e2e-jobs-{uuid.uuid4().hex[:10]}",
        **FAST_JOBS,
    )
    create_admin(env, tmp_path)
    port = free_port()
    api_log = tmp_path / "serve.log"
    api = start(["serve", "--port", str(port)], env, tmp_path, api_log)
    processes.append(api)
    server = Server(process=api, port=port, log=api_log)
    server.wait_healthy()
    return env, server


def test_twenty_jobs_on_two_workers_survive_a_killed_worker_and_complete_once(
    tmp_path: Path,
    database_url: str,
    broker_url: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    env, server = start_api(tmp_path, database_url, broker_url, processes)
    workers = [
        Worker(
            start(["worker", "--threads", "2"], env, tmp_path, tmp_path / f"worker-{n}.log"),
            tmp_path / f"worker-{n}.log",
        )
        for n in (1, 2)
    ]
    processes.extend(w.process for w in workers)
    client = Client.for_server(server)
    study_id = client.upload_series()

    job_ids = client.submit(study_id, JOBS)
    watcher = Watcher(server, client.headers, job_ids)
    watcher.start()
    watcher.subscribed.wait(30)
    client.wait_until(
        lambda jobs: count(jobs, "running") >= 3 and count(jobs, "completed") >= 1,
        FINISH_TIMEOUT_S,
        "both workers never ran jobs at once",
    )
    workers[0].process.kill()  # SIGKILL: no clean-up, its jobs stay 'running' with a lease
    workers[0].process.wait()
    final = client.wait_until(
        lambda jobs: count(jobs, "completed") == JOBS, FINISH_TIMEOUT_S, "not every job completed"
    )
    watcher.join(FINISH_TIMEOUT_S)
    survivor_exit = stop(workers[1].process)
    results = asyncio.run(results_per_job(database_url))

    assert sorted(job["id"] for job in final) == sorted(job_ids)
    assert results == {job_id: 1 for job_id in job_ids}  # one result each: completed once
    attempts = sorted(job["attempts"] for job in final)
    assert all(1 <= n <= 3 for n in attempts), attempts
    assert attempts[-1] >= 2, "no job of the killed worker was taken over"
    assert all(job["progress"] == 1.0 and job["finished_at"] for job in final)
    # a websocket client saw every job reach completed, with progress never going back
    assert watcher.errors == []
    assert watcher.done(), watcher.last
    for job_id, seen in watcher.progress.items():
        assert seen == sorted(seen), (job_id, seen)
    assert survivor_exit == 0, workers[1].output()[-3000:]


def test_restarting_serve_on_the_embedded_default_loses_no_queued_job(
    tmp_path: Path, embedded_data_dir: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    env = clean_environment(
        HOUNSFIELD_DATA_DIR=str(embedded_data_dir),
        HOUNSFIELD_JOB_THREADS="1",
        HOUNSFIELD_INITIAL_ADMIN="false",
        **FAST_JOBS,
    )
    create_admin(env, tmp_path)

    def serve_once(n: int) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{n}.log"
        process = start(["serve", "--port", str(port)], env, tmp_path, log)
        processes.append(process)
        server = Server(process=process, port=port, log=log)
        server.wait_healthy()
        return server

    first = serve_once(1)
    client = Client.for_server(first)
    job_ids = client.submit(client.upload_series(), 8)
    waiting = client.jobs()
    first_exit = stop(first.process)

    second = serve_once(2)
    client = Client(base_url=f"{second.base_url}/api/v1", headers=client.headers)
    final = client.wait_until(
        lambda jobs: count(jobs, "completed") == len(job_ids),
        FINISH_TIMEOUT_S,
        "queued jobs were lost over the restart",
    )
    second_exit = stop(second.process)

    assert count(waiting, "completed") < len(job_ids), "nothing was waiting at the restart"
    assert first_exit == 0, first.output()[-3000:]
    assert sorted(job["id"] for job in final) == sorted(job_ids)
    assert all(job["attempts"] == 1 for job in final)  # handed back jobs keep their attempts
    assert second_exit == 0, second.output()[-3000:]


@pytest.mark.parametrize(
    ("variables", "mentioned"),
    [
        ({"HOUNSFIELD_DATABASE_URL": "postgresql://127.0.0.1:5432/x"}, "HOUNSFIELD_BROKER_URL"),
        ({"HOUNSFIELD_BROKER_URL": "redis://127.0.0.1:6379/0"}, "HOUNSFIELD_DATABASE_URL"),
        ({"HOUNSFIELD_BROKER_URL": "kafka://q:1"}, "HOUNSFIELD_BROKER_URL"),
    ],
)
def test_a_worker_without_what_it_needs_stops_with_one_line(
    tmp_path: Path, variables: dict[str, str], mentioned: str
) -> None:
    result = subprocess.run(
        [*hounsfield_command(), "worker", "--processes", "2"],
        env=clean_environment(HOUNSFIELD_DATA_DIR=str(tmp_path / "data"), **variables),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and mentioned in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_whose_broker_does_not_answer_stops_with_one_line(
    tmp_path: Path, database_url: str
) -> None:
    result = subprocess.run(
        [*hounsfield_command(), "worker"],
        env=clean_environment(
            HOUNSFIELD_DATA_DIR=str(tmp_path / "data"),
            HOUNSFIELD_DATABASE_URL=database_url,
            HOUNSFIELD_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
            HOUNSFIELD_LOG_LEVEL="error",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert "unavailable" in result.stderr.splitlines()[-1], result.stderr
    assert "Traceback" not in result.stderr
