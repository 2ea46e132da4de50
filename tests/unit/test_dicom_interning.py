"""Shared header elements (ingest's fast path) read every file exactly as pydicom alone does."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from adapters.dicom import read_dicom
from domain.errors import InvalidInput
from domain.imaging import ImageFields
from tests.fixtures.imaging import synthetic_ct_series


def _outcome(data: bytes, *, shared: bool) -> ImageFields | str:
    try:
        return read_dicom(
            data, require_pixel_data=False, decode=False, shared_elements=shared
        ).fields
    except InvalidInput as err:
        return f"refused: {err.detail}"


def _corpus() -> list[Path]:
    return sorted(
        Path(f) for f in get_testdata_files("*") if Path(f).is_file() and not f.endswith(".py")
    )


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_every_pydicom_test_file_reads_the_same_shared_or_not_first_time_and_again(path: Path):
    data = path.read_bytes()

    plain = _outcome(data, shared=False)

    assert _outcome(data, shared=True) == plain  # converts and remembers
    assert _outcome(data, shared=True) == plain  # reuses what it remembered


def test_a_series_read_from_many_threads_matches_reading_each_file_alone():
    files = [*synthetic_ct_series(slices=12).files, *synthetic_ct_series(slices=12).files]
    expected = [_outcome(data, shared=False) for data in files]

    with ThreadPoolExecutor(max_workers=8) as pool:
        shared = list(pool.map(lambda data: _outcome(data, shared=True), files * 4))

    assert shared == expected * 4
    assert len({f.study.study_instance_uid for f in expected if isinstance(f, ImageFields)}) == 2
