"""Embedding Hounsfield's domain in another service, with that service's own adapters.

A teaching-file archive keeps its images in its own object store and its audit trail in its
own log, but wants Hounsfield's rules: studies keyed by DICOM UIDs per centre, tenant
isolation, audited use cases, IBSI lesion metrics. It imports ``domain`` (the use cases and
ports) and brings three adapters of its own; repositories come from the in-memory adapter
here (a real service would bring its own or use ``adapters.postgres``).

Run it: ``.venv/bin/python docs/examples/embedded_archive.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydicom.data import get_testdata_file

from adapters.dicom import read_dicom
from adapters.memory import MemoryDatabase
from domain.audit import AuditEvent, AuditQuery
from domain.errors import NotFound
from domain.identity import SYSTEM_PRINCIPAL, Principal, PrincipalKind, Role
from domain.metrics import compute_tumor_metrics
from domain.ports.blobs import (
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobWrite,
    validate_blob_key,
    validate_blob_prefix,
)
from domain.ports.repositories import StudyFilter
from domain.services.auditing import Auditor
from domain.services.centres import CentreService, CreateCentre
from domain.services.ingest import IngestService
from domain.services.studies import StudyService
from domain.services.uploads import IngestStudies, UploadedFile
from domain.values import Id, Page


class ArchiveObjectStore:
    """The archive's own blob store (here a dict; in real life its object storage).

    It satisfies ``domain.ports.BlobStore`` structurally: no base class to inherit.
    """

    supports_presigned_urls = False

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str | None]] = {}
        self.modified: dict[str, datetime] = {}

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        if not isinstance(data, bytes):
            data = b"".join([chunk async for chunk in data])
        self.objects[validate_blob_key(key)] = (data, content_type)
        self.modified[key] = datetime.now(UTC)
        return BlobInfo(key=key, size_bytes=len(data), content_type=content_type)

    async def put_many(self, writes: Sequence[BlobWrite]) -> list[BlobInfo]:
        for write in writes:  # every key checked before anything is written
            validate_blob_key(write.key)
        return [
            await self.put(write.key, write.data, content_type=write.content_type)
            for write in writes
        ]

    async def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise BlobNotFound(key)
        return self.objects[key][0]

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        data = await self.get(key)
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]

    async def head(self, key: str) -> BlobInfo | None:
        if key not in self.objects:
            return None
        data, content_type = self.objects[key]
        return BlobInfo(key=key, size_bytes=len(data), content_type=content_type)

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.modified.pop(key, None)

    async def list_prefix(self, prefix: str) -> AsyncIterator[BlobEntry]:
        start = f"{validate_blob_prefix(prefix)}/" if prefix else ""
        snapshot = [  # taken first, so that the caller may delete as it goes
            BlobEntry(key=key, size_bytes=len(data), modified_at=self.modified[key])
            for key, (data, _) in self.objects.items()
            if key.startswith(start)
        ]
        for entry in snapshot:
            yield entry

    async def presign_put(
        self, key: str, *, expires_in_s: int, content_type: str | None = None
    ) -> str:
        raise NotImplementedError("the archive uploads through its own API")

    async def presign_get(self, key: str, *, expires_in_s: int) -> str:
        raise NotImplementedError("the archive serves files through its own API")

    async def ping(self) -> None:
        return None


class ArchiveAuditLog:
    """The archive's audit trail (here a list; in real life its SIEM)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def query(self, where: AuditQuery, page: Page) -> list[AuditEvent]:
        newest_first = sorted(self.events, key=lambda event: event.at, reverse=True)
        return newest_first[page.skip : page.skip + page.limit]


class ArchiveClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ArchiveIds:
    def new_id(self) -> Id:
        return uuid.uuid4()


async def main() -> dict[str, object]:
    database, blobs, audit = MemoryDatabase(), ArchiveObjectStore(), ArchiveAuditLog()
    clock, ids = ArchiveClock(), ArchiveIds()
    auditor = Auditor(log=audit, clock=clock, ids=ids)
    centres = CentreService(uow=database.unit_of_work, clock=clock, ids=ids, auditor=auditor)
    ingest = IngestService(
        uow=database.unit_of_work, blobs=blobs, clock=clock, ids=ids, auditor=auditor
    )
    studies = StudyService(uow=database.unit_of_work, blobs=blobs, auditor=auditor)

    # the platform acts as itself to set up tenants; people act as principals of a centre
    north = await centres.create(SYSTEM_PRINCIPAL, CreateCentre(name="North teaching files"))
    south = await centres.create(SYSTEM_PRINCIPAL, CreateCentre(name="South teaching files"))
    curator = Principal(
        kind=PrincipalKind.USER, id=ids.new_id(), role=Role.TECHNICIAN, centre_id=north.id
    )
    outsider = Principal(
        kind=PrincipalKind.USER, id=ids.new_id(), role=Role.RADIOLOGIST, centre_id=south.id
    )

    data = await asyncio.to_thread(Path(str(get_testdata_file("CT_small.dcm"))).read_bytes)
    upload = UploadedFile(file_name="CT_small.dcm", data=data, fields=read_dicom(data).fields)
    first = await ingest.ingest(curator, IngestStudies(files=[upload]))
    again = await ingest.ingest(curator, IngestStudies(files=[upload]))  # same UIDs: stored once
    study_id = first.studies[0].study.id

    visible, total = await studies.list(curator, StudyFilter(), Page())
    try:
        await studies.get(outsider, study_id)
        isolated = False
    except NotFound:  # another centre's study does not exist for this caller
        isolated = True

    # IBSI morphology of a 10 mm radius sphere drawn on a 1 x 0.8 x 0.8 mm grid
    z, y, x = np.mgrid[-15:16, -15:16, -15:16].astype(float)
    sphere = (z * 1.0) ** 2 + (y * 0.8) ** 2 + (x * 0.8) ** 2 <= 10.0**2
    metrics = compute_tumor_metrics(sphere, (1.0, 0.8, 0.8))

    return {
        "stored": first.stored,
        "duplicates_on_resend": again.duplicates,
        "studies_visible_to_curator": total,
        "study_code": visible[0].code,
        "other_centre_sees_it": not isolated,
        "blobs_in_archive_store": len(blobs.objects),
        "audited_actions": sorted({event.action for event in audit.events}),
        "sphere_volume_mm3": round(metrics.volume_mesh_mm3, 1),
        "sphere_sphericity": round(metrics.sphericity, 3),
    }


if __name__ == "__main__":
    for name, value in asyncio.run(main()).items():
        print(f"{name}: {value}")
