"""``hounsfield serve --workers 2`` as a real process tree on the embedded default.

The parent owns the socket and the embedded PostgreSQL; uvicorn's supervisor runs two API
processes. Both must answer requests, store uploads, run analysis jobs in their own job
threads, be replaced when one dies, and all of it (PostgreSQL included) must stop on SIGTERM.
One server is shared by the module's tests, which run in order: the last one stops it.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.test_serve import (
    Server,
    clean_environment,
    free_port,
    hounsfield_command,
    processes_mentioning,
    sign_in_as_first_admin,
)
from tests.fixtures.imaging import synthetic_ct_series

WORKERS = 2
MODEL = "demo-lesion-unet"
REPLACE_TIMEOUT_S = 15.0
JOB_TIMEOUT_S = 60.0
BURST = 20
SPLIT_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 30.0
# /proc start times are in clock ticks (10 ms); a replacement starts seconds after the others
START_TIME_TOLERANCE_S = 0.05
# A route that nothing but the bursts below ask for, so its per-process count is the share of
# the burst that process answered.
PROBE_ROUTE = "/health/detailed"

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")


@dataclass
class Deployment:
    server: Server
    data_dir: Path
    api_key: str

    @property
    def api(self) -> str:
        return f"{self.server.base_url}/api/v1"

    def explain(self) -> str:
        """The server's log tail, for assertion messages."""
        return "\nserve log (tail):\n" + "\n".join(self.server.output().splitlines()[-60:])


def api_workers(parent_pid: int) -> list[psutil.Process]:
    """The parent's spawned API processes: multiprocessing children that are neither its
    resource tracker nor PostgreSQL."""
    found = []
    for child in psutil.Process(parent_pid).children():
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if "spawn_main" in cmdline and child.status() != psutil.STATUS_ZOMBIE:
            found.append(child)
    return found


def create_api_key(server: Server) -> str:
    """Sign in as the generated admin; a centre and a key for studies and jobs in it."""
    token = sign_in_as_first_admin(server)
    assert token.status_code == 200, token.text
    admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=admin, timeout=30) as api:
        centre = api.post("/centres", json={"name": "Two processes"})
        assert centre.status_code == 201, centre.text
        key = api.post(
            "/api-keys",
            json={
                "name": "e2e",
                "centre_id": centre.json()["id"],
                "scopes": ["studies:write", "studies:read", "jobs:write", "jobs:read"],
            },
        )
        assert key.status_code == 201, key.text
        return str(key.json()["key"])


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    # Outside pytest's tmp_path, as tests.fixtures.postgres.embedded_data_dir explains: run as
    # root, the embedded server's own user must traverse every parent directory.
    root = Path(tempfile.mkdtemp(prefix="hounsfield-processes-"))
    data_dir = root / "data"
    port = free_port()
    log = root / "serve.log"
    env = clean_environment(
        HOUNSFIELD_DATA_DIR=str(data_dir),
        HOUNSFIELD_RATE_LIMIT_READS_PER_MINUTE="100000",  # the tests poll
        HOUNSFIELD_LOG_LEVEL="warning",
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*hounsfield_command(), "serve", "--port", str(port), "--workers", str(WORKERS)],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process=process, port=port, log=log)
    try:
        server.wait_healthy()
        yield Deployment(server=server, data_dir=data_dir, api_key=create_api_key(server))
    finally:
        if process.poll() is None:
            process.kill()  # the shutdown test did not get to stop it; leave nothing behind
            process.wait()
            for pid in processes_mentioning(str(data_dir)):
                psutil.Process(pid).kill()
        shutil.rmtree(root, ignore_errors=True)


def requests_counted(metrics_text: str, route: str) -> int:
    """Requests to ``route`` in one process's Prometheus exposition."""
    pattern = rf'^hounsfield_http_requests_total\{{[^}}]*route="{re.escape(route)}"[^}}]*\}} (\S+)$'
    return int(sum(float(value) for value in re.findall(pattern, metrics_text, re.M)))


