"""Decoded pixel frames of one stored image, ready to window and render."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.errors import InvalidInput
from domain.imaging.windowing import DisplayWindow, VoiLutFunction, choose_window, to_display
from domain.studies import Modality, Window

MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})


@dataclass(frozen=True, eq=False, slots=True)
class Frames:
    """The frames of one instance (a DICOM SOP instance, a NIfTI volume, a PNG or JPEG).

    Attributes:
        pixels: grayscale frames as float32 ``(frames, rows, columns)`` in modality output units
            (Hounsfield units for CT: stored values after the Modality LUT or
            ``RescaleSlope``/``RescaleIntercept``), or color frames as uint8
            ``(frames, rows, columns, 3)`` RGB.
        photometric_interpretation: DICOM (0028,0004) of ``pixels`` as decoded:
            ``MONOCHROME1``, ``MONOCHROME2`` or ``RGB`` (YBR and palette color are converted
            to RGB when decoding).
        modality: picks the preset window when the header has none.
        window: the header's first ``WindowCenter``/``WindowWidth``, if any.
        voi_lut_function: the header's ``VOILUTFunction``.
    """

    pixels: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
    photometric_interpretation: str = "MONOCHROME2"
    modality: Modality = Modality.OTHER
    window: Window | None = None
    voi_lut_function: VoiLutFunction = VoiLutFunction.LINEAR

    def __post_init__(self) -> None:
        shape = np.shape(self.pixels)
        color = len(shape) == 4 and shape[-1] == 3
        if not (len(shape) == 3 or color) or 0 in shape:
            raise ValueError(
                f"pixels must be (frames, rows, columns) or (frames, rows, columns, 3), got {shape}"
            )
        if color and self.photometric_interpretation != "RGB":
            raise ValueError(f"color pixels must be RGB, got {self.photometric_interpretation!r}")
        if not color and self.photometric_interpretation not in MONOCHROME:
            raise ValueError(
                "grayscale pixels must be MONOCHROME1 or MONOCHROME2, "
                f"got {self.photometric_interpretation!r}"
            )

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 4

    @property
    def number_of_frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def rows(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def columns(self) -> int:
        return int(self.pixels.shape[2])

    def frame(self, index: int = 0) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
        """Frame ``index`` (0-based): ``(rows, columns)`` or ``(rows, columns, 3)``.

        Raises:
            InvalidInput: when ``index`` is outside ``0 .. number_of_frames - 1``.
        """
        if not 0 <= index < self.number_of_frames:
            raise InvalidInput(
                f"frame {index} does not exist; this image has frames 0 to "
                f"{self.number_of_frames - 1}"
            )
        selected: npt.NDArray[np.float32] | npt.NDArray[np.uint8] = self.pixels[index]
        return selected

    def display_window(self, index: int = 0, *, requested: Window | None = None) -> DisplayWindow:
        """The window frame ``index`` is shown with (see :func:`choose_window`)."""
        return choose_window(
            pixels=self.frame(index),
            modality=self.modality,
            header=self.window,
            header_function=self.voi_lut_function,
            requested=requested,
        )

    def display(
        self, index: int = 0, *, requested: Window | None = None
    ) -> tuple[npt.NDArray[np.uint8], DisplayWindow]:
        """Frame ``index`` as 8-bit ``(rows, columns)`` gray or ``(rows, columns, 3)`` RGB.

        Returns:
            The picture and the window it was made with.
        """
        window = self.display_window(index, requested=requested)
        picture = to_display(
            self.frame(index), window, photometric_interpretation=self.photometric_interpretation
        )
        return picture, window
