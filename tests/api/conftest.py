"""The real application over a container bootstrapped with in-memory adapters (or Postgres).

``make_client`` builds the app with extra test-only routes or probes where a test needs them;
the blob store is the default filesystem store in the temporary data dir. Requests go through
httpx's ASGI transport on the test's own event loop (Litestar's test clients run the app on
another thread's loop, where an asyncpg pool made here cannot be used).

Passwords are hashed with the cheap Argon2 profile unless a test passes ``password_hasher``;
``clock`` and ``rate_limiter`` replace the system clock and the settings' limiter;
``job_handler`` replaces what running a job does.
``make_served`` answers the client together with its container and app, for tests that seed
data through the use cases or walk the app's routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.types import ControllerRouterHandler

from adapters.postgres.migrate import migrate
from adapters.security import Argon2PasswordHasher
from domain.ports import Clock, HealthProbe, PasswordHasher
from domain.ports.jobs import JobHandler
from domain.ports.rate_limits import RateLimiter
from entrypoints.bootstrap import Container, bootstrap
from entrypoints.http import create_app
from entrypoints.settings import Settings
from tests.api.identity_fixtures import World, seed_world
from tests.fixtures.postgres import create_database, drop_database

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@dataclass(frozen=True, kw_only=True)
class Served:
    """An application under test: the client that calls it, its container and the app."""

    client: httpx.AsyncClient
    container: Container
    app: Litestar


ServedFactory = Callable[..., Awaitable[Served]]


def settings_for(data_dir: Path, **env: str) -> Settings:
    variables = {"HOUNSFIELD_DATA_DIR": str(data_dir)}
    variables.update({f"HOUNSFIELD_{name.upper()}": value for name, value in env.items()})
    return Settings.from_env(variables, config_file=None)


async def serve(
    stack: AsyncExitStack,
    data_dir: Path,
    *,
    database: str = "memory",
    routes: Sequence[ControllerRouterHandler] = (),
    probes: Sequence[HealthProbe] = (),
    password_hasher: PasswordHasher | None = None,
    clock: Clock | None = None,
    rate_limiter: RateLimiter | None = None,
    job_handler: JobHandler | None = None,
    **env: str,
) -> Served:
    """Bootstrap a container and serve the app over it; ``stack`` closes both."""
    settings = settings_for(data_dir, **env)
    container: Container = await bootstrap(
        settings,
        database=database,  # type: ignore[arg-type]
        extra_probes=probes,
        password_hasher=password_hasher or Argon2PasswordHasher.for_tests(),
        clock=clock,
        rate_limiter=rate_limiter,
        job_handler=job_handler,
    )
    stack.push_async_callback(container.aclose)
    app = create_app(container, extra_api_handlers=routes)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    client = await stack.enter_async_context(client)
    return Served(client=client, container=container, app=app)


@pytest.fixture
async def make_served(tmp_path: Path) -> AsyncIterator[ServedFactory]:
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> Served:
            return await serve(stack, tmp_path / "data", **options)

        yield make


@pytest.fixture
async def make_client(make_served: ServedFactory) -> ClientFactory:
    async def make(**options: object) -> httpx.AsyncClient:
        return (await make_served(**options)).client

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_options(request: pytest.FixtureRequest) -> dict[str, str]:
    """``make_served`` options for each database the test runs on: memory, then PostgreSQL."""
    if request.param == "memory":
        return {}
    dsn: str = request.getfixturevalue("postgres_dsn")
    return {"database": "postgres", "database_url": dsn}


@pytest.fixture
async def world(make_served: ServedFactory) -> World:
    """An admin and two centres with their staff and keys, all signed in, in memory."""
    return await seed_world(await make_served())


@pytest.fixture
async def world_on_each_database(
    make_served: ServedFactory, database_options: dict[str, str]
) -> World:
    """The same world, once in memory and once on PostgreSQL."""
    return await seed_world(await make_served(**database_options))


async def database_of_its_own(stack: AsyncExitStack, server_dsn: str | None) -> dict[str, Any]:
    """``serve`` options for a migrated PostgreSQL database that ``stack`` drops at the end
    (memory when ``server_dsn`` is ``None``). A world shared by a module lives there, out of
    reach of the function-scoped worlds that empty the session's database."""
    if server_dsn is None:
        return {}
    dsn = await create_database(server_dsn, prefix="hounsfield_module")
    stack.push_async_callback(drop_database, server_dsn, dsn)
    await migrate(dsn)
    return {"database": "postgres", "database_url": dsn}


@pytest.fixture(
    scope="module", params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_database(request: pytest.FixtureRequest) -> str | None:
    """Each database a module's shared world lives on: ``None`` for memory, then the DSN of a
    PostgreSQL server on which ``database_of_its_own`` makes one."""
    if request.param == "memory":
        return None
    server_dsn: str = request.getfixturevalue("postgres_server_dsn")
    return server_dsn


@pytest.fixture(scope="module")
async def shared_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """One world for a whole test module, in memory: only for requests that change nothing
    (reads, and refusals), since every test of the module sees what the others did."""
    async with AsyncExitStack() as stack:
        served = await serve(stack, tmp_path_factory.mktemp("shared") / "data")
        yield await seed_world(served)


@pytest.fixture(scope="module")
async def shared_world_on_each_database(
    tmp_path_factory: pytest.TempPathFactory, module_database: str | None
) -> AsyncIterator[World]:
    """``shared_world``, once in memory and once on a PostgreSQL database of its own."""
    async with AsyncExitStack() as stack:
        options = await database_of_its_own(stack, module_database)
        served = await serve(stack, tmp_path_factory.mktemp("shared") / "data", **options)
        yield await seed_world(served)


@pytest.fixture(scope="module")
async def shared_postgres_world(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_dsn: str
) -> AsyncIterator[World]:
    """``shared_world`` on a PostgreSQL database of its own."""
    async with AsyncExitStack() as stack:
        options = await database_of_its_own(stack, postgres_server_dsn)
        served = await serve(stack, tmp_path_factory.mktemp("shared-postgres") / "data", **options)
        yield await seed_world(served)
