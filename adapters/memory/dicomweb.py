"""QIDO-RS searches over the in-memory tables: the reference behaviour of the port."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from adapters.memory.state import Tables
from domain.dicomweb.matching import date_in, header_text, text_matches
from domain.ports.dicomweb import (
    MODALITY_TAG,
    DicomQuery,
    InstanceMatch,
    SeriesMatch,
    StudyMatch,
    TextMatch,
)
from domain.studies import Instance, Series, Study
from domain.values import Page


def _text(value: str | None, match: TextMatch | None) -> bool:
    return match is None or text_matches(value, match)


def _within(value: object, allowed: tuple[object, ...]) -> bool:
    return not allowed or value in allowed


class MemoryDicomQueryRepository:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    # -- the tables ----------------------------------------------------------------------

    def _studies(self) -> Iterable[Study]:
        studies: dict[object, Study] = self._tables.data["studies"]
        return studies.values()

    def _series_rows(self) -> Iterable[Series]:
        series: dict[object, Series] = self._tables.data["series"]
        return series.values()

    def _instance_rows(self) -> Iterable[Instance]:
        instances: dict[object, Instance] = self._tables.data["instances"]
        return instances.values()

    def _instances_of(
        self, *, study: Study | None = None, series: Series | None = None
    ) -> list[Instance]:
        found = [
            i
            for i in self._instance_rows()
            if (study is None or i.study_id == study.id)
            and (series is None or i.series_id == series.id)
        ]
        return sorted(found, key=_instance_order)

    # -- matching ------------------------------------------------------------------------

    def _study_matches(self, s: Study, q: DicomQuery) -> bool:
        if not (
            (q.centre_id is None or s.centre_id == q.centre_id)
            and _within(s.study_instance_uid, q.study_instance_uids)
            and _text(s.patient.name, q.patient_name)
            and _text(s.patient.patient_id, q.patient_id)
            and _text(s.accession_number, q.accession_number)
            and _text(s.description, q.study_description)
            and (q.study_date is None or date_in(s.study_date, q.study_date))
        ):
            return False
        if q.modalities_in_study:
            codes = {header_text(i.header, MODALITY_TAG) for i in self._instances_of(study=s)}
            return bool(codes & set(q.modalities_in_study))
        return True

    def _series_matches(self, se: Series, q: DicomQuery) -> bool:
        if not (
            _within(se.series_instance_uid, q.series_instance_uids)
            and (q.series_number is None or se.series_number == q.series_number)
        ):
            return False
        if q.modalities:
            codes = {header_text(i.header, MODALITY_TAG) for i in self._instances_of(series=se)}
            return bool(codes & set(q.modalities))
        return True

    @staticmethod
    def _instance_matches(i: Instance, q: DicomQuery) -> bool:
        return (
            _within(i.sop_class_uid, q.sop_class_uids)
            and _within(i.sop_instance_uid, q.sop_instance_uids)
            and (q.instance_number is None or i.instance_number == q.instance_number)
        )

    def _matching_studies(self, q: DicomQuery) -> dict[object, Study]:
        return {s.id: s for s in self._studies() if self._study_matches(s, q)}

    def _matching_series(self, q: DicomQuery) -> list[tuple[Series, Study]]:
        studies = self._matching_studies(q)
        found = [
            (se, studies[se.study_id])
            for se in self._series_rows()
            if se.study_id in studies and self._series_matches(se, q)
        ]
        return sorted(found, key=lambda pair: _series_order(pair[0]))

    def _matching_instances(self, q: DicomQuery) -> list[InstanceMatch]:
        series = {se.id: (se, study) for se, study in self._matching_series(q)}
        found = [
            InstanceMatch(instance=i, series=series[i.series_id][0], study=series[i.series_id][1])
            for i in self._instance_rows()
            if i.series_id in series and self._instance_matches(i, q)
        ]
        return sorted(found, key=lambda m: (m.instance.series_id.int, *_instance_order(m.instance)))

    # -- the port ------------------------------------------------------------------------

    async def studies(self, query: DicomQuery, page: Page) -> list[StudyMatch]:
        ordered = sorted(
            self._matching_studies(query).values(),
            key=lambda s: (-s.created_at.timestamp(), -s.id.int),
        )
        hits = []
        for study in ordered[page.skip : page.skip + page.limit]:
            instances = self._instances_of(study=study)
            codes = {header_text(i.header, MODALITY_TAG) for i in instances}
            hits.append(
                StudyMatch(
                    study=study,
                    modalities=tuple(sorted(c for c in codes if c)),
                    series_count=len({i.series_id for i in instances}),
                    instance_count=len(instances),
                    header=dict(_first_by_id(instances).header) if instances else {},
                )
            )
        return hits

    async def count_studies(self, query: DicomQuery) -> int:
        return len(self._matching_studies(query))

    async def series(self, query: DicomQuery, page: Page) -> list[SeriesMatch]:
        hits = []
        for series, study in self._matching_series(query)[page.skip : page.skip + page.limit]:
            instances = self._instances_of(series=series)
            hits.append(
                SeriesMatch(
                    series=series,
                    study=study,
                    instance_count=len(instances),
                    header=dict(_first_by_id(instances).header) if instances else {},
                )
            )
        return hits

    async def count_series(self, query: DicomQuery) -> int:
        return len(self._matching_series(query))

    async def instances(
        self, query: DicomQuery, page: Page, *, header_tags: tuple[str, ...] | None = None
    ) -> list[InstanceMatch]:
        found = self._matching_instances(query)[page.skip : page.skip + page.limit]
        if header_tags is None:
            return found
        return [
            msgspec.structs.replace(
                m,
                instance=msgspec.structs.replace(
                    m.instance,
                    header={t: v for t, v in m.instance.header.items() if t in header_tags},
                ),
            )
            for m in found
        ]

    async def count_instances(self, query: DicomQuery) -> int:
        return len(self._matching_instances(query))


def _first_by_id(instances: list[Instance]) -> Instance:
    """The instance whose header stands for its study or series: the first stored (UUIDv7
    ids grow with time), as the PostgreSQL adapter picks it."""
    return min(instances, key=lambda i: i.id.int)


def _instance_order(i: Instance) -> tuple[bool, int, str]:
    return (i.instance_number is None, i.instance_number or 0, i.sop_instance_uid)


def _series_order(se: Series) -> tuple[int, bool, int, str]:
    return (
        se.study_id.int,
        se.series_number is None,
        se.series_number or 0,
        se.series_instance_uid,
    )
