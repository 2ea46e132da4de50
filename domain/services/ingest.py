"""Ingest: storing uploaded files as studies, series and instances, all or nothing.

Keyed by DICOM UIDs per centre: the same SOPInstanceUID sent again is stored once and reported
as a duplicate, instances of a study sent in several requests join that study, instances of
several studies in one upload make several studies, and two centres sending the same study
each get their own copy. Files are stored byte for byte under
``centres/<centre>/studies/<study>/<instance id>.<ext>``; their headers (DICOM JSON) go into the
database so that metadata never needs blob storage. Readers (adapters) turn bytes into
:class:`~domain.imaging.ImageFields` first; this module never parses a file.

Large files may go to a staging key first (``staging/<centre>/<uuid>/<name>``, through a
presigned URL) and be ingested from there. What an upload carries, and how its parts are
checked, is in :mod:`domain.services.uploads`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from datetime import datetime

import msgspec

from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import StudyUploaded
from domain.identity import Centre, Principal, PrincipalKind
from domain.imaging.ingest import ImageFormat
from domain.ports.blobs import BlobStore, BlobWrite
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.auditing import Auditor
from domain.services.studies import require_study_writer
from domain.services.uploads import (
    IngestedFile,
    IngestedStudy,
    IngestResult,
    IngestStudies,
    NormalisedOverrides,
    RejectedFile,
    UploadedFile,
    check_uids,
    safe_file_name,
    staging_centre,
    storable,
    storage_key,
)
from domain.studies import Instance, Series, Study, new_study_code
from domain.values import Id

_CODE_ATTEMPTS = 10
_INGEST_ATTEMPTS = 6
_RETRY_PAUSE_S = 0.02
_PATIENT_IDENTITY_REMOVED = "00120062"


class _Batch:
    """The studies, series and instances one ingest attempt creates or joins."""

    def __init__(self, uow: UnitOfWork, centre_id: Id) -> None:
        self.uow = uow
        self.centre_id = centre_id
        self.studies: dict[str, IngestedStudy] = {}
        self.series: dict[tuple[Id, str], Series] = {}
        self.instances: dict[str, Instance] = {}
        """Instances stored before this upload or planned by it, by SOPInstanceUID."""
        self.result = IngestResult()

    async def load_existing(self, files: Sequence[UploadedFile]) -> None:
        """Which of the upload's instances the centre has already: one query for all."""
        uids = {upload.fields.instance.sop_instance_uid for upload in files}
        self.instances.update(await self.uow.instances.get_by_uids(self.centre_id, uids))

    def existing_instance(self, sop_instance_uid: str) -> Instance | None:
        return self.instances.get(sop_instance_uid)

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
        overrides = NormalisedOverrides(command.overrides)
        if not command.files:
            raise InvalidInput("the upload has no files; send one or more as 'files'")
        files = [storable(upload) for upload in command.files]
        for upload in files:
            check_uids(upload)
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

    @staticmethod
    def _check_deidentified(centre: Centre | None, files: Sequence[UploadedFile]) -> None:
        """A centre that de-identifies at ingest stores no DICOM file that does not say so
        (``PatientIdentityRemoved`` YES): a guard for every way in, the ones that
        de-identify on the way (uploads) and any that would not."""
        if centre is None or not centre.deidentify_at_ingest:
            return
        for upload in files:
            if upload.fields.instance.format is not ImageFormat.DICOM:
                continue
            element = upload.fields.header.get(_PATIENT_IDENTITY_REMOVED)
            values = element.get("Value") if isinstance(element, dict) else None
            if values != ["YES"]:
                raise RejectedFile(
                    upload.file_name,
                    "this centre stores de-identified DICOM files only and this one was not "
                    "de-identified (PatientIdentityRemoved is not YES)",
                )

    async def _ingest_once(
        self,
        principal: Principal,
        centre_id: Id,
        command: IngestStudies,
        overrides: NormalisedOverrides,
        stored: list[str],
    ) -> IngestResult:
        now = self._clock.now()
        async with self._uow() as uow:
            # read in the ingest's own transaction: one round trip less per upload
            self._check_deidentified(await uow.centres.get(centre_id), command.files)
            batch = _Batch(uow, centre_id)
            await batch.load_existing(command.files)
            planned: list[tuple[UploadedFile, Instance]] = []
            for upload in command.files:
                uid = upload.fields.instance.sop_instance_uid
                existing = batch.existing_instance(uid)
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
            await uow.instances.add_all([instance for _, instance in planned])
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
        overrides: NormalisedOverrides,
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
        """Store the files in one batch (one worker-thread hop and one directory fsync per
        upload on the filesystem store, parallel PUTs on S3). Every write has finished or
        failed when it returns, and the keys are recorded first, so that a failure removes
        all of them without racing a late write."""
        stored.extend(instance.storage_key for _, instance in planned)
        await self._blobs.put_many(
            [
                BlobWrite(instance.storage_key, upload.data, instance.content_type)
                for upload, instance in planned
            ]
        )

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
