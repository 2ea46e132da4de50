"""Contract: centres, users and API keys are stored, found, listed and updated safely."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import ConcurrentModification, Conflict
from domain.identity import Role
from domain.ports import CentreFilter, UnitOfWorkFactory, UserFilter
from domain.values import Page
from tests.contract.conftest import Make, replace, store


async def test_a_stored_centre_reads_back_unchanged(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre(contact_email="desk@elsewhere.org", address="1 Main St", auto_invoice=True)
    await store(uow_factory, centre)

    async with uow_factory() as uow:
        stored = await uow.centres.get(centre.id)
        assert await uow.centres.get(make.id()) is None

    assert stored == centre
    assert type(stored.id) is uuid.UUID  # the domain's own types, not a driver's subclasses


async def test_updating_a_centre_bumps_its_version(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    await store(uow_factory, centre)

    async with uow_factory() as uow:
        stored = await uow.centres.update(replace(centre, name="Renamed", active=False))
        await uow.commit()

    assert stored.version == centre.version + 1
    async with uow_factory() as uow:
        assert await uow.centres.get(centre.id) == stored


async def test_two_updates_from_the_same_read_the_second_is_refused(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    await store(uow_factory, centre)
    async with uow_factory() as uow:
        read = await uow.centres.get(centre.id)
    assert read is not None

    async with uow_factory() as uow:
        await uow.centres.update(replace(read, name="First writer"))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrentModification):
            await uow.centres.update(replace(read, name="Second writer"))

    async with uow_factory() as uow:
        current = await uow.centres.get(centre.id)
    assert current is not None and current.name == "First writer"


async def test_centres_filter_by_active_and_name_case_insensitively(
    uow_factory: UnitOfWorkFactory, make: Make
):
    north = make.centre(name="North Radiology")
    south = make.centre(name="South Radiology", active=False)
    clinic = make.centre(name="Harbour Clinic")
    await store(uow_factory, north, south, clinic)

    async with uow_factory() as uow:
        radiology = await uow.centres.list(CentreFilter(name_contains="radiology"), Page())
        active = await uow.centres.list(CentreFilter(active=True), Page())
        both = await uow.centres.list(CentreFilter(active=False, name_contains="RADIO"), Page())

    assert {c.id for c in radiology} == {north.id, south.id}
    assert {c.id for c in active} == {north.id, clinic.id}
    assert [c.id for c in both] == [south.id]


async def test_centre_pages_cover_every_centre_once(uow_factory: UnitOfWorkFactory, make: Make):
    centres = [make.centre(name=f"Centre {i:02d}") for i in range(7)]
    await store(uow_factory, *centres)

    async with uow_factory() as uow:
        pages = [await uow.centres.list(CentreFilter(), Page(skip=s, limit=3)) for s in (0, 3, 6)]
        everything = await uow.centres.list(CentreFilter(), Page())

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c.id for p in pages for c in p] == [c.id for c in everything]
    assert {c.id for c in everything} == {c.id for c in centres}


async def test_a_user_is_found_by_id_and_by_username(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    user = make.user(centre, last_login_at=make.now())
    admin = make.user(None, role=Role.ADMIN)
    await store(uow_factory, centre, user, admin)

    async with uow_factory() as uow:
        assert await uow.users.get(user.id) == user
        assert await uow.users.get_by_username(admin.username) == admin
        assert await uow.users.get_by_username("nobody") is None


@pytest.mark.parametrize("taken", ["username", "email"])
async def test_a_taken_username_or_email_is_a_conflict(
    uow_factory: UnitOfWorkFactory, make: Make, taken: str
):
    centre = make.centre()
    first = make.user(centre)
    await store(uow_factory, centre, first)
    second = make.user(centre, **{taken: getattr(first, taken)})

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.users.add(second)


async def test_users_filter_and_count_by_role_centre_and_active(
    uow_factory: UnitOfWorkFactory, make: Make
):
    a, b = make.centre(), make.centre()
    rad_a = make.user(a)
    tech_a = make.user(a, role=Role.TECHNICIAN)
    rad_b = make.user(b, active=False)
    admin = make.user(None, role=Role.ADMIN)
    await store(uow_factory, a, b, rad_a, tech_a, rad_b, admin)

    async with uow_factory() as uow:
        radiologists = await uow.users.list(UserFilter(role=Role.RADIOLOGIST), Page())
        in_a = await uow.users.list(UserFilter(centre_id=a.id), Page())
        inactive = await uow.users.list(UserFilter(active=False), Page())
        assert await uow.users.count(UserFilter()) == 4
        assert await uow.users.count(UserFilter(centre_id=a.id, role=Role.TECHNICIAN)) == 1
        assert await uow.users.count(UserFilter(active=True)) == 3
        limited = await uow.users.list(UserFilter(), Page(limit=2))

    assert {u.id for u in radiologists} == {rad_a.id, rad_b.id}
    assert {u.id for u in in_a} == {rad_a.id, tech_a.id}
    assert [u.id for u in inactive] == [rad_b.id]
    assert len(limited) == 2


async def test_updating_a_user_is_optimistically_locked(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    user = make.user(centre)
    await store(uow_factory, centre, user)

    async with uow_factory() as uow:
        stored = await uow.users.update(replace(user, active=False, last_login_at=make.now()))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrentModification):
            await uow.users.update(replace(user, full_name="Stale write"))
        assert await uow.users.get(user.id) == stored
    assert stored.version == 2


async def test_an_api_key_is_found_by_prefix_and_can_be_revoked(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    key = make.api_key(centre, expires_at=make.now())
    await store(uow_factory, centre, key)

    async with uow_factory() as uow:
        assert await uow.api_keys.get_by_prefix(key.prefix) == key
        revoked = await uow.api_keys.update(replace(key, revoked_at=make.now()))
        await uow.commit()

    async with uow_factory() as uow:
        stored = await uow.api_keys.get(key.id)
    assert stored == revoked
    assert stored is not None and stored.revoked
    assert stored.scopes == key.scopes


async def test_api_keys_list_per_centre(uow_factory: UnitOfWorkFactory, make: Make):
    a, b = make.centre(), make.centre()
    keys_a = [make.api_key(a), make.api_key(a)]
    key_b = make.api_key(b)
    await store(uow_factory, a, b, *keys_a, key_b)

    async with uow_factory() as uow:
        in_a = await uow.api_keys.list(a.id, Page())
        every = await uow.api_keys.list(None, Page())

    assert {k.id for k in in_a} == {k.id for k in keys_a}
    assert {k.id for k in every} == {keys_a[0].id, keys_a[1].id, key_b.id}
