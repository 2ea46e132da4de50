"""DICOMweb through the real app: STOW-RS answers, QIDO-RS matching and paging, WADO-RS
negotiation, metadata from the database, and tenancy."""

from __future__ import annotations

import io
from dataclasses import dataclass

import httpx
import pytest
from pydicom import dcmread
from pydicom.encaps import get_frame
from pydicom.uid import RLELossless

from tests.api.dicomweb_helpers import (
    first,
    parts,
    pixel_frame,
    stow_body,
    stow_headers,
    values,
)
from tests.api.identity_fixtures import PROBLEM_MEDIA_TYPE, World
from tests.fixtures.imaging import synthetic_ct_series

CT = "1.2.840.10008.5.1.4.1.1.2"
JSON = {"Accept": "application/dicom+json"}


@dataclass
class Stored:
    world: World
    files: list[bytes]
    study: str
    series: str
    sops: list[str]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.world.client

    def url(self, n: int = 0) -> str:
        return f"/dicomweb/studies/{self.study}/series/{self.series}/instances/{self.sops[n]}"


async def stow(world: World, files: list[bytes], path: str = "/dicomweb/studies", **kw: str):
    headers = stow_headers(world.a.technician.headers)
    return await world.client.post(path, headers=headers, content=stow_body(files, **kw))


@pytest.fixture(scope="module")
async def stored(shared_world_on_each_database: World) -> Stored:
    """A CT series stored once per module and database; the tests using it only read."""
    world = shared_world_on_each_database
    series = synthetic_ct_series(slices=3, rows=8, columns=6)
    response = await stow(world, series.files)
    assert response.status_code == 200, response.text
    datasets = [dcmread(io.BytesIO(f)) for f in series.files]
    return Stored(
        world=world,
        files=series.files,
        study=datasets[0].StudyInstanceUID,
        series=datasets[0].SeriesInstanceUID,
        sops=[ds.SOPInstanceUID for ds in datasets],
    )


# -- STOW-RS --------------------------------------------------------------------------------


async def test_a_store_answers_the_referenced_instances_with_their_urls(world: World):
    series = synthetic_ct_series(slices=2)
    response = await stow(world, series.files)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/dicom+json")
    answer = response.json()
    referenced = values(answer, "00081199")
    uids = [dcmread(io.BytesIO(f)).SOPInstanceUID for f in series.files]
    assert [first(item, "00081155") for item in referenced] == uids
    assert all(first(item, "00081150") == CT for item in referenced)
    assert first(referenced[0], "00081190").endswith(f"/instances/{uids[0]}")
    assert "00081198" not in answer


async def test_parts_with_a_transfer_syntax_parameter_are_stored(world: World):
    series = synthetic_ct_series(slices=1)
    part_type = "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    response = await stow(world, series.files, part_type=part_type)
    assert response.status_code == 200
    assert len(values(response.json(), "00081199")) == 1


async def test_a_store_with_some_unreadable_parts_stores_the_rest_and_answers_202(world: World):
    series = synthetic_ct_series(slices=2)
    response = await stow(world, [series.files[0], b"not dicom at all", series.files[1]])
    assert response.status_code == 202
    answer = response.json()
    assert len(values(answer, "00081199")) == 2
    (failure,) = values(answer, "00081198")
    assert first(failure, "00081197") == 0xC000


async def test_a_store_where_nothing_can_be_stored_is_409_and_stores_nothing(world: World):
    response = await stow(world, [b"junk", b"\0" * 200])
    assert response.status_code == 409
    assert len(values(response.json(), "00081198")) == 2
    listed = await world.client.get("/api/v1/studies", headers=world.a.technician.headers)
    assert listed.json() == []


async def test_an_instance_of_another_study_than_the_url_names_fails(world: World):
    series = synthetic_ct_series(slices=1)
    response = await stow(world, series.files, path="/dicomweb/studies/1.2.3.4")
    assert response.status_code == 409
    (failure,) = values(response.json(), "00081198")
    assert first(failure, "00081197") == 0xA900
    assert first(failure, "00081155") == dcmread(io.BytesIO(series.files[0])).SOPInstanceUID


