"""Ingest: storing uploaded files as studies, series and instances, all or nothing.

Keyed by DICOM UIDs per centre: the same SOPInstanceUID sent again is stored once and reported
as a duplicate, instances of a study sent in several requests join that study, instances of
several studies in one upload make several studies, and two centres sending the same study
each get their own copy. Files are stored byte for byte under
``centres/<centre>/studies/<study>/<instance id>.<ext>``; their headers (DICOM JSON) go into the
database so that metadata never needs blob storage. Readers (adapters) turn bytes into
:class:`~domain.imaging.ImageFields` first; this module never parses a file.

Large files may go to a staging key first (``staging/<centre>/<uuid>/<name>``, through a
presigned URL) and be ingested from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import StudyUploaded
from domain.identity import Principal, PrincipalKind
from domain.imaging.ingest import ImageFields, ImageFormat
from domain.ports.blobs import BlobStore
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import ensure_visible
from domain.services.auditing import Auditor
from domain.services.studies import require_study_writer
from domain.studies import Instance, Modality, Patient, Series, Sex, Study, Urgency, new_study_code
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
_CODE_ATTEMPTS = 10
_INGEST_ATTEMPTS = 6
_RETRY_PAUSE_S = 0.02
PARALLEL_PUTS = 8
"""Files of one upload written to the blob store at the same time (I/O bound: fsync, network)."""


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


class _Overrides:
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


def _check_uids(upload: UploadedFile) -> None:
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


class _Batch:
    """The studies, series and instances one ingest attempt creates or joins."""

    def __init__(self, uow: UnitOfWork, centre_id: Id) -> None:
        self.uow = uow
        self.centre_id = centre_id
        self.studies: dict[str, IngestedStudy] = {}
        self.series: dict[tuple[Id, str], Series] = {}
        self.instances: dict[str, Instance] = {}
        self.result = IngestResult()

    async def existing_instance(self, sop_instance_uid: str) -> Instance | None:
        if sop_instance_uid in self.instances:
            return self.instances[sop_instance_uid]
        return await self.uow.instances.get_by_uid(self.centre_id, sop_instance_uid)

    async def entry_of(self, instance: Instance) -> IngestedStudy:
        """The study an instance already stored belongs to, joined (not created) here."""
        for entry in self.studies.values():
            if entry.study.id == instance.study_id:
                return entry
        study = await self.uow.studies.get(instance.study_id)
        if study is None:  # the instance's study row vanished: a broken database
            raise NotFound("study", instance.study_id)
        entry = IngestedStudy(study=study, created=False)
        self.studies[study.study_instance_uid] = entry
        return entry

    def record(self, upload: UploadedFile, instance: Instance, *, duplicate: bool) -> None:
        self.result.files.append(
            IngestedFile(
                file_name=upload.file_name,
                study_id=instance.study_id,
                series_id=instance.series_id,
                instance_id=instance.id,
                duplicate=duplicate,
            )
        )


class IngestService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor,
        codes: Callable[[], str] = new_study_code,
    ) -> None:
        """``codes`` makes study codes (tests pass a predictable one)."""
        self._uow = uow
        self._blobs = blobs
        self._clock = clock
        self._ids = ids
        self._auditor = auditor
        self._codes = codes

    async def upload_centre(self, principal: Principal, centre_id: Id | None) -> Id:
        """The centre an upload of ``principal`` goes to, checked before any file is read.

        Raises:
            PermissionDenied: radiologists, and API keys without ``studies:write``.
            InvalidInput: an admin who names no centre.
            NotFound: a centre that does not exist or that the principal cannot see.
        """
        require_study_writer(principal, "upload studies")
        target = centre_id if principal.is_admin else principal.centre_id
        if target is None:
            raise InvalidInput("an admin must name the centre to upload into (centre_id)")
        if centre_id is not None and centre_id != target:
            raise NotFound("centre", centre_id)
        if principal.is_admin:  # everyone else's centre was checked when they signed in
            async with self._uow() as uow:
                centre = await uow.centres.get(target)
            if centre is None or not centre.active:
                raise NotFound("centre", target)
        return target

    async def ingest(self, principal: Principal, command: IngestStudies) -> IngestResult:
        """Store every file of an upload, or none of them.

        Raises:
            RejectedFile: a file lacks a UID (naming the file); nothing is stored.
            InvalidInput: no files, or an override that is not valid.
        """
        centre_id = await self.upload_centre(principal, command.centre_id)
        overrides = _Overrides(command.overrides)
        if not command.files:
            raise InvalidInput("the upload has no files; send one or more as 'files'")
        files = [storable(upload) for upload in command.files]
        for upload in files:
            _check_uids(upload)
        command = msgspec.structs.replace(command, files=files)
        for attempt in range(1, _INGEST_ATTEMPTS + 1):
            stored: list[str] = []
            try:
                result = await self._ingest_once(principal, centre_id, command, overrides, stored)
                break
            except Conflict:
                # a concurrent upload created the same study, series or instance first: start
                # again (what it stored is then a duplicate), after a pause that grows and is
                # jittered so racing uploads fall out of step
                await self._discard(stored)
                if attempt == _INGEST_ATTEMPTS:
                    raise
                await asyncio.sleep(_RETRY_PAUSE_S * attempt * (0.5 + random.random()))
            except BaseException:
                await self._discard(stored)
                raise
        for entry in result.studies:
            await self._auditor.record(
                principal,
                "study.upload",
                "study",
                entry.study.id,
                centre_id=centre_id,
                detail=f"{entry.stored} stored, {entry.duplicates} duplicate(s)",
            )
        return result

    async def _ingest_once(
        self,
        principal: Principal,
        centre_id: Id,
        command: IngestStudies,
        overrides: _Overrides,
        stored: list[str],
    ) -> IngestResult:
        now = self._clock.now()
        async with self._uow() as uow:
            batch = _Batch(uow, centre_id)
            planned: list[tuple[UploadedFile, Instance]] = []
            for upload in command.files:
                uid = upload.fields.instance.sop_instance_uid
                existing = await batch.existing_instance(uid)
                if existing is not None:
                    (await batch.entry_of(existing)).duplicates += 1
                    batch.record(upload, existing, duplicate=True)
                    continue
                entry = await self._study_for(batch, principal, upload, overrides, now)
                series = await self._series_for(batch, entry.study, upload, now)
                instance = self._instance(batch, series, upload, now)
                planned.append((upload, instance))
                entry.stored += 1
                batch.record(upload, instance, duplicate=False)
            await self._put_all(planned, stored)
            for _, instance in planned:
                await uow.instances.add(instance)
            for entry in batch.studies.values():
                if entry.stored:
                    uow.collect(
                        StudyUploaded(
                            at=now,
                            centre_id=centre_id,
                            study_id=entry.study.id,
                            instance_count=entry.stored,
                        )
                    )
            await uow.commit()
        batch.result.studies = list(batch.studies.values())
        batch.result.at = now
        return batch.result

    async def _study_for(
        self,
        batch: _Batch,
        principal: Principal,
        upload: UploadedFile,
        overrides: _Overrides,
        now: datetime,
    ) -> IngestedStudy:
        uid = upload.fields.study.study_instance_uid
        if uid in batch.studies:
            return batch.studies[uid]
        study = await batch.uow.studies.get_by_uid(batch.centre_id, uid)
        created = study is None
        if study is None:
            study = overrides.apply(
                upload.fields.to_study(
                    id=self._ids.new_id(),
                    centre_id=batch.centre_id,
                    code=await self._free_code(batch.uow),
                    at=now,
                    uploaded_by=principal.id if principal.kind is PrincipalKind.USER else None,
                )
            )
            await batch.uow.studies.add(study)
        entry = IngestedStudy(study=study, created=created)
        batch.studies[uid] = entry
        return entry

    async def _free_code(self, uow: UnitOfWork) -> str:
        for _ in range(_CODE_ATTEMPTS):
            code = self._codes()
            if await uow.studies.get_by_code(code) is None:
                return code
        raise Conflict("no free study code was found; try again")

    async def _series_for(
        self, batch: _Batch, study: Study, upload: UploadedFile, now: datetime
    ) -> Series:
        key = (study.id, upload.fields.series.series_instance_uid)
        if key in batch.series:
            return batch.series[key]
        series = await batch.uow.series.get_by_uid(*key)
        if series is None:
            series = upload.fields.to_series(
                id=self._ids.new_id(), study_id=study.id, centre_id=batch.centre_id, at=now
            )
            await batch.uow.series.add(series)
        batch.series[key] = series
        return series

    def _instance(
        self, batch: _Batch, series: Series, upload: UploadedFile, now: datetime
    ) -> Instance:
        instance_id = self._ids.new_id()
        instance = upload.fields.to_instance(
            id=instance_id,
            series_id=series.id,
            study_id=series.study_id,
            centre_id=batch.centre_id,
            storage_key=storage_key(batch.centre_id, series.study_id, instance_id, upload),
            size_bytes=len(upload.data),
            at=now,
        )
        batch.instances[instance.sop_instance_uid] = instance
        return instance

    async def _put_all(
        self, planned: list[tuple[UploadedFile, Instance]], stored: list[str]
    ) -> None:
        """Store the files, several at a time; every put finishes (or fails) before this
        returns, so that a failure can remove all of them without racing a late write."""
        gate = asyncio.Semaphore(PARALLEL_PUTS)

        async def put(upload: UploadedFile, instance: Instance) -> None:
            async with gate:
                await self._blobs.put(
                    instance.storage_key, upload.data, content_type=instance.content_type
                )

        stored.extend(instance.storage_key for _, instance in planned)
        outcomes = await asyncio.gather(
            *(put(upload, instance) for upload, instance in planned), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _discard(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(Exception):
                await self._blobs.delete(key)

    # -- reading -------------------------------------------------------------------------

    async def staged_upload(self, principal: Principal, key: str) -> Id:
        """The centre of a staging key the principal may ingest from (404 for another
        centre's key, 403 for a principal who may not upload)."""
        centre_id = staging_centre(principal, key)
        require_study_writer(principal, "upload studies")
        return centre_id

    async def staging_key(
        self, principal: Principal, file_name: str, centre_id: Id | None = None
    ) -> str:
        """A fresh key under ``staging/<centre>/`` where a client may upload one file."""
        target = await self.upload_centre(principal, centre_id)
        key = f"staging/{target}/{self._ids.new_id()}/{safe_file_name(file_name)}"
        await self._auditor.record(principal, "upload.presign", "staged upload", key)
        return key
