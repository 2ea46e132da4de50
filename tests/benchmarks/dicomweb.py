"""(e) DICOMweb reads: QIDO-RS search latency and WADO-RS retrieve rate, Hounsfield against
Orthanc's DICOMweb plugin on the same machine and the same data.

Both servers get the same files: one ``slices``-slice 512x512 CT study and ``studies`` small
studies of one slice each (distinct patients), Hounsfield through STOW-RS (16 instances per
request), Orthanc through ``POST /instances``. Then one client, one request at a time over a
kept-alive connection, sends the same DICOMweb requests to each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.benchmarks import orthanc
from tests.benchmarks.data import write_series
from tests.benchmarks.hounsfield_ingest import UNLIMITED_UPLOADS_PER_MINUTE, _upload_key
from tests.benchmarks.processes import (
    BenchmarkError,
    Process,
    clean_environment,
    free_port,
    hounsfield_command,
    start,
)
from tests.benchmarks.results import Table
from tests.fixtures.imaging import ct_slice_dataset, to_bytes

ORTHANC_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
STOW_BATCH = 16
DICOM_ACCEPT = 'multipart/related; type="application/dicom"'
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"'
JSON_ACCEPT = "application/dicom+json"


@dataclass(frozen=True)
class Dataset:
    big_paths: list[Path]
    small_paths: list[Path]
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_id: str
    """A patient of one small study: the search that finds one study among many."""


def write_data(directory: Path, *, slices: int, studies: int) -> Dataset:
    big = write_series(directory / "big", slices=slices)
    small_dir = directory / "small"
    small_dir.mkdir(parents=True, exist_ok=True)
    small_paths = []
    hu = np.zeros((64, 64), dtype=np.float32)
    for n in range(studies):
        ds = ct_slice_dataset(
            hu=hu,
            position=(0.0, 0.0, 0.0),
            orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            pixel_spacing=(1.0, 1.0),
            slice_thickness=1.0,
            instance_number=1,
            study_instance_uid=generate_uid(),
            series_instance_uid=generate_uid(),
            sop_instance_uid=generate_uid(),
        )
        ds.PatientID = f"BENCH-{n:05d}"
        ds.PatientName = f"PATIENT^{n:05d}"
        path = small_dir / f"S{n:05d}.dcm"
        path.write_bytes(to_bytes(ds))
        small_paths.append(path)
    first = dcmread(big.paths[0], stop_before_pixels=True)
    return Dataset(
        big_paths=big.paths,
        small_paths=small_paths,
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        sop_uid=str(first.SOPInstanceUID),
        patient_id=f"BENCH-{studies // 2:05d}",
    )


def serve(workdir: Path) -> tuple[Process, str, str]:
    """``hounsfield serve`` on the embedded default, rate limits out of the way."""
    port = free_port()
    env = clean_environment(
        HOUNSFIELD_DATA_DIR=str(workdir / "data"),
        HOUNSFIELD_RATE_LIMIT_UPLOADS_PER_MINUTE=UNLIMITED_UPLOADS_PER_MINUTE,
        HOUNSFIELD_RATE_LIMIT_READS_PER_MINUTE=UNLIMITED_UPLOADS_PER_MINUTE,
    )
    server = start(
        "hounsfield serve",
        [*hounsfield_command(), "serve", "--port", str(port)],
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


def stow(url: str, key: str, paths: list[Path]) -> None:
    boundary = "bench-boundary"
    with httpx.Client(timeout=300.0, headers={"X-API-Key": key}) as client:
        for start_at in range(0, len(paths), STOW_BATCH):
            chunks = []
            for path in paths[start_at : start_at + STOW_BATCH]:
                chunks += [
                    f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                    path.read_bytes(),
                    b"\r\n",
                ]
            chunks.append(f"--{boundary}--\r\n".encode())
            response = client.post(
                f"{url}/dicomweb/studies",
                content=b"".join(chunks),
                headers={
                    "Content-Type": f"{DICOM_ACCEPT}; boundary={boundary}",
                    "Accept": JSON_ACCEPT,
                },
            )
            if response.status_code != 200:
                raise BenchmarkError(
                    f"STOW-RS answered {response.status_code}: {response.text[:300]}"
                )


def run_orthanc(binary: str, workdir: Path) -> tuple[Process, str]:
    port = free_port()
    config = {
        "Name": "hounsfield-benchmark",
        "StorageDirectory": str(workdir / "orthanc-storage"),
        "IndexDirectory": str(workdir / "orthanc-index"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StorageCompression": False,
        "Plugins": [str(ORTHANC_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
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


@dataclass
class Measured:
    query_one_ms: float
    query_all_ms: float
    instances_ms: float
    metadata_ms: float
    frame_ms: float
    retrieve_mb_s: float
    retrieve_bytes: int
    rest_list_ms: float | None = None


def _median_ms(
    client: httpx.Client,
    url: str,
    accept: str,
    repeat: int,
    check: Callable[[httpx.Response], None],
) -> float:
    for _ in range(3):  # warm-up
        check(client.get(url, headers={"Accept": accept}))
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, headers={"Accept": accept})
        times.append(time.perf_counter() - started)
        check(response)
    return statistics.median(times) * 1000


def measure(
    root: str, headers: dict[str, str], data: Dataset, *, repeat: int, rest: str | None = None
) -> Measured:
    """Time the same DICOMweb requests against ``root`` (the DICOMweb base URL); ``rest`` is
    Hounsfield's own study list with the same filter, for the cost every request pays
    (authentication, rate limits, audit)."""
    total_studies = len(data.small_paths) + 1

    def json_count(expected: int) -> Callable[[httpx.Response], None]:
        def check(response: httpx.Response) -> None:
            if response.status_code != 200 or len(response.json()) != expected:
                found = len(response.json()) if response.status_code == 200 else response.text[:200]
                raise BenchmarkError(
                    f"{response.request.url.path}: {response.status_code}, {found}"
                    f" results instead of {expected}"
                )

        return check

    def ok(response: httpx.Response) -> None:
        if response.status_code != 200:
            raise BenchmarkError(f"{response.request.url.path}: {response.status_code}")

    study = f"{root}/studies/{data.study_uid}"
    instance = f"{study}/series/{data.series_uid}/instances/{data.sop_uid}"
    slices = len(data.big_paths)
    with httpx.Client(timeout=600.0, headers=headers) as client:
        one = _median_ms(
            client,
            f"{root}/studies?PatientID={data.patient_id}",
            JSON_ACCEPT,
            repeat,
            json_count(1),
        )
        everything = _median_ms(
            client,
            f"{root}/studies?limit={total_studies}",
            JSON_ACCEPT,
            repeat,
            json_count(total_studies),
        )
        instances = _median_ms(
            client, f"{study}/instances", JSON_ACCEPT, repeat, json_count(slices)
        )
        metadata = _median_ms(
            client, f"{study}/metadata", JSON_ACCEPT, max(3, repeat // 10), json_count(slices)
        )
        frame = _median_ms(client, f"{instance}/frames/1", FRAME_ACCEPT, repeat, ok)
        rest_ms = None
        if rest is not None:
            rest_ms = _median_ms(
                client, f"{rest}/studies?patient_id={data.patient_id}", "*/*", repeat, ok
            )
        rates, size = [], 0
        for _ in range(3):
            started = time.perf_counter()
            size = 0
            with client.stream("GET", study, headers={"Accept": DICOM_ACCEPT}) as response:
                ok(response)
                for chunk in response.iter_bytes():
                    size += len(chunk)
            rates.append(size / (time.perf_counter() - started) / 1e6)
    return Measured(
        query_one_ms=one,
        query_all_ms=everything,
        instances_ms=instances,
        metadata_ms=metadata,
        frame_ms=frame,
        retrieve_mb_s=statistics.median(rates),
        retrieve_bytes=size,
        rest_list_ms=rest_ms,
    )


def benchmark(
    workdir: Path,
    *,
    slices: int,
    studies: int = 100,
    repeat: int = 50,
    with_orthanc: bool = True,
) -> Table:
    table = Table(
        title="DICOMweb reads: QIDO-RS and WADO-RS against Orthanc's DICOMweb plugin",
        headers=["request", "Hounsfield", "Orthanc + DICOMweb plugin", "Hounsfield is"],
        notes=[
            f"The same data in both: one {slices}-slice 512x512 CT study and {studies} one-slice"
            " studies of distinct patients. `hounsfield serve` on the embedded default (embedded"
            " PostgreSQL, filesystem blobs), loaded through STOW-RS; Orthanc from the Debian"
            " package with its DICOMweb plugin, default SQLite index, no compression, loaded"
            " through `POST /instances`. One client in the benchmark process sends one request"
            f" at a time on a kept-alive connection; latencies are the median of {repeat} requests"
            f" (metadata: {max(3, repeat // 10)}) after 3 warm-up requests, the retrieve rate"
            ' the median of 3 whole-study retrieves (`multipart/related; type="application/dicom"`,'
            " body bytes over wall-clock seconds)."
        ],
    )
    data = write_data(workdir / "files", slices=slices, studies=studies)
    ours = theirs = None
    server, url, key = serve(workdir)
    try:
        stow(url, key, [*data.big_paths, *data.small_paths])
        ours = measure(
            f"{url}/dicomweb", {"X-API-Key": key}, data, repeat=repeat, rest=f"{url}/api/v1"
        )
    finally:
        server.stop()
    binary = orthanc.orthanc_binary()
    if not with_orthanc:
        table.remarks.append("Orthanc skipped (`--no-orthanc`).")
    elif binary is None or not ORTHANC_PLUGIN.exists():
        table.remarks.append(
            f"Orthanc or its DICOMweb plugin is not installed here (`{orthanc.INSTALL}`)."
        )
    else:
        table.notes.append(f"Orthanc: {orthanc.orthanc_version(binary)}.")
        process, orthanc_url = run_orthanc(binary, workdir)
        try:
            _, problems = asyncio.run(
                orthanc._post_all(orthanc_url, [*data.big_paths, *data.small_paths], 4)
            )
            if problems:
                raise BenchmarkError(f"Orthanc refused {len(problems)} files: {problems[0]}")
            theirs = measure(f"{orthanc_url}/dicom-web", {}, data, repeat=repeat)
        finally:
            process.stop()
    shutil.rmtree(workdir / "files", ignore_errors=True)
    rows = [
        ("QIDO-RS study search, one match (`/studies?PatientID=`), ms", "query_one_ms"),
        (f"QIDO-RS all {studies + 1} studies (`/studies`), ms", "query_all_ms"),
        (f"QIDO-RS {slices} instances of a study, ms", "instances_ms"),
        (f"WADO-RS metadata of the {slices}-slice study, ms", "metadata_ms"),
        ("WADO-RS one frame (`/frames/1`, octet-stream), ms", "frame_ms"),
        ("WADO-RS whole study retrieve, MB/s", "retrieve_mb_s"),
    ]
    for label, attribute in rows:
        mine = getattr(ours, attribute)
        other = getattr(theirs, attribute) if theirs is not None else None
        table.rows.append(
            [
                label,
                f"{mine:.1f}",
                "-" if other is None else f"{other:.1f}",
                _comparison(mine, other, higher_is_better=attribute.endswith("_mb_s")),
            ]
        )
    if ours is not None and ours.rest_list_ms is not None:
        table.remarks.append(
            f"For scale: Hounsfield's own `GET /api/v1/studies?patient_id=` (the same API-key"
            f" check, rate-limit counters and audit record) took {ours.rest_list_ms:.1f} ms."
        )
    if ours is not None:
        table.remarks.append(
            f"The study retrieve carries {ours.retrieve_bytes / 1e6:.0f} MB (multipart framing"
            " included)."
        )
    return table


def _comparison(mine: float, other: float | None, *, higher_is_better: bool) -> str:
    if other is None or not mine or not other:
        return "-"
    factor = mine / other if higher_is_better else other / mine
    return f"{factor:.1f}x faster" if factor >= 1 else f"{1 / factor:.1f}x slower"


def main(argv: list[str]) -> int:
    """``python -m tests.benchmarks.dicomweb``: this benchmark alone, as Markdown on stdout."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.dicomweb")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-orthanc", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hounsfield-bench-"))
    try:
        table = benchmark(
            workdir,
            slices=args.slices,
            studies=args.studies,
            repeat=args.repeat,
            with_orthanc=not args.no_orthanc,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(table.markdown()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
