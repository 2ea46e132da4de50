"""WADO-RS reads of a study that two centres hold, each its own copy under the same UIDs: an
admin names the centre with ``?centre_id=`` (409 otherwise), a centre's staff read their own
copy, and naming another centre is answered as an unknown UID."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from pydicom import dcmread

from tests.api.dicomweb_helpers import first, parts, stow_body, stow_headers
from tests.api.identity_fixtures import Member, World, assert_problem
from tests.fixtures.imaging import synthetic_ct_series

DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'
JSON = "application/dicom+json"
B_DESCRIPTION = "Centre B's copy"
COMPARED = ("type", "title", "status", "detail")
"""What a problem document says (its request_id differs from one request to the next)."""


@dataclass
class TwoCopies:
    """One study stored in centre A (three instances) and in centre B (the first two, with
    another StudyDescription, so that B's bytes differ from A's)."""

    world: World
    a_files: list[bytes]
    b_files: list[bytes]
    study: str
    series: str
    sops: list[str]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.world.client

    @property
    def admin(self) -> Member:
        return self.world.admin

    def instance_url(self, n: int = 0) -> str:
        return f"/dicomweb/studies/{self.study}/series/{self.series}/instances/{self.sops[n]}"

    def wado_paths(self) -> list[str]:
        """One path per WADO-RS route, each naming an instance both centres hold."""
        study = f"/dicomweb/studies/{self.study}"
        series = f"{study}/series/{self.series}"
        instance = self.instance_url()
        return [
            study,
            f"{study}/metadata",
            series,
            f"{series}/metadata",
            instance,
            f"{instance}/metadata",
            f"{instance}/frames/1",
            f"{instance}/bulkdata/7FE00010",
            f"{instance}/rendered",
            f"{instance}/frames/1/rendered",
        ]


def described(files: list[bytes], description: str) -> list[bytes]:
    out = []
    for data in files:
        dataset = dcmread(io.BytesIO(data))
        dataset.StudyDescription = description
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


async def stow(world: World, member: Member, files: list[bytes]) -> None:
    response = await world.client.post(
        "/dicomweb/studies", headers=stow_headers(member.headers), content=stow_body(files)
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def copies(shared_world_on_each_database: World) -> TwoCopies:
    world = shared_world_on_each_database
    a_files = synthetic_ct_series(slices=3, rows=8, columns=6).files
    b_files = described(a_files[:2], B_DESCRIPTION)
    await stow(world, world.a.technician, a_files)
    await stow(world, world.b.technician, b_files)
    datasets = [dcmread(io.BytesIO(f)) for f in a_files]
    return TwoCopies(
        world=world,
        a_files=a_files,
        b_files=b_files,
        study=datasets[0].StudyInstanceUID,
        series=datasets[0].SeriesInstanceUID,
        sops=[ds.SOPInstanceUID for ds in datasets],
    )


async def get(
    copies: TwoCopies, path: str, member: Member, accept: str = "*/*", **params: str
) -> httpx.Response:
    headers = {**member.headers, "Accept": accept}
    return await copies.client.get(path, headers=headers, params=params)


async def admin_study_reads(copies: TwoCopies) -> list[dict[str, Any]]:
    """The admin's ``study.read`` audit records, newest first."""
    response = await copies.client.get(
        "/api/v1/audit",
        params={"actor": str(copies.admin.id), "resource": "study", "limit": "1000"},
        headers=copies.admin.headers,
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["action"] == "study.read"]


def part_bodies(response: httpx.Response) -> list[bytes]:
    assert response.status_code == 200, response.text
    return [body for _, body in parts(response.headers["content-type"], response.content)]


async def test_an_admin_who_names_no_centre_gets_409_on_every_wado_route(copies: TwoCopies):
    before = await admin_study_reads(copies)
    for path in copies.wado_paths():
        response = await get(copies, path, copies.admin)
        problem = assert_problem(response, 409)
        assert "held by 2 centres" in problem["detail"], path
        assert "?centre_id=" in problem["detail"], path
        assert str(copies.world.a.id) in problem["detail"], path
        assert str(copies.world.b.id) in problem["detail"], path
    assert await admin_study_reads(copies) == before, "a refused read was audited"


