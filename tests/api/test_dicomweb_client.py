"""dicomweb-client (unchanged, over real HTTP) against the running app: store a CT series,
find it, retrieve instances, metadata and frames byte-identical; another centre sees nothing."""

from __future__ import annotations

import asyncio
import io

import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from requests import HTTPError

from tests.api.conftest import ServedFactory
from tests.api.dicomweb_helpers import pixel_frame, running
from tests.api.identity_fixtures import seed_world
from tests.fixtures.imaging import synthetic_ct_series


def client_for(url: str, token: str) -> DICOMwebClient:
    return DICOMwebClient(url=f"{url}/dicomweb", headers={"Authorization": f"Bearer {token}"})


async def test_dicomweb_client_stores_finds_and_retrieves_a_ct_series(
    make_served: ServedFactory, database_options: dict[str, str]
):
    world = await seed_world(await make_served(**database_options))
    series = synthetic_ct_series(slices=4, rows=16, columns=12)
    datasets = [dcmread(io.BytesIO(data)) for data in series.files]
    study_uid = datasets[0].StudyInstanceUID
    series_uid = datasets[0].SeriesInstanceUID
    sop_uids = [ds.SOPInstanceUID for ds in datasets]

    async with running(world.served.app) as url:
        a = client_for(url, world.a.technician.token or "")
        b = client_for(url, world.b.radiologist.token or "")

        def walk() -> None:
            stored = a.store_instances(datasets)
            referenced = stored.ReferencedSOPSequence
            assert sorted(item.ReferencedSOPInstanceUID for item in referenced) == sorted(sop_uids)
            assert "FailedSOPSequence" not in stored

            studies = a.search_for_studies(search_filters={"PatientID": "SYN-0001"})
            assert [s["0020000D"]["Value"][0] for s in studies] == [study_uid]
            assert studies[0]["00201208"]["Value"] == [4]
            assert studies[0]["00080061"]["Value"] == ["CT"]
            found_series = a.search_for_series(study_uid)
            assert [s["0020000E"]["Value"][0] for s in found_series] == [series_uid]
            instances = a.search_for_instances(study_uid, series_uid)
            assert [i["00080018"]["Value"][0] for i in instances] == sop_uids

            for data, uid in zip(series.files, sop_uids, strict=True):
                retrieved = a.retrieve_instance(study_uid, series_uid, uid)
                buffer = io.BytesIO()
                retrieved.save_as(buffer, enforce_file_format=True)
                assert buffer.getvalue() == data
                frames = a.retrieve_instance_frames(study_uid, series_uid, uid, frame_numbers=[1])
                assert frames == [pixel_frame(data, 1)]
                uncompressed = a.retrieve_instance_frames(
                    study_uid,
                    series_uid,
                    uid,
                    frame_numbers=[1],
                    media_types=("application/octet-stream",),
                )
                assert uncompressed == [pixel_frame(data, 1)]

            metadata = a.retrieve_series_metadata(study_uid, series_uid)
            assert len(metadata) == 4
            first = metadata[0]
            original = datasets[0].to_json_dict(
                bulk_data_threshold=1024, bulk_data_element_handler=lambda e: "x"
            )
            for tag in ("00100010", "00200032", "00280030", "00281052"):
                assert first[tag] == original[tag]
            assert first["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")
            retrieved_study = a.retrieve_study(study_uid)
            assert sorted(ds.SOPInstanceUID for ds in retrieved_study) == sorted(sop_uids)

            # another centre: invisible in QIDO, 404 in WADO
            assert b.search_for_studies() == []
            assert b.search_for_instances(study_uid) == []
            with pytest.raises(HTTPError) as missing:
                b.retrieve_instance_metadata(study_uid, series_uid, sop_uids[0])
            assert missing.value.response.status_code == 404

        await asyncio.to_thread(walk)
