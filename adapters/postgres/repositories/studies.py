"""Studies, series and instances in PostgreSQL. Patient demographics are columns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.repositories._sql import (
    Where,
    insert,
    insert_all,
    to_struct,
    update_versioned,
)
from adapters.postgres.session import Session
from domain.ports.repositories import StudyFilter
from domain.studies import Instance, Series, Study
from domain.values import Id, Page

# Patient field -> column
_PATIENT_COLUMNS = {
    "name": "patient_name",
    "patient_id": "patient_id",
    "age": "patient_age",
    "sex": "patient_sex",
    "birth_date": "patient_birth_date",
}
_STUDY_COLUMNS = ", ".join(
    [f.name for f in msgspec.structs.fields(Study) if f.name != "patient"]
    + list(_PATIENT_COLUMNS.values())
)
_STUDY_ORDER = "ORDER BY urgency_rank DESC, created_at DESC, id DESC"


def _study_values(study: Study) -> dict[str, Any]:
    values = msgspec.structs.asdict(study)
    patient = values.pop("patient")
    for field, column in _PATIENT_COLUMNS.items():
        values[column] = getattr(patient, field)
    return values


def _study_from_row(row: asyncpg.Record) -> Study:
    values = dict(row)
    values["patient"] = {field: values.pop(column) for field, column in _PATIENT_COLUMNS.items()}
    return msgspec.convert(values, Study)


def _study_where(where: StudyFilter) -> Where:
    w = Where()
    w.equal("centre_id", where.centre_id)
    w.equal("status", where.status)
    w.equal("modality", where.modality)
    w.equal("urgency", where.urgency)
    w.equal("assigned_radiologist_id", where.assigned_radiologist_id)
    w.equal("patient_id", where.patient_id)
    w.contains("patient_name", where.patient_name_contains)
    if where.study_date_from is not None:
        w.add("study_date >= {}", where.study_date_from)
    if where.study_date_to is not None:
        w.add("study_date <= {}", where.study_date_to)
    if where.created_from is not None:
        w.add("created_at >= {}", where.created_from)
    if where.created_to is not None:
        w.add("created_at <= {}", where.created_to)
    return w


class PostgresStudyRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, study: Study) -> None:
        await insert(self._connection, "studies", "study", _study_values(study))

    async def _one(self, condition: str, *args: Any) -> Study | None:
        row = await self._connection.fetchrow(
            f"SELECT {_STUDY_COLUMNS} FROM studies WHERE {condition}", *args
        )
        return None if row is None else _study_from_row(row)

    async def get(self, study_id: Id) -> Study | None:
        return await self._one("id = $1", study_id)

    async def get_by_code(self, code: str) -> Study | None:
        return await self._one("code = $1", code)

    async def get_by_uid(self, centre_id: Id, study_instance_uid: str) -> Study | None:
        return await self._one(
            "centre_id = $1 AND study_instance_uid = $2", centre_id, study_instance_uid
        )

    async def update(self, study: Study) -> Study:
        await update_versioned(
            self._connection, "studies", "study", study.id, study.version, _study_values(study)
        )
        return msgspec.structs.replace(study, version=study.version + 1)

    async def list(self, where: StudyFilter, page: Page) -> list[Study]:
        """Most urgent first, then newest first."""
        w = _study_where(where)
        rows = await self._connection.fetch(
            f"SELECT {_STUDY_COLUMNS} FROM studies {w.sql()} {_STUDY_ORDER} {w.page(page)}",
            *w.args,
        )
        return [_study_from_row(row) for row in rows]

    async def count(self, where: StudyFilter) -> int:
        w = _study_where(where)
        count: int = await self._connection.fetchval(
            f"SELECT count(*) FROM studies {w.sql()}", *w.args
        )
        return count

    async def delete(self, study_id: Id) -> None:
        """Remove the study; series, instances, jobs, results, reports and notes cascade."""
        await self._connection.execute("DELETE FROM studies WHERE id = $1", study_id)


_SERIES_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(Series))


class PostgresSeriesRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, series: Series) -> None:
        await insert(self._connection, "series", "series", msgspec.structs.asdict(series))

    async def get(self, series_id: Id) -> Series | None:
        row = await self._connection.fetchrow(
            f"SELECT {_SERIES_COLUMNS} FROM series WHERE id = $1", series_id
        )
        return None if row is None else to_struct(row, Series)

    async def get_by_uid(self, study_id: Id, series_instance_uid: str) -> Series | None:
        row = await self._connection.fetchrow(
            f"SELECT {_SERIES_COLUMNS} FROM series "
            "WHERE study_id = $1 AND series_instance_uid = $2",
            study_id,
            series_instance_uid,
        )
        return None if row is None else to_struct(row, Series)

    async def list_for_study(self, study_id: Id) -> list[Series]:
        """Ordered by series number, then UID."""
        rows = await self._connection.fetch(
            f"SELECT {_SERIES_COLUMNS} FROM series WHERE study_id = $1 "
            "ORDER BY series_number, series_instance_uid",
            study_id,
        )
        return [to_struct(row, Series) for row in rows]


# Instance field -> column, where they differ
_INSTANCE_RENAMES = {"rows": "pixel_rows", "columns": "pixel_columns"}
_INSTANCE_FIELDS = [f.name for f in msgspec.structs.fields(Instance) if f.name != "window"]
_INSTANCE_COLUMN_LIST = [_INSTANCE_RENAMES.get(name, name) for name in _INSTANCE_FIELDS] + [
    "window_center",
    "window_width",
]
_INSTANCE_COLUMNS = ", ".join(_INSTANCE_COLUMN_LIST)
_INSTANCE_COLUMNS_I = ", ".join(f"i.{column}" for column in _INSTANCE_COLUMN_LIST)


def _instance_values(instance: Instance) -> dict[str, Any]:
    values = msgspec.structs.asdict(instance)
    window = values.pop("window")
    for field, column in _INSTANCE_RENAMES.items():
        values[column] = values.pop(field)
    values["window_center"] = None if window is None else window.center
    values["window_width"] = None if window is None else window.width
    return values


def _instance_from_row(row: asyncpg.Record) -> Instance:
    values = dict(row)
    for field, column in _INSTANCE_RENAMES.items():
        values[field] = values.pop(column)
    center, width = values.pop("window_center"), values.pop("window_width")
    values["window"] = (
        None if center is None or width is None else {"center": center, "width": width}
    )
    return msgspec.convert(values, Instance)


class PostgresInstanceRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, instance: Instance) -> None:
        await insert(self._connection, "instances", "instance", _instance_values(instance))

    async def add_all(self, instances: Sequence[Instance]) -> None:
        await insert_all(
            self._connection, "instances", "instance", [_instance_values(i) for i in instances]
        )

    async def get(self, instance_id: Id) -> Instance | None:
        row = await self._connection.fetchrow(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = $1", instance_id
        )
        return None if row is None else _instance_from_row(row)

    async def get_by_uid(self, centre_id: Id, sop_instance_uid: str) -> Instance | None:
        row = await self._connection.fetchrow(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances "
            "WHERE centre_id = $1 AND sop_instance_uid = $2",
            centre_id,
            sop_instance_uid,
        )
        return None if row is None else _instance_from_row(row)

    async def get_by_uids(
        self, centre_id: Id, sop_instance_uids: Collection[str]
    ) -> dict[str, Instance]:
        rows = await self._connection.fetch(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances "
            "WHERE centre_id = $1 AND sop_instance_uid = ANY($2::text[])",
            centre_id,
            list(sop_instance_uids),
        )
        found = (_instance_from_row(row) for row in rows)
        return {instance.sop_instance_uid: instance for instance in found}

    async def list_for_series(self, series_id: Id) -> list[Instance]:
        """Ordered by instance number, then UID."""
        rows = await self._connection.fetch(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE series_id = $1 "
            "ORDER BY instance_number, sop_instance_uid",
            series_id,
        )
        return [_instance_from_row(row) for row in rows]

    async def list_for_study(self, study_id: Id) -> list[Instance]:
        """Series by series order, then instances by instance number, then UID."""
        rows = await self._connection.fetch(
            f"SELECT {_INSTANCE_COLUMNS_I} FROM instances i JOIN series s ON s.id = i.series_id "
            "WHERE i.study_id = $1 ORDER BY s.series_number, s.series_instance_uid, "
            "i.instance_number, i.sop_instance_uid",
            study_id,
        )
        return [_instance_from_row(row) for row in rows]
