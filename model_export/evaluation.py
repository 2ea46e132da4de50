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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from domain.pipeline import gaussian_importance, label_map, window_to_unit
from domain.pipeline import sliding_window as pipeline_sliding_window
from domain.ports.inference import IntensityPreprocessing
from model_export.synthetic import Phantom, SyntheticLesion, synthetic_ct

HELD_OUT_SEED = 20_261_125
HELD_OUT_CASES = 12
HELD_OUT_SHAPE = (48, 128, 128)
"""``(z, y, x)`` voxels of each held-out case: 96 x 192 x 192 mm at the demo spacing."""
DETECTION_OVERLAP = 0.10
SIZE_CLASSES = ("under 12 mm", "12 to 20 mm", "20 mm and over")

Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""``(n, 1, z, y, x)`` model input -> ``(n, 1, z, y, x)`` probabilities."""

__all__ = ["gaussian_importance", "lesion_components", "sliding_window"]


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


def sliding_window(
    image: npt.NDArray[np.float32],
    patch_size: tuple[int, int, int],
    predict: Predict,
    *,
    overlap: float = 0.5,
    batch_size: int = 4,
) -> npt.NDArray[np.float32]:
    """Probabilities of a whole ``(z, y, x)`` preprocessed image for a one-channel model: the
    analysis pipeline's :func:`domain.pipeline.sliding_window`, first channel."""
    blended = pipeline_sliding_window(
        image, patch_size, predict, overlap=overlap, batch_size=batch_size
    )
    return np.ascontiguousarray(blended[0])


def lesion_components(
    probabilities: npt.NDArray[np.float32], *, threshold: float, min_size_voxels: int
) -> npt.NDArray[np.uint16]:
    """Label map of the 26-connected components above ``threshold`` of at least the size: the
    analysis pipeline's :func:`domain.pipeline.label_map` of one channel."""
    labels, _ = label_map(
        probabilities[np.newaxis], threshold=threshold, min_size_voxels=min_size_voxels
    )
    return labels


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
