"""API schemas of ``POST /measure``: each structure in the lesion shape of analysis results."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import msgspec
from litestar.datastructures import UploadFile

from domain.services.segmentation_measures import MeasuredStructure, SegmentationMeasurement
from entrypoints.http.analysis.schemas import Box, MetricsRead, PatientBoxRead, metrics_read


@dataclass
class MeasureFields:
    study_id: UUID | None = None


@dataclass
class MeasureForm(MeasureFields):
    """``multipart/form-data``: the study and one DICOM SEG or RT Structure Set as ``file``.

    It documents the form in OpenAPI; the route reads it with ``entrypoints.http.forms``."""

    file: UploadFile | None = None


class StructureRead(msgspec.Struct, frozen=True, kw_only=True):
    """One structure, shaped like a detection of an analysis result."""

    label: str
    """The structure's name (``SegmentLabel`` or ``ROIName``)."""
    voxel_count: int
    """Voxels of the series inside it; 0 when it has none there (then nothing is measured)."""
    region: str | None
    voxel_box: Box | None
    patient_box: PatientBoxRead | None
    metrics: MetricsRead | None


class MeasurementRead(msgspec.Struct, frozen=True, kw_only=True):
    study_id: UUID
    series_id: UUID
    """The study's series the segmentation was drawn on and measured on."""
    dimensions: tuple[int, int, int]
    """(z, y, x) voxels of that series."""
    voxel_spacing_mm: tuple[float, float, float]
    """(z, y, x) spacing in mm."""
    structures: list[StructureRead]


def structure_read(structure: MeasuredStructure) -> StructureRead:
    box, extent = structure.voxel_box, structure.patient_box
    return StructureRead(
        label=structure.name,
        voxel_count=structure.voxel_count,
        region=structure.region,
        voxel_box=None if box is None else Box(start=box.start, stop=box.stop),
        patient_box=(
            None
            if extent is None
            else PatientBoxRead(minimum_mm=extent.minimum_mm, maximum_mm=extent.maximum_mm)
        ),
        metrics=None if structure.metrics is None else metrics_read(structure.metrics),
    )


def measurement_read(measurement: SegmentationMeasurement) -> MeasurementRead:
    return MeasurementRead(
        study_id=measurement.study_id,
        series_id=measurement.series_id,
        dimensions=measurement.dimensions,
        voxel_spacing_mm=measurement.voxel_spacing_mm,
        structures=[structure_read(s) for s in measurement.structures],
    )
