"""Use cases: de-identifying a stored study, a batch of files, and uploads at ingest.

A stored study is read like any study (tenancy first, then ``studies:read``) and audited as
``study.anonymize``; a batch is de-identified in memory and never stored (``anonymize.batch``).
Output file names are positions (``0001.dcm``), never the names received, which often carry
the patient's name. The report counts changes per attribute and never holds a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from domain.deidentification import (
    ChangeTally,
    DateHandling,
    DeidentificationOptions,
    DeidentificationPlan,
    DeidentificationReport,
    RefusedFile,
)
from domain.errors import InvalidInput
from domain.identity import Centre, Principal
from domain.imaging.ingest import ImageFormat
from domain.ports.blobs import BlobStore
from domain.ports.deidentification import Deidentifier
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.access import visible
from domain.services.auditing import Auditor
from domain.services.studies import require_study_reader
from domain.services.uploads import RejectedFile
from domain.studies import Instance
from domain.values import Id

MAX_BATCH_FILES = 10_000
INGEST_OPTIONS = DeidentificationOptions(dates=DateHandling.SHIFT)
"""At ingest a centre keeps intervals between dates (one offset per centre) and gets new UIDs
that are the same for every upload, so a study sent in parts stays one study."""


@dataclass(frozen=True, slots=True)
class NamedFile:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class DeidentifiedFiles:
    files: list[NamedFile]
    report: DeidentificationReport


class DeidentifiedStream:
    """The files of one run as they are made; :meth:`report` once they have all been read."""

    def __init__(
        self,
        service: DeidentificationService,
        instances: Sequence[Instance],
        options: DeidentificationOptions,
    ) -> None:
        self._service = service
        self._instances = instances
        self._options = options
        self._plan = DeidentificationPlan.fresh(options)
        self._tally = ChangeTally()
        self._done = False

    def __aiter__(self) -> AsyncIterator[NamedFile]:
        return self._files()

    async def _files(self) -> AsyncIterator[NamedFile]:
        series_positions: dict[Id, int] = {}
        counts: dict[Id, int] = {}
        for instance in self._instances:
            series = series_positions.setdefault(instance.series_id, len(series_positions) + 1)
            counts[instance.series_id] = counts.get(instance.series_id, 0) + 1
            name = f"{series:03d}/{counts[instance.series_id]:05d}.dcm"
            if instance.content_type != ImageFormat.DICOM.content_type:
                self._tally.refused.append(RefusedFile(name=name, reason="not a DICOM instance"))
                continue
            data = await self._service.stored(instance)
            try:
                made = await self._service.deidentify_one(data, self._plan, self._tally)
            except InvalidInput as err:
                self._tally.refused.append(RefusedFile(name=name, reason=err.detail))
                continue
            yield NamedFile(name, made)
        self._done = True

    def report(self) -> DeidentificationReport:
        if not self._done:
            raise RuntimeError("the report is ready once every file has been read")
        return self._tally.report(self._options)


class DeidentificationService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        auditor: Auditor,
        deidentifier: Deidentifier,
        ingest_secret: bytes,
    ) -> None:
        """``ingest_secret`` keys the per-centre UID map and date offset used at ingest."""
        self._uow = uow
        self._blobs = blobs
        self._auditor = auditor
        self._deidentifier = deidentifier
        self._ingest_secret = ingest_secret

    async def study(
        self, principal: Principal, study_id: Id, options: DeidentificationOptions
    ) -> DeidentifiedFiles:
        """Every DICOM instance of a study, de-identified in one run; see :meth:`study_stream`."""
        stream = await self.study_stream(principal, study_id, options)
        files = [file async for file in stream]
        return DeidentifiedFiles(files=files, report=stream.report())

    async def study_stream(
        self, principal: Principal, study_id: Id, options: DeidentificationOptions
    ) -> DeidentifiedStream:
        """The study's DICOM instances de-identified one at a time, in one run (one UID map),
        named ``<series position>/<instance position>.dcm``, so a large study never sits in
        memory. Access is checked and the request audited (``study.anonymize``) before the
        first file; converted images (NIfTI, PNG, JPEG) have no DICOM header to clean and are
        listed as refused in the report, as are files that cannot be de-identified.

        Raises:
            NotFound: the study does not exist or belongs to another centre.
            PermissionDenied: an API key without ``studies:read``.
        """
        async with self._uow() as uow:
            study = visible(principal, await uow.studies.get(study_id), "study", study_id)
            require_study_reader(principal)
            instances = await uow.instances.list_for_study(study.id)
        await self._auditor.record(
            principal,
            "study.anonymize",
            "study",
            study.id,
            centre_id=study.centre_id,
            detail=f"{len(instances)} instance(s), options {_options_text(options)}",
        )
        return DeidentifiedStream(self, instances, options)

    async def files(
        self,
        principal: Principal,
        files: Sequence[NamedFile],
        options: DeidentificationOptions,
    ) -> DeidentifiedFiles:
        """De-identify uploaded files in one run; nothing is stored. All or nothing: the
        first file that cannot be read refuses the batch, naming it.

        Raises:
            RejectedFile: a file is not a DICOM dataset that can be de-identified.
            InvalidInput: no files, or more than :data:`MAX_BATCH_FILES`.
        """
        require_study_reader(principal)
        if not files:
            raise InvalidInput("the batch has no files; send one or more as 'files'")
        if len(files) > MAX_BATCH_FILES:
            raise InvalidInput(f"a batch holds at most {MAX_BATCH_FILES} files")
        plan = DeidentificationPlan.fresh(options)
        tally = ChangeTally()
        done: list[NamedFile] = []
        for position, upload in enumerate(files, start=1):
            try:
                data = await self.deidentify_one(upload.data, plan, tally)
            except InvalidInput as err:
                raise RejectedFile(upload.name, err.detail) from None
            done.append(NamedFile(f"{position:05d}.dcm", data))
        await self._auditor.record(
            principal,
            "anonymize.batch",
            "file",
            None,
            detail=f"{len(done)} file(s), options {_options_text(options)}",
        )
        return DeidentifiedFiles(files=done, report=tally.report(options))

    async def stored(self, instance: Instance) -> bytes:
        return await self._blobs.get(instance.storage_key)

    async def deidentify_one(
        self, data: bytes, plan: DeidentificationPlan, tally: ChangeTally
    ) -> bytes:
        """One file under ``plan`` (in a worker thread), its changes added to ``tally``."""
        result = await asyncio.to_thread(self._deidentifier.deidentify, data, plan)
        tally.merge(result.changes)
        for warning in result.warnings:
            tally.warnings[warning] += 1
        return result.data

    # -- at ingest -----------------------------------------------------------------------

    def ingest_plan(self, centre: Centre) -> DeidentificationPlan | None:
        """The plan uploads into ``centre`` are de-identified with, or None when the centre
        stores files as received. The same for every upload of the centre."""
        if not centre.deidentify_at_ingest:
            return None
        return DeidentificationPlan.derived(
            INGEST_OPTIONS, secret=self._ingest_secret, scope=f"centre:{centre.id}"
        )

    async def plan_for_upload(self, centre_id: Id) -> DeidentificationPlan | None:
        async with self._uow() as uow:
            centre = await uow.centres.get(centre_id)
        return None if centre is None else self.ingest_plan(centre)

    def deidentify_upload(self, data: bytes, plan: DeidentificationPlan) -> bytes:
        """One uploaded DICOM file under a centre's ingest plan (blocking)."""
        return self._deidentifier.deidentify(data, plan).data


def _options_text(options: DeidentificationOptions) -> str:
    return f"dates={options.dates.value}, retain_uids={str(options.retain_uids).lower()}"
