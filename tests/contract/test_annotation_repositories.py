"""Contract: measurements and annotations placed on an instance."""

from __future__ import annotations

from domain.annotations import MeasurementKind
from domain.ports import UnitOfWorkFactory
from tests.contract.conftest import Make, store


async def test_measurements_read_back_in_the_order_they_were_placed(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    instance, other = make.instance(series), make.instance(series)
    line = make.measurement(instance, label="long axis", frame=3, author_id=make.id())
    roi = make.measurement(
        instance,
        kind=MeasurementKind.ROI,
        points=((0.0, 0.0), (10.0, 0.0), (10.0, 10.5)),
        value=52.5,
        unit="mm2",
    )
    elsewhere = make.measurement(other)
    await store(uow_factory, centre, study, series, instance, other, line, roi, elsewhere)

    async with uow_factory() as uow:
        assert await uow.measurements.get(roi.id) == roi
        assert await uow.measurements.list_for_instance(instance.id) == [line, roi]


async def test_a_deleted_measurement_is_gone(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    instance = make.instance(series)
    kept, dropped = make.measurement(instance), make.measurement(instance)
    await store(uow_factory, centre, study, series, instance, kept, dropped)

    async with uow_factory() as uow:
        await uow.measurements.delete(dropped.id)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.measurements.get(dropped.id) is None
        assert await uow.measurements.list_for_instance(instance.id) == [kept]


async def test_annotations_are_listed_per_instance_and_can_be_deleted(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    instance = make.instance(series)
    first = make.annotation(instance, frame=2, author_id=make.id())
    second = make.annotation(instance, text="see prior", position=(1.5, 2.25))
    await store(uow_factory, centre, study, series, instance, first, second)

    async with uow_factory() as uow:
        assert await uow.annotations.get(second.id) == second
        assert await uow.annotations.list_for_instance(instance.id) == [first, second]
        await uow.annotations.delete(first.id)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.annotations.list_for_instance(instance.id) == [second]
        assert await uow.annotations.get(first.id) is None
