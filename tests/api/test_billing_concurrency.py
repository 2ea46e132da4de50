"""Fifty reports verified at once across two centres, on a real PostgreSQL: fifty invoices,
numbered 1..25 in each centre without a gap or a duplicate."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from domain.identity import Principal, PrincipalKind
from domain.services.reports import CreateReport
from domain.services.workflow import AssignStudy
from domain.studies import Modality, Study, new_study_code
from tests.api.conftest import ServedFactory
from tests.api.identity_fixtures import CentreStaff, Member, World, seed_world
from tests.api.workflow_helpers import ok

pytestmark = pytest.mark.postgres

PER_CENTRE = 25


def principal_of(member: Member) -> Principal:
    return Principal(
        kind=PrincipalKind.USER,
        id=member.id,
        role=member.role,
        centre_id=member.centre_id,
        display=member.username,
    )


async def reports_ready_to_verify(world: World, centre: CentreStaff, count: int) -> list[UUID]:
    """``count`` CT studies of the centre, assigned, each with its radiologist's draft."""
    container = world.served.container
    services = container.services
    studies = []
    async with container.uow_factory() as uow:
        for _ in range(count):
            now = container.clock.now()
            study = Study(
                id=container.ids.new_id(),
                centre_id=centre.id,
                code=new_study_code(),
                study_instance_uid=f"2.25.{container.ids.new_id().int}",
                modality=Modality.CT,
                created_at=now,
                updated_at=now,
            )
            await uow.studies.add(study)
            studies.append(study)
        await uow.commit()
    manager, radiologist = principal_of(centre.manager), principal_of(centre.radiologist)
    reports = []
    for n, study in enumerate(studies):
        await services.workflow.assign(
            manager, study.id, AssignStudy(radiologist_id=radiologist.id)
        )
        command = CreateReport(study_id=study.id, findings=f"Finding {n}.", impression="Stable.")
        reports.append((await services.reports.create(radiologist, command)).id)
    return reports


async def test_fifty_simultaneous_verifications_number_their_invoices_without_gaps(
    make_served: ServedFactory, postgres_dsn: str
):
    world = await seed_world(await make_served(database="postgres", database_url=postgres_dsn))
    client, admin = world.client, world.admin
    for centre, amount in ((world.a, "150.00"), (world.b, "4200.50")):
        await ok(
            await client.patch(
                f"/api/v1/centres/{centre.id}", headers=admin.headers, json={"auto_invoice": True}
            )
        )
        price = {"centre_id": str(centre.id), "modality": "ct", "amount": amount}
        price["currency"] = "usd" if centre is world.a else "inr"
        await ok(
            await client.post("/api/v1/billing/pricing", headers=admin.headers, json=price), 201
        )
    batches = {
        centre.id: (centre, await reports_ready_to_verify(world, centre, PER_CENTRE))
        for centre in (world.a, world.b)
    }
    requests = [
        client.patch(f"/api/v1/reports/{report_id}/verify", headers=centre.radiologist.headers)
        for centre, report_ids in batches.values()
        for report_id in report_ids
    ]
    # interleave the centres so both counters are contended at the same time
    requests = requests[::2] + requests[1::2]

    responses = await asyncio.gather(*requests)

    assert [r.status_code for r in responses] == [200] * 2 * PER_CENTRE, [
        r.text for r in responses if r.status_code != 200
    ]
    issued = {r.json()["invoice_id"] for r in responses}
    assert None not in issued and len(issued) == 2 * PER_CENTRE
    for centre_id, (centre, _) in batches.items():
        invoices = await ok(
            await client.get(
                "/api/v1/billing/invoices",
                headers=admin.headers,
                params={"centre_id": str(centre_id), "limit": 1000},
            )
        )
        assert len(invoices) == PER_CENTRE
        assert sorted(i["sequence"] for i in invoices) == list(range(1, PER_CENTRE + 1))
        assert len({i["number"] for i in invoices}) == PER_CENTRE
        assert len({i["study_id"] for i in invoices}) == PER_CENTRE
        assert {i["id"] for i in invoices} <= issued
        expected = ("150.00", "usd") if centre is world.a else ("4200.50", "inr")
        assert {(i["amount"], i["currency"]) for i in invoices} == {expected}
        assert all(i["centre_id"] == str(centre_id) for i in invoices)