def wait_for_job(api: httpx.Client, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = api.get(f"/jobs/{job_id}")
        assert job.status_code == 200, job.text
        body: dict[str, object] = job.json()
        if body["status"] in {"completed", "failed", "cancelled"} or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def answered_by_both(base_url: str) -> tuple[int, int] | None:
    """Bursts of requests on fresh connections until a ``/metrics`` scrape proves that more
    than one process answered them: (answered by the scraped process, sent), or None.

    The kernel hands each new connection to one of the processes accepting on the shared
    socket, and ``/metrics`` counts the requests of the process that answers the scrape; a
    count strictly between none and all means another process answered the rest. Bursts
    repeat because a process still starting accepts nothing yet.
    """
    sent = 0
    deadline = time.monotonic() + SPLIT_TIMEOUT_S
    while time.monotonic() < deadline:
        for _ in range(BURST):
            answered = httpx.get(f"{base_url}{PROBE_ROUTE}", timeout=10)
            assert answered.status_code == 200, answered.text
        sent += BURST
        scrape = httpx.get(f"{base_url}/metrics", timeout=10)
        assert scrape.status_code == 200, scrape.text
        seen = requests_counted(scrape.text, PROBE_ROUTE)
        if 0 < seen < sent:
            return seen, sent
    return None


def wait_for_replacement(parent_pid: int, before: list[psutil.Process]) -> psutil.Process | None:
    """The API process started after ``before`` was listed, once there are WORKERS again."""
    known = {process.pid for process in before}
    deadline = time.monotonic() + REPLACE_TIMEOUT_S
    while time.monotonic() < deadline:
        now = api_workers(parent_pid)
        new = [process for process in now if process.pid not in known]
        if new and len(now) == WORKERS:
            return new[0]
        time.sleep(0.2)
    return None


def answers_requests(base_url: str, process: psutil.Process) -> bool:
    """Whether ``process`` answers a ``/metrics`` scrape within READY_TIMEOUT_S: the scrape's
    ``process_start_time_seconds`` (from /proc, as psutil reads it) names the answering
    process."""
    started = process.create_time()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        scrape = httpx.get(f"{base_url}/metrics", timeout=10)
        found = re.search(r"^process_start_time_seconds (\S+)$", scrape.text, re.M)
        if found and abs(float(found.group(1)) - started) < START_TIME_TOLERANCE_S:
            return True
        time.sleep(0.05)
    return False


def test_two_processes_share_the_port_store_uploads_run_jobs_and_are_replaced(
    deployment: Deployment,
) -> None:
    server = deployment.server
    workers = api_workers(server.process.pid)

    assert re.search(r"^\s*processes\s+2\s*$", server.output(), re.M), deployment.explain()
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    assert len(workers) == WORKERS, ([w.cmdline() for w in workers], deployment.explain())

    split = answered_by_both(server.base_url)
    assert split is not None, "one process answered every request" + deployment.explain()

    files = synthetic_ct_series(slices=16, rows=48, columns=48).files
    with httpx.Client(
        base_url=deployment.api, headers={"X-API-Key": deployment.api_key}, timeout=60
    ) as api:
        upload = api.post(
            "/studies", files=[("files", (f"{n}.dcm", data)) for n, data in enumerate(files)]
        )
        assert upload.status_code == 201, upload.text + deployment.explain()
        study_id = upload.json()["studies"][0]["id"]
        listed = api.get("/studies")
        assert listed.status_code == 200, listed.text
        assert [study["id"] for study in listed.json()] == [study_id]
        instances = api.get(f"/studies/{study_id}/instances")
        assert instances.status_code == 200, instances.text
        assert len(instances.json()) == len(files)
        stored = [api.get(f"/studies/{study_id}/instances/{n}") for n in range(1, len(files) + 1)]
        assert [r.status_code for r in stored] == [200] * len(files)
        assert sorted(r.content for r in stored) == sorted(files)  # byte for byte

        submitted = api.post("/jobs", json={"study_id": study_id, "model_id": MODEL})
        assert submitted.status_code == 201, submitted.text
        job = wait_for_job(api, submitted.json()["id"])
        assert job["status"] == "completed", f"{job}" + deployment.explain()

    victim = workers[0]
    victim.send_signal(signal.SIGKILL)
    replacement = wait_for_replacement(server.process.pid, workers)
    assert replacement is not None, f"no process replaced {victim.pid}" + deployment.explain()
    assert not psutil.pid_exists(victim.pid) or victim.status() == psutil.STATUS_ZOMBIE
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    survivor = workers[1]
    # the check below tells the processes apart by start time: it needs them to differ
    assert replacement.create_time() - survivor.create_time() > START_TIME_TOLERANCE_S
    assert answers_requests(server.base_url, replacement), (
        f"the replacement {replacement.pid} never answered" + deployment.explain()
    )


def test_sigterm_stops_every_process_and_the_embedded_database(deployment: Deployment) -> None:
    server = deployment.server
    pgdata = deployment.data_dir / "postgres"
    workers = api_workers(server.process.pid)
    postgres = processes_mentioning(str(pgdata))
    started = time.monotonic()

    exit_code = server.terminate()
    stopped_s = time.monotonic() - started

    assert workers, "the API processes were found before the stop"
    assert postgres, "the embedded PostgreSQL was found before the stop"
    assert exit_code == 0, deployment.explain()
    assert stopped_s < 60
    assert [w.pid for w in workers if w.is_running() and w.status() != "zombie"] == []
    assert processes_mentioning(str(pgdata)) == [], deployment.explain()
    assert not (pgdata / "postmaster.pid").exists()
