"""Refusals of the workflow, report and billing routes: each one a problem document that
changes nothing; another centre's resources are 404, the wrong role 403."""

from __future__ import annotations

from tests.api.identity_fixtures import World, assert_problem
from tests.api.workflow_helpers import ok, stored_result, upload_ct


async def test_assignment_refusals(world: World):
    client, a, b = world.client, world.a, world.b
    study_id = await upload_ct(client, a.technician)
    url = f"/api/v1/studies/{study_id}/assign"
    to_a = {"radiologist_id": str(a.radiologist.id)}

    assert_problem(await client.patch(url, headers=b.manager.headers, json=to_a), 404)
    assert_problem(await client.patch(url, headers=a.radiologist.headers, json=to_a), 403)
    foreign = {"radiologist_id": str(b.radiologist.id)}
    assert_problem(await client.patch(url, headers=a.manager.headers, json=foreign), 422)
    assert_problem(await client.patch(url, headers=a.manager.headers, json={}), 400)
    review = await client.post(f"/api/v1/studies/{study_id}/review", headers=a.radiologist.headers)
    assert_problem(review, 403)

    study = await ok(await client.get(f"/api/v1/studies/{study_id}", headers=a.manager.headers))
    assert (study["status"], study["assigned_radiologist_id"]) == ("uploaded", None)


async def test_report_refusals(world: World):
    client, a, b = world.client, world.a, world.b
    study_id = await upload_ct(client, a.technician)
    body = {"study_id": str(study_id), "findings": "Clear.", "impression": "Normal."}

    # not assigned yet: nobody may write its report
    assert_problem(
        await client.post("/api/v1/reports", headers=a.radiologist.headers, json=body), 403
    )
    await ok(
        await client.patch(
            f"/api/v1/studies/{study_id}/assign",
            headers=a.manager.headers,
            json={"radiologist_id": str(a.radiologist.id)},
        )
    )
    assert_problem(
        await client.post("/api/v1/reports", headers=b.radiologist.headers, json=body), 404
    )
    assert_problem(await client.post("/api/v1/reports", headers=a.manager.headers, json=body), 403)
    empty = {**body, "findings": ""}
    assert_problem(
        await client.post("/api/v1/reports", headers=a.radiologist.headers, json=empty), 400
    )
    report = await ok(
        await client.post("/api/v1/reports", headers=a.radiologist.headers, json=body), 201
    )
    url = f"/api/v1/reports/{report['id']}"

    assert_problem(await client.get(url, headers=b.radiologist.headers), 404)
    assert_problem(await client.get("/api/v1/reports", headers=a.key.headers), 403)
    assert_problem(await client.patch(url, headers=a.manager.headers, json={"findings": "x"}), 403)
    assert_problem(await client.patch(f"{url}/verify", headers=world.admin.headers), 403)
    assert_problem(await client.patch(f"{url}/verify", headers=b.radiologist.headers), 404)
    assert_problem(
        await client.get(f"/api/v1/studies/{study_id}/ai-report", headers=a.manager.headers), 404
    )

    listed = await ok(await client.get("/api/v1/reports", headers=a.technician.headers))
    assert [r["id"] for r in listed] == [report["id"]]
    assert await ok(await client.get("/api/v1/reports", headers=b.technician.headers)) == []
    assert (await ok(await client.get(url, headers=a.radiologist.headers)))["version"] == 1


