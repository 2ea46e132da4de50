"""The embedding example in docs/ runs and shows what docs/embedding.md says it shows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "embedded_archive.py"


async def test_the_embedding_example_runs_with_its_own_adapters() -> None:
    spec = importlib.util.spec_from_file_location("embedded_archive", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    outcome = await module.main()

    assert outcome["stored"] == 1
    assert outcome["duplicates_on_resend"] == 1
    assert outcome["studies_visible_to_curator"] == 1
    assert outcome["other_centre_sees_it"] is False
    assert outcome["blobs_in_archive_store"] == 1
    assert {"centre.create", "study.upload"} <= set(outcome["audited_actions"])
    analytic = 4 / 3 * 3.141592653589793 * 10.0**3
    assert abs(outcome["sphere_volume_mm3"] - analytic) / analytic < 0.03
