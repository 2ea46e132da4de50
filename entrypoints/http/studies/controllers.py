"""Controllers for uploading and reading studies, series, instances and their notes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from domain.errors import InvalidInput
from domain.identity import Principal
from domain.ports.repositories import StudyFilter
from domain.services.uploads import (
    IngestResult,
    IngestStudies,
    StudyOverrides,
    download_name,
    parse_modality,
)
from domain.studies import Instance, StudyStatus, Urgency
from domain.values import MAX_PAGE_SIZE, Page
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import provide_container
from entrypoints.http.forms import FormFile, bad_form, form_operation, read_form
from entrypoints.http.identity.schemas import read_as
from entrypoints.http.jobs.starting import analysis_model, start_analysis
from entrypoints.http.security import provide_principal
from entrypoints.http.studies.deidentify_at_ingest import ingest_preparer, refuse_patient_fields
from entrypoints.http.studies.files import (
    read_uploads,
)
from entrypoints.http.studies.schemas import (
    IngestedFileRead,
    IngestedStudyRead,
    IngestRead,
    InstanceRead,
    SeriesRead,
    SingleUploadFields,
    SingleUploadForm,
    StudyFieldsForm,
    StudyRead,
    StudyUploadForm,
    UploadRead,
)

Skip = Annotated[int, QueryParameter(ge=0, description="Items to pass over")]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="At most this many items")
]
DEPENDENCIES = {
    "container": Provide(provide_container, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}


def overrides_of(form: StudyFieldsForm) -> StudyOverrides:
    return StudyOverrides(
        patient_name=form.patient_name,
        patient_id=form.patient_id,
        patient_age=form.patient_age,
        patient_sex=form.patient_sex,
        modality=form.modality,
        description=form.description or form.study_type,
        urgency=form.urgency,
    )


def ingest_read(result: IngestResult) -> IngestRead:
    return IngestRead(
        studies=[
            IngestedStudyRead(
                id=entry.study.id,
                code=entry.study.code,
                study_instance_uid=entry.study.study_instance_uid,
                created=entry.created,
                stored=entry.stored,
                duplicates=entry.duplicates,
            )
            for entry in result.studies
        ],
        stored=result.stored,
        duplicates=result.duplicates,
        files=[read_as(f, IngestedFileRead) for f in result.files],
    )


def upload_read(result: IngestResult, job_id: UUID | None = None) -> UploadRead:
    """The answer for an upload of one file (and the analysis it started)."""
    only = result.files[0]
    study = next(entry.study for entry in result.studies if entry.study.id == only.study_id)
    assert result.at is not None
    return UploadRead(
        study_id=study.id,
        study_code=study.code,
        image_id=only.instance_id,
        job_id=job_id,
        processing_status="duplicate" if only.duplicate else "stored",
        uploaded_at=result.at,
    )


def instance_read(instance: Instance, position: int) -> InstanceRead:
    values = msgspec.structs.asdict(instance)
    values["position"] = position
    return msgspec.convert(values, InstanceRead, from_attributes=True)


async def ingest_files(
    container: Container, principal: Principal, form: StudyFieldsForm, uploads: list[FormFile]
) -> IngestResult:
    """Check who uploads where before reading anything, read every file, ingest them all."""
    ingest = container.services.ingest
    centre_id = await ingest.upload_centre(principal, form.centre_id)
    overrides = overrides_of(form)
    prepare = await ingest_preparer(container.services.deidentification, centre_id)
    refuse_patient_fields(prepare, overrides)
    read = await read_uploads(uploads, parse_modality(overrides.modality), prepare)
    return await ingest.ingest(
        principal, IngestStudies(files=read, overrides=overrides, centre_id=centre_id)
    )


class StudyController(Controller):
    path = "/studies"
    tags = ["studies"]
    dependencies = DEPENDENCIES

    @post(
        "/",
        operation_id="uploadStudies",
        summary="Upload DICOM, NIfTI, PNG or JPEG files into studies (all or nothing)",
        status_code=201,
        operation_class=form_operation(StudyUploadForm),
    )
    async def upload(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> IngestRead:
        form = await read_form(
            request.content_type, request.stream(), max_parts=request.app.multipart_form_part_limit
        )
        uploads = form.files_in("files", "file")
        if not uploads:
            raise InvalidInput("the upload has no files; send one or more as 'files'")
        fields = form.fields_as(StudyFieldsForm)
        return ingest_read(await ingest_files(container, principal, fields, uploads))

    @get("/", operation_id="listStudies", summary="Studies the caller may see, most urgent first")
    async def list_studies(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        status: FromQuery[StudyStatus | None] = None,
        modality: FromQuery[str | None] = None,
        urgency: FromQuery[Urgency | None] = None,
        patient_id: FromQuery[str | None] = None,
        patient_name: FromQuery[str | None] = None,
        date_from: FromQuery[date | None] = None,
        date_to: FromQuery[date | None] = None,
        uploaded_from: FromQuery[datetime | None] = None,
        uploaded_to: FromQuery[datetime | None] = None,
        centre_id: FromQuery[UUID | None] = None,
        assigned_radiologist_id: FromQuery[UUID | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> Response[list[StudyRead]]:
        where = StudyFilter(
            centre_id=centre_id,
            status=status,
            modality=parse_modality(modality),
            urgency=urgency,
            assigned_radiologist_id=assigned_radiologist_id,
            patient_id=patient_id,
            patient_name_contains=patient_name,
            study_date_from=date_from,
            study_date_to=date_to,
            created_from=uploaded_from,
            created_to=uploaded_to,
        )
        found, total = await container.services.studies.list(
            principal, where, Page(skip=skip, limit=limit)
        )
        return Response(
            [read_as(s, StudyRead) for s in found], headers={"X-Total-Count": str(total)}
        )

    @get("/{study_id:uuid}", operation_id="getStudy", summary="One study")
    async def get_study(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
    ) -> StudyRead:
        return read_as(await container.services.studies.get(principal, study_id), StudyRead)

    @get("/code/{code:str}", operation_id="getStudyByCode", summary="One study by its code")
    async def get_study_by_code(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        code: FromPath[str],
    ) -> StudyRead:
        return read_as(await container.services.studies.get_by_code(principal, code), StudyRead)

    @get("/{study_id:uuid}/series", operation_id="listStudySeries", summary="Series of a study")
    async def list_series(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
    ) -> list[SeriesRead]:
        found = await container.services.studies.series(principal, study_id)
        return [
            msgspec.convert({**msgspec.structs.asdict(series), "instance_count": count}, SeriesRead)
            for series, count in found
        ]

    @get(
        "/{study_id:uuid}/instances",
        operation_id="listStudyInstances",
        summary="Instances of a study, numbered as GET /studies/{id}/instances/{n} counts them",
    )
    async def list_instances(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
    ) -> list[InstanceRead]:
        found = await container.services.studies.instances(principal, study_id)
        return [instance_read(instance, n) for n, instance in enumerate(found, start=1)]

    @get(
        "/{study_id:uuid}/instances/{which:str}",
        operation_id="getStudyInstanceFile",
        summary="The stored file of an instance (1-based position in the study, or its id)",
    )
    async def instance_file(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
        which: FromPath[str],
    ) -> Stream:
        studies = container.services.studies
        instance = await studies.instance_in_study(principal, study_id, which)
        chunks = studies.open(instance)
        first = await anext(chunks, b"")  # a missing object is a 404 before the headers go
        file_name = download_name(instance)
        return Stream(
            _prepend(first, chunks),
            media_type=instance.content_type,
            headers={
                "Content-Length": str(instance.size_bytes),
                "Content-Disposition": f'attachment; filename="{file_name}"',
            },
        )

    @delete(
        "/{study_id:uuid}",
        operation_id="deleteStudy",
        summary="Delete a study and its stored files (admin)",
    )
    async def delete_study(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
    ) -> None:
        await container.services.studies.delete(principal, study_id)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


class UploadController(Controller):
    path = "/upload"
    tags = ["studies"]
    dependencies = DEPENDENCIES

    @post(
        "/",
        operation_id="uploadImage",
        summary="Upload one file; answers the study, the image and the analysis job",
        status_code=201,
        operation_class=form_operation(SingleUploadForm),
    )
    async def upload(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> UploadRead:
        form = await read_form(
            request.content_type, request.stream(), max_parts=request.app.multipart_form_part_limit
        )
        uploads = form.files_in("file")
        if not uploads:
            raise InvalidInput("the upload has no file; send it as 'file'")
        if len(uploads) > 1:
            raise bad_form("this route takes one file; send several to POST /studies")
        data = form.fields_as(SingleUploadFields)
        if data.model_id is not None and not 1 <= len(data.model_id) <= 200:
            raise InvalidInput("model_id must have 1 to 200 characters")
        model_id = analysis_model(container, principal, data.model_id)
        result = await ingest_files(container, principal, data, uploads)
        return upload_read(result, await start_analysis(container, principal, result, model_id))
