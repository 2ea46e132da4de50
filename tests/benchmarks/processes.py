"""Starting and stopping the servers a benchmark talks to."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


class BenchmarkError(Exception):
    """A benchmark could not run; the message says why, in one line."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def hounsfield_command() -> list[str]:
    script = Path(sys.executable).with_name("hounsfield")
    return [str(script)] if script.exists() else [sys.executable, "-m", "entrypoints"]


def clean_environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUNSFIELD_")}
    env.update(variables)
    return env


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, url: str, *, timeout_s: float = 120.0) -> None:
        """Until ``url`` answers 200; raises ``BenchmarkError`` with the log's tail."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchmarkError(
                    f"{self.name} exited with {self.process.returncode}: {self.tail()}"
                )
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise BenchmarkError(f"{self.name} did not answer {url} in {timeout_s:g} s: {self.tail()}")

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.output().strip().splitlines()[-lines:])

    def stop(self, *, timeout_s: float = 60.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start(name: str, command: list[str], *, log: Path, cwd: Path, env: dict[str, str]) -> Process:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Process(name=name, process=process, log=log)


ADMIN_PASSWORD = "benchmark password, not secret"
"""The password of the admin :func:`serve_with_admin` creates (user name ``admin``)."""
_ADMIN_OPTIONS = ("--email", "bench@example.org", "--password-stdin")


def serve_with_admin(workdir: Path, env: dict[str, str]) -> tuple[Process, str]:
    """``hounsfield serve`` on the database ``env`` names, with an ``admin`` created first
    (``ADMIN_PASSWORD``); returns the running server and its base URL once it is healthy.
    The caller stops it."""
    subprocess.run(
        [*hounsfield_command(), "users", "create-admin", *_ADMIN_OPTIONS],
        input=f"{ADMIN_PASSWORD}\n".encode(),
        env=env,
        cwd=workdir,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    server = start(
        "hounsfield serve",
        [*hounsfield_command(), "serve", "--port", str(port)],
        log=workdir / "serve.log",
        cwd=workdir,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        server.wait_for(f"{base_url}/health")
    except BaseException:
        server.stop()
        raise
    return server, base_url
