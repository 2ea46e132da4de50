"""The marching-cubes surface of a binary mask: a closed, outward-oriented triangle mesh.

This is the mesh the IBSI morphological features are computed on (IBSI reference manual,
Zwanenburg et al., arXiv 1612.07003, section 3.1 "Morphological features": the region of interest
is padded with one empty voxel on every side and meshed at iso-level 0.5 by marching cubes,
Lorensen & Cline, SIGGRAPH 1987). For a binary mask every iso-level crossing lies exactly half
way along a cube edge, so all vertices sit at the midpoint of two 6-neighbouring voxel centres,
one inside and one outside the mask.

The 256-case triangle table is derived below from the cube's faces rather than copied from the
classic table, so that the mesh is closed by construction:

1. On each of the six faces of a cube the iso-line joins the face's crossing edges. A face whose
   two inside corners sit on a diagonal is ambiguous; it is resolved by cutting each inside
   corner off on its own (inside voxels joined only through faces: 6-connectivity for the mask,
   26-connectivity for the background). The resolution depends only on the face's four corners,
   which the neighbouring cube shares, so neighbouring cubes always agree and the mesh has no
   holes (the hole problem of the original 15-case table, Dürst 1988, cannot occur).
2. The face segments link into closed loops; each loop is a polygon of the surface, oriented so
   that its normal points from the inside corners to the outside ones (outward).
3. Each polygon is split into the triangles that enclose the largest volume, then of least
   area (a small dynamic programme over its vertices; planar polygons tie and take the first
   split). This reproduces the IBSI digital phantom's reference mesh volume and area. Areas
   are measured with the grid's own spacing and shear (one table per geometry, cached): some
   non-planar polygons have two mirror-image splits of equal volume, and only the real metric
   tells them apart, so a mirrored mask gets the mirrored mesh on anisotropic grids too.

Vertices come back in continuous voxel-index coordinates ``(z, y, x)`` of the input array, so the
caller applies its own spacing, direction and origin (see ``domain.metrics``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

CORNER_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    ((corner >> 2) & 1, (corner >> 1) & 1, corner & 1) for corner in range(8)
)
"""Corner ``c`` of a cube sits at offset ``(z, y, x)`` = bits (2, 1, 0) of ``c``."""

EDGES: tuple[tuple[int, int], ...] = tuple(
    (a, b) for a in range(8) for b in range(a + 1, 8) if (a ^ b) in (1, 2, 4)
)
"""The twelve cube edges as corner pairs ``(a, b)``, ``a < b``."""

_EDGE_INDEX = {edge: index for index, edge in enumerate(EDGES)}


def _edge(a: int, b: int) -> int:
    return _EDGE_INDEX[(min(a, b), max(a, b))]


def _faces() -> list[tuple[int, int, int, int]]:
    """The six faces as corner cycles: the face where ``axis_bit`` is 0 or set."""
    faces = []
    for axis_bit in (1, 2, 4):
        u, v = (bit for bit in (1, 2, 4) if bit != axis_bit)
        for base in (0, axis_bit):
            faces.append((base, base | u, base | u | v, base | v))
    return faces


def _face_segments(case: int) -> list[tuple[int, int]]:
    """The iso-line segments on all six faces of a cube, as pairs of crossing edges."""
    segments: list[tuple[int, int]] = []
    for cycle in _faces():
        inside = [bool(case >> corner & 1) for corner in cycle]
        crossings = [
            _edge(cycle[i], cycle[(i + 1) % 4])
            for i in range(4)
            if inside[i] != inside[(i + 1) % 4]
        ]
        if len(crossings) == 2:
            segments.append((crossings[0], crossings[1]))
        elif len(crossings) == 4:
            # Diagonal (ambiguous) face: cut each inside corner off on its own.
            for i in range(4):
                if inside[i]:
                    before, after = cycle[(i - 1) % 4], cycle[(i + 1) % 4]
                    segments.append((_edge(before, cycle[i]), _edge(cycle[i], after)))
    return segments


def _loops(segments: list[tuple[int, int]]) -> list[list[int]]:
    """Chain face segments into closed loops of crossing edges (each edge has two segments)."""
    neighbours: dict[int, list[int]] = {}
    for a, b in segments:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    loops: list[list[int]] = []
    unvisited = set(neighbours)
    while unvisited:
        start = min(unvisited)
        loop, previous, current = [start], -1, start
        while True:
            following = next(n for n in neighbours[current] if n != previous)
            if following == start:
                break
            loop.append(following)
            previous, current = current, following
        unvisited -= set(loop)
        loops.append(loop)
    return loops


Point = tuple[int, int, int]


def _midpoint(edge: int) -> Point:
    """Twice the edge's midpoint minus the cube centre: integer components in {-1, 0, 1}."""
    a, b = EDGES[edge]
    return (
        CORNER_OFFSETS[a][0] + CORNER_OFFSETS[b][0] - 1,
        CORNER_OFFSETS[a][1] + CORNER_OFFSETS[b][1] - 1,
        CORNER_OFFSETS[a][2] + CORNER_OFFSETS[b][2] - 1,
    )


