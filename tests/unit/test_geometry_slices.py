"""Slices sort along their normal whatever order they come in; every irregularity is reported."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.imaging import ProblemCode, SliceGeometry, sort_slices, stack_slices
from tests.fixtures.imaging import rotation_matrix

angles = st.floats(min_value=-180, max_value=180, allow_nan=False)
ROWS, COLUMNS = 5, 4
PIXEL_SPACING = (0.75, 0.5)


def a_stack(
    count,
    *,
    rotation=None,
    spacing=2.5,
    origin=(-120.0, -95.5, 40.0),
    steps=None,
    tilt=0.0,
    pixel_spacing=PIXEL_SPACING,
):
    """Geometry of ``count`` slices in slice order: slice k at origin + distance_k * normal."""
    matrix = np.eye(3) if rotation is None else rotation
    row, column, normal = matrix[:, 0], matrix[:, 1], matrix[:, 2]
    distances = np.cumsum([0.0, *(steps or [spacing] * (count - 1))])
    slices = []
    for k, distance in enumerate(distances):
        position = (
            np.asarray(origin) + distance * normal + distance * np.tan(np.radians(tilt)) * column
        )
        slices.append(
            SliceGeometry(
                rows=ROWS,
                columns=COLUMNS,
                image_position_patient=tuple(float(v) for v in position),
                image_orientation_patient=tuple(float(v) for v in (*row, *column)),
                pixel_spacing=pixel_spacing,
                instance_number=k + 1,
            )
        )
    return slices


def codes(order):
    return {problem.code for problem in order.problems}


@given(st.integers(min_value=2, max_value=12).flatmap(lambda n: st.permutations(range(n))))
def test_any_permutation_of_a_series_sorts_back_to_slice_order(permutation):
    slices = a_stack(len(permutation))
    shuffled = [slices[k] for k in permutation]
    order = sort_slices(shuffled)
    assert [permutation[i] for i in order.order] == list(range(len(permutation)))
    assert not [p for p in order.problems if p.blocking]


@given(
    angles,
    angles,
    angles,
    st.floats(min_value=0.3, max_value=8.0),
    st.integers(min_value=2, max_value=10).flatmap(lambda n: st.permutations(range(n))),
)
def test_an_oblique_series_sorts_along_its_own_normal_and_recovers_its_spacing(
    ax, ay, az, spacing, permutation
):
    rotation = rotation_matrix(ax, ay, az)
    slices = a_stack(len(permutation), rotation=rotation, spacing=spacing)
    order = sort_slices([slices[k] for k in permutation])
    assert [permutation[i] for i in order.order] == list(range(len(permutation)))
    assert np.allclose(order.normal, rotation[:, 2], atol=1e-9)
    assert order.spacing == pytest.approx(spacing, rel=1e-6)
    assert np.allclose(np.diff(order.positions), spacing)
    assert ProblemCode.GAP not in codes(order)
    assert ProblemCode.NON_UNIFORM_SPACING not in codes(order)


def test_an_oblique_orientation_is_reported_and_kept():
    rotation = rotation_matrix(0, 0, 30)
    order = sort_slices(a_stack(3, rotation=rotation))
    assert ProblemCode.OBLIQUE in codes(order)
    assert not [p for p in order.problems if p.blocking]
    assert ProblemCode.OBLIQUE not in codes(sort_slices(a_stack(3)))


@given(
    st.integers(min_value=4, max_value=12).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(min_value=1, max_value=n - 2))
    ),
    st.randoms(use_true_random=False),
)
def test_a_dropped_slice_is_reported_as_a_gap_between_its_neighbours(count_and_dropped, random):
    count, dropped = count_and_dropped
    slices = [s for k, s in enumerate(a_stack(count)) if k != dropped]
    random.shuffle(slices)
    order = sort_slices(slices)
    gaps = [p for p in order.problems if p.code is ProblemCode.GAP]
    assert len(gaps) == 1
    neighbours = {i for i, s in enumerate(slices) if s.instance_number in (dropped, dropped + 2)}
    assert set(gaps[0].slices) == neighbours
    assert "about 1 slice(s) missing" in gaps[0].detail
    assert order.spacing == pytest.approx(2.5)


def test_uneven_steps_within_tolerance_are_uniform_and_beyond_it_are_reported():
    within = sort_slices(a_stack(4, steps=[2.5, 2.51, 2.49]))
    assert ProblemCode.NON_UNIFORM_SPACING not in codes(within)
    beyond = sort_slices(a_stack(4, steps=[2.5, 2.9, 2.5]))
    assert ProblemCode.NON_UNIFORM_SPACING in codes(beyond)
    assert ProblemCode.GAP not in codes(beyond)


def test_slices_at_the_same_position_are_reported_as_duplicates():
    slices = a_stack(4)
    order = sort_slices([*slices, slices[2]])
    duplicates = [p for p in order.problems if p.code is ProblemCode.DUPLICATE_POSITION]
    assert duplicates and set(duplicates[0].slices) == {2, 4}
    assert duplicates[0].blocking


def test_a_slice_with_another_orientation_is_reported():
    slices = a_stack(4)
    odd = a_stack(1, rotation=rotation_matrix(0, 0, 5), origin=(-120.0, -95.5, 52.5))[0]
    order = sort_slices([*slices, odd])
    problems = [p for p in order.problems if p.code is ProblemCode.INCONSISTENT_ORIENTATION]
    assert problems and problems[0].slices == (4,)


def test_different_pixel_spacing_or_size_is_reported():
    slices = a_stack(3)
    other_spacing = a_stack(4, pixel_spacing=(0.8, 0.5))[3]
    assert ProblemCode.INCONSISTENT_PIXEL_SPACING in codes(sort_slices([*slices, other_spacing]))
    bigger = SliceGeometry(
        rows=ROWS + 1,
        columns=COLUMNS,
        image_position_patient=(-120.0, -95.5, 47.5),
        image_orientation_patient=(1, 0, 0, 0, 1, 0),
        pixel_spacing=PIXEL_SPACING,
    )
    assert ProblemCode.INCONSISTENT_SIZE in codes(sort_slices([*slices, bigger]))


def test_a_gantry_tilt_is_reported_as_shear_and_does_not_block():
    order = sort_slices(a_stack(5, tilt=15.0))
    assert ProblemCode.SHEARED in codes(order)
    assert not [p for p in order.problems if p.blocking]


def test_slices_shifted_in_plane_at_random_are_misaligned():
    slices = a_stack(5)
    moved = SliceGeometry(
        rows=ROWS,
        columns=COLUMNS,
        image_position_patient=(-110.0, -95.5, 47.5),
        image_orientation_patient=(1, 0, 0, 0, 1, 0),
        pixel_spacing=PIXEL_SPACING,
    )
    order = sort_slices([*slices[:3], moved, *slices[4:]])
    assert ProblemCode.MISALIGNED in codes(order)


def test_without_positions_slices_are_ordered_by_instance_number_and_reported():
    slices = [SliceGeometry(rows=2, columns=2, instance_number=n) for n in (3, 1, 2)]
    order = sort_slices(slices)
    assert order.order == (1, 2, 0)
    assert ProblemCode.MISSING_GEOMETRY in codes(order)


def test_sorting_nothing_is_refused():
    with pytest.raises(InvalidInput):
        sort_slices([])


def frames_for(slices):
    """Frame k is filled with the value of its InstanceNumber."""
    return [np.full((s.rows, s.columns), float(s.instance_number)) for s in slices]


@given(
    angles,
    angles,
    angles,
    st.floats(min_value=0.3, max_value=8.0),
    st.floats(min_value=-20, max_value=20),
    st.integers(min_value=2, max_value=8).flatmap(lambda n: st.permutations(range(n))),
)
def test_a_stacked_volume_puts_every_voxel_where_its_slice_header_says(
    ax, ay, az, spacing, tilt, permutation
):
    rotation = rotation_matrix(ax, ay, az)
    slices = a_stack(len(permutation), rotation=rotation, spacing=spacing, tilt=tilt)
    shuffled = [slices[k] for k in permutation]
    volume = stack_slices(frames_for(shuffled), shuffled)
    assert volume.shape == (len(slices), ROWS, COLUMNS)
    assert volume.voxels[:, 0, 0].tolist() == [float(k + 1) for k in range(len(slices))]
    row_spacing, column_spacing = PIXEL_SPACING
    for k, s in enumerate(slices):
        ipp = np.array(s.image_position_patient)
        assert np.allclose(volume.index_to_patient([0, 0, k]), ipp, atol=1e-6)
        expected = ipp + 3 * column_spacing * rotation[:, 0] + 2 * row_spacing * rotation[:, 1]
        assert np.allclose(volume.index_to_patient([3, 2, k]), expected, atol=1e-6)
    assert volume.spacing[1:] == PIXEL_SPACING


def test_stacking_refuses_slices_that_do_not_form_one_volume_and_says_why():
    slices = a_stack(4)
    with pytest.raises(InvalidInput, match="share a position"):
        stack_slices(frames_for([*slices, slices[1]]), [*slices, slices[1]])
    gapped = [s for k, s in enumerate(a_stack(5)) if k != 2]
    with pytest.raises(InvalidInput, match="gap"):
        stack_slices(frames_for(gapped), gapped)


def test_a_gap_can_be_resampled_onto_an_even_grid_by_interpolation():
    gapped = [s for k, s in enumerate(a_stack(5)) if k != 2]
    volume = stack_slices(frames_for(gapped), gapped, resample_nonuniform=True)
    assert volume.shape[0] == 5
    assert volume.spacing[0] == pytest.approx(2.5)
    assert volume.voxels[:, 0, 0].tolist() == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ProblemCode.RESAMPLED in {p.code for p in volume.problems}
    assert np.allclose(volume.index_to_patient([0, 0, 4]), gapped[-1].image_position_patient)


def test_a_single_slice_gets_the_given_thickness_along_its_normal():
    (single,) = a_stack(1, rotation=rotation_matrix(0, 90, 0))
    volume = stack_slices(frames_for([single]), [single], single_slice_spacing_mm=5.0)
    assert volume.spacing == (5.0, *PIXEL_SPACING)
    assert np.allclose(volume.direction[:, 2], rotation_matrix(0, 90, 0)[:, 2])


def test_frames_that_disagree_with_their_geometry_are_refused():
    slices = a_stack(2)
    with pytest.raises(InvalidInput, match="shape"):
        stack_slices([np.zeros((ROWS, COLUMNS)), np.zeros((1, 1))], slices)
    with pytest.raises(InvalidInput, match="frames"):
        stack_slices([np.zeros((ROWS, COLUMNS))], slices)
