"""Measurements and annotations on instances in PostgreSQL."""

from __future__ import annotations

import msgspec

from adapters.postgres.repositories._sql import insert, to_struct
from adapters.postgres.session import Session
from domain.annotations import Annotation, Measurement
from domain.values import Id

_MEASUREMENT_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(Measurement))
_ANNOTATION_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(Annotation))


class PostgresMeasurementRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, measurement: Measurement) -> None:
        await insert(
            self._connection, "measurements", "measurement", msgspec.structs.asdict(measurement)
        )

    async def get(self, measurement_id: Id) -> Measurement | None:
        row = await self._connection.fetchrow(
            f"SELECT {_MEASUREMENT_COLUMNS} FROM measurements WHERE id = $1", measurement_id
        )
        return None if row is None else to_struct(row, Measurement)

    async def list_for_instance(self, instance_id: Id) -> list[Measurement]:
        """In the order they were placed."""
        rows = await self._connection.fetch(
            f"SELECT {_MEASUREMENT_COLUMNS} FROM measurements WHERE instance_id = $1 "
            "ORDER BY created_at, id",
            instance_id,
        )
        return [to_struct(row, Measurement) for row in rows]

    async def delete(self, measurement_id: Id) -> None:
        await self._connection.execute("DELETE FROM measurements WHERE id = $1", measurement_id)


class PostgresAnnotationRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, annotation: Annotation) -> None:
        await insert(
            self._connection, "annotations", "annotation", msgspec.structs.asdict(annotation)
        )

    async def get(self, annotation_id: Id) -> Annotation | None:
        row = await self._connection.fetchrow(
            f"SELECT {_ANNOTATION_COLUMNS} FROM annotations WHERE id = $1", annotation_id
        )
        return None if row is None else to_struct(row, Annotation)

    async def list_for_instance(self, instance_id: Id) -> list[Annotation]:
        """In the order they were placed."""
        rows = await self._connection.fetch(
            f"SELECT {_ANNOTATION_COLUMNS} FROM annotations WHERE instance_id = $1 "
            "ORDER BY created_at, id",
            instance_id,
        )
        return [to_struct(row, Annotation) for row in rows]

    async def delete(self, annotation_id: Id) -> None:
        await self._connection.execute("DELETE FROM annotations WHERE id = $1", annotation_id)
