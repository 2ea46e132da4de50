"""The benchmark's data: a 512x512 synthetic CT series written as Part 10 files.

Pixels are the same on every call (seeded per slice); UIDs are new each time, so every run
uploads instances the server has not seen.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.uid import generate_uid

from tests.fixtures.imaging import RESCALE_INTERCEPT, ct_slice_dataset, to_bytes

SIZE = 512
PIXEL_SPACING_MM = (0.7, 0.7)
SLICE_SPACING_MM = 1.0


@dataclass(frozen=True)
class WrittenSeries:
    directory: Path
    files: int
    size_bytes: int
    paths: list[Path]


@functools.cache
def _phantom() -> npt.NDArray[np.float32]:
    """A chest-like slice in HU: air, a body ellipse of soft tissue, two lungs, a spine."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy, cx = SIZE / 2, SIZE / 2
    hu = np.full((SIZE, SIZE), -1000.0, dtype=np.float32)
    hu[((x - cx) / 220) ** 2 + ((y - cy) / 160) ** 2 <= 1] = 40.0
    for side in (-1, 1):
        hu[((x - cx - side * 95) / 70) ** 2 + ((y - cy + 10) / 100) ** 2 <= 1] = -850.0
    hu[(x - cx) ** 2 + (y - cy - 110) ** 2 <= 28**2] = 700.0
    return hu


_stored_pixels: dict[int, bytes] = {}


def _slice_pixels(k: int) -> bytes:
    """Stored values of slice ``k`` (int16 little endian), made once per process."""
    pixels = _stored_pixels.get(k)
    if pixels is None:
        noise = np.random.default_rng(k).normal(0.0, 12.0, (SIZE, SIZE)).astype(np.float32)
        hu = np.clip(_phantom() + noise, -1024, 3000)
        pixels = np.rint(hu - RESCALE_INTERCEPT).astype("<i2").tobytes()
        _stored_pixels[k] = pixels
    return pixels


def write_series(directory: Path, *, slices: int) -> WrittenSeries:
    """``slices`` CT files of 512x512 int16 (about 0.5 MB each) under ``directory``.

    The files are flushed to disk before this returns, so that writing them back does not
    compete with the server's fsyncs while a benchmark is timed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    blank = np.zeros((SIZE, SIZE), dtype=np.float32)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths: list[Path] = []
    total = 0
    for k in range(slices):
        dataset = ct_slice_dataset(
            hu=blank,
            position=(-179.2, -179.2, -150.0 + k * SLICE_SPACING_MM),
            orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
            pixel_spacing=PIXEL_SPACING_MM,
            slice_thickness=SLICE_SPACING_MM,
            instance_number=k + 1,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            sop_instance_uid=generate_uid(),
        )
        dataset.PixelData = _slice_pixels(k)
        data = to_bytes(dataset)
        path = directory / f"IM{k:05d}.dcm"
        path.write_bytes(data)
        paths.append(path)
        total += len(data)
    os.sync()
    return WrittenSeries(directory=directory, files=slices, size_bytes=total, paths=paths)


def dicom_json_header() -> dict[str, object]:
    """The DICOM JSON header (no pixel data) of one slice: what ingest keeps per instance."""
    dataset = ct_slice_dataset(
        hu=np.zeros((4, 4), dtype=np.float32),
        position=(0.0, 0.0, 0.0),
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        pixel_spacing=PIXEL_SPACING_MM,
        slice_thickness=SLICE_SPACING_MM,
        instance_number=1,
        study_instance_uid=generate_uid(),
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
    )
    del dataset.PixelData
    header: dict[str, object] = json.loads(dataset.to_json())  # plain str, not pydicom UIDs
    return header
