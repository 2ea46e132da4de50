"""The clinical path through HTTP, on memory and on PostgreSQL: a technician uploads, the
manager assigns, an analysis drafts the AI report, the radiologist edits and verifies it, the
invoice appears at the centre's price, an admin marks it paid; every step is audited."""

from __future__ import annotations

from uuid import UUID

from tests.api.identity_fixtures import World, assert_problem
from tests.api.workflow_helpers import a_detection, ok, stored_result, upload_ct


async def test_upload_to_paid_invoice_with_every_step_audited(world_on_each_database: World):
    world = world_on_each_database
    client, admin, a = world.client, world.admin, world.a
    # set-up by the admin: centre A invoices on verification, a CT costs 150.00 USD there
    await ok(
        await client.patch(
            f"/api/v1/centres/{a.id}", headers=admin.headers, json={"auto_invoice": True}
        )
    )
    price = await ok(
        await client.post(
            "/api/v1/billing/pricing",
            headers=admin.headers,
            json={"centre_id": str(a.id), "modality": "ct", "amount": "150.00", "currency": "usd"},
        ),
        201,
    )

    study_id = await upload_ct(client, a.technician, urgency="urgent")
    study_url = f"/api/v1/studies/{study_id}"
    no_draft = await client.get(f"{study_url}/ai-report", headers=a.radiologist.headers)
    assert_problem(no_draft, 404)

    assigned = await ok(
        await client.patch(
            f"{study_url}/assign",
            headers=a.manager.headers,
            json={"radiologist_id": str(a.radiologist.id)},
        )
    )
    assert (assigned["status"], assigned["assigned_radiologist_id"]) == (
        "assigned",
        str(a.radiologist.id),
    )
    worklist = await ok(
        await client.get(
            "/api/v1/studies",
            headers=a.radiologist.headers,
            params={"assigned_radiologist_id": str(a.radiologist.id), "status": "assigned"},
        )
    )
    assert [s["id"] for s in worklist] == [str(study_id)]

    # the analysis completes: its hook drafts the preliminary report
    container = world.served.container
    result = await stored_result(container, study_id, (a_detection(),))
    await container.services.ai_reports.on_result(result)
    draft = await ok(await client.get(f"{study_url}/ai-report", headers=a.radiologist.headers))
    assert draft["is_ai_generated"] is True
    assert (draft["status"], draft["type"], draft["author_id"]) == ("draft", "preliminary", None)
    assert draft["analysis_result_id"] == str(result.id)
    assert "NOT VERIFIED" in draft["findings"]
    assert "2144.7 mm3" in draft["findings"] and "confidence 93%" in draft["findings"]
    assert "(-31.5, 12.2, 48.0) mm" in draft["findings"]
    assert "good (score 0.82)" in draft["findings"]
    assert "1 suspicious lesion" in draft["impression"]

    reviewing = await ok(await client.post(f"{study_url}/review", headers=a.radiologist.headers))
    assert reviewing["status"] == "in_review"
    report_url = f"/api/v1/reports/{draft['id']}"
    edited = await ok(
        await client.patch(
            report_url,
            headers=a.radiologist.headers,
            json={"findings": "Solitary 18 mm lesion, left lower lobe, as marked by the model."},
        )
    )
    assert edited["author_id"] == str(a.radiologist.id)
    assert edited["impression"] == draft["impression"]
    study = await ok(await client.get(study_url, headers=a.radiologist.headers))
    assert study["status"] == "report_generated"

    verified = await ok(await client.patch(f"{report_url}/verify", headers=a.radiologist.headers))
    assert (verified["status"], verified["type"]) == ("verified", "final")
    assert verified["verified_by"] == str(a.radiologist.id)
    assert verified["invoice_id"] is not None
    study = await ok(await client.get(study_url, headers=a.radiologist.headers))
    assert study["status"] == "verified"
    versions = await ok(await client.get(f"{report_url}/versions", headers=a.radiologist.headers))
    assert [v["status"] for v in versions] == ["draft", "draft", "verified"]
    assert versions[0]["findings"] == draft["findings"]
    # the verified record is closed: no edit, no reassignment
    refused = await client.patch(report_url, headers=a.radiologist.headers, json={"findings": "x"})
    assert_problem(refused, 409)
    again = await client.patch(
        f"{study_url}/assign",
        headers=a.manager.headers,
        json={"radiologist_id": str(a.radiologist.id)},
    )
    assert_problem(again, 409)

    invoices = await ok(
        await client.get(
            "/api/v1/billing/invoices",
            headers=a.manager.headers,
            params={"study_id": str(study_id)},
        )
    )
    assert len(invoices) == 1
    invoice = invoices[0]
    assert invoice["id"] == verified["invoice_id"]
    assert (invoice["amount"], invoice["currency"], invoice["status"]) == (
        "150.00",
        "usd",
        "pending",
    )
    assert invoice["sequence"] == 1 and invoice["number"].endswith("-000001")
    paid = await ok(
        await client.patch(
            f"/api/v1/billing/invoices/{invoice['id']}/status",
            headers=admin.headers,
            json={"status": "paid"},
        )
    )
    assert paid["status"] == "paid" and paid["paid_at"] is not None
    back = await client.patch(
        f"/api/v1/billing/invoices/{invoice['id']}/status",
        headers=admin.headers,
        json={"status": "cancelled"},
    )
    assert_problem(back, 409)

    trail = await ok(
        await client.get("/api/v1/audit", headers=admin.headers, params={"limit": 1000})
    )
    steps = [(e["action"], e["resource_id"], e["actor_id"], e["outcome"]) for e in reversed(trail)]
    expected = [
        ("price.create", price["id"], str(admin.id)),
        ("study.upload", None, str(a.technician.id)),
        ("study.assign", str(study_id), str(a.manager.id)),
        ("report.ai_draft", draft["id"], None),
        ("study.review", str(study_id), str(a.radiologist.id)),
        ("report.update", draft["id"], str(a.radiologist.id)),
        ("report.verify", draft["id"], str(a.radiologist.id)),
        ("invoice.create", invoice["id"], str(a.radiologist.id)),
        ("invoice.pay", invoice["id"], str(admin.id)),
    ]
    position = 0
    for action, resource_id, actor_id in expected:
        matching = [
            n
            for n, (act, res, actor, outcome) in enumerate(steps)
            if n >= position
            and act == action
            and actor == actor_id
            and outcome == "success"
            and (resource_id is None or res == resource_id)
        ]
        assert matching, f"no {action} by {actor_id} on {resource_id} after step {position}"
        position = matching[0]
    assert UUID(invoice["study_id"]) == study_id
