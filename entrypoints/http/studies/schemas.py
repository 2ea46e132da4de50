"""API schemas of studies, series, instances, uploads and notes: separate from the domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar.datastructures import UploadFile

from domain.annotations import MeasurementKind
from domain.studies import Modality, Sex, StudyStatus, Urgency

ShortText = Annotated[str, msgspec.Meta(max_length=200)]
ModelId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


@dataclass
class StudyFieldsForm:
    """Optional study fields of an upload; they apply to the studies the upload creates."""

    patient_name: str | None = None
    patient_id: str | None = None
    patient_age: str | None = None
    """Years (``45``) or a DICOM age string (``045Y``)."""
    patient_sex: str | None = None
    """``M``, ``F`` or ``O`` (``male``, ``female``, ``other``)."""
    modality: str | None = None
    """``ct``, ``mr`` (``mri``), ``xray`` (``x-ray``, ``cr``, ``dx``), ``us`` (``ultrasound``),
    ``pet``, ``nm``, ``other``; also given to NIfTI/PNG/JPEG images, whose files do not say."""
    description: str | None = None
    study_type: str | None = None
    """Another name for ``description`` (the seed systems' spelling)."""
    urgency: str | None = None
    """``routine``, ``urgent`` or ``stat``."""
    centre_id: UUID | None = None
    """The centre to store into: admins must name one; others may only name their own."""


@dataclass
class StudyUploadForm(StudyFieldsForm):
    """``multipart/form-data``: one or more files (``files``, or ``file``) and study fields.

    It documents the form in OpenAPI; the route reads it with ``entrypoints.http.forms``."""

    files: list[UploadFile] = field(default_factory=list)
    file: list[UploadFile] = field(default_factory=list)


@dataclass
class SingleUploadFields(StudyFieldsForm):
    """The text fields of a single-file upload: the study fields and the model."""

    model_id: str | None = None


@dataclass
class SingleUploadForm(SingleUploadFields):
    """``multipart/form-data``: one ``file`` and, optionally, the model to analyse it with.

    It documents the form in OpenAPI; the route reads it with ``entrypoints.http.forms``."""

    file: UploadFile | None = None


class FromStorageCreate(msgspec.Struct, frozen=True, kw_only=True):
    key: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    """The ``key`` answered by ``POST /uploads/presign``."""
    patient_name: ShortText | None = None
    patient_id: ShortText | None = None
    patient_age: ShortText | None = None
    patient_sex: ShortText | None = None
    modality: ShortText | None = None
    description: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    study_type: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    urgency: ShortText | None = None
    model_id: ModelId | None = None


class PresignCreate(msgspec.Struct, frozen=True, kw_only=True):
    file_name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    centre_id: UUID | None = None
    """Admins name the centre the upload is for."""


class PresignRead(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    key: str
    expires_at: datetime
    method: Literal["PUT"] = "PUT"


class StagedRead(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    size_bytes: int


class PatientRead(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None
    patient_id: str | None
    age: str | None
    sex: Sex | None
    birth_date: date | None


class StudyRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    centre_id: UUID
    study_instance_uid: str
    patient: PatientRead
    modality: Modality
    description: str | None
    study_date: date | None
    accession_number: str | None
    urgency: Urgency
    status: StudyStatus
    assigned_radiologist_id: UUID | None
    uploaded_by: UUID | None
    created_at: datetime
    updated_at: datetime


class SeriesRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    study_id: UUID
    series_instance_uid: str
    modality: Modality
    series_number: int | None
    description: str | None
    body_part_examined: str | None
    instance_count: int
    created_at: datetime


class WindowRead(msgspec.Struct, frozen=True, kw_only=True):
    center: float
    width: float


class InstanceRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    position: int
    """1-based place in the study: ``GET /studies/{id}/instances/{position}`` is this file."""
    series_id: UUID
    study_id: UUID
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    content_type: str
    size_bytes: int
    transfer_syntax_uid: str | None
    rows: int | None
    columns: int | None
    number_of_frames: int
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    image_position_patient: tuple[float, float, float] | None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None
    window: WindowRead | None
    created_at: datetime


class IngestedStudyRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    code: str
    study_instance_uid: str
    created: bool
    """False when the upload joined a study stored before."""
    stored: int
    duplicates: int


class IngestedFileRead(msgspec.Struct, frozen=True, kw_only=True):
    file_name: str
    study_id: UUID
    series_id: UUID
    instance_id: UUID
    duplicate: bool


class IngestRead(msgspec.Struct, frozen=True, kw_only=True):
    studies: list[IngestedStudyRead]
    stored: int
    duplicates: int
    files: list[IngestedFileRead]


class UploadRead(msgspec.Struct, frozen=True, kw_only=True):
    study_id: UUID
    study_code: str
    image_id: UUID
    """The instance id."""
    job_id: UUID | None
    """The analysis started for the upload; ``null`` until analyses exist."""
    processing_status: Literal["stored", "duplicate"]
    """``duplicate``: this instance was stored before; nothing new was stored."""
    uploaded_at: datetime


class MeasurementCreate(msgspec.Struct, frozen=True, kw_only=True):
    kind: MeasurementKind
    points: Annotated[list[tuple[float, float]], msgspec.Meta(min_length=1, max_length=1000)]
    """Image coordinates ``[column, row]`` in pixels."""
    value: float
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    label: ShortText | None = None
    frame: Annotated[int, msgspec.Meta(ge=1)] = 1


class MeasurementRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    instance_id: UUID
    kind: MeasurementKind
    points: list[tuple[float, float]]
    value: float
    unit: str
    label: str | None
    frame: int
    author_id: UUID | None
    created_at: datetime


class AnnotationCreate(msgspec.Struct, frozen=True, kw_only=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    position: tuple[float, float]
    """Image coordinates ``[column, row]`` in pixels."""
    frame: Annotated[int, msgspec.Meta(ge=1)] = 1


class AnnotationRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    instance_id: UUID
    text: str
    position: tuple[float, float]
    frame: int
    author_id: UUID | None
    created_at: datetime
