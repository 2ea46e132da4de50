"""A Volume places voxels in patient space: its affine and index/patient mappings agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.imaging import Volume, flip_lps_ras, orthonormal_direction
from tests.fixtures.imaging import rotation_matrix

angles = st.floats(min_value=-180, max_value=180, allow_nan=False)
spacings = st.floats(min_value=0.05, max_value=10.0, allow_nan=False)
coordinates = st.floats(min_value=-500, max_value=500, allow_nan=False)


def a_volume(
    rotation=None, spacing=(2.5, 0.75, 0.5), origin=(-120.0, -95.5, 40.0), shape=(4, 5, 6)
):
    return Volume(
        voxels=np.zeros(shape, dtype=np.float32),
        spacing=spacing,
        direction=np.eye(3) if rotation is None else rotation,
        origin=origin,
    )


@given(
    angles,
    angles,
    angles,
    st.tuples(spacings, spacings, spacings),
    st.tuples(coordinates, coordinates, coordinates),
    st.lists(st.tuples(coordinates, coordinates, coordinates), min_size=1, max_size=8),
)
def test_index_to_patient_and_back_is_the_identity(ax, ay, az, spacing, origin, points):
    volume = a_volume(rotation_matrix(ax, ay, az), spacing, origin)
    indices = np.array(points) / 10.0
    patient = volume.index_to_patient(indices)
    assert np.allclose(volume.patient_to_index(patient), indices, atol=1e-6)


@given(angles, angles, angles, st.tuples(spacings, spacings, spacings))
def test_the_affine_steps_one_spacing_along_each_direction_column(ax, ay, az, spacing):
    rotation = rotation_matrix(ax, ay, az)
    volume = a_volume(rotation, spacing)
    spacing_z, spacing_y, spacing_x = spacing
    origin = np.array(volume.origin)
    assert np.allclose(volume.index_to_patient([1, 0, 0]), origin + spacing_x * rotation[:, 0])
    assert np.allclose(volume.index_to_patient([0, 1, 0]), origin + spacing_y * rotation[:, 1])
    assert np.allclose(volume.index_to_patient([0, 0, 1]), origin + spacing_z * rotation[:, 2])
    assert np.allclose(volume.affine[:3, 3], origin)
    assert np.allclose(volume.affine[3], [0, 0, 0, 1])


@given(angles, angles, angles, st.tuples(spacings, spacings, spacings))
def test_a_volume_rebuilt_from_its_affine_has_the_same_geometry(ax, ay, az, spacing):
    volume = a_volume(rotation_matrix(ax, ay, az), spacing)
    again = Volume.from_affine(volume.voxels, volume.affine)
    assert np.allclose(again.affine, volume.affine)
    assert np.allclose(again.spacing, volume.spacing)


def test_voxels_are_float32_in_slice_row_column_order_and_read_only():
    volume = a_volume(shape=(3, 4, 5))
    assert volume.shape == (3, 4, 5)
    assert volume.voxels.dtype == np.float32
    with pytest.raises(ValueError):
        volume.voxels[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spacing": (0.0, 1.0, 1.0)}, "spacing must be > 0"),
        ({"direction": np.eye(3) * 2}, "unit vectors"),
        ({"voxels": np.zeros((4, 4))}, "(z, y, x)"),
        ({"origin": (0.0, float("nan"), 0.0)}, "origin"),
    ],
)
def test_a_volume_refuses_bad_geometry_quoting_it(changes, message):
    fields = {
        "voxels": np.zeros((2, 2, 2)),
        "spacing": (1.0, 1.0, 1.0),
        "direction": np.eye(3),
        "origin": (0.0, 0.0, 0.0),
    } | changes
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Volume(**fields)


def test_coplanar_direction_columns_are_refused():
    direction = np.column_stack([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])
    with pytest.raises(ValueError, match="degenerate"):
        a_volume(direction)


def test_flipping_between_lps_and_ras_negates_the_first_two_patient_axes_and_undoes_itself():
    affine = a_volume(rotation_matrix(10, 20, 30)).affine
    flipped = flip_lps_ras(affine)
    assert np.allclose(flipped[:2], -affine[:2])
    assert np.allclose(flipped[2:], affine[2:])
    assert np.allclose(flip_lps_ras(flipped), affine)


def test_the_plane_normal_is_the_cross_product_of_row_and_column_cosines():
    direction = orthonormal_direction((0.0, 1.0, 0.0), (0.0, 0.0, -1.0))
    assert np.allclose(direction[:, 2], [-1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="parallel"):
        orthonormal_direction((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))
