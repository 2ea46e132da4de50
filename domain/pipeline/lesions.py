"""From probabilities on the source grid to lesions: threshold, connected components, and per
lesion its boxes, confidence and IBSI morphology.

Arrays are ``(z, y, x)`` on the volume's grid (:class:`~domain.imaging.Volume` conventions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage  # type: ignore[import-untyped]

from domain.analysis import PatientBox, VoxelBox
from domain.imaging.geometry import Volume
from domain.metrics import TumorMetrics, compute_tumor_metrics

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
"""26-connectivity: voxels touching by a face, an edge or a corner are one lesion."""


@dataclass(frozen=True, slots=True)
class FoundLesion:
    """One lesion of a label map.

    Attributes:
        number: its value in the label map (1..n, by label, then position in the volume).
        label: the model's label (``manifest.labels[channel]``).
        confidence: mean probability of its voxels, 0..1.
        voxel_box: half-open ``(z, y, x)`` index box of its voxels.
        patient_box: axis-aligned LPS box (mm) around the box's voxel *edges* (each voxel
            counted with its whole extent), so a one-voxel lesion has the voxel's size.
        metrics: IBSI morphology with the volume's real spacing, direction and origin.
        region: where it lies in the scanned volume (:func:`region_of`).
    """

    number: int
    label: str
    confidence: float
    voxel_box: VoxelBox
    patient_box: PatientBox
    metrics: TumorMetrics
    region: str


_SIDES = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))
"""Words for the negative and positive side of the LPS axes (+x is the patient's left)."""


def region_of(volume: Volume, point_mm: Sequence[float]) -> str:
    """Where an LPS point lies in the volume, in patient terms: for each patient axis the side
    of the volume's centre it is on (``left``/``right``, ``anterior``/``posterior``,
    ``superior``/``inferior``) when it is more than a third of the way to that side's edge;
    ``central`` when it is near the centre on every axis."""
    z, y, x = volume.shape
    corners = volume.index_to_patient(
        np.array([(i, j, k) for i in (0, x - 1) for j in (0, y - 1) for k in (0, z - 1)])
    )
    centre = corners.mean(axis=0)
    half = (corners.max(axis=0) - corners.min(axis=0)) / 2.0
    words = [
        sides[1] if offset > 0 else sides[0]
        for offset, extent, sides in zip(
            np.asarray(point_mm, dtype=np.float64) - centre, half, _SIDES, strict=True
        )
        if extent > 0 and abs(offset) > extent / 3.0
    ]
    return " ".join(words) or "central"


def label_map(
    probabilities: npt.NDArray[np.float32], *, threshold: float, min_size_voxels: int
) -> tuple[npt.NDArray[np.uint16], list[int]]:
    """Connected components of the voxels whose most probable channel reaches ``threshold``.

    Args:
        probabilities: ``(c, z, y, x)`` per-channel probabilities.
        threshold: a voxel is foreground when its largest channel probability is >= this.
        min_size_voxels: components with fewer voxels are dropped.

    Returns:
        The ``(z, y, x)`` uint16 label map numbered 1..n without gaps (channel by channel,
        then in scan order of each component's first voxel) and the channel of each number
        (``channels[number - 1]``).
    """
    if probabilities.ndim != 4:
        raise ValueError(f"probabilities must be (c, z, y, x), got {probabilities.shape}")
    best = probabilities.argmax(axis=0) if probabilities.shape[0] > 1 else None
    peak = probabilities.max(axis=0) if best is not None else probabilities[0]
    labels = np.zeros(peak.shape, dtype=np.uint16)
    channels: list[int] = []
    for channel in range(probabilities.shape[0]):
        foreground = peak >= threshold
        if best is not None:
            foreground &= best == channel
        components, count = ndimage.label(foreground, structure=CONNECTIVITY)
        if not count:
            continue
        sizes = np.bincount(components.ravel())
        keep = np.flatnonzero(sizes >= max(1, min_size_voxels))
        keep = keep[keep > 0]
        if len(channels) + keep.size > np.iinfo(np.uint16).max:
            raise ValueError("more lesions than a uint16 label map can number")
        renumber = np.zeros(count + 1, dtype=np.uint16)
        renumber[keep] = np.arange(len(channels) + 1, len(channels) + keep.size + 1)
        found = renumber[components]
        labels[found > 0] = found[found > 0]
        channels.extend([channel] * int(keep.size))
    return labels, channels


def patient_box(volume: Volume, box: VoxelBox) -> PatientBox:
    """The LPS bounding box (mm) of the voxels in ``box``, edges included."""
    (z0, y0, x0), (z1, y1, x1) = box.start, box.stop
    corners = np.array(
        [
            (i, j, k)
            for i in (x0 - 0.5, x1 - 0.5)
            for j in (y0 - 0.5, y1 - 0.5)
            for k in (z0 - 0.5, z1 - 0.5)
        ],
        dtype=np.float64,
    )
    points = volume.index_to_patient(corners)
    low, high = points.min(axis=0), points.max(axis=0)
    return PatientBox(
        minimum_mm=(float(low[0]), float(low[1]), float(low[2])),
        maximum_mm=(float(high[0]), float(high[1]), float(high[2])),
    )


def measure_lesions(
    volume: Volume,
    labels: npt.NDArray[np.uint16],
    channels: Sequence[int],
    probabilities: npt.NDArray[np.float32],
    names: Sequence[str],
    *,
    intensity_offset: float = 1024.0,
    progress: Callable[[float], None] | None = None,
) -> list[FoundLesion]:
    """Boxes, confidence and metrics of every lesion of ``labels``.

    Args:
        volume: the image the label map is on (its geometry is used for mm).
        labels: ``(z, y, x)`` label map from :func:`label_map`.
        channels: the channel of each lesion number, from :func:`label_map`.
        probabilities: ``(c, z, y, x)`` probabilities on the same grid.
        names: the model's labels, one per channel.
        intensity_offset: added to the image values for the intensity-weighted centre of mass
            (IBSI Morph.com needs non-negative weights: +1024 puts CT air at 0); values still
            negative count as 0.
        progress: called with the fraction of lesions measured.
    """
    lesions: list[FoundLesion] = []
    boxes = ndimage.find_objects(labels)
    for index, slices in enumerate(boxes):
        if slices is None:
            continue
        number = index + 1
        mask = labels[slices] == number
        start = tuple(int(s.start) for s in slices)
        stop = tuple(int(s.stop) for s in slices)
        box = VoxelBox(start=(start[0], start[1], start[2]), stop=(stop[0], stop[1], stop[2]))
        channel = channels[index]
        confidence = float(probabilities[channel][slices][mask].mean())
        weights = np.maximum(volume.voxels[slices] + np.float32(intensity_offset), 0.0)
        origin = volume.index_to_patient([start[2], start[1], start[0]])
        metrics = compute_tumor_metrics(
            mask,
            volume.spacing,
            origin_mm=tuple(float(v) for v in origin),
            direction=volume.direction,
            intensities=weights,
        )
        lesions.append(
            FoundLesion(
                number=number,
                label=names[channel],
                confidence=min(1.0, max(0.0, confidence)),
                voxel_box=box,
                patient_box=patient_box(volume, box),
                metrics=metrics,
                region=region_of(volume, metrics.centre_of_mass_mm),
            )
        )
        if progress is not None:
            progress(number / len(boxes))
    return lesions
