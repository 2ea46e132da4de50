"""Contract: studies, series and instances keyed by DICOM UIDs per centre."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import ConcurrentModification, Conflict
from domain.ports import StudyFilter, UnitOfWorkFactory
from domain.studies import Modality, Patient, Sex, Study, StudyStatus, Urgency, Window
from domain.values import Page
from tests.contract.conftest import Make, store

URGENCY_RANK = {Urgency.STAT: 2, Urgency.URGENT: 1, Urgency.ROUTINE: 0}


async def test_a_stored_study_reads_back_unchanged_by_id_code_and_uid(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    radiologist = make.user(centre)
    study = make.study(
        centre,
        patient=Patient(
            name="DOE^JANE",
            patient_id="MRN-7",
            age="045Y",
            sex=Sex.FEMALE,
            birth_date=date(1981, 3, 4),
        ),
        modality=Modality.MR,
        description="Brain w/o contrast",
        accession_number="ACC-1",
        urgency=Urgency.URGENT,
        status=StudyStatus.ASSIGNED,
        assigned_radiologist_id=radiologist.id,
        uploaded_by=radiologist.id,
    )
    await store(uow_factory, centre, radiologist, study)

    async with uow_factory() as uow:
        assert await uow.studies.get(study.id) == study
        assert await uow.studies.get_by_code(study.code) == study
        assert await uow.studies.get_by_uid(centre.id, study.study_instance_uid) == study
        assert await uow.studies.get_by_uid(make.id(), study.study_instance_uid) is None
        assert await uow.studies.get_by_code("ZZZZZZZZ") is None


async def test_the_same_study_uid_twice_in_one_centre_is_a_conflict(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    await store(uow_factory, centre, study)

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.studies.add(make.study(centre, study_instance_uid=study.study_instance_uid))


async def test_the_same_study_uid_in_two_centres_is_two_studies(
    uow_factory: UnitOfWorkFactory, make: Make
):
    a, b = make.centre(), make.centre()
    in_a = make.study(a)
    in_b = make.study(b, study_instance_uid=in_a.study_instance_uid)
    await store(uow_factory, a, b, in_a, in_b)

    async with uow_factory() as uow:
        assert await uow.studies.get_by_uid(a.id, in_a.study_instance_uid) == in_a
        assert await uow.studies.get_by_uid(b.id, in_a.study_instance_uid) == in_b


async def test_two_studies_cannot_share_a_code(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    await store(uow_factory, centre, study)

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.studies.add(make.study(centre, code=study.code))


async def test_study_updates_are_versioned_and_stale_writes_refused(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    radiologist = make.user(centre)
    study = make.study(centre)
    await store(uow_factory, centre, radiologist, study)

    async with uow_factory() as uow:
        read = await uow.studies.get(study.id)
    assert read is not None
    async with uow_factory() as uow:
        assigned = await uow.studies.update(read.assign(radiologist.id, at=make.now()))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrentModification):
            await uow.studies.update(read.assign(radiologist.id, at=make.now()))
        assert await uow.studies.get(study.id) == assigned
    assert assigned.version == 2
    assert assigned.status is StudyStatus.ASSIGNED


async def test_studies_list_most_urgent_first_then_newest_first(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    old_stat = make.study(centre, urgency=Urgency.STAT)
    routine = make.study(centre, urgency=Urgency.ROUTINE)
    urgent = make.study(centre, urgency=Urgency.URGENT)
    new_stat = make.study(centre, urgency=Urgency.STAT)
    await store(uow_factory, centre, old_stat, routine, urgent, new_stat)

    async with uow_factory() as uow:
        listed = await uow.studies.list(StudyFilter(centre_id=centre.id), Page())
        first_two = await uow.studies.list(StudyFilter(), Page(limit=2))
        rest = await uow.studies.list(StudyFilter(), Page(skip=2, limit=100))

    assert [s.id for s in listed] == [new_stat.id, old_stat.id, urgent.id, routine.id]
    assert [s.id for s in first_two + rest] == [s.id for s in listed]


async def test_study_date_and_creation_filters_include_their_bounds(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    days = [make.study(centre, study_date=date(2026, 3, d)) for d in (1, 2, 3, 4)]
    await store(uow_factory, centre, *days)

    async with uow_factory() as uow:
        by_date = await uow.studies.list(
            StudyFilter(study_date_from=date(2026, 3, 2), study_date_to=date(2026, 3, 3)), Page()
        )
        by_creation = await uow.studies.list(
            StudyFilter(created_from=days[1].created_at, created_to=days[2].created_at), Page()
        )
        count = await uow.studies.count(StudyFilter(study_date_to=date(2026, 3, 2)))

    assert {s.id for s in by_date} == {days[1].id, days[2].id}
    assert {s.id for s in by_creation} == {days[1].id, days[2].id}
    assert count == 2


study_specs = st.lists(
    st.fixed_dictionaries(
        {
            "modality": st.sampled_from([Modality.CT, Modality.MR, Modality.US]),
            "urgency": st.sampled_from(list(Urgency)),
            "status": st.sampled_from([StudyStatus.UPLOADED, StudyStatus.ASSIGNED]),
            "patient_id": st.sampled_from(["P1", "P2", None]),
            "patient_name": st.sampled_from(["DOE^JANE", "ROE^JOHN", "O'BRIEN^50%", None]),
            "study_date": st.one_of(st.none(), st.integers(0, 5)),
            "radiologist": st.sampled_from([None, 0, 1]),
        }
    ),
    max_size=8,
)
study_filters = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from([StudyStatus.UPLOADED, StudyStatus.ASSIGNED]),
        "modality": st.sampled_from([Modality.CT, Modality.MR]),
        "urgency": st.sampled_from(list(Urgency)),
        "patient_id": st.sampled_from(["P1", "P2"]),
        "patient_name_contains": st.sampled_from(["doe", "JOHN", "e^j", "50%", "_"]),
        "study_date_from": st.integers(0, 5),
        "study_date_to": st.integers(0, 5),
        "radiologist": st.sampled_from([0, 1]),
    },
)
DAY0 = date(2026, 2, 1)


def _matches(study: Study, f: StudyFilter) -> bool:
    name = study.patient.name
    return (
        (f.status is None or study.status is f.status)
        and (f.modality is None or study.modality is f.modality)
        and (f.urgency is None or study.urgency is f.urgency)
        and (f.patient_id is None or study.patient.patient_id == f.patient_id)
        and (
            f.patient_name_contains is None
            or (name is not None and f.patient_name_contains.lower() in name.lower())
        )
        and (
            f.assigned_radiologist_id is None
            or study.assigned_radiologist_id == f.assigned_radiologist_id
        )
        and (
            f.study_date_from is None
            or (study.study_date is not None and study.study_date >= f.study_date_from)
        )
        and (
            f.study_date_to is None
            or (study.study_date is not None and study.study_date <= f.study_date_to)
        )
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=study_specs, raw_filter=study_filters)
async def test_study_filters_return_exactly_the_matching_studies_in_order(
    uow_factory: UnitOfWorkFactory, make: Make, specs: list[dict], raw_filter: dict
):
    centre = make.centre()  # a fresh centre per example keeps examples apart
    radiologists = [make.user(centre), make.user(centre)]
    studies = [
        make.study(
            centre,
            modality=spec["modality"],
            urgency=spec["urgency"],
            status=spec["status"],
            patient=Patient(name=spec["patient_name"], patient_id=spec["patient_id"]),
            study_date=None if spec["study_date"] is None else DAY0 + timedelta(spec["study_date"]),
            assigned_radiologist_id=(
                None if spec["radiologist"] is None else radiologists[spec["radiologist"]].id
            ),
        )
        for spec in specs
    ]
    await store(uow_factory, centre, *radiologists, *studies)
    fields = dict(raw_filter)
    for bound in ("study_date_from", "study_date_to"):
        if bound in fields:
            fields[bound] = DAY0 + timedelta(fields[bound])
    if "radiologist" in fields:
        fields["assigned_radiologist_id"] = radiologists[fields.pop("radiologist")].id
    where = StudyFilter(centre_id=centre.id, **fields)

    async with uow_factory() as uow:
        listed = await uow.studies.list(where, Page())
        counted = await uow.studies.count(where)

    expected = sorted(
        (s for s in studies if _matches(s, where)),
        key=lambda s: (URGENCY_RANK[s.urgency], s.created_at),
        reverse=True,
    )
    assert [s.id for s in listed] == [s.id for s in expected]
    assert counted == len(expected)


async def test_series_list_by_series_number_then_uid(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    third = make.series(study, series_number=3, series_instance_uid="1.2.3")
    first_b = make.series(study, series_number=1, series_instance_uid="1.2.9")
    first_a = make.series(
        study,
        series_number=1,
        series_instance_uid="1.2.1",
        description="AX T1",
        body_part_examined="HEAD",
    )
    await store(uow_factory, centre, study, third, first_b, first_a)

    async with uow_factory() as uow:
        listed = await uow.series.list_for_study(study.id)
        assert await uow.series.get(first_a.id) == first_a
        assert await uow.series.get_by_uid(study.id, "1.2.9") == first_b
        assert await uow.series.get_by_uid(make.id(), "1.2.9") is None

    assert [s.id for s in listed] == [first_a.id, first_b.id, third.id]


async def test_the_same_series_uid_twice_in_a_study_is_a_conflict(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    await store(uow_factory, centre, study, series)

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.series.add(make.series(study, series_instance_uid=series.series_instance_uid))


async def test_an_instance_keeps_its_geometry_window_and_header(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    instance = make.instance(
        series,
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        rows=512,
        columns=512,
        pixel_spacing=(0.703125, 0.703125),
        slice_thickness=2.5,
        image_position_patient=(-180.0, -180.0, -12.5),
        image_orientation_patient=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        window=Window(center=40.0, width=400.0),
        header={"00080060": {"vr": "CS", "Value": ["CT"]}, "00280030": {"vr": "DS"}},
    )
    await store(uow_factory, centre, study, series, instance)

    async with uow_factory() as uow:
        assert await uow.instances.get(instance.id) == instance
        assert await uow.instances.get_by_uid(centre.id, instance.sop_instance_uid) == instance


async def test_instances_list_by_instance_number_then_uid(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    s1, s2 = make.series(study, series_number=1), make.series(study, series_number=2)
    i3 = make.instance(s1, instance_number=3)
    i1 = make.instance(s1, instance_number=1, sop_instance_uid="1.9")
    i1b = make.instance(s1, instance_number=1, sop_instance_uid="1.10")
    other = make.instance(s2, instance_number=1)
    await store(uow_factory, centre, study, s2, s1, other, i3, i1, i1b)

    async with uow_factory() as uow:
        in_series = await uow.instances.list_for_series(s1.id)
        in_study = await uow.instances.list_for_study(study.id)

    assert [i.id for i in in_series] == [i1b.id, i1.id, i3.id]
    assert {i.id for i in in_study} == {i1.id, i1b.id, i3.id, other.id}


async def test_sop_instance_uids_are_unique_per_centre_only(
    uow_factory: UnitOfWorkFactory, make: Make
):
    a, b = make.centre(), make.centre()
    study_a, study_b = make.study(a), make.study(b)
    series_a, series_b = make.series(study_a), make.series(study_b)
    instance = make.instance(series_a)
    twin_elsewhere = make.instance(series_b, sop_instance_uid=instance.sop_instance_uid)
    await store(uow_factory, a, b, study_a, study_b, series_a, series_b, instance, twin_elsewhere)

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.instances.add(
                make.instance(series_a, sop_instance_uid=instance.sop_instance_uid)
            )


async def test_instances_added_together_read_back_by_their_uids_in_their_centre_only(
    uow_factory: UnitOfWorkFactory, make: Make
):
    a, b = make.centre(), make.centre()
    study_a, study_b = make.study(a), make.study(b)
    series_a, series_b = make.series(study_a), make.series(study_b)
    in_a = [make.instance(series_a, instance_number=n) for n in range(1, 4)]
    twin_in_b = make.instance(series_b, sop_instance_uid=in_a[0].sop_instance_uid)
    await store(uow_factory, a, b, study_a, study_b, series_a, series_b, twin_in_b)

    async with uow_factory() as uow:
        await uow.instances.add_all(in_a)
        await uow.instances.add_all([])
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.instances.list_for_series(series_a.id) == in_a
        found = await uow.instances.get_by_uids(
            a.id, [in_a[0].sop_instance_uid, in_a[2].sop_instance_uid, "1.2.3.404"]
        )
        in_b = await uow.instances.get_by_uids(b.id, [i.sop_instance_uid for i in in_a])
        nothing = await uow.instances.get_by_uids(a.id, [])
    assert found == {in_a[0].sop_instance_uid: in_a[0], in_a[2].sop_instance_uid: in_a[2]}
    assert in_b == {twin_in_b.sop_instance_uid: twin_in_b}
    assert nothing == {}


@pytest.mark.parametrize("clash", ["stored before", "twice in the batch"])
async def test_adding_instances_together_with_a_uid_clash_is_a_conflict_and_adds_none(
    uow_factory: UnitOfWorkFactory, make: Make, clash: str
):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    stored = make.instance(series)
    await store(uow_factory, centre, study, series, stored)
    fresh = make.instance(series)
    again = make.instance(
        series,
        sop_instance_uid=stored.sop_instance_uid
        if clash == "stored before"
        else fresh.sop_instance_uid,
    )

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.instances.add_all([fresh, again])

    async with uow_factory() as uow:
        assert await uow.instances.list_for_series(series.id) == [stored]


async def test_deleting_a_study_removes_everything_recorded_under_it(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    doomed, kept = make.study(centre), make.study(centre)
    series, kept_series = make.series(doomed), make.series(kept)
    instance, kept_instance = make.instance(series), make.instance(kept_series)
    job, kept_job = make.job(doomed, series_id=series.id), make.job(kept)
    result = make.result(job)
    report = make.report(doomed)
    measurement, annotation = make.measurement(instance), make.annotation(instance)
    await store(
        uow_factory,
        centre,
        doomed,
        kept,
        series,
        kept_series,
        instance,
        kept_instance,
        job,
        kept_job,
        result,
        report,
        measurement,
        annotation,
    )

    async with uow_factory() as uow:
        await uow.studies.delete(doomed.id)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.studies.get(doomed.id) is None
        assert await uow.series.list_for_study(doomed.id) == []
        assert await uow.instances.get(instance.id) is None
        assert await uow.jobs.get(job.id) is None
        assert await uow.results.get(result.id) is None
        assert await uow.reports.get(report.id) is None
        assert await uow.measurements.get(measurement.id) is None
        assert await uow.annotations.get(annotation.id) is None
        assert await uow.studies.get(kept.id) == kept
        assert await uow.instances.list_for_study(kept.id) == [kept_instance]
        assert await uow.jobs.get(kept_job.id) == kept_job