async def test_a_store_that_is_not_multipart_dicom_is_415(world: World):
    series = synthetic_ct_series(slices=1)
    response = await world.client.post(
        "/dicomweb/studies",
        headers={**world.a.technician.headers, "Content-Type": "application/dicom"},
        content=series.files[0],
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_a_radiologist_may_not_store_and_nobody_anonymous_may(world: World):
    series = synthetic_ct_series(slices=1)
    headers = stow_headers(world.a.radiologist.headers)
    refused = await world.client.post(
        "/dicomweb/studies", headers=headers, content=stow_body(series.files)
    )
    assert refused.status_code == 403
    anonymous = await world.client.get("/dicomweb/studies")
    assert anonymous.status_code == 401


# -- QIDO-RS --------------------------------------------------------------------------------


async def search(stored: Stored, path: str, member=None, **params: str) -> httpx.Response:
    who = member or stored.world.a.radiologist
    return await stored.client.get(path, headers={**who.headers, **JSON}, params=params)


@pytest.mark.parametrize(
    ("params", "found"),
    [
        ({"PatientID": "SYN-0001"}, True),
        ({"PatientID": "syn-0001"}, False),
        ({"PatientName": "phantom*"}, True),
        ({"00100010": "Phan?om^Synthetic"}, True),
        ({"PatientName": "Phantom"}, False),
        ({"StudyDate": "20260101-20260131"}, True),
        ({"StudyDate": "20260116-"}, False),
        ({"AccessionNumber": "ACC-1"}, True),
        ({"ModalitiesInStudy": "MR,CT"}, True),
        ({"ModalitiesInStudy": "MR"}, False),
        ({"StudyDescription": "*PHANTOM*"}, True),
    ],
)
async def test_study_searches_match_the_standard_keys(stored: Stored, params, found: bool):
    response = await search(stored, "/dicomweb/studies", **params)
    assert response.status_code == 200
    uids = [first(s, "0020000D") for s in response.json()]
    assert uids == ([stored.study] if found else [])


async def test_a_study_result_carries_the_default_attributes(stored: Stored):
    response = await search(stored, "/dicomweb/studies")
    (study,) = response.json()
    assert first(study, "00100010") == {"Alphabetic": "Phantom^Synthetic"}
    assert first(study, "00080020") == "20260115"
    assert values(study, "00080061") == ["CT"]
    assert (first(study, "00201206"), first(study, "00201208")) == (1, 3)
    assert first(study, "00081190").endswith(f"/dicomweb/studies/{stored.study}")
    assert "00100030" in study and "00280010" not in study
    assert response.headers["x-total-count"] == "1"


async def test_fuzzy_matching_finds_name_prefixes_and_says_so_in_a_warning(stored: Stored):
    response = await search(
        stored, "/dicomweb/studies", PatientName="synth phan", fuzzymatching="true"
    )
    assert [first(s, "0020000D") for s in response.json()] == [stored.study]
    assert response.headers["warning"].startswith("299 hounsfield")
    assert "Fuzzy matching" in response.headers["warning"]
    literal = await search(stored, "/dicomweb/studies", PatientName="synth phan")
    assert literal.json() == []
    assert "warning" not in literal.headers


async def test_keys_the_archive_cannot_match_on_are_named_in_a_warning(stored: Stored):
    response = await search(stored, "/dicomweb/studies", PatientBirthDate="19840229")
    assert len(response.json()) == 1
    assert "00100030" in response.headers["warning"]


async def test_includefield_adds_attributes_and_all_adds_the_whole_header(stored: Stored):
    some = (await search(stored, "/dicomweb/studies", includefield="PatientAge,00180050")).json()[0]
    assert first(some, "00101010") == "042Y"
    assert "00180050" in some
    everything = (await search(stored, "/dicomweb/studies", includefield="all")).json()[0]
    assert "00280030" in everything and "00200032" in everything
    assert "7FE00010" not in everything


async def test_series_and_instances_are_found_under_their_study_and_everywhere(stored: Stored):
    series = (await search(stored, f"/dicomweb/studies/{stored.study}/series")).json()
    assert [first(s, "0020000E") for s in series] == [stored.series]
    assert (first(series[0], "00080060"), first(series[0], "00201209")) == ("CT", 3)
    by_modality = (await search(stored, "/dicomweb/series", Modality="CT")).json()
    assert first(by_modality[0], "00100020") == "SYN-0001"  # study attributes at the top level
    instances = (
        await search(stored, f"/dicomweb/studies/{stored.study}/series/{stored.series}/instances")
    ).json()
    assert [first(i, "00080018") for i in instances] == stored.sops
    assert [first(i, "00200013") for i in instances] == [1, 2, 3]
    numbered = (await search(stored, "/dicomweb/instances", InstanceNumber="2")).json()
    assert [first(i, "00080018") for i in numbered] == [stored.sops[1]]
    by_class = (
        await search(stored, f"/dicomweb/studies/{stored.study}/instances", SOPClassUID=CT)
    ).json()
    assert len(by_class) == 3


async def test_limit_and_offset_page_with_the_total_in_a_header(stored: Stored):
    path = f"/dicomweb/studies/{stored.study}/instances"
    page = await search(stored, path, limit="2", offset="1")
    assert [first(i, "00080018") for i in page.json()] == stored.sops[1:3]
    assert page.headers["x-total-count"] == "3"


@pytest.mark.parametrize(
    "params",
    [
        {"StudyDate": "2026-13-45"},
        {"limit": "0"},
        {"offset": "-1"},
        {"NoSuchKeyword": "x"},
        {"StudyInstanceUID": "not-a-uid"},
        {"fuzzymatching": "maybe"},
    ],
)
async def test_bad_search_values_are_4xx_problems(stored: Stored, params):
    response = await search(stored, "/dicomweb/studies", **params)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_a_search_answers_only_json(stored: Stored):
    response = await stored.client.get(
        "/dicomweb/studies",
        headers={**stored.world.a.radiologist.headers, "Accept": "application/dicom+xml"},
    )
    assert response.status_code == 406


# -- WADO-RS --------------------------------------------------------------------------------


async def get(stored: Stored, path: str, accept: str | None = None, member=None) -> httpx.Response:
    who = member or stored.world.a.radiologist
    headers = {**who.headers, **({"Accept": accept} if accept else {})}
    return await stored.client.get(path, headers=headers)


async def test_instances_come_back_byte_identical_as_stored(stored: Stored):
    response = await get(
        stored, stored.url(1), 'multipart/related; type="application/dicom"; transfer-syntax=*'
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        'multipart/related; type="application/dicom"'
    )
    ((kind, body),) = parts(response.headers["content-type"], response.content)
    assert kind.startswith("application/dicom") and body == stored.files[1]
    study = await get(stored, f"/dicomweb/studies/{stored.study}", "*/*")
    assert [b for _, b in parts(study.headers["content-type"], study.content)] == stored.files


async def test_instances_in_a_transfer_syntax_they_are_not_stored_in_are_406(stored: Stored):
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}'
    assert (await get(stored, stored.url(), accept)).status_code == 406
    assert (await get(stored, stored.url(), "application/zip")).status_code == 406


