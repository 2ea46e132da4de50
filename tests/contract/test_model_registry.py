"""ModelRegistry contract, run against the filesystem registry: the bundled models directory,
and directories of good and broken models built from a copy of the demo model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.inference import FilesystemModelRegistry
from domain.ports.inference import ModelRegistry

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODELS = ROOT / "model_export" / "models"
DEMO = "demo-lesion-unet"
REGISTRIES: dict[str, Callable[[Path], ModelRegistry]] = {"filesystem": FilesystemModelRegistry}


@pytest.fixture(params=list(REGISTRIES))
def make_registry(request: pytest.FixtureRequest) -> Callable[[Path], ModelRegistry]:
    return REGISTRIES[request.param]


def add_model(models_dir: Path, name: str, edit: Callable[[dict], object] | None = None) -> Path:
    """A copy of the demo model as ``models_dir/name``, its manifest changed by ``edit``."""
    directory = models_dir / name
    shutil.copytree(BUNDLED_MODELS / DEMO, directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["id"] = name
    if edit is not None:
        edit(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_the_bundled_demo_model_is_listed(make_registry):
    registry = make_registry(BUNDLED_MODELS)

    (demo,) = [manifest for manifest in registry.list() if manifest.id == DEMO]
    assert registry.get(DEMO) == demo
    assert demo.task == "segmentation"
    assert demo.labels == ("lesion",)
    assert demo.clinical_use is False
    assert "synthetic" in demo.description
    assert set(demo.files) == {"onnx", "torchscript"}
    assert 0.0 < demo.metrics["held_out_dice"] <= 1.0


def test_an_unknown_model_is_none(make_registry):
    registry = make_registry(BUNDLED_MODELS)

    assert registry.get("no-such-model") is None
    assert registry.get("../models") is None
    assert registry.get("") is None


def test_a_missing_models_directory_lists_nothing(make_registry, tmp_path: Path):
    assert make_registry(tmp_path / "absent").list() == []


def test_a_model_dropped_in_later_is_listed(make_registry, tmp_path: Path):
    registry = make_registry(tmp_path)
    assert registry.list() == []

    add_model(tmp_path, "liver-lesions")

    assert [manifest.id for manifest in registry.list()] == ["liver-lesions"]
    assert registry.get("liver-lesions") is not None


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-json": (
        lambda d: (d / "manifest.json").write_text("{not json"),
        "invalid manifest.json",
    ),
    "missing-field": (
        lambda d: _edit(d, lambda m: m.pop("patch_size")),
        "invalid manifest.json: Object missing required field `patch_size`",
    ),
    "wrong-type": (
        lambda d: _edit(d, lambda m: m.update(threshold="high")),
        "invalid manifest.json: Expected `float`, got `str` - at `$.threshold`",
    ),
    "other-id": (
        lambda d: _edit(d, lambda m: m.update(id="somebody-else")),
        "manifest id 'somebody-else' differs from its directory name 'other-id'",
    ),
    "tampered": (
        lambda d: (d / "model.onnx").write_bytes(b"not the model"),
        "model.onnx does not match its sha256",
    ),
    "missing-file": (lambda d: (d / "model.pt").unlink(), "model.pt is missing"),
    "no-manifest": (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    "unknown-activation": (
        lambda d: _edit(d, lambda m: m.update(output_activation="relu")),
        "unknown output_activation 'relu'",
    ),
    "escaping-file": (
        lambda d: _edit(d, lambda m: m["files"].update(onnx="../demo/model.onnx")),
        "is not a plain file name",
    ),
}


def _edit(directory: Path, change: Callable[[dict], object]) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    change(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_model_is_left_out_with_a_reason(make_registry, tmp_path: Path, name: str):
    add_model(tmp_path, "good")
    damage, reason = BROKEN[name]
    damage(add_model(tmp_path, name))
    registry = make_registry(tmp_path)

    listed = [manifest.id for manifest in registry.list()]

    assert listed == ["good"]
    assert registry.get(name) is None
    problems = {problem.directory: problem.reason for problem in registry.problems()}
    assert list(problems) == [name]
    assert reason in problems[name]
