"""Synthetic CT phantoms: a body in Hounsfield units with lesions of known shape and size.

A phantom is built in a world frame in millimetres, ``(z, y, x)`` like the voxel axes, with the
body's long axis along ``z`` and its centre line at ``y = x = 0``; ``+y`` is posterior and ``+x``
the patient's left, as in DICOM's LPS. The voxel grid is placed in that frame by its
``centre_mm``, so the same seed draws the same anatomy whatever part of it the grid covers.

What is drawn (all values in HU, before noise):

- air (-1000) outside an elliptic-cylinder body (semi-axes 70-110 mm front-back, 85-130 mm
  side-side);
- a subcutaneous fat layer (-110 to -80) 6-18 mm thick;
- soft tissue (30-50) inside it, one organ ellipsoid (liver-like, 12-30 above the tissue) and one
  to four fat islands (compact dark blobs that are not lesions);
- a spine (cortical ring 600-900, cancellous core 180-300) and vessels: an aorta beside it and one
  to three small tilted vessels (35-55 without contrast, 180-300 with), tubular distractors that
  are not lesions;
- lesions (the only foreground of the mask): spheres, ellipsoids and lobulated blobs of
  equivalent radius 4-15 mm, rotated at random, 25-80 HU brighter or 25-55 HU darker than the
  tissue around them (hypodense lesions stay well above fat), never overlapping each other, the
  spine or the aorta.

The clean image is blurred by a Gaussian of 0.5 voxel (the scanner's point spread: partial volume
at every edge), then correlated Gaussian noise of the requested standard deviation is added.
The mask marks the voxels whose centre lies inside a lesion.

Everything is drawn from ``numpy.random.default_rng(seed)``: a seed gives the same phantom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from domain.imaging.geometry import Volume

LesionKind = Literal["sphere", "ellipsoid", "lobulated"]
LESION_KINDS: tuple[LesionKind, ...] = ("sphere", "ellipsoid", "lobulated")
Vector3 = tuple[float, float, float]
Grid = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
AIR_HU = -1000.0


@dataclass(frozen=True, kw_only=True)
class PhantomSettings:
    """The distributions a phantom is drawn from (uniform within each range)."""

    noise_hu: tuple[float, float] = (15.0, 15.0)
    """Standard deviation of the image noise, HU."""
    lesion_count: tuple[int, int] = (1, 4)
    """Inclusive range of lesions attempted; fewer when they do not fit in the grid."""
    lesion_radius_mm: tuple[float, float] = (4.0, 15.0)
    """Equivalent radius (cube root of the product of the semi-axes), mm."""
    log_uniform_radius: bool = False
    """Draw the radius uniformly in log space (more small lesions) instead of uniformly."""
    hyperdense_contrast_hu: tuple[float, float] = (25.0, 80.0)
    """How much brighter than the tissue around it a bright lesion is (half the lesions)."""
    hypodense_contrast_hu: tuple[float, float] = (25.0, 55.0)
    """How much darker than the tissue around it a dark lesion is (the other half)."""
    kinds: tuple[LesionKind, ...] = LESION_KINDS


@dataclass(frozen=True, kw_only=True)
class SyntheticLesion:
    """One lesion of a phantom, in the phantom's world frame (mm, ``(z, y, x)``)."""

    label: int
    """The value of this lesion in :attr:`Phantom.lesion_labels` (1, 2, ...)."""
    kind: LesionKind
    centre_mm: Vector3
    semi_axes_mm: Vector3
    """Semi-axes before rotation; for a lobulated blob, of the ellipsoid it modulates."""
    contrast_hu: float
    voxel_count: int

    @property
    def nominal_volume_mm3(self) -> float | None:
        """Analytic volume for spheres and ellipsoids (``4/3 pi a b c``); ``None`` for blobs."""
        if self.kind == "lobulated":
            return None
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c


