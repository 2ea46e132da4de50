"""The output activation a manifest names, applied to a model's raw outputs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

from domain.ports.inference import ModelManifest, ModelUnavailable

ACTIVATIONS = ("sigmoid", "softmax", "none")
"""``sigmoid``: one independent probability per label channel. ``softmax``: over the channel
axis; a leading background channel (``len(labels) + 1`` channels) is dropped. ``none``: the
model already outputs probabilities."""


def activate(outputs: npt.NDArray[np.float32], manifest: ModelManifest) -> npt.NDArray[np.float32]:
    """Probabilities ``(n, len(labels), z, y, x)`` float32 from outputs ``(n, c, z, y, x)``.

    Raises:
        ModelUnavailable: an unknown activation, or a channel count that does not fit the
            manifest's labels.
    """
    labels = len(manifest.labels)
    channels = outputs.shape[1] if outputs.ndim == 5 else -1
    activation = manifest.output_activation
    if activation not in ACTIVATIONS:
        raise ModelUnavailable(
            f"model {manifest.id}: unknown output_activation {activation!r} "
            f"(expected one of {', '.join(ACTIVATIONS)})"
        )
    allowed = (labels, labels + 1) if activation == "softmax" else (labels,)
    if channels not in allowed:
        raise ModelUnavailable(
            f"model {manifest.id} returned outputs of shape {outputs.shape}: expected "
            f"(n, {labels}, z, y, x) for labels {list(manifest.labels)}"
        )
    if activation == "sigmoid":
        probabilities = special.expit(outputs)
    elif activation == "softmax":
        probabilities = special.softmax(outputs, axis=1)[:, channels - labels :]
    else:
        probabilities = outputs
    return np.ascontiguousarray(probabilities, dtype=np.float32)


def check_batch(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The batch as contiguous float32 ``(n, 1, z, y, x)``; ``ValueError`` for another layout."""
    array = np.asarray(batch)
    if array.ndim != 5 or array.shape[1] != 1 or 0 in array.shape:
        raise ValueError(f"batch must be a non-empty (n, 1, z, y, x) array, got {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)