async def test_metadata_is_the_stored_header_with_a_bulk_data_uri(stored: Stored):
    response = await get(
        stored, f"/dicomweb/studies/{stored.study}/metadata", "application/dicom+json"
    )
    assert response.status_code == 200
    headers = response.json()
    assert [first(h, "00080018") for h in headers] == stored.sops
    original = dcmread(io.BytesIO(stored.files[0]))
    assert first(headers[0], "00200013") == original.InstanceNumber
    pixel = headers[0]["7FE00010"]
    assert pixel["vr"] == "OW"
    assert pixel["BulkDataURI"] == f"http://testserver{stored.url(0)}/bulkdata/7FE00010"
    bulk = await get(stored, pixel["BulkDataURI"].removeprefix("http://testserver"))
    assert parts(bulk.headers["content-type"], bulk.content)[0][1] == original.PixelData


async def test_frames_come_back_as_stored_uncompressed(stored: Stored):
    response = await get(
        stored, stored.url(2) + "/frames/1", 'multipart/related; type="application/octet-stream"'
    )
    assert response.status_code == 200
    ((kind, body),) = parts(response.headers["content-type"], response.content)
    assert kind == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert body == pixel_frame(stored.files[2], 1)


async def test_frames_that_do_not_exist_or_cannot_be_produced_are_refused(stored: Stored):
    missing = await get(stored, stored.url() + "/frames/2")
    assert missing.status_code == 422
    bad = await get(stored, stored.url() + "/frames/x")
    assert bad.status_code == 422
    for digits in ("²", "1,³", "\u0661"):  # digits to str.isdigit(), not frame numbers
        unicode_digit = await get(stored, stored.url() + f"/frames/{digits}")
        assert unicode_digit.status_code == 422, (digits, unicode_digit.text)
    jpeg = await get(stored, stored.url() + "/frames/1", 'multipart/related; type="image/jpeg"')
    assert jpeg.status_code == 406


