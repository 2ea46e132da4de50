"""The tenancy rule every list shares: which centre a principal's list is restricted to."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.errors import PermissionDenied
from domain.identity import SYSTEM_PRINCIPAL, Principal, PrincipalKind, Role
from domain.services.access import scoped_centre


def test_an_admin_lists_the_centre_it_asks_for_or_every_centre() -> None:
    admin = Principal(kind=PrincipalKind.USER, id=uuid4(), role=Role.ADMIN, centre_id=None)
    chosen = uuid4()

    assert scoped_centre(admin, chosen) == chosen
    assert scoped_centre(admin, None) is None
    assert scoped_centre(SYSTEM_PRINCIPAL, None) is None


def test_anyone_else_lists_their_own_centre_whatever_they_ask_for() -> None:
    own = uuid4()
    for kind, role in ((PrincipalKind.USER, Role.RADIOLOGIST), (PrincipalKind.API_KEY, None)):
        principal = Principal(kind=kind, id=uuid4(), role=role, centre_id=own)
        assert scoped_centre(principal, uuid4()) == own
        assert scoped_centre(principal, None) == own


def test_a_non_admin_without_a_centre_is_refused_rather_than_shown_every_centre() -> None:
    stray = Principal(kind=PrincipalKind.USER, id=uuid4(), role=Role.TECHNICIAN, centre_id=None)

    with pytest.raises(PermissionDenied):
        scoped_centre(stray, None)
