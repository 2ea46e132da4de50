"""``hounsfield models list`` shows the usable models and says which ones it refused, and why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from entrypoints.bootstrap import BUNDLED_MODELS_DIR
from entrypoints.cli import cli


def models_dir_with_a_broken_model(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(BUNDLED_MODELS_DIR / "demo-lesion-unet", models / "demo-lesion-unet")
    (models / "broken").mkdir()
    (models / "broken" / "manifest.json").write_text("{not json")
    return models


def test_models_list_names_the_demo_model_as_not_for_clinical_use(tmp_path: Path):
    models = models_dir_with_a_broken_model(tmp_path)
    env = {"HOUNSFIELD_MODELS_DIR": str(models), "HOUNSFIELD_DATA_DIR": str(tmp_path / "data")}

    result = CliRunner().invoke(cli, ["models", "list"], env=env)

    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("demo-lesion-unet"))
    assert "0.1.0" in line and "NOT FOR CLINICAL USE" in line and "held-out Dice" in line
    assert "refused" in result.stderr and "broken" in result.stderr


def test_models_list_as_json_carries_the_manifest_and_the_statement(tmp_path: Path):
    models = models_dir_with_a_broken_model(tmp_path)
    env = {"HOUNSFIELD_MODELS_DIR": str(models), "HOUNSFIELD_DATA_DIR": str(tmp_path / "data")}

    result = CliRunner().invoke(cli, ["models", "list", "--json"], env=env)

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (model,) = document["models"]
    assert model["manifest"]["id"] == "demo-lesion-unet"
    assert "not for clinical use" in model["clinical_use_statement"].lower()
    assert [Path(p["directory"]).name for p in document["problems"]] == ["broken"]
