"""InferenceEngine contract, run against the onnxruntime and the torch engines on the model that
ships (``model_export/models/demo-lesion-unet``); tampering tests work on a copy of it."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import numpy as np
import pytest
from structlog.testing import capture_logs

from adapters.inference import FilesystemModelRegistry, OnnxInferenceEngine, TorchInferenceEngine
from domain.ports.inference import InferenceEngine, ModelManifest, ModelUnavailable
from model_export.preprocessing import window_to_unit
from model_export.synthetic import PhantomSettings, synthetic_ct

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODELS = ROOT / "model_export" / "models"
DEMO = "demo-lesion-unet"
PARITY_TOLERANCE = 1e-4
ENGINES: dict[str, Callable[..., InferenceEngine]] = {
    "onnx": OnnxInferenceEngine,
    "torch": TorchInferenceEngine,
}
LOADED_EVENT = {"onnx": "onnx model loaded", "torch": "torchscript model loaded"}


def make_engine(kind: str, models_dir: Path = BUNDLED_MODELS, **options: object) -> InferenceEngine:
    return ENGINES[kind](models_dir, threads=1, **options)


@pytest.fixture(scope="module")
def demo() -> ModelManifest:
    manifest = FilesystemModelRegistry(BUNDLED_MODELS).get(DEMO)
    assert manifest is not None, "the demo model ships in model_export/models"
    return manifest


@pytest.fixture(scope="module", params=list(ENGINES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def engine(kind: str) -> InferenceEngine:
    return make_engine(kind)


@pytest.fixture(scope="module")
def lesion_patch(demo: ModelManifest) -> tuple[np.ndarray, np.ndarray]:
    """A windowed phantom of one patch holding one bright 10 mm-radius sphere, and its mask."""
    settings = PhantomSettings(
        lesion_count=(1, 1),
        lesion_radius_mm=(10.0, 10.0),
        hyperdense_contrast_hu=(70.0, 70.0),
        hypodense_contrast_hu=(50.0, 50.0),
        kinds=("sphere",),
    )
    for seed in range(20):
        phantom = synthetic_ct(
            demo.patch_size,
            demo.input_spacing_mm,
            seed=seed,
            settings=settings,
            centre_mm=(0, -20, 0),
        )
        lesion_inside = phantom.lesions and phantom.lesions[0].voxel_count > 400
        if lesion_inside:
            return window_to_unit(phantom.hu, demo.intensity)[None, None], phantom.mask
    raise AssertionError("no phantom with a whole lesion among the seeds")


@pytest.fixture(scope="module")
def batch(demo: ModelManifest, lesion_patch: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    noise = np.random.default_rng(0).random((1, 1, *demo.patch_size), dtype=np.float32)
    return np.concatenate([lesion_patch[0], noise])


def copy_of_demo(tmp_path: Path) -> Path:
    shutil.copytree(BUNDLED_MODELS / DEMO, tmp_path / DEMO)
    return tmp_path


def test_probabilities_keep_the_layout_of_the_batch(
    engine: InferenceEngine, demo: ModelManifest, batch: np.ndarray
):
    probabilities = engine.run(demo, batch)

    assert probabilities.shape == batch.shape
    assert probabilities.dtype == np.float32
    assert float(probabilities.min()) >= 0.0
    assert float(probabilities.max()) <= 1.0


def test_the_demo_model_outlines_a_lesion(
    engine: InferenceEngine, demo: ModelManifest, lesion_patch: tuple[np.ndarray, np.ndarray]
):
    image, mask = lesion_patch

    predicted = engine.run(demo, image)[0, 0] >= demo.threshold

    dice = 2 * (predicted & mask).sum() / (predicted.sum() + mask.sum())
    assert dice > 0.6


def test_onnx_and_torch_engines_agree_on_the_same_input(demo: ModelManifest, batch: np.ndarray):
    onnx = make_engine("onnx", use_cuda=False).run(demo, batch)
    torch = make_engine("torch", use_cuda=False).run(demo, batch)

    assert float(np.max(np.abs(onnx - torch))) < PARITY_TOLERANCE


def test_other_batch_sizes_and_window_sizes_run(engine: InferenceEngine, demo: ModelManifest):
    batch = np.random.default_rng(1).random((3, 1, 16, 64, 40), dtype=np.float32)

    assert engine.run(demo, batch).shape == (3, 1, 16, 64, 40)


def test_device_names_the_cpu_or_a_gpu(engine: InferenceEngine):
    assert re.fullmatch(r"cpu|cuda:\d+", engine.device)


def test_an_engine_told_not_to_use_cuda_runs_on_the_cpu(
    kind: str, demo: ModelManifest, batch: np.ndarray
):
    engine = make_engine(kind, use_cuda=False)

    assert engine.device == "cpu"
    assert engine.run(demo, batch).shape == batch.shape


def test_loading_twice_reuses_the_loaded_model(kind: str, demo: ModelManifest, batch: np.ndarray):
    engine = make_engine(kind)
    with capture_logs() as logs:
        engine.load(demo)
        engine.load(demo)
        engine.run(demo, batch)

    assert [entry["event"] for entry in logs].count(LOADED_EVENT[kind]) == 1


def test_threads_share_one_loaded_model(kind: str, demo: ModelManifest, batch: np.ndarray):
    engine = make_engine(kind)
    with capture_logs() as logs, ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: engine.run(demo, batch), range(4)))

    assert [entry["event"] for entry in logs].count(LOADED_EVENT[kind]) == 1
    for result in results[1:]:
        assert np.allclose(result, results[0], atol=1e-6)


def test_a_file_that_does_not_match_its_checksum_is_refused(
    kind: str, demo: ModelManifest, tmp_path: Path
):
    models_dir = copy_of_demo(tmp_path)
    model_file = models_dir / DEMO / demo.files["onnx" if kind == "onnx" else "torchscript"]
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    engine = make_engine(kind, models_dir)

    with pytest.raises(ModelUnavailable, match=r"does not match its SHA-256 checksum"):
        engine.load(demo)


def test_a_missing_file_is_refused(kind: str, demo: ModelManifest, tmp_path: Path):
    models_dir = copy_of_demo(tmp_path)
    for name in demo.files.values():
        (models_dir / DEMO / name).unlink()
    engine = make_engine(kind, models_dir)

    with pytest.raises(ModelUnavailable, match=r"cannot read"):
        engine.load(demo)


def test_a_model_without_a_file_for_the_engine_is_refused(kind: str, demo: ModelManifest):
    other = "torchscript" if kind == "onnx" else "onnx"
    manifest = json.loads((BUNDLED_MODELS / DEMO / "manifest.json").read_text())
    manifest["files"] = {other: demo.files[other]}
    only_other = msgspec.convert(manifest, ModelManifest)

    with pytest.raises(ModelUnavailable, match=r"has no (onnx|torchscript) file"):
        make_engine(kind).load(only_other)


def test_a_batch_that_is_not_n_1_z_y_x_is_refused(engine: InferenceEngine, demo: ModelManifest):
    with pytest.raises(ValueError, match=r"\(n, 1, z, y, x\)"):
        engine.run(demo, np.zeros((1, *demo.patch_size), dtype=np.float32))
