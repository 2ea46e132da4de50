"""The marching-cubes mesh of a mask is closed, outward-facing and sits between voxel centres."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from domain.imaging.marching_cubes import CORNER_OFFSETS, SurfaceMesh, mask_surface


def directed_edges(mesh: SurfaceMesh) -> Counter[tuple[int, int]]:
    faces = mesh.faces
    pairs = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return Counter(map(tuple, pairs.tolist()))


def assert_closed_and_consistently_wound(mesh: SurfaceMesh) -> None:
    """Every edge is used by exactly two triangles, once in each direction."""
    edges = directed_edges(mesh)
    assert edges, "the mesh is empty"
    assert max(edges.values()) == 1, "an edge is walked twice the same way"
    open_edges = [edge for edge in edges if (edge[1], edge[0]) not in edges]
    assert not open_edges, f"{len(open_edges)} edges border a hole"


def signed_volume(mesh: SurfaceMesh) -> float:
    corners = mesh.vertices[mesh.faces]
    return float(np.einsum("ij,ij->", corners[:, 0], np.cross(corners[:, 1], corners[:, 2]))) / 6


def area(mesh: SurfaceMesh) -> float:
    corners = mesh.vertices[mesh.faces]
    crosses = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return float(np.linalg.norm(crosses, axis=1).sum()) / 2


def one_cube(case: int) -> np.ndarray:
    mask = np.zeros((2, 2, 2), dtype=bool)
    for corner, offset in enumerate(CORNER_OFFSETS):
        mask[offset] = bool(case >> corner & 1)
    return mask


def test_every_one_of_the_254_cube_configurations_meshes_a_closed_outward_surface():
    for case in range(1, 255):
        mesh = mask_surface(one_cube(case))
        assert_closed_and_consistently_wound(mesh)
        assert signed_volume(mesh) > 0, f"case {case} is wound inward"


def test_one_voxel_is_the_octahedron_between_the_six_face_midpoints():
    mesh = mask_surface(np.ones((1, 1, 1), dtype=bool))
    assert sorted(map(tuple, mesh.vertices.tolist())) == sorted(
        [(-0.5, 0, 0), (0.5, 0, 0), (0, -0.5, 0), (0, 0.5, 0), (0, 0, -0.5), (0, 0, 0.5)]
    )
    assert len(mesh.faces) == 8
    assert signed_volume(mesh) == pytest.approx(1 / 6)
    assert area(mesh) == pytest.approx(math.sqrt(3))


def test_an_empty_mask_has_an_empty_mesh():
    mesh = mask_surface(np.zeros((3, 4, 5), dtype=bool))
    assert mesh.vertices.shape == (0, 3)
    assert mesh.faces.shape == (0, 3)


def test_a_mask_that_is_not_three_dimensional_is_refused():
    with pytest.raises(ValueError, match="shape"):
        mask_surface(np.ones((3, 3), dtype=bool))


random_masks = arrays(
    dtype=bool,
    shape=st.tuples(*(st.integers(1, 6),) * 3),
    elements=st.booleans(),
).filter(lambda mask: bool(mask.any()))


GRIDS = [
    None,
    np.diag([5.0, 0.7, 0.7]),
    np.array([[3.0, 0.0, 0.0], [1.0, 0.8, 0.0], [0.0, 0.0, 0.5]]),  # sheared
]


@pytest.mark.parametrize("grid", GRIDS, ids=["index", "anisotropic", "sheared"])
@settings(max_examples=60, deadline=None)
@given(mask=random_masks)
def test_any_mask_meshes_to_a_closed_surface_wound_outward(grid, mask):
    mesh = mask_surface(mask, grid)
    assert_closed_and_consistently_wound(mesh)
    assert signed_volume(mesh) > 0


@pytest.mark.parametrize("grid", GRIDS[1:], ids=["anisotropic", "sheared"])
def test_the_grid_only_decides_between_splits_of_equal_volume(grid):
    rng = np.random.default_rng(7)
    for _ in range(20):
        mask = rng.random((6, 6, 6)) < 0.5
        assert signed_volume(mask_surface(mask, grid)) == pytest.approx(
            signed_volume(mask_surface(mask))
        )


@settings(max_examples=100, deadline=None)
@given(random_masks)
def test_every_vertex_is_half_way_between_a_mask_voxel_and_a_background_neighbour(mask):
    padded = np.pad(mask, 1)
    for vertex in mask_surface(mask).vertices:
        axis = int(np.flatnonzero(vertex % 1)[0])
        low = np.floor(vertex).astype(int) + 1  # index into the padded mask
        high = low.copy()
        high[axis] += 1
        assert np.count_nonzero(vertex % 1) == 1
        assert padded[tuple(low)] != padded[tuple(high)]


@settings(max_examples=50, deadline=None)
@given(random_masks, st.tuples(*(st.integers(0, 3),) * 3))
def test_a_mask_touching_the_border_meshes_as_if_padded(mask, shift):
    placed = np.zeros(tuple(s + k + 3 for s, k in zip(mask.shape, shift, strict=True)), bool)
    placed[tuple(slice(k, k + s) for s, k in zip(mask.shape, shift, strict=True))] = mask
    alone, inside = mask_surface(mask), mask_surface(placed)
    assert np.array_equal(alone.faces, inside.faces)
    assert np.array_equal(alone.vertices + np.array(shift), inside.vertices)
