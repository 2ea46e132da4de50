"""Builders of valid aggregates for unit tests; each takes overrides for the fields a test cares
about."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from domain.billing import Currency, Invoice, Money, invoice_number
from domain.jobs import Job
from domain.reports import Report
from domain.studies import Study, new_study_code

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def a_study(**changes: Any) -> Study:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "centre_id": uuid4(),
        "code": new_study_code(),
        "study_instance_uid": f"1.2.826.0.1.3680043.8.498.{uuid4().int % 10**20}",
        "created_at": T0,
        "updated_at": T0,
    }
    return Study(**(fields | changes))


def a_job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "centre_id": uuid4(),
        "study_id": uuid4(),
        "model_id": "demo-lesion-unet",
        "created_at": T0,
        "updated_at": T0,
    }
    return Job(**(fields | changes))


def a_report(**changes: Any) -> Report:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "centre_id": uuid4(),
        "study_id": uuid4(),
        "findings": "No focal lesion.",
        "impression": "Normal study.",
        "created_at": T0,
        "updated_at": T0,
    }
    return Report(**(fields | changes))


def an_invoice(**changes: Any) -> Invoice:
    centre: UUID = changes.pop("centre_id", uuid4())
    fields: dict[str, Any] = {
        "id": uuid4(),
        "centre_id": centre,
        "study_id": uuid4(),
        "number": invoice_number("CTR", 2026, 1),
        "year": 2026,
        "sequence": 1,
        "total": Money(amount=Decimal("120.00"), currency=Currency.USD),
        "issued_on": date(2026, 1, 1),
        "created_at": T0,
        "updated_at": T0,
    }
    return Invoice(**(fields | changes))
