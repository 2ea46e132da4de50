"""The analysis pipeline: resampling, intensity preprocessing, sliding-window inference,
components and per-lesion measurement. Pure numpy/scipy; models run behind the
``InferenceEngine`` port."""

from domain.pipeline.analysis import PipelineOptions, PipelineOutput, Progress, analyse_volume
from domain.pipeline.intensity import window_to_unit
from domain.pipeline.lesions import FoundLesion, label_map, measure_lesions
from domain.pipeline.quality import ImageQuality, assess_quality
from domain.pipeline.windows import gaussian_importance, sliding_window

__all__ = [
    "FoundLesion",
    "ImageQuality",
    "PipelineOptions",
    "PipelineOutput",
    "Progress",
    "analyse_volume",
    "assess_quality",
    "gaussian_importance",
    "label_map",
    "measure_lesions",
    "sliding_window",
    "window_to_unit",
]
