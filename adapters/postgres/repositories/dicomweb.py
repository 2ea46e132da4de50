"""QIDO-RS searches in PostgreSQL: matching in SQL, one page at a time.

Study-level keys match the ``studies`` row; modality keys match the ``Modality`` element of the
stored headers through expression indexes (migration ``0005_dicomweb.sql``). Lower levels
filter by the levels above with ``IN (SELECT id ...)`` subqueries, so each level's conditions
use that level's own column names. Counts and representative headers are fetched for the
page only.
"""

from __future__ import annotations

from typing import Any

from adapters.postgres.repositories._sql import Where, to_struct
from adapters.postgres.repositories.studies import (
    _INSTANCE_COLUMN_LIST,
    _INSTANCE_COLUMNS,
    _SERIES_COLUMNS,
    _STUDY_COLUMNS,
    _instance_from_row,
    _study_from_row,
)
from adapters.postgres.session import Session
from domain.dicomweb.matching import fuzzy_word_pattern, like_pattern, query_words
from domain.ports.dicomweb import (
    DicomQuery,
    InstanceMatch,
    MatchMode,
    SeriesMatch,
    StudyMatch,
    TextMatch,
)
from domain.studies import Series, Study
from domain.values import Id, Page

MODALITY_SQL = "({alias}.header #>> '{{00080060,Value,0}}')"
"""The DICOM Modality code of an instance's stored header (as indexed by migration 0005)."""


def _modality_in(alias: str, key: str, parent: str) -> str:
    """A condition for :meth:`Where.add`: an instance of ``parent`` has one of the codes."""
    expression = MODALITY_SQL.format(alias=alias).replace("{", "{{").replace("}", "}}")
    return (
        f"EXISTS (SELECT 1 FROM instances {alias} WHERE {alias}.{key} = {parent}.id "
        f"AND {expression} = ANY({{}}))"
    )


def _text(w: Where, column: str, match: TextMatch | None) -> None:
    if match is None:
        return
    if match.mode is MatchMode.FUZZY:
        words = query_words(match.value)
        if not words:
            w.add(f"{column} IS NOT NULL")
        for word in words:
            w.add(f"{column} ~* {{}}", fuzzy_word_pattern(word))
    elif match.mode is MatchMode.WILDCARD:
        operator = "ILIKE" if match.ignore_case else "LIKE"
        w.add(f"{column} {operator} {{}} ESCAPE '\\'", like_pattern(match.value))
    elif match.ignore_case:
        w.add(f"lower({column}) = lower({{}})", match.value)
    else:
        w.add(f"{column} = {{}}", match.value)


def _group(w: Where, fill: Any) -> list[str]:
    """Run ``fill(w)`` and take the conditions it added back out (their arguments stay)."""
    start = len(w.conditions)
    fill(w)
    added = w.conditions[start:]
    del w.conditions[start:]
    return added


def _study_keys(q: DicomQuery) -> Any:
    def fill(w: Where) -> None:
        if q.study_instance_uids:
            w.add("study_instance_uid = ANY({})", list(q.study_instance_uids))
        _text(w, "patient_name", q.patient_name)
        _text(w, "patient_id", q.patient_id)
        _text(w, "accession_number", q.accession_number)
        _text(w, "description", q.study_description)
        if q.study_date is not None:
            w.add("study_date IS NOT NULL")
            if q.study_date.start is not None:
                w.add("study_date >= {}", q.study_date.start)
            if q.study_date.end is not None:
                w.add("study_date <= {}", q.study_date.end)
        if q.modalities_in_study:
            w.add(_modality_in("m", "study_id", "studies"), list(q.modalities_in_study))

    return fill


def _series_keys(q: DicomQuery) -> Any:
    def fill(w: Where) -> None:
        if q.series_instance_uids:
            w.add("series_instance_uid = ANY({})", list(q.series_instance_uids))
        if q.series_number is not None:
            w.add("series_number = {}", q.series_number)
        if q.modalities:
            w.add(_modality_in("m", "series_id", "series"), list(q.modalities))

    return fill


def _instance_keys(q: DicomQuery) -> Any:
    def fill(w: Where) -> None:
        if q.sop_class_uids:
            w.add("sop_class_uid = ANY({})", list(q.sop_class_uids))
        if q.sop_instance_uids:
            w.add("sop_instance_uid = ANY({})", list(q.sop_instance_uids))
        if q.instance_number is not None:
            w.add("instance_number = {}", q.instance_number)

    return fill


def _within(w: Where, table: str, conditions: list[str]) -> None:
    """Restrict to rows of ``table`` (by ``<table>_id``) meeting ``conditions``."""
    if conditions:
        key = "study_id" if table == "studies" else "series_id"
        w.conditions.append(f"{key} IN (SELECT id FROM {table} WHERE {' AND '.join(conditions)})")


def _studies_where(q: DicomQuery) -> Where:
    w = Where()
    w.equal("centre_id", q.centre_id)
    w.conditions.extend(_group(w, _study_keys(q)))
    return w


def _series_where(q: DicomQuery) -> Where:
    w = Where()
    w.equal("centre_id", q.centre_id)
    _within(w, "studies", _group(w, _study_keys(q)))
    w.conditions.extend(_group(w, _series_keys(q)))
    return w


def _instances_where(q: DicomQuery) -> Where:
    w = Where()
    w.equal("centre_id", q.centre_id)
    _within(w, "studies", _group(w, _study_keys(q)))
    _within(w, "series", _group(w, _series_keys(q)))
    w.conditions.extend(_group(w, _instance_keys(q)))
    return w


