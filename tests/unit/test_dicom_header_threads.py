"""Encoding headers from many threads at once leaves pydicom's global reading mode alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pydicom.config

from adapters.dicom import read_dicom
from adapters.dicom.header import header_json
from tests.fixtures.imaging import synthetic_ct_series


def test_concurrent_header_encoding_does_not_switch_pydicom_to_strict_reading():
    before = pydicom.config.settings.reading_validation_mode
    datasets = [
        read_dicom(f).dataset for f in synthetic_ct_series(slices=8, rows=16, columns=16).files
    ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        headers = list(pool.map(header_json, datasets * 25))

    assert pydicom.config.settings.reading_validation_mode == before
    assert all("0020000D" in header and "7FE00010" not in header for header in headers)
