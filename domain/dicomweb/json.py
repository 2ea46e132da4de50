"""DICOM JSON (PS3.18 F.2) read models of QIDO-RS answers and WADO-RS metadata.

Study attributes come from the archive's ``studies`` row (what searches match, including
corrections made at upload), the rest from the stored header of a representative instance.
Every object is keyed by 8-hex-digit tags in ascending order.
"""

from __future__ import annotations

from datetime import date

from domain.ports.dicomweb import InstanceMatch, SeriesMatch, StudyMatch
from domain.studies import Instance, Study

DicomJson = dict[str, object]

PIXEL_DATA_TAG = "7FE00010"
NATIVE_TRANSFER_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian
    }
)

# Attributes copied from the representative header at each level (PS3.18 Table 10.6.3-3..5)
STUDY_HEADER_TAGS = ("00080005", "00080030", "00080090", "00200010")
SERIES_HEADER_TAGS = ("00080021", "00080031", "00400244", "00400245", "00180015")
INSTANCE_HEADER_TAGS = ("00280100", "00280101", "00280004", "00080008", "00200032", "00200037")


def element(vr: str, *values: object) -> DicomJson:
    present = [v for v in values if v is not None]
    return {"vr": vr, "Value": present} if present else {"vr": vr}


def person(name: str | None) -> DicomJson:
    return element("PN", None if name is None else {"Alphabetic": name})


def dicom_date(day: date | None) -> str | None:
    return None if day is None else day.strftime("%Y%m%d")


def _copy(header: dict[str, object], tags: tuple[str, ...]) -> DicomJson:
    return {tag: header[tag] for tag in tags if tag in header}


def _included(header: dict[str, object], include: tuple[str, ...], include_all: bool) -> DicomJson:
    if include_all:
        return {tag: value for tag, value in header.items() if tag != PIXEL_DATA_TAG}
    return _copy(header, include)


def _sorted(attributes: DicomJson) -> DicomJson:
    return dict(sorted(attributes.items()))


class Urls:
    """RetrieveURLs (0008,1190) under the DICOMweb root, e.g. ``https://host/dicomweb``."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def study(self, study_uid: str) -> str:
        return f"{self.root}/studies/{study_uid}"

    def series(self, study_uid: str, series_uid: str) -> str:
        return f"{self.study(study_uid)}/series/{series_uid}"

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        return f"{self.series(study_uid, series_uid)}/instances/{sop_uid}"


def study_attributes(study: Study) -> DicomJson:
    """The study-level attributes the archive's row holds."""
    patient = study.patient
    return {
        "00080020": element("DA", dicom_date(study.study_date)),
        "00080050": element("SH", study.accession_number),
        "00081030": element("LO", study.description),
        "00100010": person(patient.name),
        "00100020": element("LO", patient.patient_id),
        "00100030": element("DA", dicom_date(patient.birth_date)),
        "00100040": element("CS", None if patient.sex is None else patient.sex.value),
        "0020000D": element("UI", study.study_instance_uid),
    }


def study_result(
    match: StudyMatch, urls: Urls, include: tuple[str, ...] = (), include_all: bool = False
) -> DicomJson:
    header = match.header
    study = match.study
    attributes = _included(header, include, include_all)
    attributes |= _copy(header, STUDY_HEADER_TAGS)
    attributes |= study_attributes(study)
    attributes |= {
        "00080056": element("CS", "ONLINE"),
        "00080061": element("CS", *match.modalities),
        "00081190": element("UR", urls.study(study.study_instance_uid)),
        "00201206": element("IS", match.series_count),
        "00201208": element("IS", match.instance_count),
    }
    return _sorted(attributes)


