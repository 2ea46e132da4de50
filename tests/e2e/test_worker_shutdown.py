"""A worker stopped with SIGTERM hands a long job back without using one of its attempts.

``hounsfield serve`` (API only) + one ``hounsfield worker --processes 1 --threads 1 --grace 1``
on one PostgreSQL and one broker (Redis, then RabbitMQ). One analysis of a series big enough
to run for several seconds; once it is running, the worker gets SIGTERM, as a deployment
sends it: the worker exits 0 soon after the grace period, the job is ``queued`` again with its
attempt given back, and a second worker completes it once (one result, attempt 1).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_jobs_workers import (
    Client,
    Worker,
    broker_url,  # noqa: F401 (a fixture: pytest finds it by name)
    database_url,  # noqa: F401
    processes,  # noqa: F401
    results_per_job,
    start,
    start_api,
    stop,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc"),
]

GRACE_S = 1.0
EXIT_SLACK_S = 10.0
"""Beyond the grace period: the hand-back waits for the job's next progress report (at most
another 2 x grace), then stops a job that made none (at most grace + 2 s more), then the
process closes its pools and broker connection."""
SERIES: dict[str, Any] = {
    "slices": 64,
    "rows": 128,
    "columns": 128,
    "pixel_spacing": (3.0, 3.0),
    "slice_spacing": 4.0,
}
"""A 2 MB upload that the pipeline resamples to the demo model's 2 x 1.5 x 1.5 mm grid, about
128 x 256 x 256 voxels: some 6-7 s of analysis on two CPU cores (past the grace period)."""
TIMEOUT_S = 120.0


def job(client: Client, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{client.base_url}/jobs/{job_id}", headers=client.headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for(
    client: Client, job_id: str, done: Callable[[dict[str, Any]], bool], why: str
) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        seen = job(client, job_id)
        if done(seen):
            return seen
        time.sleep(0.05)
    pytest.fail(f"{why} within {TIMEOUT_S:g} s; job: {job(client, job_id)}")


def start_worker(env: dict[str, str], cwd: Path, n: int) -> Worker:
    log = cwd / f"worker-{n}.log"
    options = ["--processes", "1", "--threads", "1", "--grace", f"{GRACE_S:g}"]
    return Worker(start(["worker", *options], env, cwd, log), log)


def test_sigterm_hands_a_job_outliving_the_grace_back_without_using_an_attempt(
    tmp_path: Path,
    database_url: str,  # noqa: F811 (the imported fixture)
    broker_url: str,  # noqa: F811
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    env, server = start_api(tmp_path, database_url, broker_url, processes)
    first = start_worker(env, tmp_path, 1)
    processes.append(first.process)
    client = Client.for_server(server)
    [job_id] = client.submit(client.upload_series(**SERIES), 1)

    # past loading: the model runs, with progress reports, when the signal comes
    running = wait_for(
        client,
        job_id,
        lambda j: j["status"] == "running" and j["stage"] == "inference",
        "the job never reached inference",
    )
    first.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        first_exit = first.process.wait(timeout=GRACE_S + EXIT_SLACK_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker still ran {GRACE_S + EXIT_SLACK_S:g} s after SIGTERM")
    exit_s = time.monotonic() - signalled
    handed_back = job(client, job_id)

    second = start_worker(env, tmp_path, 2)
    processes.append(second.process)
    final = wait_for(
        client, job_id, lambda j: j["status"] in ("completed", "failed"), "the job never finished"
    )
    result = httpx.get(
        f"{client.base_url}/jobs/{job_id}/result", headers=client.headers, timeout=30
    )
    second_exit = stop(second.process)
    results = asyncio.run(results_per_job(database_url))

    assert running["attempts"] == 1
    assert first_exit == 0, first.output()[-3000:]
    assert exit_s >= GRACE_S, f"the running job was not given {GRACE_S:g} s to finish"
    # back on the queue, not failed or finished (a series too small for this machine would
    # finish within the grace period), and the interrupted attempt given back
    assert handed_back["status"] == "queued", (handed_back, first.output()[-3000:])
    assert handed_back["attempts"] == 0, handed_back
    assert handed_back["error_message"] is None, handed_back
    assert final["status"] == "completed", final
    assert final["attempts"] == 1, final  # the second worker's run is the job's only attempt
    assert result.status_code == 200, result.text
    assert results == {job_id: 1}  # completed once
    assert second_exit == 0, second.output()[-3000:]
