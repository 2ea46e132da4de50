"""Contract: reports keep every stored version; lists are newest first."""

from __future__ import annotations

import pytest

from domain.errors import ConcurrentModification
from domain.ports import ReportFilter, UnitOfWorkFactory
from domain.reports import ReportStatus, ReportType
from domain.values import Page
from tests.contract.conftest import Make, store


async def test_a_stored_report_reads_back_unchanged(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    report = make.report(study, is_ai_generated=True, author_id=None)
    await store(uow_factory, centre, study, report)

    async with uow_factory() as uow:
        assert await uow.reports.get(report.id) == report
        assert await uow.reports.get(make.id()) is None


async def test_every_version_of_a_report_stays_readable_oldest_first(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    draft = make.report(study)
    await store(uow_factory, centre, study, draft)

    async with uow_factory() as uow:
        edited = await uow.reports.update(
            draft.edit(findings="No nodule.", impression=None, at=make.now())
        )
        await uow.commit()
    async with uow_factory() as uow:
        verified = await uow.reports.update(edited.verify(make.id(), at=make.now()))
        await uow.commit()

    async with uow_factory() as uow:
        versions = await uow.reports.versions(draft.id)
        current = await uow.reports.get(draft.id)

    assert versions == [draft, edited, verified]
    assert [v.version for v in versions] == [1, 2, 3]
    assert current == verified
    assert verified.status is ReportStatus.VERIFIED and verified.type is ReportType.FINAL


async def test_a_rolled_back_report_edit_leaves_no_version(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    draft = make.report(study)
    await store(uow_factory, centre, study, draft)

    async with uow_factory() as uow:
        await uow.reports.update(draft.edit(findings="oops", impression=None, at=make.now()))

    async with uow_factory() as uow:
        assert await uow.reports.versions(draft.id) == [draft]
        assert await uow.reports.get(draft.id) == draft


async def test_two_edits_from_the_same_read_the_second_is_refused(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    draft = make.report(study)
    await store(uow_factory, centre, study, draft)

    async with uow_factory() as uow:
        await uow.reports.update(draft.edit(findings="first", impression=None, at=make.now()))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrentModification):
            await uow.reports.update(draft.edit(findings="second", impression=None, at=make.now()))
    async with uow_factory() as uow:
        assert len(await uow.reports.versions(draft.id)) == 2


async def test_reports_list_newest_first_with_filters(uow_factory: UnitOfWorkFactory, make: Make):
    a, b = make.centre(), make.centre()
    study_a, study_b = make.study(a), make.study(b)
    author = make.id()
    ai = make.report(study_a, is_ai_generated=True)
    by_author = make.report(study_a, author_id=author)
    verified = make.report(study_b, status=ReportStatus.VERIFIED, author_id=author)
    await store(uow_factory, a, b, study_a, study_b, ai, by_author, verified)

    async def ids(where: ReportFilter, page: Page | None = None) -> list:
        async with uow_factory() as uow:
            return [r.id for r in await uow.reports.list(where, page or Page())]

    assert await ids(ReportFilter()) == [verified.id, by_author.id, ai.id]
    assert await ids(ReportFilter(centre_id=a.id)) == [by_author.id, ai.id]
    assert await ids(ReportFilter(study_id=study_b.id)) == [verified.id]
    assert await ids(ReportFilter(author_id=author)) == [verified.id, by_author.id]
    assert await ids(ReportFilter(status=ReportStatus.DRAFT)) == [by_author.id, ai.id]
    assert await ids(ReportFilter(is_ai_generated=True)) == [ai.id]
    assert await ids(ReportFilter(is_ai_generated=False), Page(skip=1)) == [by_author.id]


async def test_an_ai_draft_is_found_by_the_analysis_result_it_came_from(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    job = make.job(study)
    result = make.result(job)
    draft = make.report(study, is_ai_generated=True, author_id=None, analysis_result_id=result.id)
    other = make.report(study)
    await store(uow_factory, centre, study, job, result, draft, other)

    async with uow_factory() as uow:
        found = await uow.reports.list(ReportFilter(analysis_result_id=result.id), Page())
        missing = await uow.reports.list(ReportFilter(analysis_result_id=make.id()), Page())

    assert found == [draft]
    assert found[0].analysis_result_id == result.id
    assert missing == []
