"""Training the demo U-Net on synthetic phantoms: Dice + BCE loss, one-cycle Adam, on CPU.

Every step draws a fresh batch of phantoms (there is no fixed training set), so the model never
sees the same patch twice and the held-out set (other seeds, see ``evaluation``) is unseen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from domain.pipeline.resampling import grid_scale, to_model_grid
from domain.ports.inference import IntensityPreprocessing
from model_export.preprocessing import DEMO_INTENSITY, window_to_unit
from model_export.synthetic import PhantomSettings, training_phantom
from model_export.unet import SIZE_MULTIPLE, UNet3d, parameter_count

MODEL_SPACING_MM = (2.0, 1.5, 1.5)
"""``(z, y, x)`` spacing the demo model is trained at; volumes are resampled to it."""
PATCH_SIZE = (32, 48, 48)
"""``(z, y, x)`` voxels per patch: 64 x 72 x 72 mm at the model spacing."""
TRAINING_PHANTOMS = PhantomSettings(
    noise_hu=(8.0, 25.0), lesion_count=(1, 4), lesion_radius_mm=(3.0, 15.0), log_uniform_radius=True
)
"""Log-uniform radii from 3 mm: over 40 % of the lesions are under 12 mm in diameter (a uniform
4-15 mm draw gave under a fifth), the ones the model used to miss."""


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """What ``train`` does; the defaults are what the shipped demo model was trained with."""

    steps: int = 3600
    batch_size: int = 4
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    seed: int = 0
    patch_size: tuple[int, int, int] = PATCH_SIZE
    spacing_mm: tuple[float, float, float] = MODEL_SPACING_MM
    features: tuple[int, int, int] = (8, 24, 48)
    threads: int = 1
    """Torch CPU threads; one is fastest on a machine whose cores are shared."""
    intensity: IntensityPreprocessing = DEMO_INTENSITY
    phantoms: PhantomSettings = field(default_factory=lambda: TRAINING_PHANTOMS)
    resampled_fraction: float = 0.75
    """Share of patches drawn on a scanner grid and resampled to the model spacing."""
    source_slice_mm: tuple[float, float] = (1.25, 5.0)
    """Slice spacing range (uniform) of the scanner grids."""
    source_pixel_mm: tuple[float, float] = (0.7, 1.0)
    """In-plane pixel spacing range (uniform, square pixels) of the scanner grids."""

    def __post_init__(self) -> None:
        if any(size % SIZE_MULTIPLE for size in self.patch_size):
            raise ValueError(
                f"patch_size must be multiples of {SIZE_MULTIPLE}, got {self.patch_size!r}"
            )
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )


@dataclass(kw_only=True)
class TrainingRun:
    """A trained model and how its training went."""

    model: UNet3d
    config: TrainingConfig
    losses: list[float]
    seconds: float

    def save(self, path: Path) -> None:
        """Write a checkpoint (weights, configuration, loss curve) loadable by :func:`load`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "state_dict": self.model.state_dict(),
                "config": _plain(asdict(self.config)),
                "losses": self.losses,
                "seconds": self.seconds,
            },
            path,
        )


