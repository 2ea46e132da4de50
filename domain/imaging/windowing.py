"""Window presets, the DICOM VOI LUT functions, and the default window of an image.

The window math is DICOM PS3.3 C.11.2.1.2 (Window Center and Window Width):

- ``LINEAR`` (C.11.2.1.2.1), for ``width >= 1``::

      if   x <= c - 0.5 - (w - 1) / 2:  y = y_min
      elif x >  c - 0.5 + (w - 1) / 2:  y = y_max
      else: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min

- ``LINEAR_EXACT`` (C.11.2.1.3.2), for ``width > 0``::

      if   x <= c - w / 2:  y = y_min
      elif x >  c + w / 2:  y = y_max
      else: y = ((x - c) / w + 0.5) * (y_max - y_min) + y_min

- ``SIGMOID`` (C.11.2.1.3.1): ``y = (y_max - y_min) / (1 + exp(-4 (x - c) / w)) + y_min``.

Here the output range is 8 bits, ``y_min = 0`` and ``y_max = 255``, rounded half to even.
The input ``x`` is the modality output value: Hounsfield units for CT after
``RescaleSlope``/``RescaleIntercept``.

Presets (centre/width in HU) are the usual CT display windows as listed in Radiopaedia's
"Windowing (CT)" article: soft tissue 40/400, lung -600/1500, bone 400/1800 (the wide bone
window; 300/1500 is a common narrower variant), brain 40/80.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import msgspec
import numpy as np
import numpy.typing as npt

from domain.errors import InvalidInput
from domain.studies import Modality, Window

OUTPUT_MIN = 0
OUTPUT_MAX = 255

WINDOW_PRESETS: Mapping[str, Window] = MappingProxyType(
    {
        "soft_tissue": Window(center=40.0, width=400.0),
        "lung": Window(center=-600.0, width=1500.0),
        "bone": Window(center=400.0, width=1800.0),
        "brain": Window(center=40.0, width=80.0),
    }
)
"""CT display windows in HU, by preset name."""

MODALITY_DEFAULT_PRESET: Mapping[Modality, str] = MappingProxyType({Modality.CT: "soft_tissue"})
"""The preset shown when the header has no window; other modalities fall back to min/max."""


class VoiLutFunction(enum.StrEnum):
    """DICOM ``VOILUTFunction`` (0028,1056)."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"

    @classmethod
    def parse(cls, text: str | None) -> VoiLutFunction:
        """The function named by a header value; absent or unknown values mean ``LINEAR``."""
        if not text:
            return cls.LINEAR
        try:
            return cls(text.strip().upper())
        except ValueError:
            return cls.LINEAR


class WindowSource(enum.StrEnum):
    REQUEST = "request"
    HEADER = "header"
    PRESET = "preset"
    MIN_MAX = "min_max"


class DisplayWindow(msgspec.Struct, frozen=True, kw_only=True):
    """The window an image is shown with, and where it came from."""

    center: float
    width: float
    function: VoiLutFunction = VoiLutFunction.LINEAR
    source: WindowSource
    preset: str | None = None

    @property
    def window(self) -> Window:
        return Window(center=self.center, width=self.width)


