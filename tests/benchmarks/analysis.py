"""The analysis pipeline on a 512x512x200 synthetic CT: inference with onnxruntime and with torch
on the CPU, IBSI metrics per lesion, and a whole analysis job end to end.

    .venv/bin/python -m tests.benchmarks.analysis [--repeat 2]

prints the Markdown section; ``just bench`` puts it on docs/benchmarks.md with the others.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import numpy as np
import structlog
from scipy import ndimage

from adapters.dicom.segmentation import HighdicomSegmentationWriter
from adapters.imaging_volumes import StoredFileVolumeReader
from adapters.inference import FilesystemModelRegistry, OnnxInferenceEngine, TorchInferenceEngine
from adapters.memory import MemoryAuditLog, MemoryDatabase
from adapters.storage.filesystem import FilesystemBlobStore
from adapters.system import SystemClock, UuidIdGenerator
from domain.jobs import Job, JobStage
from domain.metrics import compute_tumor_metrics
from domain.pipeline import analyse_volume
from domain.pipeline.windows import patch_starts
from domain.ports.inference import InferenceEngine, ModelManifest
from domain.services.analyses import AnalysisService
from domain.services.auditing import Auditor
from domain.studies import Instance, Series, Study, new_study_code
from model_export.synthetic import Phantom, synthetic_ct
from tests.benchmarks.machine import describe
from tests.benchmarks.results import Table
from tests.fixtures.analysis import dicom_ct_from_hu

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "model_export" / "models"
MODEL = "demo-lesion-unet"
SHAPE = (200, 512, 512)
SPACING = (1.25, 0.7, 0.7)
"""A common chest/abdomen CT grid: 0.7 mm pixels, 1.25 mm slices (250 x 358 x 358 mm)."""
SEED = 7


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _inference_rows(
    phantom: Phantom, manifest: ModelManifest, repeat: int
) -> tuple[list[list[str]], dict[str, float]]:
    volume = phantom.as_volume()
    engines: dict[str, InferenceEngine] = {
        "onnxruntime (CPUExecutionProvider)": OnnxInferenceEngine(MODELS, use_cuda=False),
        "torch (TorchScript, CPU)": TorchInferenceEngine(MODELS, use_cuda=False),
    }
    rows: list[list[str]] = []
    medians: dict[str, float] = {}
    for name, engine in engines.items():
        engine.load(manifest)  # sessions are made once per process; not part of a run
        runs = [analyse_volume(volume, manifest, engine) for _ in range(repeat)]
        seconds = [run.stage_seconds["inference"] for run in runs]
        grid = [max(n, p) for n, p in zip(runs[0].model_shape, manifest.patch_size, strict=True)]
        patches = math.prod(
            len(patch_starts(n, p, 0.5)) for n, p in zip(grid, manifest.patch_size, strict=True)
        )
        batches = math.ceil(patches / 4)
        medians[name] = _median(seconds)
        rows.append(
            [
                name,
                engine.device,
                "x".join(str(n) for n in runs[0].model_shape),
                str(batches),
                f"{_median(seconds):.2f}",
                f"{min(seconds):.2f}-{max(seconds):.2f}",
                f"{_median(seconds) / max(batches, 1) * 1000:.0f}",
                str(len(runs[0].lesions)),
            ]
        )
    return rows, medians


def _metrics_rows(phantom: Phantom, repeat: int) -> list[list[str]]:
    rows: list[list[str]] = []
    volume = phantom.as_volume()
    boxes = ndimage.find_objects(phantom.lesion_labels)
    for lesion in phantom.lesions:
        box = boxes[lesion.label - 1]
        if box is None:
            continue
        mask = phantom.lesion_labels[box] == lesion.label
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            compute_tumor_metrics(
                mask,
                volume.spacing,
                direction=volume.direction,
                intensities=np.maximum(phantom.hu[box] + 1024.0, 0.0),
            )
            seconds.append(time.perf_counter() - started)
        diameter = 2.0 * float(np.cbrt(np.prod(lesion.semi_axes_mm)))
        rows.append(
            [
                f"{lesion.kind}, {diameter:.0f} mm",
                str(int(mask.sum())),
                "x".join(str(n) for n in mask.shape),
                f"{_median(seconds) * 1000:.0f}",
            ]
        )
    return rows


async def _end_to_end(phantom: Phantom, workdir: Path, repeat: int) -> tuple[list[float], int]:
    """Seconds of the analysis job handler from stored DICOM files to a stored result and SEG,
    on the filesystem blob store and the in-memory database."""
    db, blobs = MemoryDatabase(), FilesystemBlobStore(workdir / "blobs")
    clock, ids = SystemClock(), UuidIdGenerator()
    z, y, x = phantom.origin_mm
    files = dicom_ct_from_hu(phantom.hu, spacing_mm=SPACING, origin_lps=(x, y, z))
    now = datetime.now(UTC)
    study = Study(
        id=uuid4(),
        centre_id=uuid4(),
        code=new_study_code(),
        study_instance_uid="1.2.826.0.1.3680043.8.498.1",
        created_at=now,
        updated_at=now,
    )
    series = Series(
        id=uuid4(),
        study_id=study.id,
        centre_id=study.centre_id,
        series_instance_uid="1.2.826.0.1.3680043.8.498.2",
        created_at=now,
    )
    async with db.unit_of_work() as uow:
        await uow.studies.add(study)
        await uow.series.add(series)
        for number, data in enumerate(files, start=1):
            instance = Instance(
                id=uuid4(),
                series_id=series.id,
                study_id=study.id,
                centre_id=study.centre_id,
                sop_instance_uid=f"1.2.826.0.1.3680043.8.498.3.{number}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                instance_number=number,
                storage_key=f"centres/{study.centre_id}/studies/{study.id}/{number}.dcm",
                size_bytes=len(data),
                rows=SHAPE[1],
                columns=SHAPE[2],
                created_at=now,
            )
            await blobs.put(instance.storage_key, data)
            await uow.instances.add(instance)
        await uow.commit()
    engine = OnnxInferenceEngine(MODELS, use_cuda=False)
    service = AnalysisService(
        uow=db.unit_of_work,
        blobs=blobs,
        models=FilesystemModelRegistry(MODELS),
        engine=engine,
        volumes=StoredFileVolumeReader(),
        segmentations=HighdicomSegmentationWriter(),
        clock=clock,
        ids=ids,
        auditor=Auditor(log=MemoryAuditLog(), clock=clock, ids=ids),
    )

    async def ignore(stage: JobStage, progress: float, message: str | None = None) -> None:
        pass

    manifest = FilesystemModelRegistry(MODELS).get(MODEL)
    assert manifest is not None
    engine.load(manifest)
    seconds: list[float] = []
    found = 0
    for _ in range(repeat):
        job = Job(
            id=uuid4(),
            centre_id=study.centre_id,
            study_id=study.id,
            model_id=MODEL,
            created_at=now,
            updated_at=now,
        )
        started = time.perf_counter()
        await service(job, ignore)
        seconds.append(time.perf_counter() - started)
        async with db.unit_of_work() as uow:
            result = await uow.results.get_for_job(job.id)
        assert result is not None and (not result.detections or result.segmentation_key)
        found = len(result.detections)
    return seconds, found


def benchmark(workdir: Path, *, repeat: int = 2) -> list[Table]:
    """Three tables: inference per engine, metrics per lesion, one job end to end."""
    manifest = FilesystemModelRegistry(MODELS).get(MODEL)
    if manifest is None:
        raise RuntimeError(f"the {MODEL} model is not in {MODELS}")
    started = time.perf_counter()
    phantom = synthetic_ct(SHAPE, SPACING, seed=SEED)
    generated_s = time.perf_counter() - started
    table = Table(
        title="Analysis: 512x512x200 synthetic CT, demo model on the CPU",
        headers=[
            "engine",
            "device",
            "model grid (z x y x x)",
            "batches of 4 patches",
            "inference seconds (median)",
            "range",
            "ms per batch",
            "lesions found",
        ],
        notes=[
            f"A synthetic CT phantom (`model_export.synthetic.synthetic_ct`, seed {SEED}) of"
            f" {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} voxels at {SPACING[1]} x {SPACING[2]} mm pixels"
            f" and {SPACING[0]} mm slices ({generated_s:.0f} s to generate, not timed), with"
            f" {len(phantom.lesions)} lesions. The `{MODEL}` model"
            f" ({manifest.patch_size[0]}x{manifest.patch_size[1]}x{manifest.patch_size[2]}"
            " patches at 2 x 1.5 x 1.5 mm) runs over the volume resampled to its grid: sliding"
            " window, half-patch overlap, Gaussian blending, 4 patches per call. Inference"
            " seconds are the pipeline's `inference` stage (all patch batches and the blending),"
            f" after the model was loaded; {repeat} runs per engine, median reported. Both"
            " runtimes use every core (onnxruntime intra-op threads, torch's default).",
        ],
    )
    rows, _ = _inference_rows(phantom, manifest, repeat)
    table.rows += rows

    metrics = Table(
        title="Analysis: IBSI metrics per lesion",
        headers=["lesion", "voxels", "box (z x y x x)", "milliseconds (median)"],
        notes=[
            "`domain.metrics.compute_tumor_metrics` on each ground-truth lesion of the same"
            " phantom, cropped to its box (as the pipeline measures): marching-cubes mesh,"
            " volume, area, PCA axes, maximum diameter (all mesh vertex pairs), intensity-weighted"
            f" centre; {repeat} runs each, median reported.",
        ],
        rows=_metrics_rows(phantom, repeat),
    )

    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        seconds, found = asyncio.run(_end_to_end(phantom, Path(scratch), repeat))
    whole = Table(
        title="Analysis: one job end to end",
        headers=["series", "lesions found", "seconds (median)", "range"],
        notes=[
            "The analysis job handler (`AnalysisService`) from the stored DICOM files to the"
            " stored result: read 200 files from the filesystem blob store, decode and stack"
            " them, preprocess, infer (onnxruntime on the CPU), bring the probabilities back to"
            " the 512x512x200 grid, components, IBSI metrics, write the DICOM SEG (highdicom)"
            " and store it and the result (in-memory database). The job runner's own writes"
            f" (progress, outcome) are not included; {repeat} runs, median reported.",
        ],
        rows=[
            [
                "200 CT files, 512x512, int16",
                str(found),
                f"{_median(seconds):.1f}",
                f"{min(seconds):.1f}-{max(seconds):.1f}",
            ]
        ],
    )
    return [table, metrics, whole]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.analysis", description=__doc__
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement")
    args = parser.parse_args(argv)
    # the adapters' logs go to stderr: stdout is the Markdown section
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    with tempfile.TemporaryDirectory(prefix="hounsfield-bench-") as workdir:
        tables = benchmark(Path(workdir), repeat=args.repeat)
    machine = describe(REPO)
    lines = [line for table in tables for line in table.markdown()]
    lines[2:2] = [
        f"Measured with `python -m tests.benchmarks.analysis {' '.join(argv)}`".rstrip() + ":",
        "",
        *machine.lines(),
        "",
    ]
    print("\n".join(lines).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
