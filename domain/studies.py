"""Studies, series and instances: the imaging archive, keyed by DICOM UIDs per centre."""

from __future__ import annotations

import enum
import secrets
from datetime import date, datetime

import msgspec

from domain.state_machine import TransitionTable
from domain.values import Id


class Modality(enum.StrEnum):
    CT = "ct"
    MR = "mr"
    XRAY = "xray"
    US = "us"
    PET = "pet"
    NM = "nm"
    OTHER = "other"

    @classmethod
    def parse(cls, text: str) -> Modality:
        """Normalise the spellings the seed systems and DICOM ``Modality`` use.

        ``mri`` -> mr, ``ultrasound`` -> us, ``x-ray``/``cr``/``dx`` -> xray, ``pt`` -> pet.
        Unknown spellings raise ``ValueError`` quoting the input.
        """
        key = text.strip().lower().replace("_", "-")
        try:
            return _MODALITY_ALIASES[key]
        except KeyError:
            raise ValueError(
                f"unknown modality {text!r}; expected one of "
                f"{', '.join(m.value for m in cls)} (or a DICOM modality code)"
            ) from None


_MODALITY_ALIASES: dict[str, Modality] = {
    **{m.value: m for m in Modality},
    "mri": Modality.MR,
    "ultrasound": Modality.US,
    "x-ray": Modality.XRAY,
    "cr": Modality.XRAY,
    "dx": Modality.XRAY,
    "rg": Modality.XRAY,
    "mg": Modality.XRAY,
    "pt": Modality.PET,
    "ot": Modality.OTHER,
}


class Urgency(enum.StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    STAT = "stat"


class Sex(enum.StrEnum):
    """DICOM ``PatientSex`` (0010,0040)."""

    MALE = "M"
    FEMALE = "F"
    OTHER = "O"


class StudyStatus(enum.StrEnum):
    UPLOADED = "uploaded"
    ASSIGNED = "assigned"
    IN_REVIEW = "in_review"
    REPORT_GENERATED = "report_generated"
    VERIFIED = "verified"


STUDY_TRANSITIONS: TransitionTable[StudyStatus] = TransitionTable(
    "study",
    {
        StudyStatus.UPLOADED: {StudyStatus.ASSIGNED},
        # reassignment keeps the study assigned; opening it starts the review
        StudyStatus.ASSIGNED: {StudyStatus.ASSIGNED, StudyStatus.IN_REVIEW},
        StudyStatus.IN_REVIEW: {StudyStatus.ASSIGNED, StudyStatus.REPORT_GENERATED},
        StudyStatus.REPORT_GENERATED: {StudyStatus.IN_REVIEW, StudyStatus.VERIFIED},
        StudyStatus.VERIFIED: set(),
    },
)


class Patient(msgspec.Struct, frozen=True, kw_only=True):
    """Patient demographics as received; they never go into logs or audit records."""

    name: str | None = None
    patient_id: str | None = None
    age: str | None = None
    """DICOM ``PatientAge`` (e.g. ``045Y``) or a plain number of years."""
    sex: Sex | None = None
    birth_date: date | None = None


STUDY_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Upper-case letters and digits without the look-alikes 0/O and 1/I."""
STUDY_CODE_LENGTH = 8


def new_study_code() -> str:
    """An 8-character human code for a study, easy to read out over the phone."""
    return "".join(secrets.choice(STUDY_CODE_ALPHABET) for _ in range(STUDY_CODE_LENGTH))


class Study(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    code: str
    study_instance_uid: str
    patient: Patient = Patient()
    modality: Modality = Modality.OTHER
    description: str | None = None
    study_date: date | None = None
    accession_number: str | None = None
    urgency: Urgency = Urgency.ROUTINE
    status: StudyStatus = StudyStatus.UPLOADED
    assigned_radiologist_id: Id | None = None
    uploaded_by: Id | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def __post_init__(self) -> None:
        if len(self.code) != STUDY_CODE_LENGTH:
            raise ValueError(f"study code {self.code!r} must be {STUDY_CODE_LENGTH} characters")
        if not self.study_instance_uid:
            raise ValueError("study_instance_uid must not be empty")

    def move_to(self, status: StudyStatus, *, at: datetime) -> Study:
        STUDY_TRANSITIONS.check(self.status, status)
        return msgspec.structs.replace(self, status=status, updated_at=at)

    def assign(self, radiologist_id: Id, *, at: datetime) -> Study:
        STUDY_TRANSITIONS.check(self.status, StudyStatus.ASSIGNED)
        return msgspec.structs.replace(
            self, status=StudyStatus.ASSIGNED, assigned_radiologist_id=radiologist_id, updated_at=at
        )


class Series(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    study_id: Id
    centre_id: Id
    series_instance_uid: str
    modality: Modality = Modality.OTHER
    series_number: int | None = None
    description: str | None = None
    body_part_examined: str | None = None
    created_at: datetime


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """DICOM ``WindowCenter``/``WindowWidth`` in output units (HU for CT)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"window width must be > 0, got {self.width}")


class Instance(msgspec.Struct, frozen=True, kw_only=True):
    """One stored file (a DICOM SOP instance, or a converted NIfTI/PNG/JPEG image)."""

    id: Id
    series_id: Id
    study_id: Id
    centre_id: Id
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None = None
    storage_key: str
    size_bytes: int
    content_type: str = "application/dicom"
    transfer_syntax_uid: str | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1
    pixel_spacing: tuple[float, float] | None = None
    """DICOM ``PixelSpacing``: (row spacing, column spacing) in mm."""
    slice_thickness: float | None = None
    image_position_patient: tuple[float, float, float] | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None
    window: Window | None = None
    header: dict[str, object] = {}
    """The full header as DICOM JSON (PS3.18 F.2) without bulk pixel data."""
    created_at: datetime
