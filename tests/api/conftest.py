"""The real application over a container bootstrapped with in-memory adapters (or Postgres).

``make_client`` builds the app with extra test-only routes or probes where a test needs them;
the blob store is the default filesystem store in the temporary data dir. Requests go through
httpx's ASGI transport on the test's own event loop (Litestar's test clients run the app on
another thread's loop, where an asyncpg pool made here cannot be used).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from litestar.types import ControllerRouterHandler

from domain.ports import HealthProbe
from entrypoints.bootstrap import Container, bootstrap
from entrypoints.http import create_app
from entrypoints.settings import Settings

ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


def settings_for(data_dir: Path, **env: str) -> Settings:
    variables = {"HOUNSFIELD_DATA_DIR": str(data_dir)}
    variables.update({f"HOUNSFIELD_{name.upper()}": value for name, value in env.items()})
    return Settings.from_env(variables, config_file=None)


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[ClientFactory]:
    async with AsyncExitStack() as stack:

        async def make(
            *,
            database: str = "memory",
            routes: Sequence[ControllerRouterHandler] = (),
            probes: Sequence[HealthProbe] = (),
            **env: str,
        ) -> httpx.AsyncClient:
            settings = settings_for(tmp_path / "data", **env)
            container: Container = await bootstrap(
                settings,
                database=database,  # type: ignore[arg-type]
                extra_probes=probes,
            )
            stack.push_async_callback(container.aclose)
            app = create_app(container, extra_api_handlers=routes)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            )
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client()
