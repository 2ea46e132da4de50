"""What an upload carries and how it is checked before anything is stored.

The files (bytes plus what a reader learnt from them), the study fields an uploader may give
and their normalisation, the results an ingest answers, text a database can keep, and the blob
keys of stored files and of staged (presigned) uploads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import InvalidInput, NotFound
from domain.identity import Principal
from domain.imaging.ingest import ImageFields, ImageFormat
from domain.services.access import ensure_visible
from domain.studies import Instance, Modality, Patient, Sex, Study, Urgency
from domain.values import Id

_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")
_STAGING_KEY = re.compile(
    r"^staging/(?P<centre>[0-9a-f-]{36})/[0-9a-f-]{36}/[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"
)
_PATIENT_AGE = re.compile(r"^\d{1,3}[DWMY]?$")
_SEX_ALIASES = {"m": Sex.MALE, "male": Sex.MALE, "f": Sex.FEMALE, "female": Sex.FEMALE}
_EXTENSIONS = {
    ImageFormat.DICOM: "dcm",
    ImageFormat.NIFTI: "nii",
    ImageFormat.PNG: "png",
    ImageFormat.JPEG: "jpg",
}
_GZIP_MAGIC = b"\x1f\x8b"


class RejectedFile(InvalidInput):
    """One file of an upload cannot be ingested; the whole upload is refused."""

    code = "invalid-file"

    def __init__(self, file_name: str, reason: str) -> None:
        super().__init__(f"file {file_name!r} was refused: {reason}")
        self.file_name = file_name
        self.reason = reason


@dataclass(frozen=True, eq=False, slots=True)
class UploadedFile:
    """One file as received, with what a reader learnt from it."""

    file_name: str
    data: bytes
    fields: ImageFields


class StudyOverrides(msgspec.Struct, frozen=True, kw_only=True):
    """Study fields the uploader gives; they win over the files' headers for new studies."""

    patient_name: str | None = None
    patient_id: str | None = None
    patient_age: str | None = None
    patient_sex: str | None = None
    modality: str | None = None
    description: str | None = None
    urgency: str | None = None


class IngestStudies(msgspec.Struct, frozen=True, kw_only=True):
    files: Sequence[UploadedFile]
    overrides: StudyOverrides = StudyOverrides()
    centre_id: Id | None = None
    """The centre to store into: required of admins, else the principal's own."""


@dataclass(frozen=True, slots=True)
class IngestedFile:
    file_name: str
    study_id: Id
    series_id: Id
    instance_id: Id
    duplicate: bool


@dataclass(slots=True)
class IngestedStudy:
    study: Study
    created: bool
    stored: int = 0
    duplicates: int = 0


@dataclass(slots=True)
class IngestResult:
    studies: list[IngestedStudy] = field(default_factory=list)
    files: list[IngestedFile] = field(default_factory=list)
    at: datetime | None = None
    """When the upload was stored."""

    @property
    def stored(self) -> int:
        return sum(1 for f in self.files if not f.duplicate)

    @property
    def duplicates(self) -> int:
        return sum(1 for f in self.files if f.duplicate)


def parse_modality(text: str | None) -> Modality | None:
    """``Modality.parse`` for user input: unknown spellings are ``InvalidInput``."""
    if text is None or not text.strip():
        return None
    try:
        return Modality.parse(text)
    except ValueError as err:
        raise InvalidInput(str(err)) from None


def _patient_sex(text: str | None) -> Sex | None:
    if text is None or not text.strip():
        return None
    key = text.strip().lower()
    if key in _SEX_ALIASES:
        return _SEX_ALIASES[key]
    if key in ("o", "other"):
        return Sex.OTHER
    raise InvalidInput(f"patient_sex {text[:20]!r} must be M, F or O (male, female, other)")


