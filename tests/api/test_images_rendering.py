"""Reading images back: rendered frames (window/level, presets, frames, formats), metadata from
the database, and clear 4xx answers for values that make no sense."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_files

from adapters.storage import FilesystemBlobStore
from tests.api.conftest import serve
from tests.api.identity_fixtures import World, assert_problem, seed_world
from tests.api.studies_helpers import post_studies
from tests.fixtures.imaging import synthetic_ct_series

MULTI_FRAME = Path(get_testdata_files("SC_rgb_rle_2frame.dcm")[0]).read_bytes()
"""Two RGB frames, RLE lossless."""


@dataclass(frozen=True)
class Images:
    world: World
    ct: str
    """A CT slice with a 40/400 window in its header; HU ``-1000 + 7 row + column``."""
    ct_without_window: str
    multi_frame: str
    frames: int

    async def get(self, path: str, **params: object) -> tuple[int, bytes, str]:
        response = await self.world.client.get(
            path, params=params, headers=self.world.a.radiologist.headers
        )
        return response.status_code, response.content, response.headers["content-type"]


async def first_instance(world: World, files: list[tuple[str, bytes]]) -> str:
    response = await post_studies(world.client, world.a.technician.headers, files)
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["files"][0]["instance_id"]
    return instance_id


@pytest.fixture(scope="module")
async def images(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Images]:
    """One application for the module; tests only read (and render) what is stored here."""
    async with AsyncExitStack() as stack:
        world = await seed_world(await serve(stack, tmp_path_factory.mktemp("img") / "data"))
        ct = await first_instance(
            world, [("ct.dcm", synthetic_ct_series(slices=1, rows=32, columns=40).files[0])]
        )
        bare = synthetic_ct_series(slices=1, rows=8, columns=8, window=None).files[0]
        ct_without_window = await first_instance(world, [("bare.dcm", bare)])
        multi = await first_instance(world, [("multi.dcm", MULTI_FRAME)])
        yield Images(world, ct, ct_without_window, multi, 2)


def gray(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("L"))


async def test_a_ct_slice_renders_with_the_window_of_its_header_by_default(images: Images) -> None:
    status, data, media = await images.get(f"/api/v1/instances/{images.ct}/rendered")

    assert (status, media) == (200, "image/png")
    pixels = gray(data)
    assert pixels.shape == (32, 40)
    # every HU of the slice (-1000..-744) is below the 40/400 window: all black
    assert pixels.max() == 0


async def test_window_and_level_or_a_preset_change_the_picture(images: Images) -> None:
    url = f"/api/v1/instances/{images.ct}/rendered"
    _, lung, _ = await images.get(url, preset="lung")
    _, custom, _ = await images.get(url, window=300, level=-870)
    _, same_as_lung, _ = await images.get(url, window=1500, level=-600)

    assert gray(lung).max() > 0
    assert np.array_equal(gray(lung), gray(same_as_lung))
    wide = gray(custom)
    assert wide.min() < 30 and wide.max() > 220  # -1020..-720 spans the slice


async def test_a_slice_without_a_header_window_gets_the_ct_preset(images: Images) -> None:
    url = f"/api/v1/instances/{images.ct_without_window}/rendered"
    _, default, _ = await images.get(url)
    _, soft_tissue, _ = await images.get(url, preset="soft_tissue")

    assert np.array_equal(gray(default), gray(soft_tissue))


async def test_each_frame_of_a_multi_frame_image_renders_and_jpeg_is_offered(
    images: Images,
) -> None:
    url = f"/api/v1/instances/{images.multi_frame}/rendered"
    pictures = [await images.get(url, frame=n) for n in range(1, images.frames + 1)]
    status, jpeg, media = await images.get(url, frame=2, format="jpeg")

    assert [p[0] for p in pictures] == [200] * images.frames
    assert (status, media, jpeg[:3]) == (200, "image/jpeg", b"\xff\xd8\xff")
    with Image.open(io.BytesIO(pictures[0][1])) as picture:
        assert picture.mode == "RGB"


@pytest.mark.parametrize(
    "params, words",
    [
        ({"frame": 3}, "frame 3"),
        ({"frame": 0}, "frame"),
        ({"window": 0, "level": 40}, "width"),
        ({"window": -5, "level": 40}, "width"),
        ({"window": 400}, "together"),
        ({"level": 40}, "together"),
        ({"preset": "liver"}, "liver"),
        ({"preset": "lung", "window": 400, "level": 40}, "preset"),
        ({"format": "gif"}, "gif"),
        ({"window": "wide", "level": 40}, "window"),
    ],
)
async def test_render_values_that_make_no_sense_are_refused_with_a_reason(
    images: Images, params: dict[str, object], words: str
) -> None:
    response = await images.world.client.get(
        f"/api/v1/instances/{images.multi_frame}/rendered",
        params=params,
        headers=images.world.a.radiologist.headers,
    )

    assert 400 <= response.status_code < 500
    problem = assert_problem(response, response.status_code)
    assert words in problem["detail"] + str(problem.get("errors", ""))


async def test_metadata_is_the_dicom_json_header_served_from_the_database(
    images: Images,
) -> None:
    world = images.world
    store = world.served.container.blob_store
    assert isinstance(store, FilesystemBlobStore)
    instances = await world.client.get(
        f"/api/v1/instances/{images.ct}/metadata", headers=world.a.radiologist.headers
    )
    header = instances.json()
    assert instances.headers["content-type"].startswith("application/dicom+json")
    assert header["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Phantom^Synthetic"}]}
    assert header["00080060"]["Value"] == ["CT"]
    assert "7FE00010" not in header

    # with the stored files out of reach, metadata still answers: it never reads storage
    hidden = store.root.with_name("blobs-hidden")
    store.root.rename(hidden)
    try:
        again = await world.client.get(
            f"/api/v1/instances/{images.ct}/metadata", headers=world.a.radiologist.headers
        )
        file = await world.client.get(
            f"/api/v1/instances/{images.ct}/rendered", headers=world.a.radiologist.headers
        )
    finally:
        hidden.rename(store.root)
    assert again.json() == header
    assert_problem(file, 404)