async def test_an_admin_naming_a_centre_gets_exactly_that_centre_s_copy(copies: TwoCopies):
    path = f"/dicomweb/studies/{copies.study}"
    a = await get(copies, path, copies.admin, DICOM_ANY, centre_id=str(copies.world.a.id))
    assert part_bodies(a) == copies.a_files
    (read,) = (await admin_study_reads(copies))[:1]
    assert read["centre_id"] == str(copies.world.a.id)
    assert read["detail"] == "dicomweb file: 3 instance(s)"

    b = await get(copies, path, copies.admin, DICOM_ANY, centre_id=str(copies.world.b.id))
    assert part_bodies(b) == copies.b_files
    (read,) = (await admin_study_reads(copies))[:1]
    assert read["centre_id"] == str(copies.world.b.id)


async def test_an_admin_s_metadata_names_one_copy_and_its_bulk_data_the_same(copies: TwoCopies):
    path = f"/dicomweb/studies/{copies.study}/metadata"
    centre = str(copies.world.a.id)
    response = await get(copies, path, copies.admin, JSON, centre_id=centre)
    assert response.status_code == 200, response.text
    headers = response.json()
    assert [first(h, "00080018") for h in headers] == copies.sops
    assert {first(h, "00081030") for h in headers} != {B_DESCRIPTION}
    assert (await admin_study_reads(copies))[0]["centre_id"] == centre

    uri = headers[0]["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/bulkdata/7FE00010?centre_id={centre}")
    bulk = await copies.client.get(
        uri.removeprefix("http://testserver"), headers=copies.admin.headers
    )
    assert bulk.status_code == 200, bulk.text
    of_b = await get(copies, path, copies.admin, JSON, centre_id=str(copies.world.b.id))
    assert [first(h, "00081030") for h in of_b.json()] == [B_DESCRIPTION] * 2


async def test_an_admin_naming_a_centre_reaches_every_wado_route(copies: TwoCopies):
    for path in copies.wado_paths():
        response = await get(copies, path, copies.admin, centre_id=str(copies.world.b.id))
        assert response.status_code == 200, (path, response.text)


async def test_a_technician_reads_their_own_centre_s_copy_without_naming_it(copies: TwoCopies):
    technician = copies.world.a.technician
    path = f"/dicomweb/studies/{copies.study}"
    assert part_bodies(await get(copies, path, technician, DICOM_ANY)) == copies.a_files
    named = await get(copies, path, technician, DICOM_ANY, centre_id=str(copies.world.a.id))
    assert part_bodies(named) == copies.a_files
    of_b = await get(copies, path, copies.world.b.technician, DICOM_ANY)
    assert part_bodies(of_b) == copies.b_files
    metadata = await get(copies, f"{path}/metadata", technician, JSON)
    assert [first(h, "00080018") for h in metadata.json()] == copies.sops


@pytest.mark.parametrize("other", ["b", "unknown"])
async def test_a_technician_naming_another_centre_gets_what_an_unknown_uid_gets(
    copies: TwoCopies, other: str
):
    technician = copies.world.a.technician
    centre = str(copies.world.b.id) if other == "b" else str(uuid4())
    ghost = f"2.25.{uuid4().int}"
    for path in copies.wado_paths():
        response = await get(copies, path, technician, centre_id=centre)
        problem = assert_problem(response, 404)
        unknown = assert_problem(
            await get(copies, path.replace(copies.study, ghost), technician), 404
        )
        expected = {**unknown, "detail": unknown["detail"].replace(ghost, copies.study)}
        assert {k: problem[k] for k in COMPARED} == {k: expected[k] for k in COMPARED}, path


async def test_an_admin_naming_a_centre_that_holds_nothing_gets_404(copies: TwoCopies):
    path = f"/dicomweb/studies/{copies.study}"
    response = await get(copies, path, copies.admin, centre_id=str(UUID(int=7)))
    assert_problem(response, 404)
