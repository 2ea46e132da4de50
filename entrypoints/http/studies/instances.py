"""Controllers for what is inside a stored instance: metadata, renderings, measurements and
annotations."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from adapters.images import RenderFormat
from domain.identity import Principal
from domain.services.annotations import PlaceAnnotation, PlaceMeasurement
from entrypoints.bootstrap import Container
from entrypoints.http.identity.schemas import read_as
from entrypoints.http.studies.controllers import DEPENDENCIES
from entrypoints.http.studies.files import render_instance, requested_window
from entrypoints.http.studies.schemas import (
    AnnotationCreate,
    AnnotationRead,
    MeasurementCreate,
    MeasurementRead,
)

DICOM_JSON = "application/dicom+json"


class InstanceController(Controller):
    path = "/instances"
    tags = ["images"]
    dependencies = DEPENDENCIES

    @get(
        "/{instance_id:uuid}/metadata",
        operation_id="getInstanceMetadata",
        summary="The instance's header as DICOM JSON (from the database)",
        media_type=DICOM_JSON,
    )
    async def metadata(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
    ) -> dict[str, Any]:
        instance = await container.services.studies.instance(principal, instance_id, "metadata")
        return dict(instance.header)

    @get(
        "/{instance_id:uuid}/rendered",
        operation_id="renderInstance",
        summary="One frame as a windowed PNG or JPEG",
    )
    async def rendered(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
        window: FromQuery[float | None] = None,
        level: FromQuery[float | None] = None,
        preset: FromQuery[str | None] = None,
        frame: Annotated[int, QueryParameter(ge=1, description="1-based frame number")] = 1,
        format: FromQuery[str] = "png",
    ) -> Response[bytes]:
        chosen = RenderFormat.parse(format)
        requested = requested_window(window, level, preset)
        studies = container.services.studies
        instance = await studies.instance(principal, instance_id, "rendered")
        data = await studies.read_bytes(instance)
        picture = await asyncio.to_thread(
            render_instance, data, instance, frame=frame, window=requested, format=chosen
        )
        return Response(picture, media_type=chosen.content_type)

    @post(
        "/{instance_id:uuid}/measurements",
        operation_id="createMeasurement",
        summary="Place a measurement on an instance",
    )
    async def create_measurement(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
        data: JSONBody[MeasurementCreate],
    ) -> MeasurementRead:
        command = msgspec.convert(msgspec.to_builtins(data), PlaceMeasurement)
        placed = await container.services.annotations.measure(principal, instance_id, command)
        return read_as(placed, MeasurementRead)

    @get(
        "/{instance_id:uuid}/measurements",
        operation_id="listMeasurements",
        summary="Measurements on an instance",
    )
    async def list_measurements(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
    ) -> list[MeasurementRead]:
        found = await container.services.annotations.measurements(principal, instance_id)
        return [read_as(m, MeasurementRead) for m in found]

    @delete(
        "/{instance_id:uuid}/measurements/{measurement_id:uuid}",
        operation_id="deleteMeasurement",
        summary="Remove a measurement (its author, a centre manager or an admin)",
    )
    async def delete_measurement(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
        measurement_id: FromPath[UUID],
    ) -> None:
        await container.services.annotations.remove_measurement(
            principal, instance_id, measurement_id
        )

    @post(
        "/{instance_id:uuid}/annotations",
        operation_id="createAnnotation",
        summary="Place a text annotation on an instance",
    )
    async def create_annotation(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
        data: JSONBody[AnnotationCreate],
    ) -> AnnotationRead:
        command = msgspec.convert(msgspec.to_builtins(data), PlaceAnnotation)
        placed = await container.services.annotations.annotate(principal, instance_id, command)
        return read_as(placed, AnnotationRead)

    @get(
        "/{instance_id:uuid}/annotations",
        operation_id="listAnnotations",
        summary="Text annotations on an instance",
    )
    async def list_annotations(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
    ) -> list[AnnotationRead]:
        found = await container.services.annotations.annotations(principal, instance_id)
        return [read_as(a, AnnotationRead) for a in found]

    @delete(
        "/{instance_id:uuid}/annotations/{annotation_id:uuid}",
        operation_id="deleteAnnotation",
        summary="Remove a text annotation (its author, a centre manager or an admin)",
    )
    async def delete_annotation(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        instance_id: FromPath[UUID],
        annotation_id: FromPath[UUID],
    ) -> None:
        await container.services.annotations.remove_annotation(
            principal, instance_id, annotation_id
        )
