"""The main-flow example of docs/api.md (``docs/examples/main_flow.py``, with ``requests``)
runs against a real ``hounsfield serve`` on PostgreSQL, so the guide stays true."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from adapters.dicom.writing import ct_series_from_hu
from model_export.synthetic import synthetic_ct
from tests.e2e.test_serve import Server
from tests.e2e.test_websocket_live import PASSWORD, database_url, server

__all__ = ["database_url", "server"]  # fixtures, imported to be used here

pytestmark = pytest.mark.postgres
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "main_flow.py"
SPACING = (2.5, 1.0, 1.0)


async def test_the_documented_main_flow_ends_with_a_verified_report(
    server: Server, tmp_path: Path
) -> None:
    phantom = synthetic_ct((32, 160, 160), SPACING, seed=11)
    z, y, x = phantom.origin_mm
    folder = tmp_path / "series"
    folder.mkdir()
    for k, data in enumerate(
        ct_series_from_hu(phantom.hu, spacing_mm=SPACING, origin_lps=(x, y, z))
    ):
        (folder / f"{k:03d}.dcm").write_bytes(data)
    spec = importlib.util.spec_from_file_location("main_flow", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    outcome = await asyncio.to_thread(module.main, server.base_url, PASSWORD, folder)

    assert outcome["job_status"] == "completed"
    assert outcome["report_status"] == "verified"
    assert outcome["study_status"] == "verified"