@dataclass(frozen=True, eq=False, kw_only=True)
class Phantom:
    """A synthetic CT volume with its ground truth.

    Attributes:
        hu: float32 ``(z, y, x)`` Hounsfield units.
        mask: bool ``(z, y, x)``: voxel centres inside any lesion.
        lesion_labels: int16 ``(z, y, x)``: 0 outside lesions, ``lesion.label`` inside.
        lesions: the lesions that were placed.
        spacing_mm: ``(z, y, x)`` voxel spacing.
        origin_mm: world ``(z, y, x)`` position of the centre of voxel ``(0, 0, 0)``.
    """

    hu: npt.NDArray[np.float32]
    mask: npt.NDArray[np.bool_]
    lesion_labels: npt.NDArray[np.int16]
    lesions: tuple[SyntheticLesion, ...]
    spacing_mm: Vector3
    origin_mm: Vector3

    def as_volume(self) -> Volume:
        """The image as a :class:`Volume` with identity direction (world ``z, y, x`` = LPS)."""
        z, y, x = self.origin_mm
        return Volume(
            voxels=self.hu, spacing=self.spacing_mm, direction=np.eye(3), origin=(x, y, z)
        )


@dataclass(frozen=True, kw_only=True)
class _Body:
    semi_y: float
    semi_x: float
    wobble: float
    wobble_phase: float
    fat_mm: float
    fat_hu: float
    tissue_hu: float
    organ_centre: Vector3
    organ_axes: Vector3
    organ_hu: float
    fat_islands: tuple[tuple[Vector3, Vector3], ...]
    island_hu: float
    spine_yx: tuple[float, float]
    spine_radius: float
    cortex_hu: float
    cancellous_hu: float
    aorta_yx: tuple[float, float]
    aorta_radius: float
    vessel_hu: float
    vessels: tuple[tuple[Vector3, Vector3, float], ...] = field(default=())
    """Small vessels: a point on the axis, the unit axis direction, the radius."""


def synthetic_ct(
    shape: tuple[int, int, int],
    spacing_mm: Vector3,
    *,
    seed: int | np.random.SeedSequence,
    centre_mm: Vector3 = (0.0, 0.0, 0.0),
    settings: PhantomSettings | None = None,
) -> Phantom:
    """Draw a phantom on a ``shape`` grid of ``spacing_mm`` centred at world ``centre_mm``.

    Args:
        shape: ``(z, y, x)`` voxels.
        spacing_mm: ``(z, y, x)`` spacing in mm.
        seed: the seed of the phantom (anatomy, lesions, noise).
        centre_mm: world position of the grid's centre; ``(0, 0, 0)`` is the body's centre.
        settings: the distributions to draw from (defaults: :class:`PhantomSettings`).
    """
    rng = np.random.default_rng(seed)
    return _draw(rng, shape, spacing_mm, centre_mm, settings or PhantomSettings())


def training_phantom(
    shape: tuple[int, int, int],
    spacing_mm: Vector3,
    rng: np.random.Generator,
    settings: PhantomSettings,
) -> Phantom:
    """A phantom on a grid placed at random within a random body (training patches)."""
    body = _draw_body(rng)
    centre = (
        float(rng.uniform(-60.0, 60.0)),
        float(rng.uniform(-0.8, 0.8) * body.semi_y),
        float(rng.uniform(-0.8, 0.8) * body.semi_x),
    )
    return _draw(rng, shape, spacing_mm, centre, settings, body=body)


def _draw(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    spacing_mm: Vector3,
    centre_mm: Vector3,
    settings: PhantomSettings,
    *,
    body: _Body | None = None,
) -> Phantom:
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape!r}")
    if len(spacing_mm) != 3 or min(spacing_mm) <= 0:
        raise ValueError(f"spacing_mm must be three sizes > 0 (z, y, x), got {spacing_mm!r}")
    origin = tuple(
        c - (n - 1) / 2.0 * s for c, n, s in zip(centre_mm, shape, spacing_mm, strict=True)
    )
    axes = [o + np.arange(n) * s for o, n, s in zip(origin, shape, spacing_mm, strict=True)]
    grid: Grid = (
        axes[0].reshape(-1, 1, 1),
        axes[1].reshape(1, -1, 1),
        axes[2].reshape(1, 1, -1),
    )
    body = body if body is not None else _draw_body(rng)
    hu, interior = _anatomy(body, grid, shape)
    lesion_labels, lesions = _place_lesions(rng, body, grid, hu, interior, settings)
    hu = ndimage.gaussian_filter(hu, sigma=0.5, mode="nearest")
    noise_hu = float(rng.uniform(*settings.noise_hu))
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=0.6, mode="wrap")
    noise *= noise_hu / max(float(noise.std()), 1e-6)
    hu += noise
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return Phantom(
        hu=hu,
        mask=lesion_labels > 0,
        lesion_labels=lesion_labels,
        lesions=lesions,
        spacing_mm=(float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2])),
        origin_mm=(float(origin[0]), float(origin[1]), float(origin[2])),
    )


