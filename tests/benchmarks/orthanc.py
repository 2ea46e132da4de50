"""(c) The same upload into Orthanc on the same machine, for comparison.

Orthanc (the Debian package: ``apt-get install -y orthanc orthanc-dicomweb``) runs with a
temporary storage and index directory and its default SQLite index; each file is one
``POST /instances`` (Orthanc's REST API takes one instance per request), with the same number
of requests in flight as the Hounsfield rows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.benchmarks.data import write_series
from tests.benchmarks.processes import Process, free_port, start
from tests.benchmarks.results import HttpRuns

INSTALL = "apt-get install -y orthanc orthanc-dicomweb"


def orthanc_binary() -> str | None:
    return shutil.which("Orthanc") or shutil.which("orthanc")


def orthanc_version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "Orthanc (version unknown)"
    first = out.stdout.strip().splitlines()[:1]
    return Path(first[0]).name if first else "Orthanc (version unknown)"


def run_orthanc(binary: str, workdir: Path) -> tuple[Process, str]:
    port = free_port()
    config = {
        "Name": "hounsfield-benchmark",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageCompression": False,
        "Plugins": [],
    }
    path = workdir / "orthanc.json"
    path.write_text(json.dumps(config, indent=2))
    process = start(
        "Orthanc", [binary, str(path)], log=workdir / "orthanc.log", cwd=workdir, env={}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_for(f"{url}/system", timeout_s=60.0)
    except BaseException:
        process.stop()
        raise
    return process, url


async def _post_all(url: str, paths: Sequence[Path], concurrency: int) -> tuple[int, list[str]]:
    """POST every file to ``/instances``; (stored, problems)."""
    queue = list(reversed(paths))
    stored = 0
    problems: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300.0) as client:

        async def worker() -> None:
            nonlocal stored
            while queue:
                path = queue.pop()
                data = await asyncio.to_thread(path.read_bytes)
                response = await client.post(
                    "/instances", content=data, headers={"Content-Type": "application/dicom"}
                )
                status = response.json().get("Status") if response.is_success else None
                if status == "Success":
                    stored += 1
                else:
                    problems.append(f"{path.name}: {response.status_code} {status or ''}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return stored, problems


def upload(workdir: Path, url: str, runs: HttpRuns, *, slices: int) -> None:
    folder = workdir / f"series-c{runs.concurrency}"
    written = write_series(folder, slices=slices)
    try:
        started = time.perf_counter()
        stored, problems = asyncio.run(_post_all(url, written.paths, runs.concurrency))
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    runs.add(files=written.files, size_bytes=written.size_bytes, seconds=seconds, stored=stored)
    runs.problems += problems[:1]
