"""``hounsfield demo`` against a real ``hounsfield serve`` on PostgreSQL: the newcomer's path
from a synthetic study to lesions, metrics and working URLs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import Server, clean_environment, hounsfield_command
from tests.e2e.test_websocket_live import PASSWORD, database_url, server

__all__ = ["database_url", "server"]  # fixtures, imported to be used here

pytestmark = pytest.mark.postgres


def run_demo(server: Server, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*hounsfield_command(), "demo", "--url", server.base_url, *extra],
        input=f"{PASSWORD}\n",
        env=clean_environment(COLUMNS="200"),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_demo_uploads_analyses_and_prints_lesions_metrics_and_urls(
    server: Server, tmp_path: Path
) -> None:
    result = run_demo(server, tmp_path, "--username", "admin", "--password-stdin")

    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert "Lesions placed in the phantom" in output
    assert "Lesions found by the demo model" in output
    assert re.search(r"\b[1-9]\d* lesions? found", output), output
    urls = dict(re.findall(r"^\s+(result|segmentation \(DICOM SEG\))\s+(\S+)$", output, re.M))
    token = httpx.post(
        f"{server.base_url}/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    stored = httpx.get(urls["result"], headers=headers)
    assert stored.status_code == 200
    assert stored.json()["detections"], "the printed result URL holds the lesions"
    seg = httpx.get(urls["segmentation (DICOM SEG)"], headers=headers)
    assert seg.status_code == 200
    assert seg.headers["content-type"].startswith("application/dicom")


def test_the_demo_with_wrong_credentials_is_one_line_and_no_traceback(
    server: Server, tmp_path: Path
) -> None:
    result = run_demo(server, tmp_path, "--api-key", "hf_not_a_real_key")

    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert "sign-in refused" in result.stderr
