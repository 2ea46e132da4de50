"""Signing in, tokens and API keys, as a hospital security review would probe them."""

from __future__ import annotations

import pytest

from domain.audit import AuditQuery, Outcome
from domain.errors import NotFound, PermissionDenied, RateLimited, Unauthenticated
from domain.identity import PrincipalKind, Scope
from domain.services.api_keys import CreateApiKey
from domain.services.auth import BAD_CREDENTIALS
from domain.values import Page
from tests.unit.identity_world import PASSWORD, build_world


async def test_a_user_signs_in_and_the_token_acts_as_that_user():
    world = await build_world()
    signed = await world.auth.sign_in("radiologist-a", PASSWORD, client_address="10.0.0.1")
    principal = await world.auth.principal_for_token(signed.access_token)
    assert principal.id == world.people["radiologist-a"].id
    assert principal.centre_id == world.centre_a
    assert signed.expires_in_s == 1800


@pytest.mark.parametrize(("username", "password"), [("nobody", PASSWORD), ("technician-a", "x")])
async def test_unknown_user_and_wrong_password_get_the_same_answer(username, password):
    world = await build_world()
    with pytest.raises(Unauthenticated) as raised:
        await world.auth.sign_in(username, password, client_address="10.0.0.1")
    assert raised.value.detail == BAD_CREDENTIALS


async def test_repeated_failures_lock_the_username_for_a_while():
    world = await build_world()
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await world.auth.sign_in("technician-a", "wrong", client_address="10.0.0.9")
    with pytest.raises(RateLimited) as raised:
        await world.auth.sign_in("technician-a", PASSWORD, client_address="10.0.0.9")
    assert raised.value.retry_after_s > 0
    world.clock.advance(seconds=301)
    assert await world.auth.sign_in("technician-a", PASSWORD, client_address="10.0.0.9")


async def test_a_deactivated_users_token_stops_working_at_once():
    world = await build_world()
    signed = await world.auth.sign_in("technician-a", PASSWORD, client_address=None)
    await world.users.deactivate(world.admin, world.people["technician-a"].id)
    with pytest.raises(Unauthenticated):
        await world.auth.principal_for_token(signed.access_token)


async def test_an_expired_token_is_refused():
    world = await build_world()
    signed = await world.auth.sign_in("technician-a", PASSWORD, client_address=None)
    world.clock.advance(seconds=1800 + 60)
    with pytest.raises(Unauthenticated):
        await world.auth.principal_for_token(signed.access_token)


async def test_sign_ins_and_failures_are_audited_without_passwords():
    world = await build_world()
    await world.auth.sign_in("technician-a", PASSWORD, client_address="10.1.1.1")
    with pytest.raises(Unauthenticated):
        await world.auth.sign_in("technician-a", "wrong-pass", client_address="10.1.1.1")
    logins = [e for e in await world.audit.query(AuditQuery(), Page()) if e.action == "auth.login"]
    assert [e.outcome for e in logins] == [Outcome.DENIED, Outcome.SUCCESS]
    assert all(e.client_address == "10.1.1.1" for e in logins)
    assert not any("wrong-pass" in repr(e) or PASSWORD in repr(e) for e in logins)


async def test_an_api_key_acts_for_its_centre_with_its_scopes_until_revoked():
    world = await build_world()
    manager = world.as_("manager-a")
    issued = await world.keys.create(
        manager, CreateApiKey(name="PACS bridge", scopes=frozenset({Scope.STUDIES_WRITE}))
    )
    assert issued.key.secret_hash not in issued.secret
    principal = await world.auth.principal_for_api_key(issued.secret)
    assert principal.kind is PrincipalKind.API_KEY
    assert principal.centre_id == world.centre_a
    assert principal.scopes == {Scope.STUDIES_WRITE}
    await world.keys.revoke(manager, issued.key.id)
    with pytest.raises(Unauthenticated):
        await world.auth.principal_for_api_key(issued.secret)


async def test_a_tampered_api_key_is_refused():
    world = await build_world()
    issued = await world.keys.create(
        world.as_("manager-a"), CreateApiKey(name="k", scopes=frozenset({Scope.JOBS_READ}))
    )
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    with pytest.raises(Unauthenticated):
        await world.auth.principal_for_api_key(tampered)


async def test_a_manager_cannot_revoke_another_centres_key():
    world = await build_world()
    issued = await world.keys.create(
        world.as_("manager-b"), CreateApiKey(name="k", scopes=frozenset({Scope.JOBS_READ}))
    )
    with pytest.raises(NotFound):
        await world.keys.revoke(world.as_("manager-a"), issued.key.id)


async def test_an_api_key_cannot_mint_more_api_keys():
    world = await build_world()
    issued = await world.keys.create(
        world.as_("manager-a"), CreateApiKey(name="k", scopes=frozenset(Scope))
    )
    as_key = await world.auth.principal_for_api_key(issued.secret)
    with pytest.raises(PermissionDenied):
        await world.keys.create(as_key, CreateApiKey(name="k2", scopes=frozenset(Scope)))
