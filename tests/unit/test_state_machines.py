"""The four lifecycles refuse every move their table does not list, whatever the path taken."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.billing import INVOICE_TRANSITIONS, InvoiceStatus
from domain.errors import Conflict, InvalidInput, InvalidTransition
from domain.jobs import JOB_TRANSITIONS, JobStage, JobStatus
from domain.reports import AI_DRAFT_NOTICE, AI_VERIFIED_NOTICE, REPORT_TRANSITIONS, ReportStatus
from domain.studies import STUDY_TRANSITIONS, StudyStatus
from tests.unit.factories import T0, a_job, a_report, a_study, an_invoice

TABLES = [
    (STUDY_TRANSITIONS, StudyStatus),
    (JOB_TRANSITIONS, JobStatus),
    (REPORT_TRANSITIONS, ReportStatus),
    (INVOICE_TRANSITIONS, InvoiceStatus),
]


@pytest.mark.parametrize(("table", "states"), TABLES, ids=lambda t: getattr(t, "machine", ""))
def test_every_state_of_every_machine_has_a_row(table, states):
    for state in states:
        assert isinstance(table.allowed(state), frozenset)


@pytest.mark.parametrize(("table", "states"), TABLES, ids=lambda t: getattr(t, "machine", ""))
def test_an_illegal_move_names_the_machine_and_both_states(table, states):
    for current in states:
        for requested in states:
            if table.can(current, requested):
                assert table.check(current, requested) is requested
                continue
            with pytest.raises(InvalidTransition) as raised:
                table.check(current, requested)
            assert raised.value.machine == table.machine
            assert raised.value.current == current.value
            assert raised.value.requested == requested.value


@given(st.lists(st.sampled_from(list(StudyStatus)), max_size=12))
def test_a_study_only_ever_reaches_states_along_its_table(path):
    study = a_study()
    for requested in path:
        before = study.status
        if STUDY_TRANSITIONS.can(before, requested):
            study = study.move_to(requested, at=T0)
            assert study.status is requested
        else:
            with pytest.raises(InvalidTransition):
                study.move_to(requested, at=T0)
            assert study.status is before


def test_a_verified_study_cannot_move_anywhere():
    study = a_study(status=StudyStatus.VERIFIED)
    for requested in StudyStatus:
        with pytest.raises(InvalidTransition):
            study.move_to(requested, at=T0)


def test_assigning_a_study_records_the_radiologist():
    radiologist = uuid4()
    assigned = a_study().assign(radiologist, at=T0 + timedelta(minutes=1))
    assert assigned.status is StudyStatus.ASSIGNED
    assert assigned.assigned_radiologist_id == radiologist
    assert assigned.updated_at == T0 + timedelta(minutes=1)


JOB_ACTIONS = ["enqueue", "start", "progress", "complete", "fail", "cancel", "release"]


def _apply(job, action, step):
    at = T0 + timedelta(seconds=step)
    match action:
        case "enqueue":
            return job.enqueue(at=at)
        case "start":
            return job.start(at=at, lease_until=at + timedelta(minutes=5))
        case "progress":
            return job.report_progress(stage=JobStage.INFERENCE, progress=(step % 10) / 10, at=at)
        case "complete":
            return job.complete(at=at)
        case "fail":
            return job.fail("boom", at=at)
        case "cancel":
            return job.cancel(at=at)
        case "release":
            return job.release(at=at)
    raise AssertionError(action)


@given(st.lists(st.sampled_from(JOB_ACTIONS), max_size=20))
def test_a_job_never_leaves_a_finished_state_except_a_retried_failure(actions):
    job = a_job()
    for step, action in enumerate(actions):
        before = job
        try:
            job = _apply(job, action, step)
        except (InvalidTransition, InvalidInput):
            assert job is before
            continue
        if before.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            raise AssertionError(f"{action} changed a {before.status} job")
        assert 0.0 <= job.progress <= 1.0
        if action in ("progress", "start", "release"):
            assert job.progress >= before.progress, "progress went backwards"
        if action == "start":
            assert job.attempts == before.attempts + 1


def test_only_a_running_job_reports_progress():
    with pytest.raises(InvalidInput):
        a_job().report_progress(stage=JobStage.LOADING, progress=0.5, at=T0)


def test_a_completed_job_has_full_progress_and_a_finish_time():
    job = a_job().enqueue(at=T0).start(at=T0, lease_until=T0 + timedelta(minutes=1))
    done = job.complete(at=T0 + timedelta(seconds=30))
    assert done.progress == 1.0
    assert done.finished
    assert done.finished_at == T0 + timedelta(seconds=30)
    with pytest.raises(InvalidTransition):
        done.complete(at=T0 + timedelta(seconds=31))


def test_a_verified_report_cannot_be_edited():
    verified = a_report().verify(uuid4(), at=T0)
    with pytest.raises(Conflict):
        verified.edit(findings="changed", impression=None, at=T0)


def test_a_report_is_verified_once():
    verified = a_report().verify(uuid4(), at=T0)
    with pytest.raises(InvalidTransition):
        verified.verify(uuid4(), at=T0)


@given(st.lists(st.sampled_from(list(InvoiceStatus)), max_size=6))
def test_an_invoice_only_goes_from_pending_to_paid_or_cancelled(path):
    invoice = an_invoice()
    for requested in path:
        if invoice.status is InvoiceStatus.PENDING and requested is not InvoiceStatus.PENDING:
            invoice = invoice.move_to(requested, at=T0)
        else:
            with pytest.raises(InvalidTransition):
                invoice.move_to(requested, at=T0)
    if invoice.status is InvoiceStatus.PAID:
        assert invoice.paid_at == T0


def test_verifying_an_ai_draft_replaces_its_unverified_notice_and_keeps_the_rest() -> None:
    draft = a_report(
        findings=f"{AI_DRAFT_NOTICE}\nFindings:\n1. lesion: 12 mm, right lower lobe.",
        is_ai_generated=True,
    )
    written_by_hand = a_report(findings=draft.findings, is_ai_generated=False)

    verified = draft.verify(uuid4(), at=T0)

    assert verified.status is ReportStatus.VERIFIED
    assert verified.findings.splitlines()[0] == AI_VERIFIED_NOTICE
    assert "NOT VERIFIED" not in verified.findings
    assert verified.findings.splitlines()[1:] == draft.findings.splitlines()[1:]
    # a report typed by a radiologist is verified exactly as written
    assert written_by_hand.verify(uuid4(), at=T0).findings == written_by_hand.findings
