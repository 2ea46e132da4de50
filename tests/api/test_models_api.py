"""``/api/v1/models``: the bundled demo model is listed with its manifest, metrics, device and
a statement that it is not for clinical use; unknown models are 404; keys need a jobs scope."""

from __future__ import annotations

from tests.api.identity_fixtures import World, assert_problem, create_key


async def test_the_bundled_demo_model_is_listed_as_not_for_clinical_use(shared_world: World):
    response = await shared_world.client.get(
        "/api/v1/models", headers=shared_world.a.technician.headers
    )

    assert response.status_code == 200, response.text
    (model,) = [m for m in response.json() if m["id"] == "demo-lesion-unet"]
    assert model["version"] == "0.1.0"
    assert model["task"] == "segmentation"
    assert model["clinical_use"] is False
    assert "not for clinical use" in model["clinical_use_statement"].lower()
    assert "synthetic" in model["description"]
    assert model["device"] == "cpu" or model["device"].startswith("cuda:")
    assert model["runtimes"] == ["onnx", "torchscript"]
    assert 0 < model["metrics"]["held_out_dice"] <= 1
    assert len(model["input_spacing_mm"]) == 3 and len(model["patch_size"]) == 3
    assert set(model["sha256"]) == {"model.onnx", "model.pt"}


async def test_one_model_reads_the_same_as_in_the_list(shared_world: World):
    headers = shared_world.a.radiologist.headers
    listed = (await shared_world.client.get("/api/v1/models", headers=headers)).json()

    response = await shared_world.client.get("/api/v1/models/demo-lesion-unet", headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == next(m for m in listed if m["id"] == "demo-lesion-unet")


async def test_an_unknown_model_is_not_found(shared_world: World):
    response = await shared_world.client.get(
        "/api/v1/models/no-such-model", headers=shared_world.a.manager.headers
    )

    assert_problem(response, 404)


async def test_a_key_with_a_jobs_scope_may_read_models_and_one_without_may_not(
    world: World,
):
    client = world.client
    allowed = await client.get("/api/v1/models", headers=world.a.key.headers)
    studies_only = await create_key(
        client,
        world.a.manager.headers,
        centre_id=world.a.id,
        name="studies only",
        scopes=["studies:read"],
    )

    refused = await client.get("/api/v1/models", headers=studies_only.headers)

    assert allowed.status_code == 200
    assert_problem(refused, 403)


async def test_models_need_credentials(shared_world: World):
    assert_problem(await shared_world.client.get("/api/v1/models"), 401)
