"""Job throughput and queueing overhead: ``hounsfield serve`` (API) + ``hounsfield worker``
processes on an embedded PostgreSQL and Redis, running demo-model analyses of a small
synthetic CT series.

    .venv/bin/python -m tests.benchmarks.jobs [--jobs 24] [--samples 20]

prints the Markdown section; ``just bench`` puts it on docs/benchmarks.md with the others.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from adapters.postgres.embedded import EmbeddedPostgres
from tests.benchmarks.processes import (
    ADMIN_PASSWORD,
    BenchmarkError,
    Process,
    clean_environment,
    hounsfield_command,
    serve_with_admin,
    start,
)
from tests.benchmarks.results import Table
from tests.fixtures.imaging import synthetic_ct_series
from tests.fixtures.services import reachable

MODEL = "demo-lesion-unet"
REDIS_URL = os.environ.get("HOUNSFIELD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERIES = {"slices": 16, "rows": 48, "columns": 48}
WAIT_S = 600.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = f"{base_url}/api/v1"
        self.http = httpx.Client(base_url=self.base_url, timeout=60)
        token = self.http.post(
            "/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        if token.status_code != 200:
            raise BenchmarkError(f"signing in failed: {token.status_code} {token.text[:200]}")
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        centre = self.http.post("/centres", headers=admin, json={"name": "Benchmark"})
        key = self.http.post(
            "/api-keys",
            headers=admin,
            json={
                "name": "bench",
                "centre_id": centre.json()["id"],
                "scopes": ["studies:write", "studies:read", "jobs:write", "jobs:read"],
            },
        )
        self.http.headers["X-API-Key"] = key.json()["key"]
        files = synthetic_ct_series(**SERIES).files
        stored = self.http.post(
            "/studies", files=[("files", (f"{n}.dcm", f)) for n, f in enumerate(files)]
        )
        if stored.status_code != 201:
            raise BenchmarkError(f"upload failed: {stored.status_code} {stored.text[:200]}")
        self.study_id = stored.json()["studies"][0]["id"]

    def submit(self) -> str:
        response = self.http.post("/jobs", json={"study_id": self.study_id, "model_id": MODEL})
        if response.status_code != 201:
            raise BenchmarkError(f"submit failed: {response.status_code} {response.text[:200]}")
        return str(response.json()["id"])

    def wait(self, job_ids: list[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_S
        wanted = set(job_ids)
        while time.monotonic() < deadline:
            listed = self.http.get("/jobs", params={"limit": 1000})
            if listed.status_code != 200:
                raise BenchmarkError(f"listing jobs: {listed.status_code} {listed.text[:200]}")
            jobs = {job["id"]: job for job in listed.json() if job["id"] in wanted}
            for job in jobs.values():
                if job["status"] in ("failed", "cancelled"):
                    raise BenchmarkError(f"job {job['id']} {job['status']}: {job['error_message']}")
            if len(jobs) == len(wanted) and all(
                job["status"] == "completed" for job in jobs.values()
            ):
                return [jobs[job_id] for job_id in job_ids]
            time.sleep(0.1)
        raise BenchmarkError(f"jobs did not finish in {WAIT_S:g} s")


async def _span_s(dsn: str, job_ids: list[str]) -> float:
    """From the first job's submit (``created_at``) to the last one's ``finished_at``."""
    connection = await asyncpg.connect(dsn)
    try:
        seconds = await connection.fetchval(
            "SELECT extract(epoch FROM max(finished_at) - min(created_at)) FROM jobs "
            "WHERE id = ANY($1::uuid[])",
            [uuid.UUID(j) for j in job_ids],
        )
    finally:
        await connection.close()
    return float(seconds)


async def _queue_delays_s(dsn: str, job_ids: list[str]) -> list[float]:
    """Submit (``created_at``, set by the API) to claim (``started_at``, set by the worker)."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT extract(epoch FROM started_at - created_at) AS s FROM jobs "
            "WHERE id = ANY($1::uuid[])",
            [uuid.UUID(j) for j in job_ids],
        )
    finally:
        await connection.close()
    return [float(row["s"]) for row in rows]