async def test_rendered_instances_are_jpeg_by_default_or_png(stored: Stored):
    jpeg = await get(stored, stored.url() + "/rendered")
    assert (jpeg.status_code, jpeg.headers["content-type"]) == (200, "image/jpeg")
    assert jpeg.content[:3] == b"\xff\xd8\xff"
    png = await get(stored, stored.url() + "/frames/1/rendered?window=40,400", "image/png")
    assert (png.status_code, png.content[:4]) == (200, b"\x89PNG")
    assert (await get(stored, stored.url() + "/rendered", "image/gif")).status_code == 406


async def test_another_centre_finds_nothing_and_gets_404(stored: Stored):
    other = stored.world.b.radiologist
    assert (await search(stored, "/dicomweb/studies", member=other)).json() == []
    assert (await search(stored, "/dicomweb/instances", member=other)).json() == []
    for path in (
        f"/dicomweb/studies/{stored.study}",
        f"/dicomweb/studies/{stored.study}/metadata",
        stored.url(),
        stored.url() + "/frames/1",
        stored.url() + "/rendered",
    ):
        response = await get(stored, path, member=other)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE


async def test_an_admin_sees_every_centre(stored: Stored):
    response = await search(stored, "/dicomweb/studies", member=stored.world.admin)
    assert [first(s, "0020000D") for s in response.json()] == [stored.study]


async def test_the_same_study_in_two_centres_stays_apart(world: World):
    series = synthetic_ct_series(slices=3)
    study = dcmread(io.BytesIO(series.files[0])).StudyInstanceUID
    assert (await stow(world, series.files)).status_code == 200
    headers = stow_headers(world.b.technician.headers)
    again = await world.client.post(
        "/dicomweb/studies", headers=headers, content=stow_body(series.files[:1])
    )
    assert again.status_code == 200
    path = f"/dicomweb/studies/{study}/instances"
    counts = []
    for member in (world.a.radiologist, world.b.radiologist):
        found = await world.client.get(path, headers={**member.headers, **JSON})
        counts.append(len(found.json()))
    assert counts == [3, 1]


# -- transfer syntaxes ----------------------------------------------------------------------


def reencoded(data: bytes, syntax: str) -> bytes:
    ds = dcmread(io.BytesIO(data))
    if syntax == str(RLELossless):
        ds.compress(RLELossless)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()
    ds.file_meta.TransferSyntaxUID = syntax
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return out.getvalue()


async def stored_as(world: World, syntax: str) -> tuple[bytes, bytes, str]:
    """(original explicit VR file, the stored re-encoded file, its instance URL)."""
    original = synthetic_ct_series(slices=1, rows=8, columns=6).files[0]
    data = reencoded(original, syntax)
    assert (await stow(world, [data])).status_code == 200
    ds = dcmread(io.BytesIO(data))
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    return original, data, url


