"""Deidentifier contract (PS3.15 Annex E Basic Profile), run against every adapter.

The identifying dataset carries every attribute of Table E.1-1 that pydicom's dictionary
knows, each with a value that is unique to it, at the top level and again two sequences deep,
plus private attributes at both levels. After de-identification no such value may be left in
the output bytes, and every listed attribute still present is empty, a dummy or a replaced
UID. pydicom's own test files never make the de-identifier fail other than with a reason.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, generate_uid

from adapters.dicom.confidentiality_profile import PROFILE, rule_for
from adapters.dicom.deidentify import DUMMY_DATE, DUMMY_TEXT, PydicomDeidentifier, shift_date
from domain.deidentification import (
    ChangeTally,
    DateHandling,
    DeidentificationOptions,
    DeidentificationPlan,
    ProfileAction,
)
from domain.errors import InvalidInput
from domain.ports.deidentification import Deidentifier
from tests.fixtures.imaging import synthetic_ct_series, to_bytes

ADAPTERS = [pytest.param(PydicomDeidentifier, id="pydicom")]
PYDICOM_FILES = sorted(Path(f) for f in get_testdata_files() if Path(f).is_file())
PYDICOM_ROOT = Path(get_testdata_files("CT_small.dcm")[0]).parent
NESTING = (0x00081115, 0x0008114A)
"""ReferencedSeriesSequence > ReferencedInstanceSequence: not in the table, so kept, and the
profile must still reach the attributes inside them."""
STUDY_DATE = "20260115"


@pytest.fixture(params=ADAPTERS)
def deidentifier(request: pytest.FixtureRequest) -> Deidentifier:
    adapter: Deidentifier = request.param()
    return adapter


def plan(**options: object) -> DeidentificationPlan:
    return DeidentificationPlan.fresh(msgspec.convert(options, DeidentificationOptions))


def read(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def walk(ds: Dataset) -> Iterator[tuple[int, object, str]]:
    """Every element at every depth: (tag, value, VR)."""
    for element in ds:
        yield int(element.tag), element.value, element.VR
        if element.VR == "SQ":
            for item in element.value or ():
                yield from walk(item)


# -- the identifying dataset ---------------------------------------------------------------


def marker(tag: int, depth: int) -> str:
    return f"M{tag:08X}D{depth}"


def sample_value(tag: int, vr: str, depth: int) -> object | None:
    """A value of ``vr`` that contains :func:`marker` where the VR can hold it."""
    text = marker(tag, depth)
    if vr in ("LO", "LT", "ST", "UT", "UC", "SH", "AE"):
        return text
    if vr == "CS":
        return text.upper()
    if vr == "PN":
        return f"{text}^Given"
    if vr == "UI":
        return f"1.2.826.0.1.3680043.10.1.{tag}.{depth}"
    if vr == "DA":
        return STUDY_DATE
    if vr == "DT":
        return STUDY_DATE + "101500"
    if vr == "TM":
        return "101500"
    if vr in ("DS", "IS"):
        return "7"
    if vr == "AS":
        return "045Y"
    if vr in ("US", "SS", "UL", "SL"):
        return 7
    if vr in ("OB", "UN"):
        return text.encode()
    if vr == "UR":
        return f"http://example.org/{text}"
    if vr == "SQ":
        item = Dataset()
        item.PatientName = marker(tag, depth) + "^Nested"
        return Sequence([item])
    return None


def identifying_level(ds: Dataset, depth: int) -> None:
    for tag in PROFILE:
        if tag >> 16 < 0x0008 or tag in NESTING:
            continue
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            continue  # newer than pydicom's dictionary
        value = sample_value(tag, vr, depth)
        if value is not None:
            ds.add_new(tag, vr, value)
    ds.add_new(0x60003000, "OW", marker(0x60003000, depth).encode())  # overlay data, 60xx
    ds.add_new(0x60004000, "LT", marker(0x60004000, depth))  # overlay comments
    ds.private_block(0x0009, "ACME 1.1", create=True).add_new(0x01, "LO", f"PRIVATE{depth}")


def identifying_dataset() -> Dataset:
    base = read(synthetic_ct_series(slices=1).files[0])
    identifying_level(base, 0)
    inner = Dataset()
    identifying_level(inner, 2)
    outer = Dataset()
    outer.ReferencedInstanceSequence = Sequence([inner])
    outer.SeriesInstanceUID = base.SeriesInstanceUID
    base.ReferencedSeriesSequence = Sequence([outer])
    base.SOPClassUID = CTImageStorage
    return base


# -- the profile's attributes ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_no_identifying_value_of_the_profile_survives_at_any_depth(
    deidentifier: Deidentifier,
) -> None:
    original = to_bytes(identifying_dataset())
    assert marker(0x00100010, 2).encode() in original  # the test plants what it looks for

    out = deidentifier.deidentify(original, plan())

    for tag in PROFILE:
        for depth in (0, 2):
            assert marker(tag, depth).encode() not in out.data, f"{tag:08X} at depth {depth}"
    for depth in (0, 2):
        assert marker(0x60003000, depth).encode() not in out.data
        assert f"PRIVATE{depth}".encode() not in out.data
    assert b"1.2.826.0.1.3680043.10.1." not in out.data


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_listed_attribute_left_is_empty_a_dummy_or_a_new_uid(
    deidentifier: Deidentifier,
) -> None:
    out = read(deidentifier.deidentify(to_bytes(identifying_dataset()), plan()).data)

    found = 0
    for tag, value, vr in walk(out):
        rule = rule_for(tag)
        if rule is None:
            continue
        found += 1
        if vr == "SQ":
            assert rule == "X/Z/U*" or not value, f"{tag:08X} kept items"
        elif tag == 0x00100020:  # PatientID: a pseudonym per patient and run
            assert str(value).startswith("ANON")
        elif vr == "UI":
            assert value in (None, "") or str(value).startswith("2.25."), f"{tag:08X}"
        else:
            assert value in (None, "", b"", 0, "0", DUMMY_TEXT, DUMMY_DATE, "000000") or (
                vr in ("DT", "AS") or (isinstance(value, bytes) and not value.strip(b"\x00"))
            ), f"{tag:08X} {vr} kept {value!r}"
            if vr == "DT":
                assert value in (None, "") or str(value).startswith(DUMMY_DATE)
    assert found > 100  # the Z and D attributes stay, emptied or dummied, at both depths
    assert not [tag for tag, _, _ in walk(out) if (tag >> 16) % 2 == 1]


def test_the_output_records_the_method_and_opens_in_pydicom(deidentifier: Deidentifier) -> None:
    source = synthetic_ct_series(slices=1).files[0]

    out = read(deidentifier.deidentify(source, plan(dates="shift", retain_uids=True)).data)

    assert out.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113110"]
    assert all(
        item.CodingSchemeDesignator == "DCM" for item in out.DeidentificationMethodCodeSequence
    )
    assert out.DeidentificationMethod
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert out.pixel_array.shape == (12, 10)
    assert out.PatientName == ""
    assert "PatientAge" not in out


# -- UIDs --------------------------------------------------------------------------------------


def referencing_dataset(series_files: list[bytes]) -> Dataset:
    """A derived instance in a second series that points at every slice of the first."""
    first = [read(data) for data in series_files]
    ds = read(series_files[0])
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    items = []
    for slice_ds in first:
        item = Dataset()
        item.ReferencedSOPClassUID = slice_ds.SOPClassUID
        item.ReferencedSOPInstanceUID = slice_ds.SOPInstanceUID
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    ds.SourceImageSequence = Sequence([items[0]])
    series_item = Dataset()
    series_item.SeriesInstanceUID = first[0].SeriesInstanceUID
    series_item.ReferencedInstanceSequence = Sequence(items[1:])
    ds.ReferencedSeriesSequence = Sequence([series_item])
    return ds


def test_uids_are_replaced_consistently_across_a_study_and_its_references(
    deidentifier: Deidentifier,
) -> None:
    series = synthetic_ct_series(slices=3)
    derived = to_bytes(referencing_dataset(series.files))
    run = plan()

    slices = [read(deidentifier.deidentify(data, run).data) for data in series.files]
    ref = read(deidentifier.deidentify(derived, run).data)

    new_sops = [s.SOPInstanceUID for s in slices]
    assert len(set(new_sops)) == 3
    assert not set(new_sops) & set(series.sop_instance_uids)
    assert {s.StudyInstanceUID for s in slices} == {ref.StudyInstanceUID}
    assert ref.StudyInstanceUID != series.study_instance_uid
    assert len({s.SeriesInstanceUID for s in slices}) == 1
    assert ref.SeriesInstanceUID != slices[0].SeriesInstanceUID
    assert len({s.FrameOfReferenceUID for s in slices}) == 1
    for s in [*slices, ref]:
        assert s.file_meta.MediaStorageSOPInstanceUID == s.SOPInstanceUID
        assert s.SOPClassUID == CTImageStorage
        assert s.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert [i.ReferencedSOPInstanceUID for i in ref.ReferencedImageSequence] == new_sops
    assert ref.SourceImageSequence[0].ReferencedSOPInstanceUID == new_sops[0]
    nested = ref.ReferencedSeriesSequence[0]
    assert nested.SeriesInstanceUID == slices[0].SeriesInstanceUID
    assert [i.ReferencedSOPInstanceUID for i in nested.ReferencedInstanceSequence] == new_sops[1:]
    assert all(i.ReferencedSOPClassUID == CTImageStorage for i in ref.ReferencedImageSequence)


def test_two_runs_give_the_same_file_different_uids(deidentifier: Deidentifier) -> None:
    source = synthetic_ct_series(slices=1).files[0]

    first = read(deidentifier.deidentify(source, plan()).data)
    second = read(deidentifier.deidentify(source, plan()).data)

    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_the_retain_uids_option_keeps_every_uid(deidentifier: Deidentifier) -> None:
    series = synthetic_ct_series(slices=1)

    out = read(deidentifier.deidentify(series.files[0], plan(retain_uids=True)).data)

    assert out.SOPInstanceUID == series.sop_instance_uids[0]
    assert out.StudyInstanceUID == series.study_instance_uid
    assert out.file_meta.MediaStorageSOPInstanceUID == series.sop_instance_uids[0]
    assert out.PatientName == ""


# -- dates --------------------------------------------------------------------------------------


def dated(files: list[bytes]) -> bytes:
    ds = read(files[0])
    ds.AcquisitionDateTime = "20260115101500.25"
    ds.SeriesDate = "20260114"
    ds.StudyTime = "101500"
    return to_bytes(ds)


def test_dates_are_removed_by_default(deidentifier: Deidentifier) -> None:
    out = read(deidentifier.deidentify(dated(synthetic_ct_series(slices=1).files), plan()).data)

    assert out.StudyDate == ""
    assert out.SeriesDate == DUMMY_DATE
    assert str(out.AcquisitionDateTime).startswith(DUMMY_DATE)
    assert out.PatientBirthDate == ""
    assert out.LongitudinalTemporalInformationModified == "REMOVED"


def test_dates_kept_with_the_full_dates_option_except_the_birth_date(
    deidentifier: Deidentifier,
) -> None:
    out = read(
        deidentifier.deidentify(dated(synthetic_ct_series(slices=1).files), plan(dates="keep")).data
    )

    assert (out.StudyDate, out.SeriesDate, out.StudyTime) == (STUDY_DATE, "20260114", "101500")
    assert out.AcquisitionDateTime == "20260115101500.25"
    assert out.PatientBirthDate == ""


def test_every_date_of_a_run_moves_by_the_same_offset(deidentifier: Deidentifier) -> None:
    run = plan(dates="shift", date_shift_days=-400)

    out = read(deidentifier.deidentify(dated(synthetic_ct_series(slices=1).files), run).data)

    assert out.StudyDate == "20241211"
    assert out.SeriesDate == "20241210"
    assert out.AcquisitionDateTime == "20241211101500.25"
    assert out.StudyTime == "101500"
    assert out.PatientBirthDate == ""


def test_a_random_offset_is_the_same_for_every_file_of_a_run(deidentifier: Deidentifier) -> None:
    series = synthetic_ct_series(slices=2)
    run = plan(dates="shift")

    dates = {read(deidentifier.deidentify(f, run).data).StudyDate for f in series.files}

    assert dates == {shift_date(STUDY_DATE, run.date_shift_days)}
    assert run.date_shift_days != 0


# -- the report ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_changes_name_tags_and_actions_and_never_a_value(deidentifier: Deidentifier) -> None:
    out = deidentifier.deidentify(to_bytes(identifying_dataset()), plan())
    tally = ChangeTally()
    tally.merge(out.changes)

    report = tally.report(DeidentificationOptions())
    encoded = msgspec.json.encode(report)

    assert (
        b"M0010" not in encoded
        and b"PRIVATE" not in encoded
        and b"1.2.826.0.1.3680043.10" not in encoded
    )
    by_key = {(c.tag, c.action): c for c in report.changes}
    # both levels, and the item planted in each X/Z/U* sequence (kept, items cleaned) there
    assert by_key[("0010,0010", ProfileAction.EMPTIED)].count == 2 + 2 * 2
    assert by_key[("0010,0010", ProfileAction.EMPTIED)].keyword == "PatientName"
    assert by_key[("0008,0018", ProfileAction.UID_REPLACED)].rule == "U"
    assert by_key[("0009,1001", ProfileAction.PRIVATE_REMOVED)].count == 2
    assert by_key[("0012,0062", ProfileAction.ADDED)].count == 1
    assert report.files == 1


def test_burned_in_annotation_is_reported_as_a_warning(deidentifier: Deidentifier) -> None:
    ds = read(synthetic_ct_series(slices=1).files[0])
    ds.BurnedInAnnotation = "YES"

    out = deidentifier.deidentify(to_bytes(ds), plan())

    assert any("BurnedInAnnotation" in w for w in out.warnings)


# -- robustness ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("data", [b"", b"not dicom at all", b"\x00" * 128 + b"DICM" + b"\xff" * 20])
def test_bytes_that_are_not_dicom_are_refused_with_a_reason(
    deidentifier: Deidentifier, data: bytes
) -> None:
    with pytest.raises(InvalidInput):
        deidentifier.deidentify(data, plan())


@pytest.mark.parametrize(
    "path", PYDICOM_FILES, ids=[str(p.relative_to(PYDICOM_ROOT)) for p in PYDICOM_FILES]
)
def test_each_pydicom_file_is_deidentified_or_refused_with_a_reason(
    deidentifier: Deidentifier, path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = deidentifier.deidentify(path.read_bytes(), plan())
        except InvalidInput as err:
            assert err.detail
            return
        ds = read(out.data)
        assert ds.PatientIdentityRemoved == "YES"
        assert not [tag for tag, _, _ in walk(ds) if (tag >> 16) % 2 == 1]
        assert str(ds.get("PatientName", "")) == ""


def test_most_pydicom_files_are_deidentified(deidentifier: Deidentifier) -> None:
    done = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in PYDICOM_FILES:
            try:
                deidentifier.deidentify(path.read_bytes(), plan())
                done += 1
            except InvalidInput:
                pass
    assert done >= 150  # of about 176; the others are JSON, dumps, READMEs, broken headers


def test_date_shift_options_are_validated() -> None:
    with pytest.raises(ValueError, match="only meaningful"):
        DeidentificationOptions(dates=DateHandling.KEEP, date_shift_days=3)
    with pytest.raises(ValueError, match="outside"):
        DeidentificationOptions(dates=DateHandling.SHIFT, date_shift_days=50_000)


def test_patient_ids_become_one_pseudonym_per_patient_within_a_run(
    deidentifier: Deidentifier,
) -> None:
    first, second = (read(synthetic_ct_series(slices=1).files[0]) for _ in range(2))
    second.PatientID = "SYN-0002"
    run = plan()

    one = read(deidentifier.deidentify(to_bytes(first), run).data).PatientID
    again = read(deidentifier.deidentify(to_bytes(first), run).data).PatientID
    other = read(deidentifier.deidentify(to_bytes(second), run).data).PatientID
    next_run = read(deidentifier.deidentify(to_bytes(first), plan()).data).PatientID

    assert one == again != other
    assert one != next_run
    assert "SYN" not in one + other and one.startswith("ANON")
