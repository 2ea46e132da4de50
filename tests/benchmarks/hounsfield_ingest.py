"""(a) Ingest of a 512x512 CT series over HTTP into ``hounsfield serve`` on the embedded default.

The client is ``hounsfield ingest``'s own (``entrypoints.ingest``): DICOM files of the study in
batches of ``--batch-size`` per ``POST /api/v1/studies``, ``--concurrency`` requests in flight.
Every run sends a freshly generated series (new UIDs, same pixels), so nothing is a duplicate.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

import httpx

from entrypoints.ingest import Credentials, ingest, plan_ingest
from tests.benchmarks.data import write_series
from tests.benchmarks.processes import (
    BenchmarkError,
    Process,
    clean_environment,
    free_port,
    hounsfield_command,
    start,
)
from tests.benchmarks.results import HttpRuns

UNLIMITED_UPLOADS_PER_MINUTE = "1000000"


def serve(workdir: Path, *, workers: int = 1) -> tuple[Process, str, str]:
    """``hounsfield serve --workers N`` on a new data dir; returns it, its URL and an upload
    API key."""
    port = free_port()
    env = clean_environment(
        HOUNSFIELD_DATA_DIR=str(workdir / "data"),
        # The default (100 uploads a minute per client) would throttle the one-file-per-
        # request runs; the benchmark measures the server, not its rate limit.
        HOUNSFIELD_RATE_LIMIT_UPLOADS_PER_MINUTE=UNLIMITED_UPLOADS_PER_MINUTE,
    )
    server = start(
        "hounsfield serve",
        [*hounsfield_command(), "serve", "--port", str(port), "--workers", str(workers)],
        log=workdir / "serve.log",
        cwd=workdir,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_for(f"{url}/health")
        return server, url, _upload_key(server, url)
    except BaseException:
        server.stop()
        raise


def _upload_key(server: Process, url: str) -> str:
    """Sign in as the generated admin, make a centre and a studies key for it."""
    match = re.search(r"password\s+(\S+)", server.output())
    if not match:
        raise BenchmarkError(f"serve printed no admin password: {server.tail()}")
    with httpx.Client(base_url=f"{url}/api/v1", timeout=30.0) as api:
        token = api.post("/auth/token", data={"username": "admin", "password": match.group(1)})
        _expect(token, 200)
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        centre = _expect(api.post("/centres", json={"name": "Benchmark centre"}), 201)
        key = api.post(
            "/api-keys",
            json={
                "name": "benchmark",
                "scopes": ["studies:read", "studies:write"],
                "centre_id": centre.json()["id"],
            },
        )
        return str(_expect(key, 201).json()["key"])


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise BenchmarkError(
            f"{response.request.method} {response.request.url.path}: {response.status_code}"
            f" {response.text[:300]}"
        )
    return response


def upload(workdir: Path, url: str, key: str, runs: HttpRuns, *, slices: int) -> None:
    """One fresh series through ``hounsfield ingest``'s client; adds the outcome to ``runs``."""
    folder = workdir / f"series-b{runs.files_per_request}-c{runs.concurrency}"
    written = write_series(folder, slices=slices)
    try:
        plan = plan_ingest(folder, batch_size=runs.files_per_request)
        started = time.perf_counter()
        summary = asyncio.run(
            ingest(
                plan,
                url=url,
                credentials=Credentials(api_key=key),
                concurrency=runs.concurrency,
            )
        )
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    runs.add(
        files=written.files, size_bytes=written.size_bytes, seconds=seconds, stored=summary.stored
    )
    if summary.duplicates:
        runs.problems.append(f"{summary.duplicates} duplicates")
    for problem in (*summary.rejected, *summary.failed)[:1]:
        runs.problems.append(f"{problem.name}: {problem.reason} ({problem.status})")
    if summary.aborted:
        runs.problems.append(summary.aborted)
