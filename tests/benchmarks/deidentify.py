"""De-identification throughput: the pydicom adapter in one process, and
``hounsfield anonymize`` on a folder with one and with several worker processes."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from adapters.dicom.deidentify import PydicomDeidentifier
from domain.deidentification import DeidentificationOptions, DeidentificationPlan
from entrypoints.folder_tools import run_anonymize
from tests.benchmarks.results import Table, rate
from tests.fixtures.imaging import synthetic_ct_series

HEADERS = ["what", "files", "MB", "seconds (median)", "files/s", "MB/s"]


def benchmark(workdir: Path, *, slices: int, repeat: int) -> Table:
    series = synthetic_ct_series(slices=slices, rows=512, columns=512)
    size_mb = sum(len(f) for f in series.files) / 1e6
    table = Table(
        title="De-identification (PS3.15 Basic Profile)",
        headers=HEADERS,
        notes=[
            f"{slices} synthetic 512x512 CT slices (16-bit, explicit VR little endian). The"
            " adapter row times `PydicomDeidentifier.deidentify` on bytes in memory; the CLI"
            " rows time `hounsfield anonymize` (`run_anonymize`) from a folder to a folder,"
            " report included."
        ],
    )
    deidentifier = PydicomDeidentifier()
    timings = []
    for _ in range(repeat):
        plan = DeidentificationPlan.fresh(DeidentificationOptions())
        started = time.perf_counter()
        for data in series.files:
            deidentifier.deidentify(data, plan)
        timings.append(time.perf_counter() - started)
    table.rows.append(_row("adapter, 1 process", slices, size_mb, timings))
    source = workdir / "in"
    source.mkdir()
    for n, data in enumerate(series.files):
        (source / f"{n:05d}.dcm").write_bytes(data)
    cores = os.cpu_count() or 1
    for workers in sorted({1, cores}):
        timings = []
        for attempt in range(repeat):
            started = time.perf_counter()
            run_anonymize(
                source,
                workdir / f"out-{workers}-{attempt}",
                DeidentificationOptions(),
                keep_names=False,
                workers=workers,
                show_progress=False,
            )
            timings.append(time.perf_counter() - started)
        table.rows.append(
            _row(f"`hounsfield anonymize`, {workers} worker(s)", slices, size_mb, timings)
        )
    return table


def _row(what: str, files: int, size_mb: float, timings: list[float]) -> list[str]:
    median = statistics.median(timings)
    return [
        what,
        str(files),
        f"{size_mb:.1f}",
        f"{median:.2f}",
        rate(files, median),
        rate(size_mb, median),
    ]