def _minus(p: Point, q: Point) -> Point:
    return (p[0] - q[0], p[1] - q[1], p[2] - q[2])


def _cross(p: Point, q: Point) -> Point:
    return (p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0])


def _dot(p: Point, q: Point) -> int:
    return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]


def _oriented(loop: list[int], case: int) -> list[int]:
    """The loop ordered so that its (Newell) normal points from inside to outside corners."""
    points = [_midpoint(edge) for edge in loop]
    normal = (0, 0, 0)
    for p, q in zip(points, points[1:] + points[:1], strict=True):
        c = _cross(p, q)
        normal = (normal[0] + c[0], normal[1] + c[1], normal[2] + c[2])
    alignment = 0
    for edge in loop:
        a, b = EDGES[edge]
        inside, outside = (a, b) if case >> a & 1 else (b, a)
        alignment += _dot(normal, _minus(CORNER_OFFSETS[outside], CORNER_OFFSETS[inside]))
    if alignment == 0:  # pragma: no cover - cannot happen for a cube's iso-loops
        raise AssertionError(f"case {case}: loop {loop} has no orientation")
    return loop if alignment > 0 else loop[::-1]


def _on_one_face(p: Point, q: Point) -> bool:
    """Whether the segment between two edge midpoints lies in a face of the cube."""
    return any(p[axis] == q[axis] != 0 for axis in range(3))


AreaMetric = tuple[float, float, float, float, float, float, float, float, float]
"""A row-major 3x3 matrix ``M``: a triangle whose index-space edge vectors have cross product
``c`` has area ``sqrt(c . M c) / 2`` in mm2 (``M = cof(L)^T cof(L)`` for the index-to-mm map
``L``, up to a common factor)."""

INDEX_SPACE: AreaMetric = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def area_metric(index_to_mm: npt.ArrayLike) -> AreaMetric:
    """The :data:`AreaMetric` of a ``(z, y, x)`` index-to-mm matrix, scaled to a largest entry
    of 1 and rounded so that equal geometries share one cached table."""
    matrix = np.asarray(index_to_mm, dtype=np.float64)
    cofactor = np.linalg.det(matrix) * np.linalg.inv(matrix).T  # L u x L v = cof(L) (u x v)
    metric = cofactor.T @ cofactor
    metric = metric / np.abs(metric).max()
    values = [round(float(value), 12) for value in metric.reshape(-1)]
    return (
        values[0], values[1], values[2], values[3], values[4],
        values[5], values[6], values[7], values[8],
    )  # fmt: skip