async def test_instances_stored_in_implicit_vr_are_re_encoded_unless_any_syntax_is_accepted(
    world: World,
):
    original, data, url = await stored_as(world, "1.2.840.10008.1.2")
    headers = world.a.radiologist.headers
    plain = await world.client.get(
        url, headers={**headers, "Accept": 'multipart/related; type="application/dicom"'}
    )
    ((kind, body),) = parts(plain.headers["content-type"], plain.content)
    assert kind == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    explicit = dcmread(io.BytesIO(body))
    assert explicit.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert explicit.PixelData == dcmread(io.BytesIO(original)).PixelData
    anything = await world.client.get(
        url,
        headers={
            **headers,
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
    )
    assert parts(anything.headers["content-type"], anything.content)[0][1] == data


async def test_compressed_frames_come_as_stored_or_decoded(world: World):
    original, data, url = await stored_as(world, str(RLELossless))
    headers = world.a.radiologist.headers
    as_stored = await world.client.get(url + "/frames/1", headers={**headers, "Accept": "*/*"})
    ((kind, body),) = parts(as_stored.headers["content-type"], as_stored.content)
    assert kind == f"image/dicom-rle; transfer-syntax={RLELossless}"
    assert body == get_frame(dcmread(io.BytesIO(data)).PixelData, 0, number_of_frames=1)
    decoded = await world.client.get(
        url + "/frames/1",
        headers={**headers, "Accept": 'multipart/related; type="application/octet-stream"'},
    )
    ((kind, body),) = parts(decoded.headers["content-type"], decoded.content)
    assert kind == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert body == pixel_frame(original, 1)
    metadata = await world.client.get(url + "/metadata", headers=headers)
    assert metadata.json()[0]["7FE00010"]["vr"] == "OB"


# -- de-identification at ingest --------------------------------------------------------------


async def test_a_centre_that_deidentifies_at_ingest_stores_stow_parts_de_identified(world: World):
    turned_on = await world.client.patch(
        f"/api/v1/centres/{world.a.id}",
        headers=world.a.manager.headers,
        json={"deidentify_at_ingest": True},
    )
    assert turned_on.status_code == 200, turned_on.text
    series = synthetic_ct_series(slices=2)
    sent = [dcmread(io.BytesIO(f)) for f in series.files]
    response = await stow(world, series.files, path=f"/dicomweb/studies/{sent[0].StudyInstanceUID}")
    assert response.status_code == 200, response.text
    referenced = values(response.json(), "00081199")
    new_uids = [first(item, "00081155") for item in referenced]
    assert not set(new_uids) & {ds.SOPInstanceUID for ds in sent}
    url = first(referenced[0], "00081190").removeprefix("http://testserver")
    retrieved = await world.client.get(
        url, headers={**world.a.radiologist.headers, "Accept": "*/*"}
    )
    ((_, body),) = parts(retrieved.headers["content-type"], retrieved.content)
    stored = dcmread(io.BytesIO(body))
    assert stored.PatientIdentityRemoved == "YES"
    assert b"Phantom" not in body
    assert stored.StudyInstanceUID != sent[0].StudyInstanceUID


async def test_a_retrieve_whose_first_file_is_missing_is_a_404_before_anything_is_sent(
    world: World,
):
    series = synthetic_ct_series(slices=2)
    first_sent = dcmread(io.BytesIO(series.files[0]))
    assert (await stow(world, series.files)).status_code == 200
    container = world.served.container
    async with container.uow_factory() as uow:
        instance = await uow.instances.get_by_uid(world.a.id, first_sent.SOPInstanceUID)
    assert instance is not None
    await container.blob_store.delete(instance.storage_key)
    response = await world.client.get(
        f"/dicomweb/studies/{first_sent.StudyInstanceUID}",
        headers={**world.a.radiologist.headers, "Accept": "*/*"},
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