def load(path: Path) -> TrainingRun:
    """Read a checkpoint written by :meth:`TrainingRun.save`."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    raw = checkpoint["config"]
    config = TrainingConfig(
        **{
            **raw,
            "patch_size": tuple(raw["patch_size"]),
            "spacing_mm": tuple(raw["spacing_mm"]),
            "features": tuple(raw["features"]),
            "source_slice_mm": tuple(raw["source_slice_mm"]),
            "source_pixel_mm": tuple(raw["source_pixel_mm"]),
            "intensity": IntensityPreprocessing(**raw["intensity"]),
            "phantoms": PhantomSettings(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in raw["phantoms"].items()}
            ),
        }
    )
    model = UNet3d(features=config.features)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    return TrainingRun(
        model=model, config=config, losses=list(checkpoint["losses"]), seconds=checkpoint["seconds"]
    )


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss (``1 - Dice``) over the whole batch.

    Args:
        logits: ``(n, 1, z, y, x)`` raw outputs.
        target: same shape, 0 or 1.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * target).sum()
    dice = (2.0 * overlap + 1.0) / (probabilities.sum() + target.sum() + 1.0)
    return bce + (1.0 - dice)


def training_batch(
    rng: np.random.Generator, config: TrainingConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` phantoms: images in 0..1 and masks, each ``(n, 1, z, y, x)``.

    A share (``resampled_fraction``) of them is drawn on a scanner grid and resampled to the
    model spacing (:func:`resampled_patch`); the others are drawn at the model spacing.
    """
    images, masks = [], []
    for _ in range(config.batch_size):
        if rng.random() < config.resampled_fraction:
            hu, mask = resampled_patch(rng, config)
        else:
            phantom = training_phantom(config.patch_size, config.spacing_mm, rng, config.phantoms)
            hu, mask = phantom.hu, phantom.mask.astype(np.float32)
        images.append(window_to_unit(hu, config.intensity))
        masks.append(mask)
    return (
        torch.from_numpy(np.stack(images)[:, None]),
        torch.from_numpy(np.stack(masks)[:, None]),
    )


def resampled_patch(
    rng: np.random.Generator, config: TrainingConfig
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A patch as inference sees a scanner series: a phantom drawn at a random source spacing
    (``source_slice_mm``, ``source_pixel_mm``) and resampled to the model spacing by the
    pipeline's own resampling, so training learns the partial volume and the blur of thick
    slices. The mask is the lesion mask resampled the same way (a soft target at the edges).

    Returns:
        HU and mask, float32 ``patch_size`` each.
    """
    pixel = float(rng.uniform(*config.source_pixel_mm))
    source = (float(rng.uniform(*config.source_slice_mm)), pixel, pixel)
    scale = grid_scale(source, config.spacing_mm)
    # the smallest source grid whose model grid (every whole step inside it) covers the patch
    sizes = [
        math.ceil((size - 1) * s - 1e-6) + 1
        for size, s in zip(config.patch_size, scale, strict=True)
    ]
    phantom = training_phantom((sizes[0], sizes[1], sizes[2]), source, rng, config.phantoms)
    crop = tuple(slice(0, size) for size in config.patch_size)
    hu = to_model_grid(phantom.hu, scale)[crop]
    mask = to_model_grid(phantom.mask.astype(np.float32), scale)[crop]
    return np.ascontiguousarray(hu), np.ascontiguousarray(mask)


def train(
    config: TrainingConfig, *, progress: Callable[[int, float], None] | None = None
) -> TrainingRun:
    """Fit a fresh :class:`UNet3d` on synthetic phantoms.

    Args:
        config: steps, batch, optimiser, patch and phantom settings.
        progress: called after every step with the step number (1-based) and its loss.
    """
    torch.manual_seed(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = UNet3d(features=config.features)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.1
    )
    losses: list[float] = []
    started = time.perf_counter()
    try:
        model.train()
        for step in range(1, config.steps + 1):
            images, masks = training_batch(rng, config)
            optimiser.zero_grad(set_to_none=True)
            loss = dice_bce_loss(model(images), masks)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, losses[-1])
    finally:
        torch.set_num_threads(previous_threads)
    model.eval()
    return TrainingRun(
        model=model, config=config, losses=losses, seconds=time.perf_counter() - started
    )


def describe(run: TrainingRun) -> str:
    """One line: parameters, steps, time and the loss at the start and the end."""
    head = float(np.mean(run.losses[:20]))
    tail = float(np.mean(run.losses[-20:]))
    return (
        f"{parameter_count(run.model):,} parameters, {len(run.losses)} steps of "
        f"{run.config.batch_size} x {run.config.patch_size} in {run.seconds:.0f} s; "
        f"loss {head:.3f} -> {tail:.3f}"
    )


def _plain(value: Any) -> Any:
    """Structs to dicts, tuples to lists (what ``torch.load(weights_only=True)`` accepts)."""
    if isinstance(value, msgspec.Struct):
        return _plain(msgspec.structs.asdict(value))
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value
