"""Measuring a segmentation a user brings (DICOM SEG or RTSTRUCT) on a study's own series.

The file names the series it was drawn on; that series is loaded from the study (the caller's
centre only), assembled into a volume, and each structure is rasterised onto that volume's
grid and measured with the IBSI morphology and the real geometry, in the same lesion shape as
an analysis result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import numpy as np
from scipy import ndimage  # type: ignore[import-untyped]

from domain.analysis import PatientBox, VoxelBox
from domain.errors import InvalidInput
from domain.identity import Principal
from domain.imaging.geometry import Volume
from domain.imaging.ingest import ImageFormat
from domain.metrics import TumorMetrics, compute_tumor_metrics
from domain.pipeline.lesions import patient_box, region_of
from domain.ports.blobs import BlobStore
from domain.ports.imaging import StoredFile, VolumeReader
from domain.ports.segmentation import SegmentationReader, Structure
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.access import visible
from domain.services.auditing import Auditor
from domain.services.series_files import analysis_series_id, is_image, load_series
from domain.services.studies import require_study_reader
from domain.studies import Study
from domain.values import Id

INTENSITY_OFFSET = 1024.0
"""Added to CT values for the intensity-weighted centre of mass (IBSI needs weights >= 0),
as the analysis pipeline does."""


class MeasureSegmentation(msgspec.Struct, frozen=True, kw_only=True):
    study_id: Id
    data: bytes
    """The uploaded DICOM SEG or RT Structure Set (Part 10 bytes)."""


class MeasuredStructure(msgspec.Struct, frozen=True, kw_only=True):
    """One structure of the file on the series' grid; the boxes, region and metrics are
    ``None`` when it has no voxel there."""

    name: str
    voxel_count: int
    voxel_box: VoxelBox | None = None
    patient_box: PatientBox | None = None
    region: str | None = None
    metrics: TumorMetrics | None = None


class SegmentationMeasurement(msgspec.Struct, frozen=True, kw_only=True):
    study_id: Id
    series_id: Id
    dimensions: tuple[int, int, int]
    """(z, y, x) voxels of the series the structures were measured on."""
    voxel_spacing_mm: tuple[float, float, float]
    """(z, y, x) spacing in mm."""
    structures: tuple[MeasuredStructure, ...]


def measure_structure(volume: Volume, structure: Structure) -> MeasuredStructure:
    """Boxes, region and IBSI metrics of one structure, measured on its bounding box."""
    mask = np.asarray(structure.mask, dtype=bool)
    count = int(mask.sum())
    if count == 0:
        return MeasuredStructure(name=structure.name, voxel_count=0)
    (slices,) = ndimage.find_objects(mask.astype(np.uint8))
    start = tuple(int(s.start) for s in slices)
    stop = tuple(int(s.stop) for s in slices)
    box = VoxelBox(start=(start[0], start[1], start[2]), stop=(stop[0], stop[1], stop[2]))
    weights = np.maximum(volume.voxels[slices] + np.float32(INTENSITY_OFFSET), 0.0)
    origin = volume.index_to_patient([start[2], start[1], start[0]])
    metrics = compute_tumor_metrics(
        mask[slices],
        volume.spacing,
        origin_mm=tuple(float(v) for v in origin),
        direction=volume.direction,
        intensities=weights,
    )
    return MeasuredStructure(
        name=structure.name,
        voxel_count=count,
        voxel_box=box,
        patient_box=patient_box(volume, box),
        region=region_of(volume, metrics.centre_of_mass_mm),
        metrics=metrics,
    )


class SegmentationMeasureService:
    """``POST /measure``: the metrics of each structure of an uploaded segmentation.

    Args:
        uow: the unit of work factory (studies, series, instances).
        blobs: where the series' files are.
        volumes: assembles the series into a volume.
        reader: reads SEG and RTSTRUCT files onto that volume.
        auditor: records ``study.measure_segmentation``.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        volumes: VolumeReader,
        reader: SegmentationReader,
        auditor: Auditor,
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._volumes = volumes
        self._reader = reader
        self._auditor = auditor

    async def measure(
        self, principal: Principal, command: MeasureSegmentation
    ) -> SegmentationMeasurement:
        """Raises ``NotFound`` for a study the caller cannot see, ``PermissionDenied`` for a
        key without ``studies:read``, and ``InvalidInput`` for a file that is not a SEG or
        RTSTRUCT of one of the study's DICOM series, or that has no voxel on it."""
        study = await self._visible_study(principal, command.study_id)
        referenced = await asyncio.to_thread(self._reader.referenced_series, command.data)
        series_id = await self._source_series(study, referenced)
        _, _, files = await load_series(self._uow, self._blobs, series_id)
        if any(file.format is not ImageFormat.DICOM for file in files):
            raise InvalidInput("a segmentation can only be measured on a DICOM series")
        volume, measured = await asyncio.to_thread(self._measure, files, command.data)
        if not any(structure.voxel_count for structure in measured):
            raise InvalidInput("the segmentation has no voxel on the series it references")
        await self._auditor.record(
            principal,
            "study.measure_segmentation",
            "study",
            study.id,
            centre_id=study.centre_id,
            detail=f"{len(measured)} structure(s) on series {series_id}",
        )
        spacing = volume.spacing
        return SegmentationMeasurement(
            study_id=study.id,
            series_id=series_id,
            dimensions=volume.shape,
            voxel_spacing_mm=(spacing[0], spacing[1], spacing[2]),
            structures=tuple(measured),
        )

    async def _visible_study(self, principal: Principal, study_id: Id) -> Study:
        async with self._uow() as uow:
            study = visible(principal, await uow.studies.get(study_id), "study", study_id)
        require_study_reader(principal)
        return study

    async def _source_series(self, study: Study, referenced: frozenset[str]) -> Id:
        if not referenced:
            # an RTSTRUCT may name only its frame of reference: the study's main image series,
            # which the reader then checks against that frame of reference
            return await analysis_series_id(self._uow, study.id)
        async with self._uow() as uow:
            series = await uow.series.list_for_study(study.id)
            instances = await uow.instances.list_for_study(study.id)
        with_images = {i.series_id for i in instances if is_image(i)}
        for candidate in series:
            if candidate.series_instance_uid in referenced and candidate.id in with_images:
                return candidate.id
        raise InvalidInput(
            "the segmentation was drawn on another series than the image series of this study"
        )

    def _measure(
        self, files: Sequence[StoredFile], data: bytes
    ) -> tuple[Volume, list[MeasuredStructure]]:
        volume = self._volumes.read_volume(files)
        structures = self._reader.read(data, [file.data for file in files], volume)
        if not structures:
            raise InvalidInput("the segmentation has no structure")
        return volume, [measure_structure(volume, structure) for structure in structures]
