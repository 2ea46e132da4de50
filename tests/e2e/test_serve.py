"""``hounsfield serve`` as a real process on the embedded default.

It must come up on an empty data dir, report its components, stop on SIGTERM without leaving
a PostgreSQL process behind, and find its data again on the next start.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")


def hounsfield_command() -> list[str]:
    script = Path(sys.executable).with_name("hounsfield")
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints"]


def clean_environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUNSFIELD_")}
    env.update(variables)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def embedded_dsn(pgdata: Path) -> str:
    """The DSN of the running embedded server, from its ``postmaster.pid``."""
    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return f"postgresql://postgres@/hounsfield?host={socket_dir}&port={port}"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        pytest.fail(f"serve did not answer /health within {START_TIMEOUT_S:g} s:\n{self.output()}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"serve ignored SIGTERM for {STOP_TIMEOUT_S:g} s:\n{self.output()}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Server]]:
    """Starts ``hounsfield serve`` on a data dir; kills whatever is left at the end."""
    started: list[Server] = []

    def start(data_dir: Path) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*hounsfield_command(), "serve", "--port", str(port)],
                env=clean_environment(HOUNSFIELD_DATA_DIR=str(data_dir)),
                cwd=tmp_path,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Server(process=process, port=port, log=log)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def sign_in_as_first_admin(server: Server) -> httpx.Response:
    """Sign in with the admin password that the first start printed on the terminal."""
    match = re.search(r"password\s+(\S+)", server.output())
    assert match, f"no generated admin password was printed:\n{server.output()}"
    return httpx.post(
        f"{server.base_url}/api/v1/auth/token",
        data={"username": "admin", "password": match.group(1)},
        timeout=10.0,
    )


async def write_marker(dsn: str, value: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE e2e_marker (value text NOT NULL)")
        await connection.execute("INSERT INTO e2e_marker VALUES ($1)", value)
    finally:
        await connection.close()


async def read_marker(dsn: str) -> str | None:
    connection = await asyncpg.connect(dsn)
    try:
        value: str | None = await connection.fetchval("SELECT value FROM e2e_marker")
        return value
    finally:
        await connection.close()


def test_serve_runs_on_the_embedded_default_stops_cleanly_and_keeps_its_data(
    serve: Callable[[Path], Server], embedded_data_dir: Path
) -> None:
    data_dir = embedded_data_dir
    pgdata = data_dir / "postgres"

    first = serve(data_dir)
    first.wait_healthy()
    detailed = httpx.get(f"{first.base_url}/health/detailed", timeout=10.0)
    signed_in = sign_in_as_first_admin(first)
    postmaster_pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    asyncio.run(write_marker(embedded_dsn(pgdata), "written by the first run"))
    secret = (data_dir / "secret_key").read_bytes()
    running_postgres = processes_mentioning(str(pgdata))
    exit_code = first.terminate()

    assert detailed.status_code == 200, detailed.text
    components = detailed.json()["components"]
    assert {"database", "storage", "queue", "models"} <= set(components)
    assert components["database"]["status"] == "ok"
    assert components["database"]["detail"].startswith("PostgreSQL")
    assert components["storage"]["status"] == "ok"
    assert components["queue"]["status"] == "ok"
    assert components["models"]["status"] in {"ok", "degraded"}
    assert postmaster_pid in running_postgres  # the check below can see a server
    assert exit_code == 0, first.output()
    assert "first start" in first.output()
    assert str(data_dir) in first.output()
    assert not pid_alive(postmaster_pid)
    assert processes_mentioning(str(pgdata)) == []
    assert (data_dir / "secret_key").stat().st_mode & 0o777 == 0o600

    second = serve(data_dir)
    second.wait_healthy()
    marker = asyncio.run(read_marker(embedded_dsn(pgdata)))
    second_exit_code = second.terminate()

    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["role"] == "admin"
    assert "password" not in second.output()  # the generated password is shown once only
    assert marker == "written by the first run"
    assert (data_dir / "secret_key").read_bytes() == secret
    assert "first start" not in second.output()
    assert "migration applied" not in second.output()
    assert second_exit_code == 0, second.output()
    assert processes_mentioning(str(pgdata)) == []
