"""``/measure``: IBSI metrics of each structure of an uploaded DICOM SEG or RTSTRUCT."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body

from domain.errors import InvalidInput
from domain.identity import Principal
from domain.services.segmentation_measures import MeasureSegmentation
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import provide_container
from entrypoints.http.measure.schemas import MeasureForm, MeasurementRead, measurement_read
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
    )
    async def measure(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: Annotated[MeasureForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> MeasurementRead:
        upload = data.file
        try:
            if data.study_id is None:
                raise InvalidInput("name the study as 'study_id'")
            if upload is None:
                raise InvalidInput("send the DICOM SEG or RTSTRUCT as 'file'")
            content = await upload.read()
        finally:
            if upload is not None:
                await upload.close()
        command = MeasureSegmentation(study_id=data.study_id, data=content)
        measured = await container.services.segmentation_measures.measure(principal, command)
        return measurement_read(measured)
