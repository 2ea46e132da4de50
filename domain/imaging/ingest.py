"""What ingest learns from one file, before it becomes a Study, a Series and an Instance.

Readers (DICOM, NIfTI, PNG, JPEG adapters) return :class:`ImageFields`; the ingest use case adds
ids, the centre, the storage key and timestamps with :meth:`ImageFields.to_study`,
:meth:`ImageFields.to_series` and :meth:`ImageFields.to_instance`.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

import msgspec

from domain.studies import Instance, Modality, Patient, Series, Study, Urgency, Window
from domain.values import Id

SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
"""SOP Class UID given to images converted from NIfTI, PNG and JPEG."""


class ImageFormat(enum.StrEnum):
    DICOM = "dicom"
    NIFTI = "nifti"
    PNG = "png"
    JPEG = "jpeg"

    @property
    def content_type(self) -> str:
        """The media type the file is stored and served with."""
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    ImageFormat.DICOM: "application/dicom",
    ImageFormat.NIFTI: "application/x-nifti",
    ImageFormat.PNG: "image/png",
    ImageFormat.JPEG: "image/jpeg",
}


class StudyFields(msgspec.Struct, frozen=True, kw_only=True):
    study_instance_uid: str
    """``StudyInstanceUID`` (0020,000D)."""
    patient: Patient = Patient()
    modality: Modality = Modality.OTHER
    description: str | None = None
    """``StudyDescription`` (0008,1030)."""
    study_date: date | None = None
    """``StudyDate`` (0008,0020)."""
    accession_number: str | None = None
    """``AccessionNumber`` (0008,0050)."""


class SeriesFields(msgspec.Struct, frozen=True, kw_only=True):
    series_instance_uid: str
    """``SeriesInstanceUID`` (0020,000E)."""
    modality: Modality = Modality.OTHER
    """``Modality`` (0008,0060) normalised by :meth:`Modality.parse`; OTHER when unknown."""
    series_number: int | None = None
    description: str | None = None
    """``SeriesDescription`` (0008,103E)."""
    body_part_examined: str | None = None
    """``BodyPartExamined`` (0018,0015)."""


class InstanceFields(msgspec.Struct, frozen=True, kw_only=True):
    sop_instance_uid: str
    """``SOPInstanceUID`` (0008,0018)."""
    sop_class_uid: str
    """``SOPClassUID`` (0008,0016)."""
    format: ImageFormat = ImageFormat.DICOM
    instance_number: int | None = None
    transfer_syntax_uid: str | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1
    samples_per_pixel: int = 1
    photometric_interpretation: str | None = None
    pixel_spacing: tuple[float, float] | None = None
    """``PixelSpacing`` (0028,0030): (row spacing, column spacing) in mm."""
    slice_thickness: float | None = None
    image_position_patient: tuple[float, float, float] | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None
    window: Window | None = None
    """The first ``WindowCenter``/``WindowWidth`` of the header."""

    @property
    def content_type(self) -> str:
        return self.format.content_type


class ImageFields(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ingest keeps from one file, grouped by the level it belongs to."""

    study: StudyFields
    series: SeriesFields
    instance: InstanceFields
    header: dict[str, object] = {}
    """The header as DICOM JSON (PS3.18 F.2) without bulk data; converted images get a small
    synthetic header."""

    def to_study(
        self,
        *,
        id: Id,
        centre_id: Id,
        code: str,
        at: datetime,
        uploaded_by: Id | None = None,
        urgency: Urgency = Urgency.ROUTINE,
    ) -> Study:
        return Study(
            id=id,
            centre_id=centre_id,
            code=code,
            study_instance_uid=self.study.study_instance_uid,
            patient=self.study.patient,
            modality=self.study.modality,
            description=self.study.description,
            study_date=self.study.study_date,
            accession_number=self.study.accession_number,
            urgency=urgency,
            uploaded_by=uploaded_by,
            created_at=at,
            updated_at=at,
        )

    def to_series(self, *, id: Id, study_id: Id, centre_id: Id, at: datetime) -> Series:
        return Series(
            id=id,
            study_id=study_id,
            centre_id=centre_id,
            series_instance_uid=self.series.series_instance_uid,
            modality=self.series.modality,
            series_number=self.series.series_number,
            description=self.series.description,
            body_part_examined=self.series.body_part_examined,
            created_at=at,
        )

    def to_instance(
        self,
        *,
        id: Id,
        series_id: Id,
        study_id: Id,
        centre_id: Id,
        storage_key: str,
        size_bytes: int,
        at: datetime,
    ) -> Instance:
        fields = self.instance
        return Instance(
            id=id,
            series_id=series_id,
            study_id=study_id,
            centre_id=centre_id,
            sop_instance_uid=fields.sop_instance_uid,
            sop_class_uid=fields.sop_class_uid,
            instance_number=fields.instance_number,
            storage_key=storage_key,
            size_bytes=size_bytes,
            content_type=fields.content_type,
            transfer_syntax_uid=fields.transfer_syntax_uid,
            rows=fields.rows,
            columns=fields.columns,
            number_of_frames=fields.number_of_frames,
            pixel_spacing=fields.pixel_spacing,
            slice_thickness=fields.slice_thickness,
            image_position_patient=fields.image_position_patient,
            image_orientation_patient=fields.image_orientation_patient,
            window=fields.window,
            header=self.header,
            created_at=at,
        )