def _draw_body(rng: np.random.Generator) -> _Body:
    semi_y, semi_x = rng.uniform(70.0, 110.0), rng.uniform(85.0, 130.0)
    fat_mm = rng.uniform(6.0, 18.0)
    inner_y, inner_x = semi_y - fat_mm, semi_x - fat_mm
    tissue_hu = rng.uniform(30.0, 50.0)
    spine_radius = rng.uniform(12.0, 16.0)
    spine_y = 0.62 * inner_y
    aorta_radius = rng.uniform(8.0, 13.0)
    islands = tuple(
        (
            (
                rng.uniform(-60, 60),
                rng.uniform(-0.5, 0.3) * inner_y,
                rng.uniform(-0.6, 0.6) * inner_x,
            ),
            tuple(rng.uniform(5.0, 12.0, 3)),
        )
        for _ in range(rng.integers(1, 5))
    )
    vessels = []
    for _ in range(rng.integers(1, 4)):
        tilt = rng.uniform(0.0, 0.5)
        azimuth = rng.uniform(0.0, 2 * math.pi)
        direction = (
            math.cos(tilt),
            math.sin(tilt) * math.sin(azimuth),
            math.sin(tilt) * math.cos(azimuth),
        )
        point = (0.0, rng.uniform(-0.6, 0.2) * inner_y, rng.uniform(-0.7, 0.7) * inner_x)
        vessels.append((point, direction, float(rng.uniform(3.0, 6.0))))
    return _Body(
        semi_y=semi_y,
        semi_x=semi_x,
        wobble=rng.uniform(0.0, 0.06),
        wobble_phase=rng.uniform(0.0, 2 * math.pi),
        fat_mm=fat_mm,
        fat_hu=rng.uniform(-110.0, -80.0),
        tissue_hu=tissue_hu,
        organ_centre=(
            rng.uniform(-40, 40),
            rng.uniform(-0.4, 0.1) * inner_y,
            rng.uniform(-0.5, 0.5) * inner_x,
        ),
        organ_axes=(rng.uniform(50, 90), rng.uniform(35, 60), rng.uniform(40, 70)),
        organ_hu=tissue_hu + rng.uniform(12.0, 30.0),
        fat_islands=islands,  # type: ignore[arg-type]
        island_hu=rng.uniform(-110.0, -80.0),
        spine_yx=(spine_y, rng.uniform(-5.0, 5.0)),
        spine_radius=spine_radius,
        cortex_hu=rng.uniform(600.0, 900.0),
        cancellous_hu=rng.uniform(180.0, 300.0),
        aorta_yx=(
            spine_y - spine_radius - aorta_radius - rng.uniform(2.0, 6.0),
            rng.uniform(-15, 15),
        ),
        aorta_radius=aorta_radius,
        vessel_hu=rng.choice([rng.uniform(35.0, 55.0), rng.uniform(180.0, 300.0)]),
        vessels=tuple(vessels),  # type: ignore[arg-type]
    )


