"""Use cases for reading the imaging archive (studies, series, instances) and deleting from it.

Tenancy first: another centre's study or instance is not found. Every read of patient data
is audited (``study.list``, ``study.read``, ``series.list``, ``instance.list``,
``instance.read``), without patient data in the record.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec

from domain.errors import NotFound
from domain.identity import Principal, PrincipalKind, Role, Scope
from domain.ports.blobs import BlobStore
from domain.ports.repositories import JobFilter, StudyFilter
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import require_role, require_scope, scoped_centre, visible
from domain.services.auditing import Auditor
from domain.studies import Instance, Series, Study
from domain.values import MAX_PAGE_SIZE, Id, Page, is_plain_number


def require_study_writer(principal: Principal, action: str = "upload studies") -> None:
    """Technicians, centre managers and admins upload; an API key needs ``studies:write``."""
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.STUDIES_WRITE)
    else:
        require_role(principal, Role.TECHNICIAN, Role.CENTRE_MANAGER, action=action)


def require_study_reader(principal: Principal) -> None:
    """Every user of a centre reads its studies; an API key needs ``studies:read``."""
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.STUDIES_READ)


async def _segmentation_keys(uow: UnitOfWork, study_id: Id) -> list[str]:
    """The DICOM SEGs the study's analyses wrote (they carry the patient's header too)."""
    keys: list[str] = []
    page = Page(limit=MAX_PAGE_SIZE)
    while True:
        jobs = await uow.jobs.list(JobFilter(study_id=study_id), page)
        for job in jobs:
            result = await uow.results.get_for_job(job.id)
            if result is not None and result.segmentation_key is not None:
                keys.append(result.segmentation_key)
        if len(jobs) < page.limit:
            return keys
        page = Page(skip=page.skip + page.limit, limit=page.limit)


class StudyService:
    def __init__(self, *, uow: UnitOfWorkFactory, blobs: BlobStore, auditor: Auditor) -> None:
        self._uow = uow
        self._blobs = blobs
        self._auditor = auditor

    async def get(self, principal: Principal, study_id: Id) -> Study:
        async with self._uow() as uow:
            study = await uow.studies.get(study_id)
        return await self._visible(principal, study, study_id)

    async def get_by_code(self, principal: Principal, code: str) -> Study:
        async with self._uow() as uow:
            study = await uow.studies.get_by_code(code.strip().upper())
        return await self._visible(principal, study, code)

    async def _visible(
        self, principal: Principal, study: Study | None, ident: object, action: str = "study.read"
    ) -> Study:
        study = visible(principal, study, "study", ident)
        require_study_reader(principal)
        await self._auditor.record(principal, action, "study", study.id, centre_id=study.centre_id)
        return study

    async def series(self, principal: Principal, study_id: Id) -> list[tuple[Series, int]]:
        """The series of a study with their number of instances."""
        async with self._uow() as uow:
            study = await uow.studies.get(study_id)
            await self._visible(principal, study, study_id, "series.list")
            series = await uow.series.list_for_study(study_id)
            instances = await uow.instances.list_for_study(study_id)
        counts = {s.id: 0 for s in series}
        for instance in instances:
            counts[instance.series_id] = counts.get(instance.series_id, 0) + 1
        return [(s, counts[s.id]) for s in series]

    async def instances(self, principal: Principal, study_id: Id) -> list[Instance]:
        """The instances of a study: series in series order, then by instance number."""
        async with self._uow() as uow:
            study = await uow.studies.get(study_id)
            await self._visible(principal, study, study_id, "instance.list")
            return await uow.instances.list_for_study(study_id)

    async def instance_in_study(self, principal: Principal, study_id: Id, which: str) -> Instance:
        """Instance ``which`` of a study: its 1-based position in :meth:`instances` (series in
        series order, then instance number), or its id."""
        async with self._uow() as uow:
            study = await uow.studies.get(study_id)
            await self._visible(principal, study, study_id, "instance.list")
            instances = await uow.instances.list_for_study(study_id)
        found: Instance | None = None
        if is_plain_number(which):
            position = int(which)
            found = instances[position - 1] if 1 <= position <= len(instances) else None
        else:
            found = next((i for i in instances if str(i.id) == which.strip().lower()), None)
        if found is None:
            raise NotFound("instance", f"{which[:40]} of study {study_id}")
        await self._auditor.record(
            principal,
            "instance.read",
            "instance",
            found.id,
            centre_id=found.centre_id,
            detail="file",
        )
        return found

    async def instance(self, principal: Principal, instance_id: Id, purpose: str) -> Instance:
        """One instance; ``purpose`` (``metadata``, ``rendered``...) goes to the audit trail."""
        async with self._uow() as uow:
            instance = visible(
                principal, await uow.instances.get(instance_id), "instance", instance_id
            )
        require_study_reader(principal)
        await self._auditor.record(
            principal,
            "instance.read",
            "instance",
            instance.id,
            centre_id=instance.centre_id,
            detail=purpose,
        )
        return instance

    def open(self, instance: Instance) -> AsyncIterator[bytes]:
        """The stored file of an instance the caller has already been allowed to read."""
        return self._blobs.stream(instance.storage_key)

    async def read_bytes(self, instance: Instance) -> bytes:
        return await self._blobs.get(instance.storage_key)

    # -- deleting ------------------------------------------------------------------------

    async def delete(self, principal: Principal, study_id: Id) -> None:
        """Remove a study with everything in it, then its stored files (admins only)."""
        async with self._uow() as uow:
            study = await uow.studies.get(study_id)
            if study is None or not principal.can_see_centre(study.centre_id):
                raise NotFound("study", study_id)
            require_role(principal, action="delete studies")
            keys = [i.storage_key for i in await uow.instances.list_for_study(study_id)]
            keys += await _segmentation_keys(uow, study_id)
            await uow.studies.delete(study_id)
            await uow.commit()
        await self._discard(keys)
        await self._auditor.record(
            principal,
            "study.delete",
            "study",
            study_id,
            centre_id=study.centre_id,
            detail=f"{len(keys)} file(s) removed",
        )

    async def _discard(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(Exception):
                await self._blobs.delete(key)

    # after the methods that annotate with the builtin ``list``, which this name shadows
    async def list(
        self, principal: Principal, where: StudyFilter, page: Page
    ) -> tuple[list[Study], int]:
        """Studies of the principal's centre (an admin's choice of centre, or all), with the
        total that match."""
        require_study_reader(principal)
        scoped = msgspec.structs.replace(where, centre_id=scoped_centre(principal, where.centre_id))
        async with self._uow() as uow:
            found = await uow.studies.list(scoped, page)
            total = await uow.studies.count(scoped)
        await self._auditor.record(
            principal, "study.list", "study", None, detail=f"{len(found)} of {total}"
        )
        return found, total
