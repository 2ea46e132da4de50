"""Use cases for measurements and text annotations placed on an instance.

Every user of the instance's centre may read and place them (an API key needs
``studies:read`` to read and ``studies:write`` to place or remove); the author, a centre
manager or an admin may remove one. Another centre's instance, measurement or annotation is
not found.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from domain.annotations import Annotation, Measurement, MeasurementKind
from domain.errors import InvalidInput, NotFound, PermissionDenied
from domain.identity import Principal, PrincipalKind, Role, Scope
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import require_scope, visible
from domain.services.auditing import Auditor
from domain.services.studies import require_study_reader
from domain.studies import Instance
from domain.values import Id

MAX_POINTS = 1000
MAX_TEXT_LENGTH = 4000


class PlaceMeasurement(msgspec.Struct, frozen=True, kw_only=True):
    kind: MeasurementKind
    points: Sequence[tuple[float, float]]
    """Image coordinates (column, row) in pixels."""
    value: float
    unit: str
    label: str | None = None
    frame: int = 1
    """1-based, as DICOM numbers frames."""


class PlaceAnnotation(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    position: tuple[float, float]
    frame: int = 1


def _require_note_writer(principal: Principal) -> None:
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.STUDIES_WRITE)


def _check_place(instance: Instance, frame: int, points: Sequence[tuple[float, float]]) -> None:
    if not 1 <= frame <= instance.number_of_frames:
        raise InvalidInput(
            f"frame {frame} does not exist; this instance has frames 1 to "
            f"{instance.number_of_frames}"
        )
    if len(points) > MAX_POINTS:
        raise InvalidInput(f"at most {MAX_POINTS} points may be given")
    for x, y in points:
        if not all(abs(v) < 1e9 for v in (x, y)):  # also refuses NaN and infinity
            raise InvalidInput(f"point ({x}, {y}) is not a finite pixel position")


class AnnotationService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, auditor: Auditor
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._auditor = auditor

    async def _instance(self, uow: UnitOfWork, principal: Principal, instance_id: Id) -> Instance:
        instance = visible(principal, await uow.instances.get(instance_id), "instance", instance_id)
        require_study_reader(principal)
        return instance

    async def measure(
        self, principal: Principal, instance_id: Id, command: PlaceMeasurement
    ) -> Measurement:
        async with self._uow() as uow:
            instance = await self._instance(uow, principal, instance_id)
            _require_note_writer(principal)
            _check_place(instance, command.frame, command.points)
            if not -1e12 < command.value < 1e12:
                raise InvalidInput(f"value {command.value} is not a finite number")
            try:
                measurement = Measurement(
                    id=self._ids.new_id(),
                    centre_id=instance.centre_id,
                    instance_id=instance.id,
                    kind=command.kind,
                    points=tuple((float(x), float(y)) for x, y in command.points),
                    value=command.value,
                    unit=command.unit,
                    label=command.label,
                    frame=command.frame,
                    author_id=principal.id,
                    created_at=self._clock.now(),
                )
            except ValueError as err:
                raise InvalidInput(str(err)) from None
            await uow.measurements.add(measurement)
            await uow.commit()
        await self._audit(principal, "measurement.create", measurement.id, instance)
        return measurement

    async def measurements(self, principal: Principal, instance_id: Id) -> list[Measurement]:
        async with self._uow() as uow:
            instance = await self._instance(uow, principal, instance_id)
            found = await uow.measurements.list_for_instance(instance.id)
        await self._audit(principal, "measurement.list", None, instance)
        return found

    async def remove_measurement(
        self, principal: Principal, instance_id: Id, measurement_id: Id
    ) -> None:
        async with self._uow() as uow:
            instance = await self._instance(uow, principal, instance_id)
            measurement = await uow.measurements.get(measurement_id)
            if measurement is None or measurement.instance_id != instance.id:
                raise NotFound("measurement", measurement_id)
            _require_remover(principal, measurement.author_id)
            await uow.measurements.delete(measurement_id)
            await uow.commit()
        await self._audit(principal, "measurement.delete", measurement_id, instance)

    async def annotate(
        self, principal: Principal, instance_id: Id, command: PlaceAnnotation
    ) -> Annotation:
        text = command.text.strip()
        if not text or len(text) > MAX_TEXT_LENGTH:
            raise InvalidInput(f"text must have 1 to {MAX_TEXT_LENGTH} characters")
        async with self._uow() as uow:
            instance = await self._instance(uow, principal, instance_id)
            _require_note_writer(principal)
            _check_place(instance, command.frame, [command.position])
            annotation = Annotation(
                id=self._ids.new_id(),
                centre_id=instance.centre_id,
                instance_id=instance.id,
                text=text,
                position=(float(command.position[0]), float(command.position[1])),
                frame=command.frame,
                author_id=principal.id,
                created_at=self._clock.now(),
            )
            await uow.annotations.add(annotation)
            await uow.commit()
        await self._audit(principal, "annotation.create", annotation.id, instance)
        return annotation

    async def annotations(self, principal: Principal, instance_id: Id) -> list[Annotation]:
        async with self._uow() as uow:
            instance = await self._instance(uow, principal, instance_id)
            found = await uow.annotations.list_for_instance(instance.id)
        await self._audit(principal, "annotation.list", None, instance)
        return found

    async def remove_annotation(
        self, principal: Principal, instance_id: Id, annotation_id: Id
    ) -> None:
        async with self._uow() as uow:
            instance = await self._instance(uow, principal, instance_id)
            annotation = await uow.annotations.get(annotation_id)
            if annotation is None or annotation.instance_id != instance.id:
                raise NotFound("annotation", annotation_id)
            _require_remover(principal, annotation.author_id)
            await uow.annotations.delete(annotation_id)
            await uow.commit()
        await self._audit(principal, "annotation.delete", annotation_id, instance)

    async def _audit(
        self, principal: Principal, action: str, resource_id: Id | None, instance: Instance
    ) -> None:
        resource_type = action.split(".", 1)[0]
        await self._auditor.record(
            principal,
            action,
            resource_type,
            resource_id if resource_id is not None else instance.id,
            centre_id=instance.centre_id,
        )


def _require_remover(principal: Principal, author_id: Id | None) -> None:
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.STUDIES_WRITE)
        if author_id == principal.id:
            return
        raise PermissionDenied("an API key may only remove what it placed itself")
    if author_id is not None and author_id == principal.id:
        return
    if not principal.has_role(Role.ADMIN, Role.CENTRE_MANAGER):
        raise PermissionDenied("only the author, a centre manager or an admin may remove it")