async def test_billing_refusals(world: World):
    client, admin, a, b = world.client, world.admin, world.a, world.b
    price = {"centre_id": str(a.id), "modality": "ct", "amount": "99.99", "currency": "aed"}

    assert_problem(
        await client.post("/api/v1/billing/pricing", headers=a.manager.headers, json=price), 403
    )
    for bad, status in (
        ({"amount": "1.005"}, 422),
        ({"amount": "-1"}, 422),
        ({"currency": "eur"}, 400),
    ):
        response = await client.post(
            "/api/v1/billing/pricing", headers=admin.headers, json={**price, **bad}
        )
        assert_problem(response, status)
    created = await ok(
        await client.post("/api/v1/billing/pricing", headers=admin.headers, json=price), 201
    )
    assert created["amount"] == "99.99"
    duplicate = await client.post("/api/v1/billing/pricing", headers=admin.headers, json=price)
    assert_problem(duplicate, 409)
    assert [
        p["id"]
        for p in await ok(await client.get("/api/v1/billing/pricing", headers=a.technician.headers))
    ] == [created["id"]]
    assert await ok(await client.get("/api/v1/billing/pricing", headers=b.manager.headers)) == []
    assert_problem(
        await client.patch(
            f"/api/v1/billing/pricing/{created['id']}",
            headers=b.manager.headers,
            json={"amount": "1"},
        ),
        404,
    )

    no_price_study = await upload_ct(client, b.technician)
    missing = assert_problem(
        await client.post(
            "/api/v1/billing/invoices",
            headers=admin.headers,
            json={"study_id": str(no_price_study)},
        ),
        409,
    )
    assert missing["type"].endswith("/price-missing")
    study_id = await upload_ct(client, a.technician)
    invoice = await ok(
        await client.post(
            "/api/v1/billing/invoices", headers=admin.headers, json={"study_id": str(study_id)}
        ),
        201,
    )
    assert (invoice["amount"], invoice["currency"], invoice["sequence"]) == ("99.99", "aed", 1)
    url = f"/api/v1/billing/invoices/{invoice['id']}"
    assert_problem(await client.get(url, headers=b.manager.headers), 404)
    assert_problem(await client.get(url, headers=a.radiologist.headers), 403)
    assert (await ok(await client.get(url, headers=a.manager.headers)))["id"] == invoice["id"]
    for who, status_body, status in (
        (a.manager, {"status": "paid"}, 403),
        (admin, {"status": "pending"}, 409),
        (admin, {"status": "refunded"}, 400),
    ):
        assert_problem(
            await client.patch(f"{url}/status", headers=who.headers, json=status_body), status
        )
    again = await client.post(
        "/api/v1/billing/invoices", headers=admin.headers, json={"study_id": str(study_id)}
    )
    assert_problem(again, 409)
    listed = await ok(
        await client.get(
            "/api/v1/billing/invoices", headers=admin.headers, params={"status": "pending"}
        )
    )
    assert [i["id"] for i in listed] == [invoice["id"]]


async def test_a_second_analysis_hook_call_keeps_the_first_draft(world: World):
    container, a = world.served.container, world.a
    study_id = await upload_ct(world.client, a.technician)
    result = await stored_result(container, study_id)

    await container.services.ai_reports.on_result(result)
    await container.services.ai_reports.on_result(result)

    drafts = await ok(
        await world.client.get(
            "/api/v1/reports",
            headers=a.radiologist.headers,
            params={"study_id": str(study_id), "is_ai_generated": "true"},
        )
    )
    assert len(drafts) == 1 and drafts[0]["analysis_result_id"] == str(result.id)
    assert "No lesion detected by the model." in drafts[0]["findings"]


async def test_a_radiologists_worklist_has_the_most_urgent_first(world: World):
    client, a = world.client, world.a
    ids = {}
    for urgency in ("routine", "stat", "urgent"):
        ids[urgency] = str(await upload_ct(client, a.technician, urgency=urgency))
        await ok(
            await client.patch(
                f"/api/v1/studies/{ids[urgency]}/assign",
                headers=a.technician.headers,
                json={"radiologist_id": str(a.radiologist.id)},
            )
        )
    unassigned = str(await upload_ct(client, a.technician, urgency="stat"))

    worklist = await ok(
        await client.get(
            "/api/v1/studies",
            headers=a.radiologist.headers,
            params={"assigned_radiologist_id": str(a.radiologist.id)},
        )
    )

    assert [s["id"] for s in worklist] == [ids["stat"], ids["urgent"], ids["routine"]]
    assert unassigned not in {s["id"] for s in worklist}
