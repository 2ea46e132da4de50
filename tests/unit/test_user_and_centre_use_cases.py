"""Who may see and change centres and users, decided in the use cases themselves."""

from __future__ import annotations

import pytest

from domain.audit import AuditQuery
from domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from domain.identity import Role
from domain.ports.repositories import CentreFilter, UserFilter
from domain.services.centres import CreateCentre, UpdateCentre
from domain.services.users import CreateUser, UpdateUser
from domain.values import Page
from tests.unit.identity_world import PASSWORD, build_world


def _new_user(name: str, role: Role = Role.TECHNICIAN, centre=None) -> CreateUser:
    return CreateUser(
        username=name,
        email=f"{name}@example.org",
        full_name=name,
        role=role,
        password=PASSWORD,
        centre_id=centre,
    )


async def test_a_centre_manager_registers_staff_only_into_their_own_centre():
    world = await build_world()
    manager = world.as_("manager-a")
    created = await world.users.create(manager, _new_user("tech-new"))
    assert created.centre_id == world.centre_a
    with pytest.raises(NotFound):
        await world.users.create(manager, _new_user("tech-other", centre=world.centre_b))


async def test_a_centre_manager_cannot_register_an_admin():
    world = await build_world()
    with pytest.raises(PermissionDenied):
        await world.users.create(world.as_("manager-a"), _new_user("boss", Role.ADMIN))


@pytest.mark.parametrize("who", ["radiologist-a", "technician-a"])
async def test_clinical_staff_cannot_register_users(who):
    world = await build_world()
    with pytest.raises(PermissionDenied):
        await world.users.create(world.as_(who), _new_user("someone", centre=world.centre_a))


async def test_a_taken_username_is_a_conflict():
    world = await build_world()
    with pytest.raises(Conflict):
        await world.users.create(world.admin, _new_user("technician-a", centre=world.centre_a))


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", "A B"), ("email", "not-an-email"), ("password", "short")],
)
async def test_bad_registration_fields_are_refused(field, value):
    world = await build_world()
    command = _new_user("valid-name", centre=world.centre_a)
    fields = {f: getattr(command, f) for f in command.__struct_fields__} | {field: value}
    with pytest.raises(InvalidInput):
        await world.users.create(world.admin, CreateUser(**fields))


async def test_another_centres_user_is_not_found_rather_than_forbidden():
    world = await build_world()
    other = world.people["radiologist-b"]
    with pytest.raises(NotFound):
        await world.users.get(world.as_("manager-a"), other.id)


async def test_staff_list_only_users_of_their_centre_whatever_filter_they_ask_for():
    world = await build_world()
    listed = await world.users.list(
        world.as_("technician-a"), UserFilter(centre_id=world.centre_b), Page()
    )
    assert {u.username for u in listed} == {"manager-a", "radiologist-a", "technician-a"}


async def test_an_admin_lists_users_of_any_centre():
    world = await build_world()
    listed = await world.users.list(world.admin, UserFilter(centre_id=world.centre_b), Page())
    assert {u.username for u in listed} == {"manager-b", "radiologist-b", "technician-b"}


async def test_users_edit_their_own_name_but_not_their_role():
    world = await build_world()
    me = world.as_("radiologist-a")
    renamed = await world.users.update(me, me.id, UpdateUser(full_name="Dr A"))
    assert renamed.full_name == "Dr A"
    assert renamed.version == 2
    with pytest.raises(PermissionDenied):
        await world.users.update(me, me.id, UpdateUser(role=Role.CENTRE_MANAGER))


async def test_a_manager_cannot_make_anyone_an_admin():
    world = await build_world()
    target = world.people["technician-a"]
    with pytest.raises(PermissionDenied):
        await world.users.update(world.as_("manager-a"), target.id, UpdateUser(role=Role.ADMIN))


async def test_deactivating_a_user_is_recorded_in_the_audit_trail():
    world = await build_world()
    target = world.people["technician-a"]
    done = await world.users.deactivate(world.as_("manager-a"), target.id)
    assert not done.active
    trail = await world.audit.query(AuditQuery(resource_id=str(target.id)), Page())
    assert [e.action for e in trail] == ["user.update", "user.create"]
    assert trail[0].actor_display == "manager-a"


async def test_staff_see_only_their_own_centre():
    world = await build_world()
    tech = world.as_("technician-a")
    assert [c.id for c in await world.centres.list(tech, CentreFilter(), Page())] == [
        world.centre_a
    ]
    with pytest.raises(NotFound):
        await world.centres.get(tech, world.centre_b)


async def test_only_admins_create_or_deactivate_centres():
    world = await build_world()
    manager = world.as_("manager-a")
    with pytest.raises(PermissionDenied):
        await world.centres.create(manager, CreateCentre(name="Gamma"))
    with pytest.raises(PermissionDenied):
        await world.centres.deactivate(manager, world.centre_a)
    updated = await world.centres.update(manager, world.centre_a, UpdateCentre(address="Main St"))
    assert updated.address == "Main St"


async def test_the_first_admin_is_created_once_with_a_generated_password():
    world = await build_world()
    assert await world.users.ensure_initial_admin() is None  # root already exists
