"""Held-out evaluation of a segmentation model on synthetic phantoms: Dice and detection recall.

The held-out phantoms come from :func:`synthetic_ct` with seeds spawned from
:data:`HELD_OUT_SEED`, with the default (not the training) phantom settings: noise 15 HU and
1-4 lesions of radius 4-15 mm per case. Training draws every patch from the stream of its own
seed, so no held-out case is ever seen in training.

Rules (stated in docs/models.md):

- probabilities come from a sliding window of the manifest's patch size, half-patch overlap,
  Gaussian-weighted blending (sigma 1/8 of the patch), as the analysis pipeline does;
- the mask is ``probability >= threshold``, split into 26-connected components, and components
  smaller than ``min_lesion_size_voxels`` are dropped;
- a lesion is *detected* when at least 10 % of its voxels are inside kept components; a kept
  component touching no lesion is a *false positive*;
- Dice is computed per case over all lesion voxels (``2|A∩B| / (|A| + |B|)``), then averaged.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from scipy import ndimage

from domain.ports.inference import IntensityPreprocessing
from model_export.preprocessing import window_to_unit
from model_export.synthetic import Phantom, SyntheticLesion, synthetic_ct

HELD_OUT_SEED = 20_261_125
HELD_OUT_CASES = 12
HELD_OUT_SHAPE = (48, 128, 128)
"""``(z, y, x)`` voxels of each held-out case: 96 x 192 x 192 mm at the demo spacing."""
DETECTION_OVERLAP = 0.10
SIZE_CLASSES = ("under 12 mm", "12 to 20 mm", "20 mm and over")

Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""``(n, 1, z, y, x)`` model input -> ``(n, 1, z, y, x)`` probabilities."""


@dataclass(kw_only=True)
class Evaluation:
    """Segmentation and detection quality over a set of cases."""

    cases: int
    lesions: int
    detected: int
    false_positives: int
    dice_per_case: list[float]
    recall_by_kind: dict[str, float] = field(default_factory=dict)
    recall_by_size: dict[str, float] = field(default_factory=dict)
    """By equivalent diameter (``2 * cbrt(a * b * c)`` of the drawn semi-axes)."""

    @property
    def recall(self) -> float:
        return self.detected / self.lesions if self.lesions else 1.0

    @property
    def dice(self) -> float:
        return float(np.mean(self.dice_per_case)) if self.dice_per_case else 0.0

    def metrics(self) -> dict[str, float]:
        """The numbers the manifest and docs/models.md carry."""
        return {
            "held_out_cases": float(self.cases),
            "held_out_lesions": float(self.lesions),
            "held_out_dice": round(self.dice, 4),
            "held_out_recall": round(self.recall, 4),
            "held_out_false_positives_per_case": round(self.false_positives / self.cases, 3),
            **{
                f"held_out_recall_{size.replace(' ', '_')}": round(recall, 4)
                for size, recall in self.recall_by_size.items()
            },
        }


def held_out_cases(
    count: int = HELD_OUT_CASES,
    *,
    shape: tuple[int, int, int] = HELD_OUT_SHAPE,
    spacing_mm: tuple[float, float, float] = (2.0, 1.5, 1.5),
) -> list[Phantom]:
    """The held-out phantoms (deterministic)."""
    seeds = np.random.SeedSequence(HELD_OUT_SEED).spawn(count)
    return [synthetic_ct(shape, spacing_mm, seed=seed) for seed in seeds]


