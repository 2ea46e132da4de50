"""API schemas of prices and invoices. Amounts travel as decimal strings (``"150.00"``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

import msgspec

from domain.billing import Currency, Invoice, InvoiceStatus, PriceListEntry
from domain.studies import Modality


class PriceCreate(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: UUID
    modality: Modality
    amount: Decimal
    """A decimal string with at most the currency's minor units (``"150.00"``)."""
    currency: Currency


class PriceUpdate(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class PriceRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    centre_id: UUID
    modality: Modality
    amount: Decimal
    currency: Currency
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, entry: PriceListEntry) -> PriceRead:
        return cls(
            id=entry.id,
            centre_id=entry.centre_id,
            modality=entry.modality,
            amount=entry.price.amount,
            currency=entry.price.currency,
            active=entry.active,
            created_at=entry.created_at,
            updated_at=entry.updated_at,
            version=entry.version,
        )


class InvoiceCreate(msgspec.Struct, frozen=True, kw_only=True):
    study_id: UUID


class InvoiceStatusUpdate(msgspec.Struct, frozen=True, kw_only=True):
    status: InvoiceStatus
    """``paid`` or ``cancelled``, from ``pending`` only (anything else is a 409)."""


class InvoiceRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    centre_id: UUID
    study_id: UUID
    number: str
    year: int
    sequence: int
    amount: Decimal
    currency: Currency
    status: InvoiceStatus
    issued_on: date
    paid_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceRead:
        values = msgspec.structs.asdict(invoice)
        total = values.pop("total")
        return cls(**values, amount=total.amount, currency=total.currency)
