"""Ports for models: the registry of manifests and the engine that runs them."""

from __future__ import annotations

import builtins
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from domain.errors import Unavailable


class IntensityPreprocessing(msgspec.Struct, frozen=True, kw_only=True):
    window_center: float
    window_width: float
    normalise: str = "minmax"
    """``minmax`` maps the window to 0..1; ``zscore`` uses ``mean``/``std``."""
    mean: float | None = None
    std: float | None = None


class ModelManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a model needs to be run correctly (``manifest.json`` next to its files)."""

    id: str
    version: str
    task: str
    labels: tuple[str, ...]
    input_spacing_mm: tuple[float, float, float]
    """Spacing (z, y, x) the model was trained at."""
    patch_size: tuple[int, int, int]
    intensity: IntensityPreprocessing
    output_activation: str
    threshold: float
    min_lesion_size_voxels: int
    files: dict[str, str]
    """Format -> file name, e.g. ``{"onnx": "model.onnx", "torchscript": "model.pt"}``."""
    sha256: dict[str, str]
    """File name -> SHA-256 hex digest, checked before loading."""
    description: str = ""
    clinical_use: bool = False
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    """What the model's authors measured (e.g. ``held_out_dice``); informative, never used."""


class ModelUnavailable(Unavailable):
    """A model cannot be used: a file is missing or does not match its checksum, or no
    runtime can load it."""

    code = "model-unavailable"


class ModelProblem(msgspec.Struct, frozen=True, kw_only=True):
    """A model the registry refuses (bad manifest, missing or changed file), and why."""

    directory: str
    reason: str


class ModelRegistry(Protocol):
    def list(self) -> list[ModelManifest]:
        """The usable models, by id."""

    def get(self, model_id: str) -> ModelManifest | None:
        """The usable model ``model_id``; ``None`` when unknown or refused."""

    def problems(self) -> builtins.list[ModelProblem]:
        """The models left out, each with the reason."""


class InferenceEngine(Protocol):
    @property
    def device(self) -> str:
        """Where models run, e.g. ``cpu`` or ``cuda:0``."""

    def load(self, manifest: ModelManifest) -> None:
        """Prepare the model once per process; later calls are no-ops."""

    def run(
        self, manifest: ModelManifest, patch: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Run one batch ``(n, 1, z, y, x)`` float32 (already preprocessed per the manifest)
        and return probabilities ``(n, len(labels), z, y, x)`` float32, after the manifest's
        output activation. Raises ``ModelUnavailable`` when the model cannot be loaded."""
