"""Imaging core: volumes and their geometry, slice sorting, windowing, decoded frames, ingest
fields. Pure numpy; the file formats are read by ``adapters.dicom`` and ``adapters.images``."""

from domain.imaging.frames import Frames
from domain.imaging.geometry import Volume, flip_lps_ras, orthonormal_direction
from domain.imaging.ingest import (
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    ImageFields,
    ImageFormat,
    InstanceFields,
    SeriesFields,
    StudyFields,
)
from domain.imaging.slices import (
    GeometryProblem,
    ProblemCode,
    SliceGeometry,
    SliceOrder,
    sort_slices,
)
from domain.imaging.stacking import stack_slices
from domain.imaging.windowing import (
    WINDOW_PRESETS,
    DisplayWindow,
    VoiLutFunction,
    WindowSource,
    apply_window,
    choose_window,
    min_max_window,
    to_display,
    window_preset,
)

__all__ = [
    "SECONDARY_CAPTURE_IMAGE_STORAGE",
    "WINDOW_PRESETS",
    "DisplayWindow",
    "Frames",
    "GeometryProblem",
    "ImageFields",
    "ImageFormat",
    "InstanceFields",
    "ProblemCode",
    "SeriesFields",
    "SliceGeometry",
    "SliceOrder",
    "StudyFields",
    "VoiLutFunction",
    "Volume",
    "WindowSource",
    "apply_window",
    "choose_window",
    "flip_lps_ras",
    "min_max_window",
    "orthonormal_direction",
    "sort_slices",
    "stack_slices",
    "to_display",
    "window_preset",
]
