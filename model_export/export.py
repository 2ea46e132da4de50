"""Export a trained model to ONNX and TorchScript, check that both agree, write the manifest.

Both files output *logits* ``(n, 1, z, y, x)`` from a ``(n, 1, z, y, x)`` float32 input named
``image`` (batch and spatial sizes free; spatial sizes multiples of 8). The manifest's
``output_activation`` (``sigmoid``) is applied by the inference adapters, so the files stay
plain networks that other runtimes can load.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt
import torch

from domain.ports.inference import ModelManifest
from model_export.evaluation import Evaluation, evaluate, held_out_cases, torch_predictor
from model_export.preprocessing import window_to_unit
from model_export.training import TrainingRun
from model_export.unet import parameter_count

MODEL_ID = "demo-lesion-unet"
MODEL_VERSION = "0.1.0"
THRESHOLD = 0.5
MIN_LESION_SIZE_VOXELS = 20
"""90 mm3 at the demo spacing: a sphere of 5.6 mm diameter."""
PARITY_TOLERANCE = 1e-4
"""Largest allowed difference between ONNX and TorchScript probabilities on the same input."""
ONNX_OPSET = 17
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
DESCRIPTION = (
    "Demonstration 3D U-Net that segments lesions in CT, trained on synthetic phantoms "
    "(python -m model_export): it has never seen a patient image. Not for clinical use."
)


class ParityError(RuntimeError):
    """The ONNX and TorchScript exports disagree by more than the tolerance."""


@dataclass(frozen=True, kw_only=True)
class ExportReport:
    manifest: ModelManifest
    directory: Path
    evaluation: Evaluation | None
    parity_max_abs_diff: float
    parity_max_abs_logit_diff: float


def export_onnx(model: torch.nn.Module, path: Path, *, patch_size: tuple[int, int, int]) -> None:
    """Write ``model`` (eval mode) as ONNX with free batch and spatial axes."""
    model.eval()
    sample = torch.zeros((1, 1, *patch_size), dtype=torch.float32)
    axes = {0: "batch", 2: "z", 3: "y", 4: "x"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )


def export_torchscript(model: torch.nn.Module, path: Path) -> None:
    """Write ``model`` (eval mode) as a scripted TorchScript archive."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is in maintenance
        torch.jit.save(torch.jit.script(model), str(path))


def run_onnx(path: Path, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Logits of the ONNX file on the CPU provider."""
    import onnxruntime  # here: the CLI's other commands need no runtime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"image": batch})
    return np.asarray(logits, dtype=np.float32)


def run_torchscript(path: Path, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Logits of the TorchScript file on the CPU."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return module(torch.from_numpy(batch)).numpy()  # type: ignore[no-any-return]


def parity(
    onnx_path: Path, torchscript_path: Path, batch: npt.NDArray[np.float32]
) -> tuple[float, float]:
    """Largest absolute difference of (probabilities, logits) between the two files."""
    onnx_logits = run_onnx(onnx_path, batch)
    torch_logits = run_torchscript(torchscript_path, batch)
    if onnx_logits.shape != torch_logits.shape:
        raise ParityError(f"output shapes differ: {onnx_logits.shape} vs {torch_logits.shape}")
    logit_diff = float(np.max(np.abs(onnx_logits - torch_logits)))
    probability_diff = float(np.max(np.abs(_sigmoid(onnx_logits) - _sigmoid(torch_logits))))
    return probability_diff, logit_diff


def parity_batch(
    patch_size: tuple[int, int, int], run: TrainingRun, *, seed: int = 7
) -> npt.NDArray[np.float32]:
    """Two realistic patches (a held-out phantom, windowed) and one of uniform noise."""
    case = held_out_cases(1)[0]
    image = window_to_unit(case.hu, run.config.intensity)
    z, y, x = patch_size
    real = [image[:z, :y, :x], image[-z:, -y:, -x:]]
    noise = np.random.default_rng(seed).random(patch_size, dtype=np.float32)
    return np.stack([*real, noise])[:, None].astype(np.float32)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(manifest: ModelManifest, directory: Path) -> Path:
    """Write ``manifest.json`` (indented, fields in declaration order)."""
    path = directory / MANIFEST_FILE
    path.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n")
    return path


def export_model(
    run: TrainingRun, directory: Path, *, evaluation_cases: int | None = None
) -> ExportReport:
    """Export ``run``'s model into ``directory``: both files, parity check, held-out
    evaluation (``evaluation_cases`` phantoms; ``0`` skips it), then the manifest (last, so an
    interrupted export leaves checksums that do not match and the registry refuses it).

    Raises:
        ParityError: the two files disagree by more than :data:`PARITY_TOLERANCE`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = run.config
    export_onnx(run.model, directory / ONNX_FILE, patch_size=config.patch_size)
    export_torchscript(run.model, directory / TORCHSCRIPT_FILE)
    probability_diff, logit_diff = parity(
        directory / ONNX_FILE, directory / TORCHSCRIPT_FILE, parity_batch(config.patch_size, run)
    )
    if not probability_diff < PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX and TorchScript probabilities differ by up to {probability_diff:.2e} "
            f"(tolerance {PARITY_TOLERANCE:.0e})"
        )
    metrics: dict[str, float] = {}
    evaluation = None
    if evaluation_cases != 0:
        cases = held_out_cases() if evaluation_cases is None else held_out_cases(evaluation_cases)
        evaluation = evaluate(
            torch_predictor(run.model),
            cases,
            intensity=config.intensity,
            patch_size=config.patch_size,
            threshold=THRESHOLD,
            min_size_voxels=MIN_LESION_SIZE_VOXELS,
        )
        metrics.update(evaluation.metrics())
    metrics.update(
        {
            "parity_max_abs_diff": float(f"{probability_diff:.3g}"),
            "parity_tolerance": PARITY_TOLERANCE,
            "parameters": float(parameter_count(run.model)),
            "training_steps": float(len(run.losses)),
            "training_seconds": round(run.seconds, 1),
        }
    )
    files = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}
    manifest = ModelManifest(
        id=MODEL_ID,
        version=MODEL_VERSION,
        task="segmentation",
        labels=("lesion",),
        input_spacing_mm=config.spacing_mm,
        patch_size=config.patch_size,
        intensity=config.intensity,
        output_activation="sigmoid",
        threshold=THRESHOLD,
        min_lesion_size_voxels=MIN_LESION_SIZE_VOXELS,
        files=files,
        sha256={name: sha256_of(directory / name) for name in files.values()},
        description=DESCRIPTION,
        clinical_use=False,
        metrics=metrics,
    )
    write_manifest(manifest, directory)
    return ExportReport(
        manifest=manifest,
        directory=directory,
        evaluation=evaluation,
        parity_max_abs_diff=probability_diff,
        parity_max_abs_logit_diff=logit_diff,
    )


def _sigmoid(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-values.astype(np.float64)))
