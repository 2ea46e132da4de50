"""Value objects refuse bad input at construction, with messages that quote it."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.billing import Currency, Money, invoice_number
from domain.identity import SYSTEM_PRINCIPAL, Principal, PrincipalKind, Role, Scope, User
from domain.studies import STUDY_CODE_ALPHABET, Modality, new_study_code
from domain.values import MAX_PAGE_SIZE, Page
from tests.unit.factories import T0


@pytest.mark.parametrize(
    ("spelling", "modality"),
    [
        ("CT", Modality.CT),
        ("mri", Modality.MR),
        ("MR", Modality.MR),
        ("ultrasound", Modality.US),
        ("x-ray", Modality.XRAY),
        ("xray", Modality.XRAY),
        ("CR", Modality.XRAY),
        ("dx", Modality.XRAY),
        ("PT", Modality.PET),
        (" nm ", Modality.NM),
    ],
)
def test_seed_system_spellings_of_modalities_are_normalised(spelling, modality):
    assert Modality.parse(spelling) is modality


def test_an_unknown_modality_is_refused_with_the_spelling_quoted():
    with pytest.raises(ValueError, match="'scanogram'"):
        Modality.parse("scanogram")


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        Money(amount=12.5, currency=Currency.USD)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", ["-1.00", "1.005", "NaN", "Infinity"])
def test_money_refuses_negative_nonfinite_and_sub_cent_amounts(amount):
    with pytest.raises(ValueError):
        Money(amount=Decimal(amount), currency=Currency.INR)


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False))
def test_money_keeps_any_amount_in_minor_units_exactly(amount):
    assert Money(amount=amount, currency=Currency.AED).amount == amount


def test_invoice_numbers_sort_in_issue_order_within_a_year():
    numbers = [invoice_number("CTR", 2026, n) for n in (1, 2, 10, 999_999)]
    assert numbers == sorted(numbers)
    assert numbers[0] == "CTR-2026-000001"


@given(st.integers(min_value=-5, max_value=MAX_PAGE_SIZE + 5), st.integers(-5, 5))
def test_pages_accept_only_sane_windows(limit, skip):
    if 1 <= limit <= MAX_PAGE_SIZE and skip >= 0:
        assert Page(skip=skip, limit=limit).limit == limit
    else:
        with pytest.raises(ValueError):
            Page(skip=skip, limit=limit)


def test_study_codes_are_eight_unambiguous_characters():
    codes = {new_study_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(STUDY_CODE_ALPHABET) for c in codes)
    assert not set("01IO") & set(STUDY_CODE_ALPHABET)


def _user(role: Role, centre=None) -> User:
    return User(
        id=uuid4(),
        username="u",
        email="u@example.org",
        full_name="U",
        role=role,
        centre_id=centre,
        password_hash="x",
        created_at=T0,
        updated_at=T0,
    )


def test_an_admin_belongs_to_no_centre_and_staff_to_exactly_one():
    assert _user(Role.ADMIN).centre_id is None
    with pytest.raises(ValueError, match="admin"):
        _user(Role.ADMIN, uuid4())
    with pytest.raises(ValueError, match="radiologist"):
        _user(Role.RADIOLOGIST)


def test_a_principal_sees_only_its_own_centre_unless_admin():
    mine, theirs = uuid4(), uuid4()
    staff = Principal(kind=PrincipalKind.USER, id=uuid4(), role=Role.TECHNICIAN, centre_id=mine)
    admin = Principal(kind=PrincipalKind.USER, id=uuid4(), role=Role.ADMIN, centre_id=None)
    assert staff.can_see_centre(mine)
    assert not staff.can_see_centre(theirs)
    assert not staff.can_see_centre(None)
    assert admin.can_see_centre(theirs)
    assert SYSTEM_PRINCIPAL.can_see_centre(theirs)


def test_an_api_key_acts_only_within_its_scopes():
    key = Principal(
        kind=PrincipalKind.API_KEY,
        id=uuid4(),
        role=None,
        centre_id=uuid4(),
        scopes=frozenset({Scope.JOBS_REPORT}),
    )
    assert key.has_scope(Scope.JOBS_REPORT)
    assert not key.has_scope(Scope.STUDIES_WRITE)
