"""Start-up failures an operator can fix end in one line on stderr; ``migrate`` and ``--help``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_serve import clean_environment, hounsfield_command, processes_mentioning

COMMAND_TIMEOUT_S = 120


def run(args: list[str], cwd: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*hounsfield_command(), *args],
        env=clean_environment(**variables),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("variable", "value", "mentioned"),
    [
        ("HOUNSFIELD_DATABASE_URL", "postgresql://127.0.0.1:1/hounsfield", "127.0.0.1:1"),
        ("HOUNSFIELD_DATABASE_URL", "mysql://db.example/hounsfield", "HOUNSFIELD_DATABASE_URL"),
        ("HOUNSFIELD_STORAGE_URL", "s3://scans?colour=blue", "storage URL"),
        ("HOUNSFIELD_STORAGE_URL", "gs://scans", "HOUNSFIELD_STORAGE_URL"),
        ("HOUNSFIELD_PORT", "http", "HOUNSFIELD_PORT"),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_and_no_traceback(
    tmp_path: Path, variable: str, value: str, mentioned: str
) -> None:
    data_dir = tmp_path / "data"

    result = run(["serve"], tmp_path, HOUNSFIELD_DATA_DIR=str(data_dir), **{variable: value})

    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert mentioned in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (data_dir / "postgres").exists()  # nothing was started


def test_migrate_applies_the_migrations_once_and_leaves_no_server_running(
    tmp_path: Path, embedded_data_dir: Path
) -> None:
    data_dir = embedded_data_dir

    first = run(["migrate"], tmp_path, HOUNSFIELD_DATA_DIR=str(data_dir))
    second = run(["migrate"], tmp_path, HOUNSFIELD_DATA_DIR=str(data_dir))

    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial.sql" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout
    assert "applied" not in second.stdout.replace("up to date", "")
    assert processes_mentioning(str(data_dir / "postgres")) == []


def test_migrate_against_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = run(
        ["migrate"],
        tmp_path,
        HOUNSFIELD_DATABASE_URL="postgresql://app:hunter2@127.0.0.1:1/hounsfield",
    )

    assert result.returncode != 0
    assert len(stderr_lines(result)) == 1, result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_python_dash_m_entrypoints_shows_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "entrypoints", "--help"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert "migrate" in result.stdout


def test_a_busy_port_stops_serve_before_anything_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run(["serve", "--port", str(port)], tmp_path, HOUNSFIELD_DATA_DIR=str(data_dir))

    assert result.returncode != 0
    expected = f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert stderr_lines(result) == [expected]
    assert not data_dir.exists()
