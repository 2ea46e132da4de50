"""Bearer tokens and signing in, through the real API.

Forged tokens are made with a ``JwtTokenService`` that differs from the application's in one
thing only (the secret, the audience or the issuer); a token made the same way with nothing
changed is accepted, so each refusal is for that one difference.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adapters.memory.clock import ManualClock
from adapters.security import JwtTokenService
from domain.ports.security import TokenClaims
from entrypoints.bootstrap import derive_key
from tests.api.conftest import ServedFactory
from tests.api.identity_fixtures import PASSWORD, Member, World, assert_problem, seed_world, sign_in

ME = "/api/v1/auth/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_for(world: World, member: Member, *, lifetime_s: int = 600) -> TokenClaims:
    now = world.served.container.clock.now()
    return TokenClaims(
        subject=member.id,
        role=member.role,
        centre_id=member.centre_id,
        issued_at=now,
        expires_at=now + timedelta(seconds=lifetime_s),
    )


def token_service_like_the_apps(world: World, **changes: Any) -> JwtTokenService:
    container = world.served.container
    options: dict[str, Any] = {
        "issuer": container.settings.token_issuer,
        "audience": container.settings.token_audience,
        "secret": derive_key(container.secret_key, "access-tokens"),
    }
    return JwtTokenService(**(options | changes))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def payload_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def with_payload(token: str, payload: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64url(json.dumps(payload).encode())}.{signature}"


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name != "request_id"}


def assert_refused(response: httpx.Response) -> None:
    body = assert_problem(response, 401)
    assert body["type"].endswith("/unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="hounsfield"'


async def test_signing_in_answers_a_bearer_token_and_who_signed_in(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    technician = world.a.technician

    response = await sign_in(world.client, technician.username, PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert body["user"] == {
        "id": str(technician.id),
        "username": technician.username,
        "full_name": "A Technician",
        "role": "technician",
        "centre_id": str(world.a.id),
    }
    me = await world.client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == str(technician.id)


async def test_a_token_made_like_the_apps_is_accepted(shared_world_on_each_database: World) -> None:
    world = shared_world_on_each_database
    token = token_service_like_the_apps(world).issue(claims_for(world, world.a.technician))

    response = await world.client.get(ME, headers=bearer(token))

    assert response.status_code == 200


async def test_an_expired_token_is_refused(shared_world_on_each_database: World) -> None:
    world = shared_world_on_each_database
    claims = claims_for(world, world.a.technician, lifetime_s=60)
    past = timedelta(hours=1)
    expired = TokenClaims(
        subject=claims.subject,
        role=claims.role,
        centre_id=claims.centre_id,
        issued_at=claims.issued_at - past,
        expires_at=claims.expires_at - past,
    )
    token = world.served.container.services.tokens.issue(expired)

    response = await world.client.get(ME, headers=bearer(token))

    assert_refused(response)
    assert response.json()["detail"] == "token expired"


async def test_a_token_stops_working_when_its_lifetime_is_over(
    make_served: ServedFactory,
) -> None:
    clock = ManualClock()
    world = await seed_world(await make_served(clock=clock, access_token_ttl_s="60"))
    assert (await world.client.get(ME, headers=world.a.radiologist.headers)).status_code == 200

    clock.advance(seconds=60 + 5 + 1)  # the lifetime, the verifier's leeway, a second more

    assert_refused(await world.client.get(ME, headers=world.a.radiologist.headers))


async def test_a_token_whose_claims_were_changed_is_refused(
    shared_world_on_each_database: World,
) -> None:
    world = shared_world_on_each_database
    token = world.a.technician.token
    assert token is not None
    promoted = {**payload_of(token), "role": "admin", "centre": None}

    response = await world.client.get(
        "/api/v1/audit", headers=bearer(with_payload(token, promoted))
    )

    assert_refused(response)


async def test_a_token_with_one_character_of_its_payload_changed_is_refused(
    shared_world_on_each_database: World,
) -> None:
    world = shared_world_on_each_database
    token = world.a.technician.token
    assert token is not None
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    flipped = "B" if payload[middle] == "A" else "A"
    tampered = f"{header}.{payload[:middle]}{flipped}{payload[middle + 1 :]}.{signature}"

    assert_refused(await world.client.get(ME, headers=bearer(tampered)))


@pytest.mark.parametrize(
    "difference",
    [
        {"secret": os.urandom(32)},
        {"audience": "another-api"},
        {"issuer": "https://issuer.example.org"},
    ],
    ids=["signed-with-another-secret", "wrong-audience", "wrong-issuer"],
)
async def test_a_token_made_differently_is_refused(
    shared_world_on_each_database: World, difference: dict[str, Any]
) -> None:
    world = shared_world_on_each_database
    forged = token_service_like_the_apps(world, **difference)
    token = forged.issue(claims_for(world, world.a.technician))

    assert_refused(await world.client.get(ME, headers=bearer(token)))


async def test_an_unsigned_alg_none_token_is_refused(shared_world_on_each_database: World) -> None:
    world = shared_world_on_each_database
    genuine = token_service_like_the_apps(world).issue(claims_for(world, world.admin))
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{header}.{genuine.split('.')[1]}."

    assert_refused(await world.client.get(ME, headers=bearer(unsigned)))


async def test_a_deactivated_users_token_stops_working_at_once(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    technician = world.a.technician
    assert (await world.client.get(ME, headers=technician.headers)).status_code == 200

    deactivated = await world.client.patch(
        f"/api/v1/users/{technician.id}/deactivate", headers=world.admin.headers
    )

    assert deactivated.status_code == 200
    assert_refused(await world.client.get(ME, headers=technician.headers))


async def test_the_tokens_of_a_deactivated_centre_stop_working(world: World) -> None:
    deactivated = await world.client.patch(
        f"/api/v1/centres/{world.b.id}/deactivate", headers=world.admin.headers
    )

    assert deactivated.status_code == 200
    assert_refused(await world.client.get(ME, headers=world.b.manager.headers))
    assert (await world.client.get(ME, headers=world.a.manager.headers)).status_code == 200


async def test_wrong_password_and_unknown_user_get_the_same_answer(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database

    wrong_password = await sign_in(world.client, world.a.manager.username, "not the password!")
    unknown_user = await sign_in(world.client, "nobody-here", "not the password!")

    for response in (wrong_password, unknown_user):
        assert_refused(response)
    assert without_request_id(wrong_password.json()) == without_request_id(unknown_user.json())


async def test_a_deactivated_user_with_the_right_password_gets_the_same_answer(
    world: World,
) -> None:
    await world.client.patch(
        f"/api/v1/users/{world.a.staff.id}/deactivate", headers=world.admin.headers
    )

    deactivated = await sign_in(world.client, world.a.staff.username, PASSWORD)
    unknown_user = await sign_in(world.client, "nobody-here", PASSWORD)

    assert_refused(deactivated)
    assert without_request_id(deactivated.json()) == without_request_id(unknown_user.json())


async def test_a_username_is_throttled_after_five_failed_sign_ins(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    username = world.a.radiologist.username
    for _ in range(5):
        assert_refused(await sign_in(world.client, username, "not the password!"))

    throttled = await sign_in(world.client, username, PASSWORD)

    assert_problem(throttled, 429)
    assert int(throttled.headers["retry-after"]) > 0
    other = await sign_in(world.client, world.a.technician.username, PASSWORD)
    assert other.status_code == 200


async def test_an_unknown_username_is_throttled_like_a_known_one(world: World) -> None:
    for _ in range(5):
        assert_refused(await sign_in(world.client, "nobody-here", "not the password!"))

    throttled = await sign_in(world.client, "nobody-here", "not the password!")

    assert_problem(throttled, 429)
    assert "retry-after" in throttled.headers


async def test_a_changed_role_takes_effect_on_the_same_token(world: World) -> None:
    manager = world.a.manager
    demoted = await world.client.patch(
        f"/api/v1/users/{manager.id}", json={"role": "technician"}, headers=world.admin.headers
    )
    assert demoted.status_code == 200

    response = await world.client.patch(
        f"/api/v1/users/{world.a.staff.id}", json={"full_name": "X"}, headers=manager.headers
    )

    assert_problem(response, 403)
