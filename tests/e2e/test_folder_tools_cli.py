"""``hounsfield anonymize``, ``export`` and ``metadata`` on a temporary folder, through the
real command line (click), with a pool of worker processes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom import dcmread

from entrypoints.cli import cli
from entrypoints.folder_tools import REPORT_NAME
from tests.fixtures.imaging import expected_hu, synthetic_ct_series


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """Two series of one patient in nested folders named after her, and a stray text file."""
    root = tmp_path / "in"
    first, second = synthetic_ct_series(slices=3), synthetic_ct_series(slices=2)
    for name, series in (("axial", first), ("coronal", second)):
        folder = root / "Phantom_Synthetic" / name
        folder.mkdir(parents=True)
        for n, data in enumerate(series.files, start=1):
            (folder / f"{n}.dcm").write_bytes(data)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").write_bytes(b"skipped")
    return root


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_anonymize_writes_numbered_files_with_consistent_uids_and_a_report(
    study_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    code, output = run("anonymize", str(study_dir), str(out), "--workers", "2", "--no-progress")

    assert code == 1  # notes.txt is refused, and said so
    assert "notes.txt" in output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["00001.dcm", "00002.dcm", "00003.dcm", "00004.dcm", "00005.dcm", REPORT_NAME]
    datasets = [dcmread(out / name) for name in written if name.endswith(".dcm")]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 2  # two generated studies
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 2
    assert all(ds.PatientIdentityRemoved == "YES" for ds in datasets)
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in datasets)
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["files"] == 5
    assert [r["name"] for r in report["refused"]] == ["notes.txt"]
    assert not any(b"Phantom" in (out / name).read_bytes() for name in written)


def test_anonymize_in_several_processes_keeps_one_uid_map(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (study_dir / "notes.txt").unlink()

    code, _ = run(
        "anonymize", str(study_dir), str(out), "--workers", "3", "--keep-names", "--dates", "keep"
    )

    assert code == 0
    axial = [dcmread(p) for p in sorted((out / "Phantom_Synthetic" / "axial").iterdir())]
    assert len({ds.StudyInstanceUID for ds in axial}) == 1
    assert len({ds.FrameOfReferenceUID for ds in axial}) == 1
    assert axial[0].StudyDate == "20260115"


def test_anonymize_refuses_bad_options_and_an_output_inside_the_input(study_dir: Path) -> None:
    bad_shift, _ = run(
        "anonymize", str(study_dir), str(study_dir.parent / "o"), "--shift-days", "4"
    )
    inside, output = run("anonymize", str(study_dir), str(study_dir / "out"))

    assert bad_shift == 2
    assert inside == 2 and "inside" in output


def test_export_writes_png_frames_and_metadata(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "png"

    code, output = run("export", str(study_dir), str(out), "--metadata", "--no-progress")

    assert code == 0
    assert "5 image(s) exported" in output and "1 skipped" in output
    frame = out / "Phantom_Synthetic" / "axial" / "1.dcm" / "frame-0001.png"
    with Image.open(frame) as picture:
        assert picture.size == (10, 12)
    metadata = json.loads((out / "Phantom_Synthetic" / "axial" / "1.dcm.json").read_text())
    assert metadata["rows"] == 12 and metadata["windows"][0]["width"] == 400.0


def test_export_writes_npy_in_hounsfield_units(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "npy"

    code, _ = run("export", str(study_dir), str(out), "--format", "npy", "--workers", "2")

    assert code == 0
    array = np.load(out / "Phantom_Synthetic" / "axial" / "2.dcm.npy")
    np.testing.assert_array_equal(array[0], expected_hu(3, 12, 10)[1])


def test_export_needs_window_and_level_together(study_dir: Path, tmp_path: Path) -> None:
    code, _ = run("export", str(study_dir), str(tmp_path / "x"), "--window", "400")
    assert code == 2


def test_metadata_writes_one_row_per_instance(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "meta" / "instances.csv"

    code, output = run("metadata", str(study_dir), str(out), "--workers", "2")

    assert code == 0 and "1 non-DICOM" in output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    assert {row["Modality"] for row in rows} == {"CT"}
    assert rows[0]["file"] == "Phantom_Synthetic/axial/1.dcm"
    assert rows[0]["Rows"] == "12" and rows[0]["PixelSpacing"] == "0.75\\0.5"
    assert rows[0]["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert len({row["SOPInstanceUID"] for row in rows}) == 5
