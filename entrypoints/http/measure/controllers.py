"""``/measure``: IBSI metrics of each structure of an uploaded DICOM SEG or RTSTRUCT."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide

from domain.errors import InvalidInput
from domain.identity import Principal
from domain.services.segmentation_measures import MeasureSegmentation
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import provide_container
from entrypoints.http.forms import bad_form, form_operation, read_form
from entrypoints.http.measure.schemas import (
    MeasureFields,
    MeasureForm,
    MeasurementRead,
    measurement_read,
)
from entrypoints.http.security import provide_principal


class MeasureController(Controller):
    path = "/measure"
    tags = ["analysis"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "principal": Provide(provide_principal, sync_to_thread=False),
    }

    @post(
        "/",
        operation_id="measureSegmentation",
        summary="Measure each structure of a DICOM SEG or RTSTRUCT on its series of a study",
        status_code=200,
        operation_class=form_operation(MeasureForm),
    )
    async def measure(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        request: Request[Any, Any, Any],
    ) -> MeasurementRead:
        form = await read_form(
            request.content_type, request.stream(), max_parts=request.app.multipart_form_part_limit
        )
        data = form.fields_as(MeasureFields)
        if data.study_id is None:
            raise InvalidInput("name the study as 'study_id'")
        uploads = form.files_in("file")
        if not uploads:
            raise InvalidInput("send the DICOM SEG or RTSTRUCT as 'file'")
        if len(uploads) > 1:
            raise bad_form("send one DICOM SEG or RTSTRUCT as 'file', not several")
        command = MeasureSegmentation(study_id=data.study_id, data=uploads[0].data)
        measured = await container.services.segmentation_measures.measure(principal, command)
        return measurement_read(measured)
