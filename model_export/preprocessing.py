"""The intensity preprocessing the manifest declares, as the model was trained with it.

The definition lives in the domain (:mod:`domain.pipeline.intensity`), so training, evaluation
and the analysis pipeline cannot drift apart.
"""

from __future__ import annotations

from domain.pipeline.intensity import window_to_unit
from domain.ports.inference import IntensityPreprocessing

DEMO_INTENSITY = IntensityPreprocessing(window_center=40.0, window_width=400.0)
"""A soft-tissue window: -160..240 HU maps to 0..1."""

__all__ = ["DEMO_INTENSITY", "window_to_unit"]