def series_result(
    match: SeriesMatch,
    urls: Urls,
    include: tuple[str, ...] = (),
    include_all: bool = False,
    *,
    with_study: bool = False,
) -> DicomJson:
    header, series, study = match.header, match.series, match.study
    attributes = _included(header, include, include_all)
    attributes |= _copy(header, (*SERIES_HEADER_TAGS, "00080005", "00080060"))
    if with_study:
        attributes |= _copy(header, STUDY_HEADER_TAGS) | study_attributes(study)
    attributes |= {
        "00080056": element("CS", "ONLINE"),
        "0008103E": element("LO", series.description),
        "00081190": element(
            "UR", urls.series(study.study_instance_uid, series.series_instance_uid)
        ),
        "0020000D": element("UI", study.study_instance_uid),
        "0020000E": element("UI", series.series_instance_uid),
        "00200011": element("IS", series.series_number),
        "00201209": element("IS", match.instance_count),
    }
    return _sorted(attributes)


def instance_header_tags(
    include: tuple[str, ...], *, with_study: bool, with_series: bool
) -> tuple[str, ...]:
    """The header elements :func:`instance_result` may read (what a search must fetch)."""
    tags = [*include, *INSTANCE_HEADER_TAGS, "00080005"]
    if with_study:
        tags += STUDY_HEADER_TAGS
    if with_series:
        tags += [*SERIES_HEADER_TAGS, "00080060"]
    return tuple(dict.fromkeys(tags))


def instance_result(
    match: InstanceMatch,
    urls: Urls,
    include: tuple[str, ...] = (),
    include_all: bool = False,
    *,
    with_study: bool = False,
    with_series: bool = False,
) -> DicomJson:
    instance, series, study = match.instance, match.series, match.study
    header = instance.header
    attributes = _included(header, include, include_all)
    attributes |= _copy(header, (*INSTANCE_HEADER_TAGS, "00080005"))
    if with_study:
        attributes |= _copy(header, STUDY_HEADER_TAGS) | study_attributes(study)
    if with_series:
        attributes |= _copy(header, (*SERIES_HEADER_TAGS, "00080060"))
        attributes["0008103E"] = element("LO", series.description)
        attributes["00200011"] = element("IS", series.series_number)
    attributes |= {
        "00080016": element("UI", instance.sop_class_uid),
        "00080018": element("UI", instance.sop_instance_uid),
        "00080056": element("CS", "ONLINE"),
        "00081190": element(
            "UR",
            urls.instance(
                study.study_instance_uid, series.series_instance_uid, instance.sop_instance_uid
            ),
        ),
        "0020000D": element("UI", study.study_instance_uid),
        "0020000E": element("UI", series.series_instance_uid),
        "00200013": element("IS", instance.instance_number),
        "00280008": element("IS", instance.number_of_frames),
        "00280010": element("US", instance.rows),
        "00280011": element("US", instance.columns),
    }
    return _sorted(attributes)


def metadata(match: InstanceMatch, urls: Urls) -> DicomJson:
    """WADO-RS metadata of one instance: its stored header, with a BulkDataURI for the pixel
    data that ingest left out of it (PS3.18 8.7.3.3)."""
    instance = match.instance
    attributes: DicomJson = dict(instance.header)
    if has_pixels(instance):
        location = urls.instance(
            match.study.study_instance_uid,
            match.series.series_instance_uid,
            instance.sop_instance_uid,
        )
        attributes[PIXEL_DATA_TAG] = {
            "vr": pixel_data_vr(instance),
            "BulkDataURI": f"{location}/bulkdata/{PIXEL_DATA_TAG}",
        }
    return _sorted(attributes)


def has_pixels(instance: Instance) -> bool:
    return instance.content_type == "application/dicom" and instance.rows is not None


def pixel_data_vr(instance: Instance) -> str:
    """``OW`` for native pixel data deeper than 8 bits, else ``OB`` (PS3.5 8.2)."""
    if instance.transfer_syntax_uid not in NATIVE_TRANSFER_SYNTAXES:
        return "OB"
    bits = instance.header.get("00280100")
    values = bits.get("Value") if isinstance(bits, dict) else None
    depth = values[0] if isinstance(values, list) and values else 16
    return "OW" if isinstance(depth, int) and depth > 8 else "OB"
