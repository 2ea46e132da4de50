"""The outcome of an analysis job: detections with geometry, metrics and confidence."""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.metrics import TumorMetrics
from domain.values import Id


class VoxelBox(msgspec.Struct, frozen=True, kw_only=True):
    """A half-open box in voxel indices, axis order (z, y, x) = (slice, row, column)."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]

    def __post_init__(self) -> None:
        if any(b < a for a, b in zip(self.start, self.stop, strict=True)):
            raise ValueError(f"box stop {self.stop} must not precede start {self.start}")


class PatientBox(msgspec.Struct, frozen=True, kw_only=True):
    """An axis-aligned box in patient coordinates (DICOM LPS, mm)."""

    minimum_mm: tuple[float, float, float]
    maximum_mm: tuple[float, float, float]


class Detection(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    confidence: float
    voxel_box: VoxelBox
    patient_box: PatientBox
    mask_key: str | None = None
    metrics: TumorMetrics | None = None
    region: str | None = None
    """Where the lesion lies in the scanned volume, in patient terms (e.g. ``left anterior
    superior``), relative to the volume's centre."""
    segment_number: int | None = None
    """Its segment in the DICOM SEG at ``mask_key`` (1..n)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")


class InputMetadata(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    dimensions: tuple[int, ...]
    voxel_spacing_mm: tuple[float, ...]
    quality_findings: tuple[str, ...] = ()
    """What lowered the image quality score, in words (empty when nothing did)."""


class ProcessingTimes(msgspec.Struct, frozen=True, kw_only=True):
    preprocessing_s: float = 0.0
    inference_s: float = 0.0
    postprocessing_s: float = 0.0


class AnalysisResult(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    job_id: Id
    study_id: Id
    centre_id: Id
    model_id: str
    model_version: str
    detections: tuple[Detection, ...] = ()
    summary: str = ""
    overall_confidence: float = 0.0
    image_quality_score: float | None = None
    input: InputMetadata
    times: ProcessingTimes = ProcessingTimes()
    segmentation_key: str | None = None
    """Blob key of the DICOM SEG of all detections, when one was written."""
    created_at: datetime