_STUDY_ORDER = "ORDER BY created_at DESC, id DESC"
_SERIES_ORDER = 'ORDER BY study_id, series_number NULLS LAST, series_instance_uid COLLATE "C"'
_INSTANCE_ORDER = 'ORDER BY series_id, instance_number NULLS LAST, sop_instance_uid COLLATE "C", id'


class PostgresDicomQueryRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def _count(self, table: str, w: Where) -> int:
        count: int = await self._connection.fetchval(
            f"SELECT count(*) FROM {table} {w.sql()}", *w.args
        )
        return count

    async def _first_headers(self, key: str, ids: list[Id]) -> dict[Id, dict[str, object]]:
        """The header of the first stored instance of each study or series (``key``)."""
        rows = await self._connection.fetch(
            "SELECT x.id, h.header FROM unnest($1::uuid[]) AS x(id) CROSS JOIN LATERAL "
            f"(SELECT header FROM instances WHERE {key} = x.id ORDER BY id LIMIT 1) h",
            ids,
        )
        return {row["id"]: row["header"] for row in rows}

    async def _studies_by_id(self, ids: list[Id]) -> dict[Id, Study]:
        rows = await self._connection.fetch(
            f"SELECT {_STUDY_COLUMNS} FROM studies WHERE id = ANY($1)", ids
        )
        return {row["id"]: _study_from_row(row) for row in rows}

    async def _series_by_id(self, ids: list[Id]) -> dict[Id, Series]:
        rows = await self._connection.fetch(
            f"SELECT {_SERIES_COLUMNS} FROM series WHERE id = ANY($1)", ids
        )
        return {row["id"]: to_struct(row, Series) for row in rows}

    async def studies(self, query: DicomQuery, page: Page) -> list[StudyMatch]:
        """One round trip: the page of studies, then per study its counts, modality codes
        and first header."""
        w = _studies_where(query)
        rows = await self._connection.fetch(
            "SELECT p.*, a.instance_count, a.series_count, a.modality_codes, h.first_header "
            f"FROM (SELECT {_STUDY_COLUMNS} FROM studies {w.sql()} {_STUDY_ORDER} "
            f"{w.page(page)}) p CROSS JOIN LATERAL ("
            "SELECT count(*) AS instance_count, count(DISTINCT series_id) AS series_count, "
            f"array_agg(DISTINCT {MODALITY_SQL.format(alias='i')}) AS modality_codes "
            "FROM instances i WHERE i.study_id = p.id) a LEFT JOIN LATERAL ("
            "SELECT header AS first_header FROM instances "
            "WHERE study_id = p.id ORDER BY id LIMIT 1) h ON true "
            "ORDER BY p.created_at DESC, p.id DESC",
            *w.args,
        )
        hits = []
        for row in rows:
            values = dict(row)
            codes = values.pop("modality_codes") or ()
            hits.append(
                StudyMatch(
                    modalities=tuple(sorted(code for code in codes if code)),
                    series_count=values.pop("series_count"),
                    instance_count=values.pop("instance_count"),
                    header=values.pop("first_header") or {},
                    study=_study_from_row(values),
                )
            )
        return hits

    async def count_studies(self, query: DicomQuery) -> int:
        return await self._count("studies", _studies_where(query))

    async def series(self, query: DicomQuery, page: Page) -> list[SeriesMatch]:
        w = _series_where(query)
        rows = await self._connection.fetch(
            f"SELECT {_SERIES_COLUMNS} FROM series {w.sql()} {_SERIES_ORDER} {w.page(page)}",
            *w.args,
        )
        found = [to_struct(row, Series) for row in rows]
        if not found:
            return []
        ids = [s.id for s in found]
        counts = await self._connection.fetch(
            "SELECT series_id, count(*) AS instances FROM instances "
            "WHERE series_id = ANY($1) GROUP BY series_id",
            ids,
        )
        by_series = {row["series_id"]: row["instances"] for row in counts}
        headers = await self._first_headers("series_id", ids)
        studies = await self._studies_by_id(list({s.study_id for s in found}))
        return [
            SeriesMatch(
                series=s,
                study=studies[s.study_id],
                instance_count=by_series.get(s.id, 0),
                header=headers.get(s.id, {}),
            )
            for s in found
        ]

    async def count_series(self, query: DicomQuery) -> int:
        return await self._count("series", _series_where(query))

    async def instances(
        self, query: DicomQuery, page: Page, *, header_tags: tuple[str, ...] | None = None
    ) -> list[InstanceMatch]:
        w = _instances_where(query)
        columns = _INSTANCE_COLUMNS
        if header_tags is not None:
            # only the wanted elements leave the server: decoding whole headers is the cost
            tags = w.arg(list(header_tags))
            projected = (
                "(SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) "
                f"FROM jsonb_each(header) AS e WHERE e.key = ANY({tags})) AS header"
            )
            columns = ", ".join(projected if c == "header" else c for c in _INSTANCE_COLUMN_LIST)
        rows = await self._connection.fetch(
            f"SELECT {columns} FROM instances {w.sql()} {_INSTANCE_ORDER} {w.page(page)}",
            *w.args,
        )
        found = [_instance_from_row(row) for row in rows]
        if not found:
            return []
        series = await self._series_by_id(list({i.series_id for i in found}))
        studies = await self._studies_by_id(list({i.study_id for i in found}))
        return [
            InstanceMatch(instance=i, series=series[i.series_id], study=studies[i.study_id])
            for i in found
        ]

    async def count_instances(self, query: DicomQuery) -> int:
        return await self._count("instances", _instances_where(query))
