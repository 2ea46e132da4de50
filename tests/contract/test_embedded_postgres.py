"""The embedded default: a PostgreSQL cluster in the data directory, started and stopped
on request, reused across restarts, and leaving no server process behind."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import psutil
import pytest

from adapters.postgres.embedded import EmbeddedPostgres, EmbeddedPostgresError

pytestmark = pytest.mark.postgres


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A private temporary directory. Not pytest's: pytest makes its shared base directory
    owner-only again at every session start, which would lock out the server's user (when
    tests run as root) under any other session running at the same time."""
    path = Path(tempfile.mkdtemp(prefix="hounsfield-embedded-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[list[EmbeddedPostgres]]:
    """Servers a test starts; stopped afterwards even when the test fails."""
    started: list[EmbeddedPostgres] = []
    yield started
    for server in started:
        server.stop()


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def live(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


async def execute(dsn: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(sql)
    finally:
        await connection.close()


async def test_data_written_before_a_stop_is_there_after_the_next_start(
    tmp_path: Path, servers: list[EmbeddedPostgres]
):
    first = EmbeddedPostgres(tmp_path / "data")
    servers.append(first)
    dsn = first.start()
    await execute(dsn, "CREATE TABLE notes (body text)")
    await execute(dsn, "INSERT INTO notes VALUES ('kept')")
    first.stop()

    again = EmbeddedPostgres(tmp_path / "data")
    servers.append(again)
    dsn_again = again.start()

    assert [r["body"] for r in await execute(dsn_again, "SELECT body FROM notes")] == ["kept"]
    assert dsn_again == dsn


async def test_stop_leaves_no_process_of_the_cluster_behind(
    tmp_path: Path, servers: list[EmbeddedPostgres]
):
    server = EmbeddedPostgres(tmp_path / "data")
    servers.append(server)
    await execute(server.start(), "SELECT 1")
    pid = postmaster_pid(server)
    family = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    assert live(family) == family

    server.stop()

    assert live(family) == []
    assert not (server.pgdata / "postmaster.pid").exists()
    server.stop()  # stopping a stopped server is harmless


async def test_a_second_start_reuses_the_running_server(
    tmp_path: Path, servers: list[EmbeddedPostgres]
):
    server = EmbeddedPostgres(tmp_path / "data", database="clinic")
    servers.append(server)
    dsn = server.start()
    pid = postmaster_pid(server)

    same = EmbeddedPostgres(tmp_path / "data", database="clinic").start()

    assert same == dsn
    assert postmaster_pid(server) == pid
    rows = await execute(dsn, "SELECT current_database() AS name")
    assert rows[0]["name"] == "clinic"


def test_the_server_listens_on_a_unix_socket_only(tmp_path: Path, servers: list[EmbeddedPostgres]):
    server = EmbeddedPostgres(tmp_path / "data")
    servers.append(server)
    parts = urlsplit(server.start())

    socket_dir = Path(parse_qs(parts.query)["host"][0])
    assert socket_dir.is_dir()
    assert parts.hostname is None
    pid = postmaster_pid(server)
    assert not [c for c in psutil.Process(pid).net_connections(kind="inet") if c.laddr]


def test_a_data_directory_holding_something_else_is_refused_clearly(tmp_path: Path):
    pgdata = tmp_path / "data" / "postgres"
    pgdata.mkdir(parents=True)
    (pgdata / "holiday.jpg").write_bytes(b"not a database")

    with pytest.raises(EmbeddedPostgresError, match="not a PostgreSQL cluster"):
        EmbeddedPostgres(tmp_path / "data").start()
    assert (pgdata / "holiday.jpg").exists()


async def test_a_server_reused_from_a_live_owner_is_left_running_by_the_guest(
    tmp_path: Path, servers: list[EmbeddedPostgres]
):
    owner = EmbeddedPostgres(tmp_path / "data")
    servers.append(owner)
    dsn = owner.start()
    guest = EmbeddedPostgres(tmp_path / "data")  # e.g. `hounsfield migrate` beside `serve`
    guest.start()

    guest.stop()

    assert (await execute(dsn, "SELECT 1 AS one"))[0]["one"] == 1
    pid = postmaster_pid(owner)
    owner.stop()
    assert live([pid]) == []


async def test_a_server_left_by_a_process_that_died_is_adopted_and_stopped(
    tmp_path: Path, servers: list[EmbeddedPostgres]
):
    crashed = EmbeddedPostgres(tmp_path / "data")
    servers.append(crashed)
    crashed.start()
    pid = postmaster_pid(crashed)
    (tmp_path / "data" / ".postgres.owner").write_text(f"{dead_pid()}\n")  # its owner died

    heir = EmbeddedPostgres(tmp_path / "data")
    servers.append(heir)
    heir.start()
    heir.stop()

    assert live([pid]) == []
