"""STOW-RS (PS3.18 10.5): storing DICOM instances sent as multipart/related.

Each part is read on its own; the readable ones are stored together through the same ingest
use case as uploads (so duplicates, study joining and tenancy work alike), the others are
answered in the FailedSOPSequence. Parts may carry a ``transfer-syntax`` parameter in their
Content-Type (as dcm4chee sends them); the file's own file meta decides how it is read.

A centre that de-identifies at ingest gets every part de-identified under its plan before it
is read, as uploads are; the answer then names the stored (new) UIDs, and a study named in the
URL is compared with the UID the part was sent with.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from pydicom import dcmread

from adapters.dicom import is_dicom_part10
from domain.errors import InvalidInput
from domain.identity import Principal
from domain.services.dicomweb import store_response
from domain.services.uploads import (
    IngestStudies,
    RejectedFile,
    UploadedFile,
    check_uids,
    storable,
)
from entrypoints.bootstrap import Container
from entrypoints.http.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    MULTIPART,
    parse_media_type,
    parse_multipart,
)
from entrypoints.http.dicomweb.negotiation import json_accepted
from entrypoints.http.dicomweb.qido import dicomweb_root
from entrypoints.http.studies.controllers import DEPENDENCIES
from entrypoints.http.studies.deidentify_at_ingest import Prepare, ingest_preparer
from entrypoints.http.studies.files import read_upload

# FailureReason (0008,1197) values (PS3.4 Annex GG / PS3.18 Table 10.5.3-4)
CANNOT_UNDERSTAND = 0xC000
STUDY_MISMATCH = 0xA900
"""Used for an instance of another study than the one the request's URL names."""

Failed = tuple[str | None, str | None, int]


def _parts_of(request: Request[Any, Any, Any], body: bytes) -> list[Any]:
    content_type = parse_media_type(request.headers.get("content-type", ""))
    if content_type.type != MULTIPART:
        raise HTTPException(
            status_code=415,
            detail='send instances as multipart/related; type="application/dicom"',
        )
    if content_type.part_type not in (None, DICOM):
        raise HTTPException(
            status_code=415,
            detail=f"only application/dicom parts are stored, not {content_type.part_type}",
        )
    boundary = content_type.parameters.get("boundary")
    if not boundary:
        raise InvalidInput("the multipart/related Content-Type has no boundary")
    parts = parse_multipart(body, boundary)
    if not parts:
        raise InvalidInput("the request has no parts; send one DICOM instance per part")
    return parts


def _sent_study_uid(data: bytes) -> str | None:
    """The StudyInstanceUID a part was sent with (before any de-identification)."""
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=[0x0020000D])
        return str(ds.StudyInstanceUID)
    except Exception:  # unreadable parts are refused when they are read
        return None


async def _read(
    position: int, part: Any, study: str | None, prepare: Prepare | None
) -> UploadedFile | Failed:
    name = f"part #{position}"
    if part.content_type.type != DICOM or not is_dicom_part10(part.body):
        return (None, None, CANNOT_UNDERSTAND)
    sent_study = None
    if study is not None and prepare is not None:
        sent_study = await asyncio.to_thread(_sent_study_uid, part.body)
    try:
        upload = storable(await read_upload(part.body, name, None, prepare))
        check_uids(upload)
    except RejectedFile:
        return (None, None, CANNOT_UNDERSTAND)
    instance = upload.fields.instance
    if study is not None and (sent_study or upload.fields.study.study_instance_uid) != study:
        return (instance.sop_class_uid, instance.sop_instance_uid, STUDY_MISMATCH)
    return upload


class StowController(Controller):
    path = "/"
    tags = ["dicomweb"]
    dependencies = DEPENDENCIES

    async def _store(
        self,
        container: Container,
        principal: Principal,
        request: Request[Any, Any, Any],
        study: str | None,
        centre_id: UUID | None,
    ) -> Response[bytes]:
        json_accepted(request.headers.get("accept"), "a store response")
        ingest = container.services.ingest
        # who stores where is settled before the body is read
        target = await ingest.upload_centre(principal, centre_id)
        prepare = await ingest_preparer(container.services.deidentification, target)
        parts = _parts_of(request, await request.body())
        readable: list[UploadedFile] = []
        failed: list[Failed] = []
        for position, part in enumerate(parts, start=1):
            outcome = await _read(position, part, study, prepare)
            if isinstance(outcome, UploadedFile):
                readable.append(outcome)
            else:
                failed.append(outcome)
        stored = []
        if readable:
            await ingest.ingest(principal, IngestStudies(files=readable, centre_id=target))
            stored = [
                (
                    u.fields.study.study_instance_uid,
                    u.fields.series.series_instance_uid,
                    u.fields.instance.sop_class_uid,
                    u.fields.instance.sop_instance_uid,
                )
                for u in readable
            ]
        # de-identified instances live under new UIDs: the answer names those
        named = study if prepare is None else None
        status, dataset = store_response(dicomweb_root(container, request), stored, failed, named)
        return Response(msgspec.json.encode(dataset), status_code=status, media_type=DICOM_JSON)

    @post(
        "/studies",
        operation_id="stowStudies",
        summary="STOW-RS: store DICOM instances (multipart/related)",
        status_code=200,
    )
    async def store(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        centre_id: FromQuery[UUID | None] = None,
    ) -> Response[bytes]:
        return await self._store(container, principal, request, None, centre_id)

    @post(
        "/studies/{study:str}",
        operation_id="stowStudy",
        summary="STOW-RS: store DICOM instances of one study (multipart/related)",
        status_code=200,
    )
    async def store_in_study(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
        study: FromPath[str],
        centre_id: FromQuery[UUID | None] = None,
    ) -> Response[bytes]:
        return await self._store(container, principal, request, study, centre_id)