def _largest_volume_triangles(loop: list[int], metric: AreaMetric) -> list[tuple[int, int, int]]:
    """Split a polygon of crossing edges into triangles, keeping its order and orientation.

    Of all splits, the one enclosing the largest volume is taken (the surface bulges away from
    the inside corners of a non-planar polygon). This is the convention of the IBSI reference
    mesh: on the IBSI digital phantom it gives the reference mesh volume (556 mm3), where the
    least-area split gives 549 mm3. Ties in volume (volume order does not depend on the grid's
    spacing) go to the least area measured with ``metric``, the grid's own, so that a mirrored
    mask gets the mirrored mesh; planar polygons tie in both and take the first split. Before
    all that, diagonals lying in a cube face are avoided: the neighbouring cube could draw the
    same line, and the mesh would then meet itself along it (non-manifold).
    """
    points = [_midpoint(edge) for edge in loop]
    n = len(loop)
    Cost = tuple[int, int, float]  # (diagonals in a face, -48 x volume, 4 x area): lexicographic

    def cost(i: int, k: int, j: int) -> Cost:
        # Points are doubled and centred, so det / 6 is 8 x the tetrahedron's volume from the
        # cube centre: 48 x volume is the (exact, integer) determinant.
        volume_48 = _dot(points[i], _cross(points[k], points[j]))
        c = _cross(_minus(points[k], points[i]), _minus(points[j], points[i]))
        area_4 = math.sqrt(
            max(0.0, sum(metric[3 * r + q] * c[r] * c[q] for r in range(3) for q in range(3)))
        )
        in_face = sum(
            1
            for a, b in ((i, k), (k, j), (i, j))
            if (b - a) % n not in (1, n - 1) and _on_one_face(points[a], points[b])
        )
        return (in_face, -volume_48, round(area_4, 9))

    def plus(first: Cost, second: Cost) -> Cost:
        return (first[0] + second[0], first[1] + second[1], round(first[2] + second[2], 9))

    nothing: Cost = (0, 0, 0.0)
    best: dict[tuple[int, int], tuple[Cost, int]] = {}
    for length in range(2, n):
        for i in range(n - length):
            j = i + length
            best[(i, j)] = min(
                (
                    plus(
                        plus(
                            best.get((i, k), (nothing, -1))[0], best.get((k, j), (nothing, -1))[0]
                        ),
                        cost(i, k, j),
                    ),
                    k,
                )
                for k in range(i + 1, j)
            )

    triangles: list[tuple[int, int, int]] = []

    def collect(i: int, j: int) -> None:
        if j - i < 2:
            return
        k = best[(i, j)][1]
        triangles.append((loop[i], loop[k], loop[j]))
        collect(i, k)
        collect(k, j)

    collect(0, n - 1)
    return triangles


@lru_cache(maxsize=32)
def triangle_table(metric: AreaMetric = INDEX_SPACE) -> tuple[IntArray, IntArray]:
    """The marching-cubes table derived from the cube faces (see the module docstring).

    Args:
        metric: how the grid measures triangle areas (:func:`area_metric`); it only breaks
            ties between splits of equal volume. Each new one costs about 60 ms, then is cached.

    Returns:
        ``(triangles, counts)``: ``triangles`` is an int64 array of shape ``(256, K, 3)`` whose
        ``[case, t]`` row lists the three cube edges (indices into :data:`EDGES`) of triangle
        ``t`` of ``case``, wound counter-clockwise seen from outside; ``counts[case]`` is the
        number of triangles of that case. ``case`` has bit ``c`` set when corner ``c`` is inside.
    """
    per_case: list[list[tuple[int, int, int]]] = []
    for case in range(256):
        triangles: list[tuple[int, int, int]] = []
        for loop in _loops(_face_segments(case)):
            triangles.extend(_largest_volume_triangles(_oriented(loop, case), metric))
        per_case.append(triangles)
    most = max(len(triangles) for triangles in per_case)
    table = np.zeros((256, most, 3), dtype=np.int64)
    counts = np.zeros(256, dtype=np.int64)
    for case, triangles in enumerate(per_case):
        counts[case] = len(triangles)
        if triangles:
            table[case, : len(triangles)] = triangles
    table.flags.writeable = False
    counts.flags.writeable = False
    return table, counts


_EDGE_MIDPOINTS_X2 = np.array(
    [np.add(CORNER_OFFSETS[a], CORNER_OFFSETS[b]) for a, b in EDGES], dtype=np.int64
)
"""Twice each edge's midpoint offset ``(z, y, x)`` from the cube's first corner (0, 1 or 2)."""