def benchmark(workdir: Path, *, jobs: int = 24, samples: int = 20) -> Table:
    table = Table(
        title="Jobs: throughput and queueing overhead",
        headers=[
            "measure",
            "worker processes",
            "jobs",
            "seconds",
            "jobs/minute",
            "median ms",
            "p95 ms",
        ],
        notes=[
            "`hounsfield serve` (API only) and `hounsfield worker --processes N --threads 1` on"
            " an embedded PostgreSQL and Redis, all on this machine. Each job is a full"
            f" demo-model analysis (`{MODEL}`, ONNX on CPU) of a synthetic CT series of"
            f" {SERIES['slices']} slices of {SERIES['rows']}x{SERIES['columns']}: load, volume,"
            " pipeline, DICOM SEG, result. Each worker process gets cores / processes"
            " onnxruntime threads (`HOUNSFIELD_INFERENCE_THREADS`). Throughput: all jobs"
            " submitted at once, timed from"
            " the first job's `created_at` to the last one's `finished_at` (database"
            " timestamps: the client's polling is not counted). Queueing overhead: one job at"
            " a time to"
            " an idle worker, from the job's `created_at` (the API's commit) to its"
            " `started_at` (the worker's claim): the commit, the broker round trip, Dramatiq's"
            " delivery and the claim transaction."
        ],
    )
    parts = urlsplit(REDIS_URL)
    if not reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
        raise BenchmarkError(f"Redis is not reachable at {REDIS_URL}")
    server_db = EmbeddedPostgres(workdir / "pg", database="hounsfield")
    dsn = server_db.start()
    running: list[Process] = []
    try:
        env = clean_environment(
            HOUNSFIELD_DATA_DIR=str(workdir / "data"),
            HOUNSFIELD_DATABASE_URL=dsn,
            HOUNSFIELD_BROKER_URL=REDIS_URL,
            HOUNSFIELD_JOB_QUEUE_NAME=f"bench-jobs-{uuid.uuid4().hex[:8]}",
            HOUNSFIELD_LOG_LEVEL="warning",
            HOUNSFIELD_RATE_LIMIT_READS_PER_MINUTE="1000000",
            HOUNSFIELD_RATE_LIMIT_ANALYSES_PER_MINUTE="1000000",
        )
        serve, base_url = serve_with_admin(workdir, env)
        running.append(serve)
        api = Api(base_url)
        cores = len(os.sched_getaffinity(0))
        for processes in (1, 2):
            threads = max(1, cores // processes)
            workers = start(
                f"hounsfield worker x{processes}",
                [*hounsfield_command(), "worker", "--processes", str(processes), "--threads", "1"],
                log=workdir / f"worker-{processes}.log",
                cwd=workdir,
                env=env | {"HOUNSFIELD_INFERENCE_THREADS": str(threads)},
            )
            running.append(workers)
            api.wait([api.submit() for _ in range(2 * processes)])  # warm: models loaded
            if processes == 1:
                one_by_one = []
                for _ in range(samples):
                    one_by_one += [job["id"] for job in api.wait([api.submit()])]
                delays_ms = [s * 1000 for s in asyncio.run(_queue_delays_s(dsn, one_by_one))]
                table.rows.append(
                    [
                        "queueing overhead (idle worker)",
                        "1",
                        str(len(delays_ms)),
                        "-",
                        "-",
                        f"{statistics.median(delays_ms):.1f}",
                        f"{_percentile(delays_ms, 0.95):.1f}",
                    ]
                )
            batch = [job["id"] for job in api.wait([api.submit() for _ in range(jobs)])]
            seconds = asyncio.run(_span_s(dsn, batch))
            table.rows.append(
                [
                    "throughput",
                    str(processes),
                    str(jobs),
                    f"{seconds:.1f}",
                    f"{jobs / seconds * 60:.1f}",
                    "-",
                    "-",
                ]
            )
            workers.stop()
    finally:
        for process in reversed(running):
            process.stop()
        server_db.stop()
    return table


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.jobs")
    parser.add_argument("--jobs", type=int, default=24, help="jobs per throughput run")
    parser.add_argument("--samples", type=int, default=20, help="jobs timed one at a time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hounsfield-bench-") as workdir:
        table = benchmark(Path(workdir), jobs=args.jobs, samples=args.samples)
    print("\n".join(table.markdown()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
