"""``hounsfield ingest DIR`` as a real process.

Against ``hounsfield serve``: a synthetic CT series and a junk file are stored and refused with
the server's reason; a second run finds every instance already there. Against a small stub
server: waiting out 429, retrying 5xx, narrowing a refused batch down to the file it names, and
a server that cannot be reached, each ending in a summary or one line and the right status.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import Server, clean_environment, free_port, hounsfield_command
from tests.fixtures.imaging import synthetic_ct_series

COMMAND_TIMEOUT_S = 180
PASSWORD = "correct horse battery staple 42"
JUNK_NAME = "notes/readme.txt"


def studies_route_exists() -> bool:
    from entrypoints.http.api import api_v1_router

    return any(
        route.path == "/api/v1/studies" and "POST" in route.methods
        for route in api_v1_router().routes
    )


def ingest(
    directory: Path, *args: str, stdin: str | None = None, **variables: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*hounsfield_command(), "ingest", str(directory), "--no-progress", *args],
        env=clean_environment(**variables),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def summary_count(result: subprocess.CompletedProcess[str], label: str) -> int:
    match = re.search(rf"^{label}\s+(\d+)$", result.stdout, re.MULTILINE)
    assert match, f"no {label!r} line in the summary:\n{result.stdout}\n{result.stderr}"
    return int(match.group(1))


def rejection_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]


def write_series_and_junk(folder: Path, *, slices: int) -> list[str]:
    """A CT series in shuffled sub-folders plus one text file; returns the SOP UIDs."""
    series = synthetic_ct_series(slices=slices, rows=32, columns=32)
    for k, data in enumerate(series.files):
        path = folder / "ct" / f"part{k % 2}" / f"IM{k:04d}"  # no extension, as PACS exports
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    junk = folder / JUNK_NAME
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_text("not an image: the technician's notes\n")
    return series.sop_instance_uids


# --------------------------------------------------------------------------- the real server


@dataclass
class Served:
    server: Server
    api_key: str
    technician: str


@pytest.fixture
def served(tmp_path: Path, postgres_dsn: str) -> Iterator[Served]:
    """``hounsfield serve`` on the test PostgreSQL; an admin, a centre with a technician and
    an upload key made through the API."""
    data_dir = tmp_path / "data"
    variables = {"HOUNSFIELD_DATA_DIR": str(data_dir), "HOUNSFIELD_DATABASE_URL": postgres_dsn}
    admin = f"admin-{free_port()}"
    created = subprocess.run(
        [
            *hounsfield_command(),
            *("users", "create-admin", "--password-stdin"),
            *("--username", admin, "--email", f"{admin}@example.org"),
        ],
        env=clean_environment(**variables),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*hounsfield_command(), "serve", "--port", str(port)],
            env=clean_environment(**variables),
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = Server(process=process, port=port, log=log)
    try:
        server.wait_healthy()
        yield Served(server=server, **_centre_with_uploaders(server.base_url, admin))
        server.terminate()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _centre_with_uploaders(base_url: str, admin: str) -> dict[str, str]:
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=30.0) as api:
        token = api.post("/auth/token", data={"username": admin, "password": PASSWORD})
        assert token.status_code == 200, token.text
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        centre = api.post("/centres", json={"name": f"Ingest centre {admin}"})
        assert centre.status_code == 201, centre.text
        centre_id = centre.json()["id"]
        key = api.post(
            "/api-keys",
            json={
                "name": "ingest",
                "scopes": ["studies:read", "studies:write"],
                "centre_id": centre_id,
            },
        )
        assert key.status_code == 201, key.text
        technician = f"tech-{admin}"
        user = api.post(
            "/users",
            json={
                "username": technician,
                "email": f"{technician}@example.org",
                "full_name": "Ingest Technician",
                "role": "technician",
                "password": PASSWORD,
                "centre_id": centre_id,
            },
        )
        assert user.status_code == 201, user.text
    return {"api_key": key.json()["key"], "technician": technician}


@pytest.mark.skipif(
    not studies_route_exists(),
    reason="POST /api/v1/studies is not built yet (issue 4, the studies routes)",
)
def test_a_folder_is_stored_with_the_junk_refused_and_a_second_run_finds_duplicates(
    served: Served, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    uids = write_series_and_junk(folder, slices=12)
    url = served.server.base_url

    first = ingest(folder, "--url", url, "--batch-size", "5", HOUNSFIELD_API_KEY=served.api_key)
    again = ingest(
        folder,
        "--url",
        url,
        "--username",
        served.technician,
        "--password-stdin",
        "--concurrency",
        "2",
        stdin=PASSWORD + "\n",
    )
    listed = httpx.get(f"{url}/api/v1/studies", headers={"X-API-Key": served.api_key}, timeout=30.0)

    assert first.returncode == 1, first.stdout + first.stderr  # one file was refused
    assert summary_count(first, "stored") == len(uids)
    assert summary_count(first, "duplicates") == 0
    assert summary_count(first, "rejected") == 1
    [refusal] = rejection_lines(first)
    assert refusal.startswith(f"{JUNK_NAME}: ")
    assert re.search(r"\S.*\(4\d\d\)$", refusal.removeprefix(f"{JUNK_NAME}: ")), refusal
    assert summary_count(first, "studies") == 1
    assert "Traceback" not in first.stderr + again.stderr
    assert again.returncode == 1, again.stdout + again.stderr
    assert summary_count(again, "stored") == 0
    assert summary_count(again, "duplicates") == len(uids)
    assert summary_count(again, "rejected") == 1
    assert listed.status_code == 200, listed.text
    body = listed.json()
    studies = body if isinstance(body, list) else body.get("items", body.get("studies"))
    assert len(studies) == 1


# --------------------------------------------------------------------------- a stub server


@dataclass
class Stub:
    """Answers ``POST /api/v1/studies`` from a script of (status, headers, body) replies;
    once the script is used up, 201 counting the files, refusing any file in ``refuse``."""

    script: list[tuple[int, dict[str, str], dict[str, object]]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    posts: list[list[str]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)

    def reply(self, names: list[str]) -> tuple[int, dict[str, str], dict[str, object]]:
        self.posts.append(names)
        if self.script:
            return self.script.pop(0)
        refused = [name for name in names if name in self.refuse]
        if refused:
            detail = f"file '{refused[0]}' was refused: not a DICOM, NIfTI, PNG or JPEG image"
            return 422, {}, {"title": "Invalid input", "status": 422, "detail": detail}
        return 201, {}, {"stored": len(names), "duplicates": 0, "studies": [{"id": "s-1"}]}


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: dict[str, object]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            kind = "application/json" if status < 400 else "application/problem+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._send(200, {}, {"status": "ok"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            names = [n.decode() for n in re.findall(rb'filename="([^"]+)"', body)]
            stub.keys.append(self.headers.get("X-API-Key"))
            self._send(*stub.reply(names))

    return Handler


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_ingest_waits_out_429_and_retries_server_errors_until_stored(
    stub: tuple[Stub, str], tmp_path: Path
) -> None:
    state, url = stub
    folder = tmp_path / "export"
    uids = write_series_and_junk(folder, slices=4)
    (folder / JUNK_NAME).unlink()
    slow_down = {"title": "Too many requests", "status": 429, "detail": "wait a second"}
    state.script = [
        (429, {"Retry-After": "1"}, slow_down),
        (503, {}, {"title": "Service unavailable", "status": 503, "detail": "restarting"}),
    ]

    result = ingest(folder, "--url", url, "--api-key", "hf_stub")

    assert result.returncode == 0, result.stdout + result.stderr
    assert summary_count(result, "stored") == len(uids)
    assert len(state.posts) == 3  # the same batch: refused, failed, then stored
    assert state.posts[0] == state.posts[2]
    assert set(state.keys) == {"hf_stub"}


def test_a_refused_file_is_reported_by_name_and_the_rest_of_its_batch_is_stored(
    stub: tuple[Stub, str], tmp_path: Path
) -> None:
    state, url = stub
    folder = tmp_path / "export"
    write_series_and_junk(folder, slices=6)
    state.refuse = {"ct/part1/IM0003"}

    result = ingest(folder, "--url", url, "--api-key", "hf_stub", "--batch-size", "6")

    assert result.returncode == 1
    assert summary_count(result, "stored") == 5 + 1  # the stub takes the text file too
    assert summary_count(result, "rejected") == 1
    assert rejection_lines(result) == [
        "ct/part1/IM0003: not a DICOM, NIfTI, PNG or JPEG image (422)"
    ]
    assert sum("ct/part1/IM0003" in names for names in state.posts) == 1  # never resent


def test_a_server_that_cannot_be_reached_is_one_line_and_status_1(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_series_and_junk(folder, slices=2)

    result = ingest(folder, "--url", f"http://127.0.0.1:{free_port()}", "--api-key", "hf_x")

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1
    assert "cannot reach http://127.0.0.1" in errors[0]
    assert "Traceback" not in result.stderr


def test_refused_credentials_stop_the_ingest_with_one_line(
    stub: tuple[Stub, str], tmp_path: Path
) -> None:
    state, url = stub
    folder = tmp_path / "export"
    write_series_and_junk(folder, slices=3)
    refusal = {"title": "Authentication required", "status": 401, "detail": "unknown API key"}
    state.script = [(401, {}, refusal)] * 5

    result = ingest(folder, "--url", url, "--api-key", "hf_revoked", "--concurrency", "1")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the server refused the credentials: unknown API key"
    )
    assert len(state.posts) == 1  # no further batch was tried
    assert "Traceback" not in result.stderr
