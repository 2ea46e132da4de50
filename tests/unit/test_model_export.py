"""model_export: synthetic phantoms, preprocessing, training step, export parity, manifest.

Nothing here trains the demo model: the training test takes a few steps of a tiny network.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch

from domain.ports.inference import IntensityPreprocessing, ModelManifest
from model_export.evaluation import (
    Evaluation,
    gaussian_importance,
    lesion_components,
    sliding_window,
)
from model_export.export import (
    PARITY_TOLERANCE,
    export_model,
    export_onnx,
    export_torchscript,
    parity,
    sha256_of,
)
from model_export.preprocessing import DEMO_INTENSITY, window_to_unit
from model_export.synthetic import PhantomSettings, synthetic_ct
from model_export.training import (
    TrainingConfig,
    TrainingRun,
    dice_bce_loss,
    load,
    resampled_patch,
    training_batch,
)
from model_export.unet import UNet3d

SPACING = (2.0, 1.5, 1.5)
TINY = (4, 8, 8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_a_seed_draws_the_same_phantom_every_time():
    first = synthetic_ct((24, 48, 48), SPACING, seed=11)
    again = synthetic_ct((24, 48, 48), SPACING, seed=11)
    other = synthetic_ct((24, 48, 48), SPACING, seed=12)

    assert np.array_equal(first.hu, again.hu)
    assert np.array_equal(first.lesion_labels, again.lesion_labels)
    assert first.lesions == again.lesions
    assert not np.array_equal(first.hu, other.hu)


def test_masks_and_labels_match_the_image_and_the_lesions():
    phantom = synthetic_ct((32, 64, 64), SPACING, seed=3)

    assert phantom.hu.shape == phantom.mask.shape == phantom.lesion_labels.shape == (32, 64, 64)
    assert phantom.hu.dtype == np.float32
    assert np.array_equal(phantom.mask, phantom.lesion_labels > 0)
    assert phantom.lesions, "the default settings place at least one lesion"
    for lesion in phantom.lesions:
        assert int((phantom.lesion_labels == lesion.label).sum()) == lesion.voxel_count > 0
    assert sorted(np.unique(phantom.lesion_labels).tolist()) == [0] + [
        lesion.label for lesion in phantom.lesions
    ]


def test_a_phantom_volume_places_its_lesions_at_their_patient_positions():
    phantom = synthetic_ct((24, 48, 48), SPACING, seed=3, centre_mm=(10.0, -20.0, 5.0))
    volume = phantom.as_volume()

    assert volume.shape == phantom.hu.shape
    assert volume.spacing == SPACING
    for lesion in phantom.lesions:
        k, j, i = np.argwhere(phantom.lesion_labels == lesion.label).mean(axis=0)
        x, y, z = volume.index_to_patient([i, j, k])
        assert (z, y, x) == pytest.approx(lesion.centre_mm, abs=2.5)


def test_phantom_intensities_are_ct_like():
    phantom = synthetic_ct((8, 200, 200), SPACING, seed=5)  # 300 mm across: the whole body
    corner = phantom.hu[:, :8, :8]  # outside the elliptic body
    body = phantom.hu[:, 90:110, 90:110]

    assert abs(float(np.median(corner)) + 1000.0) < 60.0
    assert -150.0 < float(np.median(body)) < 150.0


def test_a_lesion_differs_from_its_surroundings_by_its_contrast():
    settings = PhantomSettings(
        lesion_count=(1, 1), lesion_radius_mm=(10.0, 10.0), kinds=("sphere",)
    )
    for seed in range(4):
        phantom = synthetic_ct((40, 80, 80), (1.0, 1.0, 1.0), seed=seed, settings=settings)
        if not phantom.lesions:
            continue
        (lesion,) = phantom.lesions
        inside = phantom.lesion_labels == lesion.label
        core = _erode(inside, 2)
        shell = _dilate(inside, 5) & ~_dilate(inside, 2) & (phantom.hu > -500)
        difference = float(phantom.hu[core].mean() - np.median(phantom.hu[shell]))
        assert difference == pytest.approx(lesion.contrast_hu, abs=20.0)


def test_a_sphere_inside_the_grid_has_its_analytic_volume():
    settings = PhantomSettings(lesion_count=(1, 1), lesion_radius_mm=(9.0, 9.0), kinds=("sphere",))
    checked = 0
    for seed in range(6):
        phantom = synthetic_ct((48, 64, 64), (1.0, 1.0, 1.0), seed=seed, settings=settings)
        for lesion in phantom.lesions:
            labelled = np.argwhere(phantom.lesion_labels == lesion.label)
            if labelled.min() == 0 or np.any(labelled.max(axis=0) == np.array([47, 63, 63])):
                continue  # cut by the grid's edge
            assert lesion.nominal_volume_mm3 == pytest.approx(4 / 3 * math.pi * 9.0**3)
            assert lesion.voxel_count == pytest.approx(lesion.nominal_volume_mm3, rel=0.05)
            checked += 1
    assert checked


def test_the_soft_tissue_window_maps_to_0_1():
    values = window_to_unit([-1000.0, -160.0, 40.0, 240.0, 3000.0], DEMO_INTENSITY)

    assert values.dtype == np.float32
    assert values.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_zscore_preprocessing_uses_mean_and_std():
    intensity = IntensityPreprocessing(
        window_center=0, window_width=1, normalise="zscore", mean=50.0, std=25.0
    )

    assert window_to_unit([0.0, 50.0, 100.0], intensity).tolist() == [-2.0, 0.0, 2.0]


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    config = TrainingConfig(patch_size=(16, 32, 32), features=TINY, batch_size=2)
    images, masks = training_batch(np.random.default_rng(1), config)
    model = UNet3d(features=TINY)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = dice_bce_loss(model(images), masks)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())

    assert images.shape == masks.shape == (2, 1, 16, 32, 32)
    assert losses[-1] < losses[0] * 0.95


def test_resampled_patches_show_thick_slices_at_the_model_spacing():
    config = TrainingConfig(
        patch_size=(16, 32, 32),
        features=TINY,
        batch_size=2,
        resampled_fraction=1.0,
        source_slice_mm=(5.0, 5.0),
        source_pixel_mm=(0.8, 0.8),
        phantoms=PhantomSettings(lesion_count=(3, 3), lesion_radius_mm=(5.0, 7.0)),
    )
    rng = np.random.default_rng(3)
    patches = [resampled_patch(rng, config) for _ in range(4)]
    images, masks = training_batch(np.random.default_rng(4), config)

    assert images.shape == masks.shape == (2, 1, 16, 32, 32)
    for hu, mask in patches:
        assert hu.shape == mask.shape == (16, 32, 32)
        assert hu.dtype == mask.dtype == np.float32
        assert mask.min() >= 0.0 and mask.max() <= 1.0
    lesion_masks = [mask for _, mask in patches if mask.max() > 0]
    assert lesion_masks
    # 5 mm slices seen on a 2 mm grid: lesion edges are fractions (partial volume), not 0/1
    assert all(((mask > 0.05) & (mask < 0.95)).any() for mask in lesion_masks)
    again = resampled_patch(np.random.default_rng(3), config)
    assert np.array_equal(again[0], patches[0][0]) and np.array_equal(again[1], patches[0][1])


def test_onnx_and_torchscript_exports_agree_on_other_sizes_and_batches(tmp_path: Path):
    torch.manual_seed(0)
    model = UNet3d(features=TINY).eval()
    export_onnx(model, tmp_path / "m.onnx", patch_size=(16, 32, 32))
    export_torchscript(model, tmp_path / "m.pt")
    batch = np.random.default_rng(0).random((3, 1, 24, 40, 48), dtype=np.float32)

    probability_diff, logit_diff = parity(tmp_path / "m.onnx", tmp_path / "m.pt", batch)

    assert probability_diff < PARITY_TOLERANCE
    assert logit_diff < 1e-3


def test_export_writes_a_manifest_whose_checksums_match_the_files(tmp_path: Path):
    config = TrainingConfig(patch_size=(16, 32, 32), features=TINY, steps=1)
    run = TrainingRun(model=UNet3d(features=TINY).eval(), config=config, losses=[1.0], seconds=0.5)

    report = export_model(run, tmp_path, evaluation_cases=0)

    manifest = msgspec.json.decode((tmp_path / "manifest.json").read_bytes(), type=ModelManifest)
    assert manifest == report.manifest
    assert manifest.files == {"onnx": "model.onnx", "torchscript": "model.pt"}
    assert manifest.sha256 == {name: sha256_of(tmp_path / name) for name in manifest.files.values()}
    assert manifest.patch_size == (16, 32, 32)
    assert manifest.input_spacing_mm == config.spacing_mm
    assert manifest.output_activation == "sigmoid"
    assert manifest.clinical_use is False
    assert "synthetic" in manifest.description and "Not for clinical use" in manifest.description
    assert manifest.metrics["parity_max_abs_diff"] < manifest.metrics["parity_tolerance"]


def test_a_checkpoint_restores_the_model_and_its_configuration(tmp_path: Path):
    config = TrainingConfig(patch_size=(16, 32, 32), features=TINY, steps=3)
    model = UNet3d(features=TINY).eval()
    TrainingRun(model=model, config=config, losses=[3.0, 2.0, 1.0], seconds=2.0).save(
        tmp_path / "run.ckpt"
    )

    restored = load(tmp_path / "run.ckpt")

    assert restored.config == config
    assert restored.losses == [3.0, 2.0, 1.0]
    batch = torch.rand(1, 1, 16, 32, 32)
    with torch.inference_mode():
        assert torch.equal(restored.model(batch), model(batch))


def test_sliding_window_blends_patches_over_the_whole_image():
    image = np.full((20, 50, 40), 0.25, dtype=np.float32)  # z smaller than the patch

    probabilities = sliding_window(image, (32, 32, 32), lambda batch: batch * 2.0, batch_size=3)

    assert probabilities.shape == image.shape
    assert np.allclose(probabilities, 0.5)


def test_gaussian_importance_peaks_in_the_middle():
    weights = gaussian_importance((8, 16, 16))

    assert weights.max() == pytest.approx(weights[3:5, 7:9, 7:9].max())
    assert weights.min() > 0


def test_components_below_the_minimum_size_are_dropped():
    probabilities = np.zeros((10, 20, 20), dtype=np.float32)
    probabilities[1:4, 1:4, 1:4] = 0.9  # 27 voxels
    probabilities[6, 10, 10] = 0.9  # 1 voxel

    labels = lesion_components(probabilities, threshold=0.5, min_size_voxels=5)

    assert int((labels > 0).sum()) == 27


def test_evaluation_metrics_are_the_rates_of_the_counts():
    evaluation = Evaluation(
        cases=2,
        lesions=4,
        detected=3,
        false_positives=1,
        dice_per_case=[0.5, 0.7],
        recall_by_size={"under 12 mm": 0.5},
    )

    assert evaluation.metrics() == {
        "held_out_cases": 2.0,
        "held_out_lesions": 4.0,
        "held_out_dice": 0.6,
        "held_out_recall": 0.75,
        "held_out_false_positives_per_case": 0.5,
        "held_out_recall_under_12_mm": 0.5,
    }


def _dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=iterations)


def _erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=iterations)
