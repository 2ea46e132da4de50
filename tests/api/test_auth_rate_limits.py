"""Rate limits per client and per centre, through the real API, with a small read budget.

Each client (a user or an API key) may read ``rate_limit_reads_per_minute`` times a minute,
and a centre as a whole ``CENTRE_LIMIT_FACTOR`` times that.
"""

from __future__ import annotations

import httpx

from adapters.memory.clock import ManualClock
from entrypoints.http.security import CENTRE_LIMIT_FACTOR
from tests.api.conftest import ServedFactory
from tests.api.identity_fixtures import World, assert_problem, create_key, seed_world

READS_PER_MINUTE = 3
USERS = "/api/v1/users"


async def limited_world(make_served: ServedFactory, clock: ManualClock, **options: str) -> World:
    return await seed_world(
        await make_served(clock=clock, rate_limit_reads_per_minute=str(READS_PER_MINUTE), **options)
    )


def assert_rate_limited(response: httpx.Response) -> str:
    body = assert_problem(response, 429)
    assert 0 < int(response.headers["retry-after"]) <= 60
    detail: str = body["detail"]
    return detail


async def test_the_fourth_read_in_a_minute_is_refused_and_others_of_the_centre_go_on(
    make_served: ServedFactory, database_options: dict[str, str]
) -> None:
    clock = ManualClock()
    world = await limited_world(make_served, clock, **database_options)
    technician = world.a.technician
    for _ in range(READS_PER_MINUTE):
        assert (await world.client.get(USERS, headers=technician.headers)).status_code == 200

    refused = await world.client.get(USERS, headers=technician.headers)

    assert "this client" in assert_rate_limited(refused)
    colleague = await world.client.get(USERS, headers=world.a.radiologist.headers)
    assert colleague.status_code == 200


async def test_the_read_budget_comes_back_the_next_minute(make_served: ServedFactory) -> None:
    clock = ManualClock()
    world = await limited_world(make_served, clock)
    headers = world.a.technician.headers
    for _ in range(READS_PER_MINUTE):
        await world.client.get(USERS, headers=headers)
    assert_rate_limited(await world.client.get(USERS, headers=headers))

    clock.advance(seconds=60)

    assert (await world.client.get(USERS, headers=headers)).status_code == 200


async def test_writes_do_not_spend_the_read_budget(make_served: ServedFactory) -> None:
    world = await limited_world(make_served, ManualClock())
    technician = world.a.technician
    for _ in range(READS_PER_MINUTE):
        await world.client.get(USERS, headers=technician.headers)

    response = await world.client.patch(
        f"/api/v1/users/{technician.id}",
        json={"full_name": "Still Writing"},
        headers=technician.headers,
    )

    assert response.status_code == 200


async def test_a_centre_runs_out_when_its_clients_together_spent_its_budget(
    make_served: ServedFactory,
) -> None:
    world = await limited_world(make_served, ManualClock())
    a = world.a
    clients = [a.manager.headers, a.radiologist.headers, a.technician.headers]
    clients += [a.key.headers, a.spare_key.headers]
    while len(clients) <= CENTRE_LIMIT_FACTOR:
        key = await create_key(
            world.client, world.admin.headers, name=f"worker {len(clients)}", centre_id=a.id
        )
        clients.append(key.headers)
    spenders, latecomer = clients[:CENTRE_LIMIT_FACTOR], clients[CENTRE_LIMIT_FACTOR]
    for headers in spenders:
        for _ in range(READS_PER_MINUTE):
            assert (await world.client.get(USERS, headers=headers)).status_code == 200

    refused = await world.client.get(USERS, headers=latecomer)

    assert "this centre" in assert_rate_limited(refused)
    other_centre = await world.client.get(USERS, headers=world.b.technician.headers)
    assert other_centre.status_code == 200
    admin = await world.client.get(USERS, headers=world.admin.headers)
    assert admin.status_code == 200
