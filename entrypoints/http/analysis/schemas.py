"""API schemas of analysis results, separate from the domain's ``AnalysisResult``.

``GET /jobs/{id}/result`` answers :class:`ResultRead` (the result as stored, every IBSI
feature per detection); ``GET /analysis/{id}`` answers :class:`AnalysisRead`, the seed
systems' shape: lesions with region, location, coordinates, confidence and size, a quality
assessment and recommendations.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from domain.analysis import AnalysisResult, Detection, InputMetadata, ProcessingTimes
from domain.findings import QualityAssessment, assess, recommendations
from domain.metrics import TumorMetrics


class Box(msgspec.Struct, frozen=True, kw_only=True):
    """Half-open voxel index box, axis order (z, y, x) = (slice, row, column)."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]


class PatientBoxRead(msgspec.Struct, frozen=True, kw_only=True):
    """Axis-aligned box in patient coordinates (DICOM LPS, mm), voxel edges included."""

    minimum_mm: tuple[float, float, float]
    maximum_mm: tuple[float, float, float]


class MetricsRead(msgspec.Struct, frozen=True, kw_only=True):
    """IBSI morphology (codes in docs/models.md and ``domain.metrics``) plus the seed names."""

    volume_mm3: float
    surface_area_mm2: float
    diameter_mm: float
    sphericity: float
    elongation: float
    compactness: float
    volume_mesh_mm3: float
    volume_voxel_mm3: float
    surface_to_volume_ratio: float
    compactness_1: float
    compactness_2: float
    spherical_disproportion: float
    asphericity: float
    centre_of_mass_shift_mm: float
    maximum_3d_diameter_mm: float
    major_axis_length_mm: float
    minor_axis_length_mm: float
    least_axis_length_mm: float
    flatness: float
    centre_of_mass_mm: tuple[float, float, float]
    surface_area_estimate_mm2: float | None
    voxel_count: int | None


def metrics_read(metrics: TumorMetrics) -> MetricsRead:
    fields = msgspec.structs.asdict(metrics)
    return MetricsRead(
        **fields,
        volume_mm3=metrics.volume_mm3,
        diameter_mm=metrics.diameter_mm,
        compactness=metrics.compactness,
    )


class DetectionRead(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    confidence: float
    region: str | None
    voxel_box: Box
    patient_box: PatientBoxRead
    segment_number: int | None
    """Its segment in the job's DICOM SEG (``GET /jobs/{id}/mask``)."""
    metrics: MetricsRead | None


class ResultRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    job_id: UUID
    study_id: UUID
    centre_id: UUID
    model_id: str
    model_version: str
    detections: list[DetectionRead]
    summary: str
    overall_confidence: float
    """Mean confidence of the detections; 0 when there are none."""
    image_quality_score: float | None
    input: InputMetadata
    times: ProcessingTimes
    mask_url: str | None
    """Where the DICOM SEG of the detections is, when one was written."""
    created_at: datetime


def detection_read(detection: Detection) -> DetectionRead:
    return DetectionRead(
        label=detection.label,
        confidence=detection.confidence,
        region=detection.region,
        voxel_box=Box(start=detection.voxel_box.start, stop=detection.voxel_box.stop),
        patient_box=PatientBoxRead(
            minimum_mm=detection.patient_box.minimum_mm,
            maximum_mm=detection.patient_box.maximum_mm,
        ),
        segment_number=detection.segment_number,
        metrics=None if detection.metrics is None else metrics_read(detection.metrics),
    )


def mask_url(result: AnalysisResult, api_path: str) -> str | None:
    return None if result.segmentation_key is None else f"{api_path}/jobs/{result.job_id}/mask"


def result_read(result: AnalysisResult, api_path: str) -> ResultRead:
    return ResultRead(
        id=result.id,
        job_id=result.job_id,
        study_id=result.study_id,
        centre_id=result.centre_id,
        model_id=result.model_id,
        model_version=result.model_version,
        detections=[detection_read(d) for d in result.detections],
        summary=result.summary,
        overall_confidence=result.overall_confidence,
        image_quality_score=result.image_quality_score,
        input=result.input,
        times=result.times,
        mask_url=mask_url(result, api_path),
        created_at=result.created_at,
    )


# -- the seed systems' shape ------------------------------------------------------------


class Location(msgspec.Struct, frozen=True, kw_only=True):
    """The lesion's centre (mean voxel position) in patient LPS mm."""

    x: float
    y: float
    z: float


class Coordinates(msgspec.Struct, frozen=True, kw_only=True):
    voxel_box: Box
    patient_box: PatientBoxRead


class LesionSize(msgspec.Struct, frozen=True, kw_only=True):
    volume_mm3: float
    surface_area_mm2: float
    diameter_mm: float
    sphericity: float
    elongation: float
    compactness: float


class LesionRead(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    """1-based, in the order of ``detections`` (and the SEG's segment numbers)."""
    type: str
    region: str | None
    location: Location | None
    coordinates: Coordinates
    confidence: float
    size: LesionSize | None
    metrics: MetricsRead | None


class ModelRead(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: str


class AnalysisRead(msgspec.Struct, frozen=True, kw_only=True):
    analysis_id: UUID
    job_id: UUID
    study_id: UUID
    model: ModelRead
    lesions: list[LesionRead]
    lesion_count: int
    summary: str
    overall_confidence: float
    quality_assessment: QualityAssessment
    recommendations: list[str]
    input: InputMetadata
    processing: ProcessingTimes
    mask_url: str | None
    created_at: datetime


def lesion_read(number: int, detection: Detection) -> LesionRead:
    metrics = detection.metrics
    box = detection_read(detection)
    return LesionRead(
        id=number,
        type=detection.label,
        region=detection.region,
        location=None
        if metrics is None
        else Location(
            x=metrics.centre_of_mass_mm[0],
            y=metrics.centre_of_mass_mm[1],
            z=metrics.centre_of_mass_mm[2],
        ),
        coordinates=Coordinates(voxel_box=box.voxel_box, patient_box=box.patient_box),
        confidence=detection.confidence,
        size=None
        if metrics is None
        else LesionSize(
            volume_mm3=metrics.volume_mm3,
            surface_area_mm2=metrics.surface_area_mm2,
            diameter_mm=metrics.diameter_mm,
            sphericity=metrics.sphericity,
            elongation=metrics.elongation,
            compactness=metrics.compactness,
        ),
        metrics=box.metrics,
    )


def analysis_read(result: AnalysisResult, api_path: str) -> AnalysisRead:
    return AnalysisRead(
        analysis_id=result.id,
        job_id=result.job_id,
        study_id=result.study_id,
        model=ModelRead(id=result.model_id, version=result.model_version),
        lesions=[lesion_read(n, d) for n, d in enumerate(result.detections, start=1)],
        lesion_count=len(result.detections),
        summary=result.summary,
        overall_confidence=result.overall_confidence,
        quality_assessment=assess(result),
        recommendations=recommendations(result),
        input=result.input,
        processing=result.times,
        mask_url=mask_url(result, api_path),
        created_at=result.created_at,
    )