def window_preset(name: str) -> Window:
    """The preset called ``name`` (``soft_tissue``, ``soft-tissue`` and ``Soft Tissue`` alike).

    Raises:
        InvalidInput: naming the unknown preset and the known ones.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return WINDOW_PRESETS[key]
    except KeyError:
        raise InvalidInput(
            f"unknown window preset {name!r}; expected one of {', '.join(WINDOW_PRESETS)}"
        ) from None


def apply_window(
    pixels: npt.ArrayLike,
    center: float,
    width: float,
    *,
    function: VoiLutFunction = VoiLutFunction.LINEAR,
) -> npt.NDArray[np.uint8]:
    """Map modality values to 8-bit display values with a DICOM VOI LUT function.

    Args:
        pixels: array of any shape in modality output units (HU for CT).
        center: ``WindowCenter`` in the same units.
        width: ``WindowWidth``; ``LINEAR`` needs ``width >= 1`` and narrower windows are computed
            with ``LINEAR_EXACT`` (which the standard defines for any ``width > 0``).
        function: the ``VOILUTFunction``.

    Returns:
        uint8 array of the same shape, 0 at or below the window's lower edge and 255 above the
        upper edge.

    Raises:
        InvalidInput: when ``width <= 0`` or ``center``/``width`` is not finite.
    """
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise InvalidInput(
            f"window width must be > 0 and finite, got center={center} width={width}"
        )
    x = np.asarray(pixels, dtype=np.float64)
    span = float(OUTPUT_MAX - OUTPUT_MIN)
    if function is VoiLutFunction.SIGMOID:
        with np.errstate(over="ignore"):
            y = span / (1.0 + np.exp(-4.0 * (x - center) / width)) + OUTPUT_MIN
    elif function is VoiLutFunction.LINEAR and width >= 1:
        lower = center - 0.5 - (width - 1) / 2
        upper = center - 0.5 + (width - 1) / 2
        if width == 1:
            y = np.where(x > upper, float(OUTPUT_MAX), float(OUTPUT_MIN))
        else:
            y = ((x - (center - 0.5)) / (width - 1) + 0.5) * span + OUTPUT_MIN
            y = np.where(x <= lower, OUTPUT_MIN, np.where(x > upper, OUTPUT_MAX, y))
    else:
        lower = center - width / 2
        upper = center + width / 2
        y = ((x - center) / width + 0.5) * span + OUTPUT_MIN
        y = np.where(x <= lower, OUTPUT_MIN, np.where(x > upper, OUTPUT_MAX, y))
    y = np.where(np.isnan(x), OUTPUT_MIN, y)
    return np.clip(np.rint(y), OUTPUT_MIN, OUTPUT_MAX).astype(np.uint8)


def min_max_window(pixels: npt.ArrayLike) -> DisplayWindow:
    """The ``LINEAR_EXACT`` window that maps the smallest finite value to 0 and the largest to 255.

    A constant (or empty, or all-NaN) image gets a 1-wide window around its value.
    """
    values = np.asarray(pixels, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return DisplayWindow(
            center=0.0, width=1.0, function=VoiLutFunction.LINEAR_EXACT, source=WindowSource.MIN_MAX
        )
    low, high = float(finite.min()), float(finite.max())
    width = high - low if high > low else 1.0
    center = (low + high) / 2 if high > low else low + 0.5
    return DisplayWindow(
        center=center,
        width=width,
        function=VoiLutFunction.LINEAR_EXACT,
        source=WindowSource.MIN_MAX,
    )


def choose_window(
    *,
    pixels: npt.ArrayLike,
    modality: Modality,
    header: Window | None = None,
    header_function: VoiLutFunction = VoiLutFunction.LINEAR,
    requested: Window | None = None,
) -> DisplayWindow:
    """The window to show an image with, in order of precedence.

    1. ``requested``: what the viewer asked for (e.g. ``?window=&level=``).
    2. ``header``: the first ``WindowCenter``/``WindowWidth`` of the instance, with its
       ``VOILUTFunction``.
    3. The modality's preset (soft tissue for CT).
    4. The min/max of ``pixels``.
    """
    if requested is not None:
        return DisplayWindow(
            center=requested.center, width=requested.width, source=WindowSource.REQUEST
        )
    if header is not None:
        return DisplayWindow(
            center=header.center,
            width=header.width,
            function=header_function,
            source=WindowSource.HEADER,
        )
    preset = MODALITY_DEFAULT_PRESET.get(modality)
    if preset is not None:
        window = WINDOW_PRESETS[preset]
        return DisplayWindow(
            center=window.center, width=window.width, source=WindowSource.PRESET, preset=preset
        )
    return min_max_window(pixels)


def to_display(
    frame: npt.ArrayLike,
    window: DisplayWindow,
    *,
    photometric_interpretation: str = "MONOCHROME2",
) -> npt.NDArray[np.uint8]:
    """An 8-bit picture of one frame: windowed grayscale, or color passed through.

    Args:
        frame: ``(rows, columns)`` modality values, or ``(rows, columns, 3)`` uint8 RGB.
        window: the display window (ignored for color).
        photometric_interpretation: DICOM (0028,0004) of ``frame``; ``MONOCHROME1`` (minimum
            shown white) is inverted after windowing.

    Returns:
        uint8 array ``(rows, columns)`` or ``(rows, columns, 3)``.
    """
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[-1] == 3:
        return np.asarray(array, dtype=np.uint8)
    if array.ndim != 2:
        raise InvalidInput(
            f"a frame must be (rows, columns) or (rows, columns, 3), got {array.shape}"
        )
    shown = apply_window(array, window.center, window.width, function=window.function)
    if photometric_interpretation.strip().upper() == "MONOCHROME1":
        shown = np.asarray(OUTPUT_MAX - shown, dtype=np.uint8)
    return shown
