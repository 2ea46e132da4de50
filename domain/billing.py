"""Prices and invoices. Money is Decimal in the currency's minor units, never float."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

import msgspec

from domain.state_machine import TransitionTable
from domain.studies import Modality
from domain.values import Id


class Currency(enum.StrEnum):
    USD = "usd"
    INR = "inr"
    AED = "aed"

    @property
    def minor_units(self) -> int:
        """ISO 4217 minor units (all three currencies use 2)."""
        return 2


class Money(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"amount must be a Decimal, got {type(self.amount).__name__}")
        if not self.amount.is_finite() or self.amount < 0:
            raise ValueError(f"amount must be a finite, non-negative Decimal, got {self.amount}")
        exponent = self.amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.currency.minor_units:
            raise ValueError(
                f"{self.amount} has more decimals than {self.currency.value} allows "
                f"({self.currency.minor_units})"
            )


class PriceListEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    modality: Modality
    price: Money
    active: bool = True
    created_at: datetime
    updated_at: datetime
    version: int = 1


class InvoiceStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    CANCELLED = "cancelled"


INVOICE_TRANSITIONS: TransitionTable[InvoiceStatus] = TransitionTable(
    "invoice",
    {
        InvoiceStatus.PENDING: {InvoiceStatus.PAID, InvoiceStatus.CANCELLED},
        InvoiceStatus.PAID: set(),
        InvoiceStatus.CANCELLED: set(),
    },
)


def invoice_number(centre_code: str, year: int, sequence: int) -> str:
    """A human invoice number, unique and gap-free per centre and year: ``ABC-2026-000042``."""
    if sequence < 1:
        raise ValueError(f"invoice sequence starts at 1, got {sequence}")
    return f"{centre_code}-{year:04d}-{sequence:06d}"


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    study_id: Id
    number: str
    year: int
    sequence: int
    total: Money
    status: InvoiceStatus = InvoiceStatus.PENDING
    issued_on: date
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def move_to(self, status: InvoiceStatus, *, at: datetime) -> Invoice:
        INVOICE_TRANSITIONS.check(self.status, status)
        return msgspec.structs.replace(
            self,
            status=status,
            paid_at=at if status is InvoiceStatus.PAID else self.paid_at,
            cancelled_at=at if status is InvoiceStatus.CANCELLED else self.cancelled_at,
            updated_at=at,
        )
