"""De-identification (``/studies/{id}/anonymize``, ``/anonymize/batch``) and export
(``/export``): each answers a ZIP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from domain.deidentification import DeidentificationReport
from domain.identity import Principal
from domain.services.deidentification import DeidentifiedFiles, NamedFile
from domain.services.export import ExportImages
from domain.studies import Window
from entrypoints.archives import zip_bytes, zip_stream
from entrypoints.bootstrap import Container
from entrypoints.http.forms import form_operation, read_form
from entrypoints.http.interop.schemas import (
    AnonymizeBatchFields,
    AnonymizeBatchForm,
    AnonymizeRequest,
    ExportRequest,
    options_of,
)
from entrypoints.http.studies.controllers import DEPENDENCIES
from entrypoints.http.studies.files import display_name

ZIP = "application/zip"
REPORT_NAME = "deidentification-report.json"


async def _zip_response(files: list[tuple[str, bytes]], download: str) -> Response[bytes]:
    return Response(
        await asyncio.to_thread(zip_bytes, files),
        media_type=ZIP,
        headers={"Content-Disposition": f'attachment; filename="{download}"'},
    )


def _report_json(report: DeidentificationReport) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2)


async def _deidentified_zip(result: DeidentifiedFiles, download: str) -> Response[bytes]:
    return await _zip_response(
        [(f.name, f.data) for f in result.files] + [(REPORT_NAME, _report_json(result.report))],
        download,
    )


class InteropController(Controller):
    path = "/"
    tags = ["interop"]
    dependencies = DEPENDENCIES

    @post(
        "/studies/{study_id:uuid}/anonymize",
        operation_id="anonymizeStudy",
        summary="A study's DICOM files de-identified (PS3.15 Basic Profile) with the report, "
        "as a ZIP; nothing stored changes",
        status_code=200,
        media_type=ZIP,
    )
    async def anonymize_study(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
        data: JSONBody[AnonymizeRequest | None] = None,
    ) -> Stream:
        options = (data or AnonymizeRequest()).options()
        stream = await container.services.deidentification.study_stream(
            principal, study_id, options
        )

        async def files() -> AsyncIterator[tuple[str, bytes]]:
            async for file in stream:
                yield file.name, file.data

        return Stream(
            zip_stream(files(), tail=lambda: [(REPORT_NAME, _report_json(stream.report()))]),
            media_type=ZIP,
            headers={
                "Content-Disposition": (f'attachment; filename="study-{study_id}-deidentified.zip"')
            },
        )

    @post(
        "/anonymize/batch",
        operation_id="anonymizeBatch",
        summary="Uploaded DICOM files de-identified (PS3.15 Basic Profile) with the report, "
        "as a ZIP; nothing is stored",
        status_code=200,
        media_type=ZIP,
        operation_class=form_operation(AnonymizeBatchForm),
    )
    async def anonymize_batch(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> Response[bytes]:
        form = await read_form(
            request.content_type, request.stream(), max_parts=request.app.multipart_form_part_limit
        )
        data = form.fields_as(AnonymizeBatchFields)
        options = options_of(data.dates, data.date_shift_days, data.retain_uids)
        files = [
            NamedFile(display_name(upload.file_name, n), upload.data)
            for n, upload in enumerate(form.files_in("files"), start=1)
        ]
        result = await container.services.deidentification.files(principal, files, options)
        return await _deidentified_zip(result, "deidentified.zip")

    @post(
        "/export",
        operation_id="exportImages",
        summary="Images as PNG, JPEG or NumPy arrays (optionally with metadata JSON), as a ZIP; "
        "one image of another centre makes the whole request 404",
        status_code=200,
        media_type=ZIP,
    )
    async def export(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[ExportRequest],
    ) -> Response[bytes]:
        window = (
            None
            if data.window is None
            else Window(center=data.window.level, width=data.window.width)
        )
        command = ExportImages(
            image_ids=data.image_ids,
            format=data.format,
            window=window,
            include_metadata=data.include_metadata,
        )
        result = await container.services.export.export(principal, command)
        return await _zip_response([(f.name, f.data) for f in result.files], "export.zip")