def _patient_age(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    age = text.strip().upper()
    if not _PATIENT_AGE.match(age):
        raise InvalidInput(f"patient_age {text[:20]!r} must be years (45) or a DICOM age (045Y)")
    return age if age[-1].isalpha() else f"{int(age):03d}Y"


def _urgency(text: str | None) -> Urgency | None:
    if text is None or not text.strip():
        return None
    try:
        return Urgency(text.strip().lower())
    except ValueError:
        choices = ", ".join(u.value for u in Urgency)
        raise InvalidInput(f"urgency {text[:20]!r} must be one of {choices}") from None


def _text(value: str | None, name: str, limit: int = 200) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise InvalidInput(f"{name} must have at most {limit} characters")
    return value.strip()


class NormalisedOverrides:
    """Validated overrides, applied to the studies an upload creates."""

    def __init__(self, given: StudyOverrides) -> None:
        self.modality = parse_modality(given.modality)
        self.urgency = _urgency(given.urgency)
        self.description = _text(given.description, "description", 1000)
        self._patient = {
            "name": _text(given.patient_name, "patient_name"),
            "patient_id": _text(given.patient_id, "patient_id", 64),
            "age": _patient_age(given.patient_age),
            "sex": _patient_sex(given.patient_sex),
        }

    def apply(self, study: Study) -> Study:
        changes = {k: v for k, v in self._patient.items() if v is not None}
        patient: Patient = msgspec.structs.replace(study.patient, **changes)
        return msgspec.structs.replace(
            study,
            patient=patient,
            modality=self.modality or study.modality,
            description=self.description or study.description,
            urgency=self.urgency or study.urgency,
        )


_INT32 = range(-(2**31), 2**31)


def storable(upload: UploadedFile) -> UploadedFile:
    """The upload with text a database can keep: no NUL characters (DICOM pads with them;
    PostgreSQL text and jsonb refuse them) and instance/series numbers within 32 bits."""
    fields = upload.fields
    numbers = (fields.instance.instance_number, fields.series.series_number)
    if b"\\u0000" not in msgspec.json.encode(fields, enc_hook=_plain) and all(
        n is None or n in _INT32 for n in numbers
    ):
        return upload
    plain = _without_nul(msgspec.to_builtins(fields, enc_hook=_plain))
    for level, name in (("instance", "instance_number"), ("series", "series_number")):
        if plain[level][name] is not None and plain[level][name] not in _INT32:
            plain[level][name] = None
    cleaned = msgspec.convert(plain, ImageFields)
    return UploadedFile(file_name=upload.file_name, data=upload.data, fields=cleaned)


def _plain(value: Any) -> Any:
    """Subclasses of ``str`` (pydicom's ``UID``) encode as plain text."""
    if isinstance(value, str):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def check_uids(upload: UploadedFile) -> None:
    f = upload.fields
    for name, uid in (
        ("StudyInstanceUID (0020,000D)", f.study.study_instance_uid),
        ("SeriesInstanceUID (0020,000E)", f.series.series_instance_uid),
        ("SOPInstanceUID (0008,0018)", f.instance.sop_instance_uid),
    ):
        if not uid or not uid.strip():
            raise RejectedFile(upload.file_name, f"missing {name}")
        if len(uid) > 200 or "\x00" in uid:
            raise RejectedFile(upload.file_name, f"{name} is not a valid UID")


def storage_key(centre_id: Id, study_id: Id, instance_id: Id, upload: UploadedFile) -> str:
    """``centres/<centre>/studies/<study>/<instance id>.<ext>``.

    Named by the instance id, not the SOPInstanceUID: two uploads of the same instance racing
    each other write different objects, so the loser's clean-up never removes the winner's.
    """
    fields = upload.fields.instance
    extension = _EXTENSIONS[fields.format]
    if fields.format is ImageFormat.NIFTI and upload.data[:2] == _GZIP_MAGIC:
        extension = "nii.gz"
    return f"centres/{centre_id}/studies/{study_id}/{instance_id}.{extension}"


def download_name(instance: Instance) -> str:
    """A file name for an instance: its SOPInstanceUID with the stored file's extension."""
    stored = instance.storage_key.rsplit("/", 1)[-1]
    extension = stored.split(".", 1)[1] if "." in stored else "dcm"
    uid = instance.sop_instance_uid
    return f"{uid}.{extension}" if _KEY_SEGMENT.match(uid) else stored


def staging_key_centre(key: str) -> Id | None:
    """The centre in a staging key ``staging/<centre>/<uuid>/<name>``; None for other keys."""
    match = _STAGING_KEY.match(key)
    return None if match is None else Id(match["centre"])


def staging_centre(principal: Principal, key: str) -> Id:
    """The centre a staging key belongs to; another centre's key (or no staging key) is
    not found."""
    centre_id = staging_key_centre(key)
    if centre_id is None:
        raise NotFound("staged upload", key[:200])
    ensure_visible(principal, centre_id, "staged upload", key[:200])
    return centre_id


def safe_file_name(file_name: str) -> str:
    """A blob-key segment made from a client's file name (letters, digits, ``._-``)."""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")[:120]
    return cleaned or "upload"
