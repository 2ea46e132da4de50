"""Contract: QIDO-RS searches (DicomQueryRepository) match, count, order and page alike on
every adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from domain.identity import Centre
from domain.ports import UnitOfWorkFactory
from domain.ports.dicomweb import DateRange, DicomQuery, MatchMode, TextMatch
from domain.studies import Instance, Patient, Series, Study
from domain.values import Page
from tests.contract.conftest import Make, store

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SR_DOCUMENT = "1.2.840.10008.5.1.4.1.1.88.22"


def header(modality: str, **extra: Any) -> dict[str, object]:
    return {"00080060": {"vr": "CS", "Value": [modality]}, **extra}


@dataclass
class Archive:
    a: Centre
    b: Centre
    smith: Study
    jones: Study
    undated: Study
    other_centre: Study
    smith_ct: Series
    smith_sr: Series
    jones_mr: Series
    smith_slices: list[Instance]
    smith_report: Instance


@pytest.fixture
async def archive(uow_factory: UnitOfWorkFactory, make: Make) -> Archive:
    a, b = make.centre(name="A"), make.centre(name="B")
    smith = make.study(
        a,
        patient=Patient(name="SMITH^JOHN^^DR", patient_id="MRN-1"),
        accession_number="ACC-100",
        description="CT Chest w/o contrast",
        study_date=date(2026, 1, 10),
    )
    jones = make.study(
        a,
        patient=Patient(name="Jones^Mary", patient_id="MRN-2"),
        accession_number="ACC-200",
        description="MR Brain",
        study_date=date(2026, 2, 20),
    )
    undated = make.study(a, patient=Patient(name="NOBODY"), study_date=None)
    # the same patient and UID in another centre: never seen by centre A's searches
    other_centre = make.study(
        b,
        study_instance_uid=smith.study_instance_uid,
        patient=Patient(name="SMITH^JOHN", patient_id="MRN-1"),
        accession_number="ACC-100",
    )
    smith_ct = make.series(smith, series_number=2)
    smith_sr = make.series(smith, series_number=None)
    jones_mr = make.series(jones, series_number=1)
    other_ct = make.series(other_centre, series_number=2)
    slices = [
        make.instance(smith_ct, instance_number=n, header=header("CT", n={"vr": "IS"}))
        for n in (3, 1, 2)
    ]
    report = make.instance(
        smith_sr, instance_number=None, sop_class_uid=SR_DOCUMENT, header=header("SR")
    )
    brain = make.instance(jones_mr, instance_number=1, header=header("MR"))
    slices.sort(key=lambda i: i.instance_number or 0)
    elsewhere = make.instance(
        other_ct, sop_instance_uid=slices[0].sop_instance_uid, header=header("CT")
    )
    await store(
        uow_factory,
        a, b, smith, jones, undated, other_centre,
        smith_ct, smith_sr, jones_mr, other_ct,
        *slices, report, brain, elsewhere,
    )  # fmt: skip
    return Archive(
        a=a,
        b=b,
        smith=smith,
        jones=jones,
        undated=undated,
        other_centre=other_centre,
        smith_ct=smith_ct,
        smith_sr=smith_sr,
        jones_mr=jones_mr,
        smith_slices=slices,
        smith_report=report,
    )


async def study_ids(uow_factory: UnitOfWorkFactory, query: DicomQuery) -> list[object]:
    async with uow_factory() as uow:
        found = await uow.dicom.studies(query, Page(limit=100))
        total = await uow.dicom.count_studies(query)
    assert total == len(found)
    return [m.study.id for m in found]


def name(value: str, mode: MatchMode = MatchMode.EXACT) -> TextMatch:
    return TextMatch(value=value, mode=mode, ignore_case=True)


async def test_a_study_search_sees_only_its_centre_newest_first(uow_factory, archive: Archive):
    found = await study_ids(uow_factory, DicomQuery(centre_id=archive.a.id))
    assert found == [archive.undated.id, archive.jones.id, archive.smith.id]
    everywhere = await study_ids(uow_factory, DicomQuery())
    assert set(everywhere) == {*found, archive.other_centre.id}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (DicomQuery(patient_name=name("smith^john^^dr")), ["smith"]),
        (DicomQuery(patient_name=name("SMITH")), []),
        (DicomQuery(patient_name=name("SMI*", MatchMode.WILDCARD)), ["smith"]),
        (DicomQuery(patient_name=name("*o?es*", MatchMode.WILDCARD)), ["jones"]),
        (DicomQuery(patient_name=name("jo sm", MatchMode.FUZZY)), ["smith"]),
        (DicomQuery(patient_name=name("mary", MatchMode.FUZZY)), ["jones"]),
        (DicomQuery(patient_name=name("ary", MatchMode.FUZZY)), []),
        (DicomQuery(patient_id=TextMatch(value="MRN-2")), ["jones"]),
        (DicomQuery(patient_id=TextMatch(value="mrn-2")), []),
        (
            DicomQuery(accession_number=TextMatch(value="ACC-1*", mode=MatchMode.WILDCARD)),
            ["smith"],
        ),
        (DicomQuery(accession_number=TextMatch(value="ACC-_00", mode=MatchMode.WILDCARD)), []),
        (DicomQuery(study_description=name("*chest*", MatchMode.WILDCARD)), ["smith"]),
        (
            DicomQuery(study_date=DateRange(start=date(2026, 1, 10), end=date(2026, 1, 10))),
            ["smith"],
        ),
        (DicomQuery(study_date=DateRange(start=date(2026, 1, 11))), ["jones"]),
        (DicomQuery(study_date=DateRange(end=date(2026, 12, 31))), ["jones", "smith"]),
        (DicomQuery(modalities_in_study=("SR",)), ["smith"]),
        (DicomQuery(modalities_in_study=("MR", "SR")), ["jones", "smith"]),
        (DicomQuery(modalities_in_study=("US",)), []),
    ],
)
async def test_study_keys_match_as_dicom_asks(
    uow_factory: UnitOfWorkFactory, archive: Archive, query: DicomQuery, expected: list[str]
):
    scoped = DicomQuery(**{**_fields(query), "centre_id": archive.a.id})
    found = await study_ids(uow_factory, scoped)
    assert found == [getattr(archive, n).id for n in expected]


def _fields(query: DicomQuery) -> dict[str, Any]:
    return {f: getattr(query, f) for f in query.__struct_fields__}


async def test_a_study_uid_list_matches_any_of_its_uids(uow_factory, archive: Archive):
    query = DicomQuery(
        centre_id=archive.a.id,
        study_instance_uids=(archive.jones.study_instance_uid, "1.2.3.4"),
    )
    assert await study_ids(uow_factory, query) == [archive.jones.id]


async def test_a_study_hit_carries_its_modalities_counts_and_first_header(
    uow_factory: UnitOfWorkFactory, archive: Archive
):
    query = DicomQuery(
        centre_id=archive.a.id, study_instance_uids=(archive.smith.study_instance_uid,)
    )
    async with uow_factory() as uow:
        (hit,) = await uow.dicom.studies(query, Page())
        (empty,) = await uow.dicom.studies(
            DicomQuery(centre_id=archive.a.id, patient_name=name("NOBODY")), Page()
        )
    assert hit.modalities == ("CT", "SR")
    assert (hit.series_count, hit.instance_count) == (2, 4)
    first = min([*archive.smith_slices, archive.smith_report], key=lambda i: i.id.int)
    assert hit.header == first.header
    assert (empty.modalities, empty.series_count, empty.instance_count, empty.header) == (
        (),
        0,
        0,
        {},
    )


async def test_series_search_filters_by_its_keys_and_its_study(
    uow_factory: UnitOfWorkFactory, archive: Archive
):
    async with uow_factory() as uow:
        all_a = await uow.dicom.series(DicomQuery(centre_id=archive.a.id), Page())
        of_smith = await uow.dicom.series(
            DicomQuery(centre_id=archive.a.id, patient_id=TextMatch(value="MRN-1")), Page()
        )
        by_code = await uow.dicom.series(
            DicomQuery(centre_id=archive.a.id, modalities=("SR",)), Page()
        )
        by_number = await uow.dicom.series(
            DicomQuery(centre_id=archive.a.id, series_number=2), Page()
        )
        counted = await uow.dicom.count_series(DicomQuery(centre_id=archive.a.id))
    assert counted == len(all_a) == 3
    assert [m.series.id for m in of_smith] == [archive.smith_ct.id, archive.smith_sr.id]
    assert [m.series.id for m in by_code] == [archive.smith_sr.id]
    assert [m.series.id for m in by_number] == [archive.smith_ct.id]
    ct = of_smith[0]
    assert (ct.study.id, ct.instance_count) == (archive.smith.id, 3)
    assert ct.header == min(archive.smith_slices, key=lambda i: i.id.int).header


async def test_instance_search_orders_by_series_and_number_and_pages(
    uow_factory: UnitOfWorkFactory, archive: Archive
):
    query = DicomQuery(
        centre_id=archive.a.id, study_instance_uids=(archive.smith.study_instance_uid,)
    )
    async with uow_factory() as uow:
        everything = await uow.dicom.instances(query, Page())
        second_page = await uow.dicom.instances(query, Page(skip=1, limit=2))
        total = await uow.dicom.count_instances(query)
        in_ct = await uow.dicom.instances(
            DicomQuery(
                centre_id=archive.a.id,
                series_instance_uids=(archive.smith_ct.series_instance_uid,),
                instance_number=2,
            ),
            Page(),
        )
        reports = await uow.dicom.instances(
            DicomQuery(centre_id=archive.a.id, sop_class_uids=(SR_DOCUMENT,)), Page()
        )
        by_uid = await uow.dicom.instances(
            DicomQuery(sop_instance_uids=(archive.smith_slices[0].sop_instance_uid,)), Page()
        )
    per_series = {
        archive.smith_ct.id: [i.id for i in archive.smith_slices],
        archive.smith_sr.id: [archive.smith_report.id],
    }
    expected = [
        instance
        for series_id in sorted(per_series, key=lambda s: s.int)
        for instance in per_series[series_id]
    ]
    assert [m.instance.id for m in everything] == expected
    assert [m.instance.id for m in second_page] == expected[1:3]
    assert total == 4
    assert [m.instance.id for m in in_ct] == [archive.smith_slices[1].id]
    assert (in_ct[0].series.id, in_ct[0].study.id) == (archive.smith_ct.id, archive.smith.id)
    assert [m.instance.id for m in reports] == [archive.smith_report.id]
    assert len(by_uid) == 2  # the same SOPInstanceUID in two centres, when unscoped


async def test_instances_can_carry_only_the_header_elements_asked_for(
    uow_factory: UnitOfWorkFactory, archive: Archive
):
    query = DicomQuery(sop_instance_uids=(archive.smith_report.sop_instance_uid,))
    async with uow_factory() as uow:
        (whole,) = await uow.dicom.instances(query, Page())
        (some,) = await uow.dicom.instances(query, Page(), header_tags=("00080060", "00100010"))
        (none,) = await uow.dicom.instances(query, Page(), header_tags=("00100010",))
    assert whole.instance.header == archive.smith_report.header
    assert some.instance.header == {"00080060": {"vr": "CS", "Value": ["SR"]}}
    assert none.instance.header == {}
    assert some.instance.id == whole.instance.id
