"""The analysis pipeline's math with a deterministic fake engine: a model that returns its
(windowed) input as the probability finds exactly the bright objects of the image, so every
position, size and edge effect can be checked against the truth."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.imaging import Volume
from domain.jobs import JobStage
from domain.pipeline import analyse_volume, label_map, sliding_window
from domain.pipeline.lesions import region_of
from domain.pipeline.resampling import grid_scale, to_model_grid, to_source_grid
from tests.fixtures.analysis import ECHO_MANIFEST, EchoEngine
from tests.fixtures.imaging import rotation_matrix

BACKGROUND_HU, LESION_HU = -120.0, 200.0

MANIFEST = ECHO_MANIFEST


def sphere_volume(
    *,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    centre_lps: tuple[float, float, float],
    radius_mm: float,
    direction: np.ndarray | None = None,
    origin: tuple[float, float, float] = (-60.0, 35.0, 110.0),
) -> tuple[Volume, np.ndarray]:
    """A volume with one bright sphere (by voxel centre) and its true mask."""
    axes = np.eye(3) if direction is None else direction
    empty = Volume(voxels=np.zeros(shape), spacing=spacing, direction=axes, origin=origin)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    points = empty.index_to_patient(np.stack([i, j, k], axis=-1))
    truth = np.linalg.norm(points - np.asarray(centre_lps), axis=-1) <= radius_mm
    voxels = np.where(truth, LESION_HU, BACKGROUND_HU).astype(np.float32)
    return Volume(voxels=voxels, spacing=spacing, direction=axes, origin=origin), truth


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.parametrize(
    ("spacing", "direction"),
    [
        ((2.0, 1.5, 1.5), None),  # the model's own grid: no resampling
        ((5.0, 0.7, 0.7), None),  # thick slices, fine pixels
        ((1.25, 0.9, 0.6), rotation_matrix(12, -8, 25)),  # anisotropic and oblique
    ],
)
def test_a_sphere_comes_back_at_its_patient_position(spacing, direction):
    centre = (-31.0, 62.0, 150.0)
    shape = (int(90 / spacing[0]), int(100 / spacing[1]), int(110 / spacing[2]))
    volume, truth = sphere_volume(
        shape=shape, spacing=spacing, centre_lps=centre, radius_mm=12.0, direction=direction
    )
    assert truth.sum() > 100, "the sphere must lie inside the volume"

    output = analyse_volume(volume, MANIFEST, EchoEngine())

    (lesion,) = output.lesions
    assert lesion.label == "lesion"
    assert dice(output.labels == 1, truth) > 0.9
    assert lesion.metrics.centre_of_mass_mm == pytest.approx(centre, abs=0.5 * max(spacing))
    box_centre = np.add(lesion.patient_box.minimum_mm, lesion.patient_box.maximum_mm) / 2
    np.testing.assert_allclose(box_centre, centre, atol=max(spacing))
    expected_volume = 4 / 3 * math.pi * 12.0**3
    assert lesion.metrics.volume_voxel_mm3 == pytest.approx(expected_volume, rel=0.15)
    assert lesion.metrics.diameter_mm == pytest.approx(24.0, abs=2 * max(spacing))
    assert 0.8 < lesion.confidence <= 1.0


def test_a_sphere_across_patch_edges_and_the_far_corner_is_whole():
    # 100 x 100 x 100 mm at the model spacing is not a multiple of the 16 x 24 x 24 patch:
    # the sphere straddles interior patch borders and touches the volume's far corner
    volume, truth = sphere_volume(
        shape=(50, 67, 67),
        spacing=(2.0, 1.5, 1.5),
        centre_lps=(-60.0 + 95.0, 35.0 + 95.0, 110.0 + 94.0),
        radius_mm=10.0,
    )
    engine = EchoEngine()

    output = analyse_volume(volume, MANIFEST, engine)

    (lesion,) = output.lesions
    np.testing.assert_array_equal(output.labels == 1, truth)
    assert lesion.voxel_box.stop == volume.shape
    assert engine.batches > 1 and all(b[2:] == (16, 24, 24) for b in engine.shapes)


def test_the_label_map_is_on_the_source_grid_and_numbers_every_lesion():
    volume, first = sphere_volume(
        shape=(40, 80, 80), spacing=(2.5, 0.8, 0.8), centre_lps=(-40, 60, 150), radius_mm=8
    )
    _, second = sphere_volume(
        shape=(40, 80, 80), spacing=(2.5, 0.8, 0.8), centre_lps=(-20, 80, 170), radius_mm=6
    )
    voxels = np.where(first | second, LESION_HU, BACKGROUND_HU)
    both = Volume(
        voxels=voxels, spacing=volume.spacing, direction=volume.direction, origin=volume.origin
    )

    output = analyse_volume(both, MANIFEST, EchoEngine())

    assert output.labels.shape == both.shape and output.labels.dtype == np.uint16
    assert [lesion.number for lesion in output.lesions] == [1, 2]
    assert {int(v) for v in np.unique(output.labels)} == {0, 1, 2}
    volumes = sorted(lesion.metrics.volume_voxel_mm3 for lesion in output.lesions)
    assert volumes[0] == pytest.approx(4 / 3 * math.pi * 6**3, rel=0.2)


def test_lesions_smaller_than_the_manifest_minimum_are_dropped():
    volume, _ = sphere_volume(
        shape=(30, 60, 60), spacing=(2.0, 1.5, 1.5), centre_lps=(-20, 75, 140), radius_mm=1.0
    )
    strict = msgspec.structs.replace(MANIFEST, min_lesion_size_voxels=5)

    output = analyse_volume(volume, strict, EchoEngine())

    assert output.lesions == ()
    assert not output.labels.any()


def test_an_empty_image_has_no_lesions_and_full_quality():
    volume = Volume(
        voxels=np.full((24, 40, 40), BACKGROUND_HU),
        spacing=(2.0, 1.5, 1.5),
        direction=np.eye(3),
        origin=(0, 0, 0),
    )

    output = analyse_volume(volume, MANIFEST, EchoEngine())

    assert output.lesions == ()
    assert output.quality.score == 1.0


def test_progress_runs_through_the_stages_in_order_and_never_backwards():
    volume, _ = sphere_volume(
        shape=(40, 60, 60), spacing=(2.0, 1.5, 1.5), centre_lps=(-20, 75, 140), radius_mm=8
    )
    seen: list[tuple[JobStage, float]] = []

    analyse_volume(
        volume, MANIFEST, EchoEngine(), progress=lambda stage, f: seen.append((stage, f))
    )

    order = [JobStage.PREPROCESSING, JobStage.INFERENCE, JobStage.POSTPROCESSING]
    ranks = [(order.index(stage), fraction) for stage, fraction in seen]
    assert ranks == sorted(ranks)
    assert seen[0] == (JobStage.PREPROCESSING, 0.0)
    assert seen[-1] == (JobStage.POSTPROCESSING, 1.0)
    assert sum(stage is JobStage.INFERENCE for stage, _ in seen) > 2


def test_an_exception_from_the_progress_callback_stops_the_pipeline():
    volume, _ = sphere_volume(
        shape=(40, 60, 60), spacing=(2.0, 1.5, 1.5), centre_lps=(-20, 75, 140), radius_mm=8
    )
    engine = EchoEngine()

    def cancel(stage: JobStage, fraction: float) -> None:
        if stage is JobStage.INFERENCE and fraction > 0:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        analyse_volume(volume, MANIFEST, engine, progress=cancel)
    assert engine.batches == 1


def test_a_model_with_more_channels_than_labels_is_refused():
    volume, _ = sphere_volume(
        shape=(20, 30, 30), spacing=(2.0, 1.5, 1.5), centre_lps=(-40, 55, 130), radius_mm=5
    )

    with pytest.raises(InvalidInput, match="2 channels for 1 labels"):
        analyse_volume(volume, MANIFEST, EchoEngine(channels=2))


def test_stages_are_timed():
    volume, _ = sphere_volume(
        shape=(20, 30, 30), spacing=(2.0, 1.5, 1.5), centre_lps=(-40, 55, 130), radius_mm=5
    )

    output = analyse_volume(volume, MANIFEST, EchoEngine())

    assert set(output.stage_seconds) == {
        "resample",
        "intensity",
        "inference",
        "to_source_grid",
        "components",
        "metrics",
    }
    assert output.times.inference_s == output.stage_seconds["inference"]


@given(
    shape=st.tuples(*(st.integers(2, 30) for _ in range(3))),
    spacing=st.tuples(*(st.sampled_from([0.6, 0.8, 1.0, 1.5, 2.5, 5.0]) for _ in range(3))),
)
def test_resampling_a_linear_ramp_there_and_back_is_exact(shape, spacing):
    # trilinear interpolation reproduces a linear function wherever it does not clamp
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    ramp = 3.0 * k + 2.0 * j - 1.0 * i
    scale = grid_scale(spacing, (2.0, 1.5, 1.5))

    model = to_model_grid(ramp, scale)
    back = to_source_grid(model, shape, scale)

    mk, mj, mi = np.meshgrid(*(np.arange(n) for n in model.shape), indexing="ij")
    expected = 3.0 * mk * scale[0] + 2.0 * mj * scale[1] - mi * scale[2]
    np.testing.assert_allclose(model, expected, atol=1e-3)
    inside = tuple(
        slice(0, int(np.floor((m - 1) * s)) + 1) for m, s in zip(model.shape, scale, strict=True)
    )
    np.testing.assert_allclose(back[inside], ramp[inside], atol=1e-3)


@given(
    shape=st.tuples(st.integers(3, 40), st.integers(3, 40), st.integers(3, 40)),
    overlap=st.sampled_from([0.0, 0.25, 0.5]),
    batch=st.integers(1, 5),
)
def test_sliding_window_blending_of_an_exact_model_returns_the_image(shape, overlap, batch):
    image = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)

    blended = sliding_window(image, (8, 16, 16), lambda b: b, overlap=overlap, batch_size=batch)

    assert blended.shape == (1, *shape)
    np.testing.assert_allclose(blended[0], image, atol=1e-5)


def test_label_map_gives_each_voxel_to_its_most_probable_channel():
    probabilities = np.zeros((2, 5, 10, 10), dtype=np.float32)
    probabilities[0, 1:3, 1:4, 1:4] = 0.9
    probabilities[1, 1:3, 1:4, 1:4] = 0.6
    probabilities[1, 1:3, 6:9, 6:9] = 0.8

    labels, channels = label_map(probabilities, threshold=0.5, min_size_voxels=1)

    assert channels == [0, 1]
    assert set(np.unique(labels[1:3, 1:4, 1:4])) == {1}
    assert set(np.unique(labels[1:3, 6:9, 6:9])) == {2}


def test_a_lesion_in_the_patients_left_posterior_top_corner_is_named_so():
    volume = Volume(
        voxels=np.zeros((30, 90, 90)),
        spacing=(2.0, 1.0, 1.0),
        direction=np.eye(3),
        origin=(0, 0, 0),
    )

    assert region_of(volume, (80.0, 85.0, 55.0)) == "left posterior superior"
    assert region_of(volume, (5.0, 44.0, 29.0)) == "right"
    assert region_of(volume, (44.5, 44.5, 29.0)) == "central"


@settings(max_examples=12)
@given(
    spacing=st.tuples(
        st.sampled_from([0.8, 1.25, 2.0, 3.0, 5.0]),
        st.sampled_from([0.6, 0.9, 1.5]),
        st.sampled_from([0.6, 0.9, 1.5]),
    ),
    angles=st.tuples(*(st.integers(-30, 30) for _ in range(3))),
    offset=st.tuples(*(st.floats(-8.0, 8.0) for _ in range(3))),
)
def test_any_grid_gives_the_sphere_back_where_it_is(spacing, angles, offset):
    direction = rotation_matrix(*angles)
    shape = tuple(math.ceil(60.0 / s) for s in spacing)
    origin = (-60.0, 35.0, 110.0)
    middle = Volume(
        voxels=np.zeros((1, 1, 1)), spacing=spacing, direction=direction, origin=origin
    ).index_to_patient([(n - 1) / 2 for n in shape[::-1]])
    centre = tuple(float(c + o) for c, o in zip(middle, offset, strict=True))
    volume, truth = sphere_volume(
        shape=shape,
        spacing=spacing,
        centre_lps=centre,
        radius_mm=10.0,
        direction=direction,
        origin=origin,
    )

    output = analyse_volume(volume, MANIFEST, EchoEngine())

    (lesion,) = output.lesions
    assert dice(output.labels == 1, truth) > 0.85
    assert lesion.metrics.centre_of_mass_mm == pytest.approx(centre, abs=0.5 * max(spacing))