def _anatomy(
    body: _Body, grid: Grid, shape: tuple[int, int, int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """The HU image before lesions and the body interior (below the fat layer), slice by slice
    to keep memory at a few 2D arrays for large grids."""
    z_axis, y, x = grid
    hu = np.full(shape, AIR_HU, dtype=np.float32)
    interior = np.zeros(shape, dtype=bool)
    spine_r2 = (y[0] - body.spine_yx[0]) ** 2 + (x[0] - body.spine_yx[1]) ** 2
    aorta_r2 = (y[0] - body.aorta_yx[0]) ** 2 + (x[0] - body.aorta_yx[1]) ** 2
    spine = spine_r2 <= body.spine_radius**2
    cancellous = spine_r2 <= (body.spine_radius - 2.5) ** 2
    aorta = aorta_r2 <= body.aorta_radius**2
    for k, z in enumerate(z_axis.reshape(-1)):
        scale = 1.0 + body.wobble * math.sin(z / 50.0 + body.wobble_phase)
        semi_y, semi_x = body.semi_y * scale, body.semi_x * scale
        outer = (y[0] / semi_y) ** 2 + (x[0] / semi_x) ** 2 <= 1.0
        inner = (y[0] / (semi_y - body.fat_mm)) ** 2 + (x[0] / (semi_x - body.fat_mm)) ** 2 <= 1.0
        plane = hu[k]
        plane[outer] = body.fat_hu
        plane[inner] = body.tissue_hu
        plane[inner & _ellipse_at(y[0], x[0], z, body.organ_centre, body.organ_axes)] = (
            body.organ_hu
        )
        for centre, axes in body.fat_islands:
            plane[inner & _ellipse_at(y[0], x[0], z, centre, axes)] = body.island_hu
        plane[spine] = body.cortex_hu
        plane[cancellous] = body.cancellous_hu
        plane[aorta] = body.vessel_hu
        for point, direction, radius in body.vessels:
            plane[inner & (_distance_to_line(y[0], x[0], z, point, direction) <= radius)] = (
                body.vessel_hu
            )
        interior[k] = inner
    return hu, interior


def _place_lesions(
    rng: np.random.Generator,
    body: _Body,
    grid: Grid,
    hu: npt.NDArray[np.float32],
    interior: npt.NDArray[np.bool_],
    settings: PhantomSettings,
) -> tuple[npt.NDArray[np.int16], tuple[SyntheticLesion, ...]]:
    """Place lesions (``labels``) and add each one's contrast to ``hu`` in place: a lesion
    keeps the tissue it grew in, brighter or darker by its contrast."""
    labels = np.zeros(hu.shape, dtype=np.int16)
    lesions: list[SyntheticLesion] = []
    placed: list[tuple[Vector3, float]] = []
    wanted = int(rng.integers(settings.lesion_count[0], settings.lesion_count[1] + 1))
    lows = [float(axis.min()) for axis in grid]
    highs = [float(axis.max()) for axis in grid]
    for _ in range(wanted * 20):
        if len(lesions) == wanted:
            break
        kind: LesionKind = settings.kinds[int(rng.integers(len(settings.kinds)))]
        low, high = settings.lesion_radius_mm
        if settings.log_uniform_radius:
            radius = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            radius = float(rng.uniform(low, high))
        axes = _semi_axes(rng, kind, radius)
        reach = max(axes) * (1.5 if kind == "lobulated" else 1.0)
        centre = tuple(float(rng.uniform(lo, hi)) for lo, hi in zip(lows, highs, strict=True))
        if not _fits(body, centre, reach, placed):  # type: ignore[arg-type]
            continue
        box, inside = _lesion_region(rng, kind, grid, centre, axes)  # type: ignore[arg-type]
        inside &= interior[box]
        if not inside.any() or labels[box][inside].any():
            continue
        if rng.random() < 0.5:
            contrast = float(rng.uniform(*settings.hyperdense_contrast_hu))
        else:
            contrast = -float(rng.uniform(*settings.hypodense_contrast_hu))
        lesion = SyntheticLesion(
            label=len(lesions) + 1,
            kind=kind,
            centre_mm=centre,  # type: ignore[arg-type]
            semi_axes_mm=axes,
            contrast_hu=contrast,
            voxel_count=int(inside.sum()),
        )
        labels[box][inside] = lesion.label
        hu[box][inside] += lesion.contrast_hu
        lesions.append(lesion)
        placed.append((centre, reach))  # type: ignore[arg-type]
    return labels, tuple(lesions)


def _semi_axes(rng: np.random.Generator, kind: LesionKind, radius: float) -> Vector3:
    if kind == "sphere":
        return (radius, radius, radius)
    ratios = rng.uniform(0.6, 1.6, 3) if kind == "ellipsoid" else rng.uniform(0.85, 1.2, 3)
    ratios /= np.cbrt(np.prod(ratios))  # keep the equivalent radius
    return (float(radius * ratios[0]), float(radius * ratios[1]), float(radius * ratios[2]))


def _fits(body: _Body, centre: Vector3, reach: float, placed: list[tuple[Vector3, float]]) -> bool:
    _, y, x = centre
    inner_y, inner_x = body.semi_y - body.fat_mm, body.semi_x - body.fat_mm
    if (y / max(inner_y - reach, 1.0)) ** 2 + (x / max(inner_x - reach, 1.0)) ** 2 > 1.0:
        return False
    for (cy, cx), radius in (
        (body.spine_yx, body.spine_radius),
        (body.aorta_yx, body.aorta_radius),
    ):
        if math.hypot(y - cy, x - cx) < radius + reach + 2.0:
            return False
    return all(
        math.dist(centre, other) > reach + other_reach + 2.0 for other, other_reach in placed
    )


def _lesion_region(
    rng: np.random.Generator, kind: LesionKind, grid: Grid, centre: Vector3, axes: Vector3
) -> tuple[tuple[slice, slice, slice], npt.NDArray[np.bool_]]:
    """The voxels inside the lesion, within the box (returned) that can hold it."""
    reach = max(axes) * (1.5 if kind == "lobulated" else 1.0)
    box = tuple(_within(axis.reshape(-1), c, reach) for axis, c in zip(grid, centre, strict=True))
    offsets = [axis[box] - c for axis, c, box in zip(grid, centre, _expand(box), strict=True)]
    rotation = _random_rotation(rng)
    # a world offset d becomes R^T d in the lesion frame, scaled by the semi-axes
    local = [sum(rotation[row, k] * offsets[row] for row in range(3)) / axes[k] for k in range(3)]
    rho = np.sqrt(local[0] ** 2 + local[1] ** 2 + local[2] ** 2)
    if kind != "lobulated":
        return box, np.asarray(rho <= 1.0)  # type: ignore[return-value]
    limit = np.ones_like(rho)
    unit = [component / np.maximum(rho, 1e-9) for component in local]
    for _ in range(3):
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        cosine = unit[0] * v[0] + unit[1] * v[1] + unit[2] * v[2]
        amplitude, order, phase = rng.uniform(0.08, 0.18), rng.integers(2, 5), rng.uniform(0, 6.3)
        limit = limit + amplitude * np.cos(math.pi * order * cosine + phase)
    return box, np.asarray(rho <= limit)  # type: ignore[return-value]


def _within(axis: npt.NDArray[np.float64], centre: float, reach: float) -> slice:
    """The index range of a sorted coordinate axis within ``reach`` of ``centre``."""
    start = int(np.searchsorted(axis, centre - reach, side="left"))
    stop = int(np.searchsorted(axis, centre + reach, side="right"))
    return slice(start, max(stop, start))


def _expand(box: tuple[slice, ...]) -> tuple[tuple[slice, slice, slice], ...]:
    """Per axis, the index that selects ``box`` from that axis' broadcastable grid array."""
    full = slice(None)
    return ((box[0], full, full), (full, box[1], full), (full, full, box[2]))


def _random_rotation(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _ellipse_at(
    y: npt.NDArray[np.float64], x: npt.NDArray[np.float64], z: float, centre: Vector3, axes: Vector3
) -> npt.NDArray[np.bool_]:
    """The cross-section of an axis-aligned ellipsoid with the plane at height ``z``."""
    rest = 1.0 - ((z - centre[0]) / axes[0]) ** 2
    if rest <= 0.0:
        return np.zeros((y.shape[0], x.shape[1]), dtype=bool)
    return np.asarray(((y - centre[1]) / axes[1]) ** 2 + ((x - centre[2]) / axes[2]) ** 2 <= rest)


def _distance_to_line(
    y: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    z: float,
    point: Vector3,
    direction: Vector3,
) -> npt.NDArray[np.float64]:
    """Distance (mm) from each point of the plane at height ``z`` to a line."""
    dz, dy, dx = z - point[0], y - point[1], x - point[2]
    along = dz * direction[0] + dy * direction[1] + dx * direction[2]
    squared = dz**2 + dy**2 + dx**2 - along**2
    return np.sqrt(np.maximum(squared, 0.0))