@dataclass(frozen=True, eq=False, slots=True)
class SurfaceMesh:
    """A closed triangle mesh in continuous voxel-index coordinates.

    Attributes:
        vertices: float64 array of shape ``(V, 3)``: ``(z, y, x)`` voxel-index positions (voxel
            centres are at integers; every vertex is half way between two of them).
        faces: int64 array of shape ``(F, 3)``: vertex indices of each triangle, wound
            counter-clockwise seen from outside the mask (right-hand normals point outward).
    """

    vertices: FloatArray
    faces: IntArray


def mask_surface(mask: npt.ArrayLike, index_to_mm: npt.ArrayLike | None = None) -> SurfaceMesh:
    """Mesh the boundary of a binary mask by marching cubes at iso-level 0.5.

    Args:
        mask: array of shape ``(z, y, x)``; nonzero voxels are inside. The array is treated as
            if padded with one empty voxel on every side (IBSI), so a mask touching the border is
            still closed.
        index_to_mm: the 3x3 matrix the caller will map the vertices with (columns: voxel edge
            vectors in mm along ``z``, ``y``, ``x``). It only decides between splits of equal
            volume (see :func:`triangle_table`), so that mirrored masks get mirrored meshes on
            anisotropic grids; index space when None. Vertices stay in index coordinates.

    Returns:
        The closed, outward-oriented :class:`SurfaceMesh`; empty (no vertices) for an empty mask.
        Cost is linear in the mask's bounding box.
    """
    voxels = np.asarray(mask).astype(bool, copy=False)
    if voxels.ndim != 3:
        raise ValueError(f"mask must be a (z, y, x) array, got shape {voxels.shape}")
    if not voxels.any():
        return SurfaceMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    starts, stops = [], []
    for axis in range(3):
        present = np.flatnonzero(voxels.any(axis=tuple(a for a in range(3) if a != axis)))
        starts.append(int(present[0]))
        stops.append(int(present[-1]) + 1)
    cropped = voxels[tuple(slice(a, b) for a, b in zip(starts, stops, strict=True))]
    padded = np.pad(cropped, 1).astype(np.uint8)
    nz, ny, nx = padded.shape

    cases = np.zeros((nz - 1, ny - 1, nx - 1), dtype=np.uint8)
    for corner, (dz, dy, dx) in enumerate(CORNER_OFFSETS):
        cases |= padded[dz : nz - 1 + dz, dy : ny - 1 + dy, dx : nx - 1 + dx] << np.uint8(corner)
    cube_z, cube_y, cube_x = np.nonzero((cases != 0) & (cases != 255))
    cube_cases = cases[cube_z, cube_y, cube_x].astype(np.int64)

    metric = INDEX_SPACE if index_to_mm is None else area_metric(index_to_mm)
    table, counts = triangle_table(metric)
    per_cube = counts[cube_cases]
    cube_of_triangle = np.repeat(np.arange(cube_cases.size), per_cube)
    first_of_cube = np.repeat(np.cumsum(per_cube) - per_cube, per_cube)
    local = np.arange(cube_of_triangle.size) - first_of_cube
    edges = table[cube_cases[cube_of_triangle], local]  # (F, 3)
    corners_x2 = 2 * np.stack([cube_z, cube_y, cube_x], axis=1).astype(np.int64)
    positions_x2 = corners_x2[cube_of_triangle][:, None, :] + _EDGE_MIDPOINTS_X2[edges]

    # Weld shared vertices through an exact integer key of the doubled coordinates.
    size_y, size_x = 2 * ny + 1, 2 * nx + 1
    keys = (positions_x2[..., 0] * size_y + positions_x2[..., 1]) * size_x + positions_x2[..., 2]
    unique_keys, inverse = np.unique(keys.reshape(-1), return_inverse=True)
    welded_x2 = np.stack(
        [unique_keys // (size_y * size_x), unique_keys // size_x % size_y, unique_keys % size_x],
        axis=1,
    )
    vertices = welded_x2 / 2.0 - 1.0 + np.asarray(starts, dtype=np.float64)
    faces = inverse.reshape(-1, 3).astype(np.int64)
    return SurfaceMesh(vertices=vertices, faces=faces)


__all__ = [
    "CORNER_OFFSETS",
    "EDGES",
    "INDEX_SPACE",
    "AreaMetric",
    "SurfaceMesh",
    "area_metric",
    "mask_surface",
    "triangle_table",
]
