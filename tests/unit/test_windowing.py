"""Window/level follows DICOM PS3.3 C.11.2.1.2; the default window is header, preset, min/max."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.imaging import (
    WINDOW_PRESETS,
    Frames,
    VoiLutFunction,
    WindowSource,
    apply_window,
    choose_window,
    min_max_window,
    to_display,
    window_preset,
)
from domain.studies import Modality, Window


def linear_reference(x, c, w):
    """PS3.3 C.11.2.1.2.1 written out for one value, y in [0, 255]."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0.0
    if x > c - 0.5 + (w - 1) / 2:
        return 255.0
    return ((x - (c - 0.5)) / (w - 1) + 0.5) * 255


def test_values_at_and_beyond_the_lower_edge_are_black():
    # soft tissue: c=40, w=400 -> lower edge at 40 - 0.5 - 199.5 = -160
    assert apply_window([-1000, -160.0], 40, 400).tolist() == [0, 0]
    assert apply_window([-159.0], 40, 400)[0] > 0


def test_values_above_the_upper_edge_are_white_and_the_edge_itself_is_white():
    # upper edge at 40 - 0.5 + 199.5 = 239: in the linear part, y = 255
    assert apply_window([239.0, 239.5, 3000.0], 40, 400).tolist() == [255, 255, 255]
    assert apply_window([238.0], 40, 400)[0] == 254


def test_the_centre_maps_to_mid_grey():
    # x = c - 0.5 gives exactly 127.5, rounded half to even -> 128
    assert apply_window([39.5], 40, 400)[0] == 128


@given(
    st.floats(min_value=-3000, max_value=3000),
    st.floats(min_value=-1000, max_value=1000),
    st.floats(min_value=1.5, max_value=4000),
)
def test_linear_matches_the_dicom_formula_within_rounding(x, c, w):
    assert abs(int(apply_window([x], c, w)[0]) - linear_reference(x, c, w)) <= 0.5 + 1e-9


@given(
    st.lists(st.floats(min_value=-3000, max_value=3000), min_size=2, max_size=20),
    st.floats(min_value=-500, max_value=500),
    st.floats(min_value=1, max_value=4000),
)
def test_windowing_never_reverses_the_order_of_values(values, c, w):
    ordered = sorted(values)
    assert np.all(np.diff(apply_window(ordered, c, w).astype(int)) >= 0)


def test_a_width_of_one_is_a_threshold():
    assert apply_window([9.0, 9.5, 9.6, 10.0], 10, 1).tolist() == [0, 0, 255, 255]


def test_linear_exact_maps_the_edges_exactly():
    assert apply_window(
        [0.0, 50.0, 100.0], 50, 100, function=VoiLutFunction.LINEAR_EXACT
    ).tolist() == [
        0,
        128,
        255,
    ]


def test_sigmoid_gives_mid_grey_at_the_centre_and_saturates_far_away():
    shown = apply_window([-10_000.0, 40.0, 10_000.0], 40, 400, function=VoiLutFunction.SIGMOID)
    assert shown.tolist() == [0, 128, 255]


@pytest.mark.parametrize("width", [0.0, -5.0, float("nan")])
def test_a_window_width_that_is_not_positive_is_refused(width):
    with pytest.raises(InvalidInput, match="width"):
        apply_window([1.0], 40, width)


def test_nan_pixels_are_shown_black():
    assert apply_window([float("nan")], 40, 400).tolist() == [0]


def test_presets_are_the_usual_ct_windows_and_accept_spellings():
    assert WINDOW_PRESETS["soft_tissue"] == Window(center=40, width=400)
    assert WINDOW_PRESETS["lung"] == Window(center=-600, width=1500)
    assert WINDOW_PRESETS["bone"] == Window(center=400, width=1800)
    assert WINDOW_PRESETS["brain"] == Window(center=40, width=80)
    assert window_preset("Soft Tissue") == window_preset("soft-tissue")
    with pytest.raises(InvalidInput, match="'liver'"):
        window_preset("liver")


def test_the_requested_window_wins_then_the_header_then_the_preset_then_min_max():
    pixels = np.array([[-1000.0, 2000.0]])
    header = Window(center=50, width=350)
    requested = Window(center=-600, width=1500)
    assert (
        choose_window(
            pixels=pixels, modality=Modality.CT, header=header, requested=requested
        ).source
        is WindowSource.REQUEST
    )
    chosen = choose_window(pixels=pixels, modality=Modality.CT, header=header)
    assert (chosen.source, chosen.center, chosen.width) == (WindowSource.HEADER, 50, 350)
    preset = choose_window(pixels=pixels, modality=Modality.CT)
    assert (preset.source, preset.preset, preset.center) == (WindowSource.PRESET, "soft_tissue", 40)
    fallback = choose_window(pixels=pixels, modality=Modality.MR)
    assert fallback.source is WindowSource.MIN_MAX


def test_min_max_spreads_the_image_over_the_full_grey_range():
    pixels = np.array([[100.0, 150.0, 300.0]])
    window = min_max_window(pixels)
    shown = apply_window(pixels, window.center, window.width, function=window.function)
    assert shown.tolist() == [[0, 64, 255]]
    constant = min_max_window(np.full((2, 2), 7.0))
    assert constant.width > 0


def test_monochrome1_is_inverted_after_windowing():
    window = min_max_window(np.array([0.0, 10.0]))
    assert to_display(
        np.array([[0.0, 10.0]]), window, photometric_interpretation="MONOCHROME1"
    ).tolist() == [[255, 0]]


def test_color_frames_pass_through_unchanged():
    rgb = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    frames = Frames(pixels=rgb[np.newaxis], photometric_interpretation="RGB")
    picture, _ = frames.display(0, requested=Window(center=0, width=1))
    assert np.array_equal(picture, rgb)


def test_asking_for_a_frame_that_does_not_exist_is_invalid_input():
    frames = Frames(pixels=np.zeros((2, 3, 3), dtype=np.float32))
    with pytest.raises(InvalidInput, match="frames 0 to 1"):
        frames.frame(2)