def gaussian_importance(patch_size: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """Blending weights of one patch: a Gaussian of sigma 1/8 of each size, peak 1, min > 0."""
    axes = [np.arange(size, dtype=np.float64) - (size - 1) / 2.0 for size in patch_size]
    weights = [
        np.exp(-0.5 * (axis / (size / 8.0)) ** 2)
        for axis, size in zip(axes, patch_size, strict=True)
    ]
    importance = weights[0][:, None, None] * weights[1][None, :, None] * weights[2][None, None, :]
    return np.maximum(importance, 1e-3).astype(np.float32)


def sliding_window(
    image: npt.NDArray[np.float32],
    patch_size: tuple[int, int, int],
    predict: Predict,
    *,
    overlap: float = 0.5,
    batch_size: int = 4,
) -> npt.NDArray[np.float32]:
    """Probabilities of a whole ``(z, y, x)`` preprocessed image, patch by patch.

    The image is padded (edge values) up to the patch size where it is smaller; patches start
    every ``(1 - overlap) * patch`` voxels, the last one flush with the far edge.
    """
    padding = [(0, max(0, p - s)) for s, p in zip(image.shape, patch_size, strict=True)]
    padded = np.pad(image, padding, mode="edge")
    starts = [
        _starts(size, patch, overlap) for size, patch in zip(padded.shape, patch_size, strict=True)
    ]
    importance = gaussian_importance(patch_size)
    total = np.zeros(padded.shape, dtype=np.float32)
    weight = np.zeros(padded.shape, dtype=np.float32)
    corners = list(itertools.product(*starts))
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        windows = [
            tuple(slice(c, c + p) for c, p in zip(corner, patch_size, strict=True))
            for corner in chunk
        ]
        batch = np.stack([padded[window] for window in windows])[:, None]
        probabilities = predict(np.ascontiguousarray(batch))
        for window, probability in zip(windows, probabilities[:, 0], strict=True):
            total[window] += probability * importance
            weight[window] += importance
    result = total / weight
    return np.ascontiguousarray(result[: image.shape[0], : image.shape[1], : image.shape[2]])


def _starts(size: int, patch: int, overlap: float) -> list[int]:
    step = max(1, round(patch * (1.0 - overlap)))
    starts = list(range(0, max(size - patch, 0) + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def lesion_components(
    probabilities: npt.NDArray[np.float32], *, threshold: float, min_size_voxels: int
) -> npt.NDArray[np.int32]:
    """Label map of the 26-connected components above ``threshold`` of at least the size."""
    labels, count = ndimage.label(probabilities >= threshold, structure=np.ones((3, 3, 3)))
    if count:
        sizes = np.bincount(labels.ravel())
        small = np.flatnonzero(sizes < min_size_voxels)
        labels[np.isin(labels, small[small > 0])] = 0
    return labels.astype(np.int32, copy=False)


def evaluate(
    predict: Predict,
    cases: Sequence[Phantom],
    *,
    intensity: IntensityPreprocessing,
    patch_size: tuple[int, int, int],
    threshold: float,
    min_size_voxels: int,
) -> Evaluation:
    """Dice, detection recall and false positives of ``predict`` over ``cases``."""
    lesions = detected = false_positives = 0
    dice_per_case: list[float] = []
    found_by_kind: dict[str, list[bool]] = {}
    found_by_size: dict[str, list[bool]] = {size: [] for size in SIZE_CLASSES}
    for case in cases:
        probabilities = sliding_window(window_to_unit(case.hu, intensity), patch_size, predict)
        components = lesion_components(
            probabilities, threshold=threshold, min_size_voxels=min_size_voxels
        )
        predicted = components > 0
        denominator = int(predicted.sum()) + int(case.mask.sum())
        overlap = int((predicted & case.mask).sum())
        dice_per_case.append(2.0 * overlap / denominator if denominator else 1.0)
        for lesion in case.lesions:
            inside = case.lesion_labels == lesion.label
            found = (predicted & inside).sum() >= DETECTION_OVERLAP * inside.sum()
            found_by_kind.setdefault(lesion.kind, []).append(bool(found))
            found_by_size[size_class(lesion)].append(bool(found))
            lesions += 1
            detected += int(found)
        touching = set(np.unique(components[case.mask]).tolist()) - {0}
        false_positives += len(set(np.unique(components).tolist()) - {0} - touching)
    return Evaluation(
        cases=len(cases),
        lesions=lesions,
        detected=detected,
        false_positives=false_positives,
        dice_per_case=dice_per_case,
        recall_by_kind={
            kind: float(np.mean(found)) for kind, found in sorted(found_by_kind.items())
        },
        recall_by_size={
            size: float(np.mean(found)) for size, found in found_by_size.items() if found
        },
    )


def size_class(lesion: SyntheticLesion) -> str:
    """The :data:`SIZE_CLASSES` entry of a lesion's equivalent diameter."""
    diameter = 2.0 * float(np.cbrt(np.prod(lesion.semi_axes_mm)))
    if diameter < 12.0:
        return SIZE_CLASSES[0]
    return SIZE_CLASSES[1] if diameter < 20.0 else SIZE_CLASSES[2]


def torch_predictor(model: torch.nn.Module) -> Predict:
    """A :data:`Predict` running ``model`` (logits out) with a sigmoid, in inference mode."""
    model.eval()

    def predict(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            return torch.sigmoid(model(torch.from_numpy(batch))).numpy()

    return predict
