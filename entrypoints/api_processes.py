"""``hounsfield serve --workers N``: N API processes behind one listening socket.

One Python process serves one core at most (the GIL), so a machine with more cores ingests
faster with more processes (docs/benchmarks.md). The parent owns what there is one of: the
listening socket, the embedded PostgreSQL (when no database URL is set), the migrations and
the first admin. It then runs uvicorn's process supervisor, which starts N children; each
loads :func:`entrypoints.http.app.create_app_from_env` (its own container, pool, in-process
job threads and recovery sweep) and accepts connections from the shared socket, which the
kernel spreads over them. A child that dies is replaced. SIGTERM or Ctrl-C stops the
children gracefully, then the database.

What is per process, and why it still holds with several: rate-limit counters, job claims
and events live in PostgreSQL (LISTEN/NOTIFY), so every process sees the same ones; a
presigned upload URL is single-use because it is claimed in the database; ``/metrics``
counts the requests of the process that answers it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import uvicorn
from uvicorn.supervisors import Multiprocess

from adapters.postgres.embedded import EmbeddedPostgres
from entrypoints.bootstrap import bootstrap, ensure_private_dir
from entrypoints.settings import CONFIG_VARIABLE, ENV_PREFIX, Settings

APP_FACTORY = "entrypoints.http.app:create_app_from_env"
SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,  # our structlog set-up stays in charge
    "access_log": False,  # entrypoints.http.observability logs each request, without tokens
    "server_header": False,
    "lifespan": "on",
    "timeout_graceful_shutdown": 30,
}
"""uvicorn options of every API process, one or several."""
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """SIGTERM or SIGINT arrived before the processes were started."""


def serve_processes(
    settings: Settings,
    listener: socket.socket,
    *,
    workers: int,
    config_file: Path | None,
    announce: Callable[[str | None], None],
) -> None:
    """Serve on ``listener`` with ``workers`` processes until SIGTERM or Ctrl-C.

    ``announce`` gets the generated admin password (or None) once the database is ready
    and before any process starts: the banner and the password are printed once, by the
    parent.
    """
    with ExitStack() as resources, _stopping_raises():
        shared = settings
        if settings.database_url is None:
            ensure_private_dir(settings.data_dir)
            server = EmbeddedPostgres(settings.data_dir)
            # registered before start: a start that fails half-way still gets stopped
            resources.callback(server.stop)
            shared = msgspec.structs.replace(settings, database_url=server.start())
        password = asyncio.run(_prepare(shared, create_admin=settings.database_url is None))
        announce(password)
        _export(shared, config_file)
        config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **SERVER_OPTIONS)
        # the supervisor installs its own signal handlers and returns once it stopped the
        # children; the embedded database stops after that, when ``resources`` closes
        Multiprocess(config, sockets=[listener]).run()


async def _prepare(settings: Settings, *, create_admin: bool) -> str | None:
    """Apply migrations (once, before N processes would race for the advisory lock) and
    create the first admin; the generated password, or None."""
    container = await bootstrap(settings)
    try:
        if create_admin and settings.initial_admin:
            return await container.services.users.ensure_initial_admin()
        return None
    finally:
        await container.aclose()


def _export(settings: Settings, config_file: Path | None) -> None:
    """What the children must see that the environment does not already say: they read
    their settings from it (spawned processes inherit it)."""
    if settings.database_url is not None:
        os.environ[ENV_PREFIX + "DATABASE_URL"] = settings.database_url
    if config_file is not None:
        os.environ[CONFIG_VARIABLE] = str(config_file.resolve())


@contextmanager
def _stopping_raises() -> Iterator[None]:
    """Until the supervisor takes the signals over, SIGTERM/SIGINT raise ``Stopped``, so
    that a database started so far is stopped on the way out."""

    def raise_stopped(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, raise_stopped) for sig in _STOP_SIGNALS}
    try:
        yield
    except Stopped:
        return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
