"""De-identification plans, options and the run report (the domain's part)."""

from __future__ import annotations

import pytest

from domain.deidentification import (
    RANDOM_SHIFT_RANGE_DAYS,
    ChangeTally,
    DateHandling,
    DeidentificationOptions,
    DeidentificationPlan,
    ProfileAction,
)

SHIFT = DeidentificationOptions(dates=DateHandling.SHIFT)


def test_the_basic_profile_alone_is_code_113100() -> None:
    assert [c.code_value for c in DeidentificationOptions().method_codes()] == ["113100"]


def test_each_option_adds_its_cid_7050_code() -> None:
    keep = DeidentificationOptions(dates=DateHandling.KEEP, retain_uids=True)
    assert [c.code_value for c in keep.method_codes()] == ["113100", "113106", "113110"]
    assert [c.code_value for c in SHIFT.method_codes()] == ["113100", "113107"]


def test_a_fresh_plan_shifts_by_a_nonzero_offset_in_range_and_has_its_own_key() -> None:
    plans = [DeidentificationPlan.fresh(SHIFT) for _ in range(50)]

    low, high = RANDOM_SHIFT_RANGE_DAYS
    assert all(low <= abs(p.date_shift_days) <= high for p in plans)
    assert len({p.uid_key for p in plans}) == 50


def test_a_given_offset_is_used_as_is() -> None:
    options = DeidentificationOptions(dates=DateHandling.SHIFT, date_shift_days=-12)
    assert DeidentificationPlan.fresh(options).date_shift_days == -12


def test_without_the_shift_option_nothing_moves() -> None:
    assert DeidentificationPlan.fresh(DeidentificationOptions()).date_shift_days == 0


def test_a_derived_plan_is_the_same_for_a_scope_and_differs_between_scopes() -> None:
    secret = b"s" * 32
    first = DeidentificationPlan.derived(SHIFT, secret=secret, scope="centre:a")
    again = DeidentificationPlan.derived(SHIFT, secret=secret, scope="centre:a")
    other = DeidentificationPlan.derived(SHIFT, secret=secret, scope="centre:b")

    assert first == again
    assert first.uid_key != other.uid_key
    low, high = RANDOM_SHIFT_RANGE_DAYS
    assert low <= abs(first.date_shift_days) <= high


def test_a_short_uid_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        DeidentificationPlan(options=SHIFT, uid_key=b"short")


def test_the_tally_adds_counts_of_every_file_and_sorts_by_tag() -> None:
    tally = ChangeTally()
    name = ("0010,0010", "PatientName", ProfileAction.EMPTIED, "Z")
    uid = ("0008,0018", "SOPInstanceUID", ProfileAction.UID_REPLACED, "U")
    tally.merge([(name, 1), (uid, 1)])
    tally.merge([(name, 2)])
    tally.warnings["burned in"] += 2

    report = tally.report(DeidentificationOptions())

    assert report.files == 2
    assert [(c.tag, c.count) for c in report.changes] == [("0008,0018", 1), ("0010,0010", 3)]
    assert report.warnings == ["burned in (2 file(s))"]
