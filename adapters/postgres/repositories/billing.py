"""Prices and invoices in PostgreSQL. Money is ``numeric(14,2)`` plus a currency column."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from adapters.postgres.repositories._sql import Where, insert, update_versioned
from adapters.postgres.session import Session
from domain.billing import Invoice, PriceListEntry
from domain.ports.repositories import InvoiceFilter
from domain.studies import Modality
from domain.values import Id, Page

_PRICE_COLUMNS = ", ".join(
    [f.name for f in msgspec.structs.fields(PriceListEntry) if f.name != "price"]
    + ["amount", "currency"]
)
_INVOICE_COLUMNS = ", ".join(
    [f.name for f in msgspec.structs.fields(Invoice) if f.name != "total"] + ["amount", "currency"]
)


def _money_out(values: dict[str, Any], field: str) -> dict[str, Any]:
    money = values.pop(field)
    values["amount"] = money.amount
    values["currency"] = money.currency
    return values


def _money_in(row: asyncpg.Record, field: str) -> dict[str, Any]:
    values = dict(row)
    values[field] = {"amount": values.pop("amount"), "currency": values.pop("currency")}
    return values


def _price_from_row(row: asyncpg.Record) -> PriceListEntry:
    return msgspec.convert(_money_in(row, "price"), PriceListEntry)


def _invoice_from_row(row: asyncpg.Record) -> Invoice:
    return msgspec.convert(_money_in(row, "total"), Invoice)


class PostgresPriceListRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, entry: PriceListEntry) -> None:
        values = _money_out(msgspec.structs.asdict(entry), "price")
        await insert(self._connection, "price_list", "price", values)

    async def get(self, entry_id: Id) -> PriceListEntry | None:
        row = await self._connection.fetchrow(
            f"SELECT {_PRICE_COLUMNS} FROM price_list WHERE id = $1", entry_id
        )
        return None if row is None else _price_from_row(row)

    async def find(self, centre_id: Id, modality: Modality) -> PriceListEntry | None:
        """The active price of a modality in a centre."""
        row = await self._connection.fetchrow(
            f"SELECT {_PRICE_COLUMNS} FROM price_list "
            "WHERE centre_id = $1 AND modality = $2 AND active",
            centre_id,
            modality,
        )
        return None if row is None else _price_from_row(row)

    async def update(self, entry: PriceListEntry) -> PriceListEntry:
        values = _money_out(msgspec.structs.asdict(entry), "price")
        await update_versioned(
            self._connection, "price_list", "price", entry.id, entry.version, values
        )
        return msgspec.structs.replace(entry, version=entry.version + 1)

    async def list(self, centre_id: Id | None, page: Page) -> list[PriceListEntry]:
        """Oldest first."""
        w = Where()
        w.equal("centre_id", centre_id)
        rows = await self._connection.fetch(
            f"SELECT {_PRICE_COLUMNS} FROM price_list {w.sql()} "
            f"ORDER BY created_at, id {w.page(page)}",
            *w.args,
        )
        return [_price_from_row(row) for row in rows]


class PostgresInvoiceRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def next_sequence(self, centre_id: Id, year: int) -> int:
        """Reserve the next invoice number of a centre and year inside the current transaction.

        The counter row stays locked until the transaction ends, so concurrent transactions
        of the same centre and year queue behind each other, and a rollback gives the number
        back: numbers are gap-free.
        """
        sequence: int = await self._connection.fetchval(
            "INSERT INTO invoice_sequences AS s (centre_id, year, last_value) VALUES ($1, $2, 1) "
            "ON CONFLICT (centre_id, year) DO UPDATE SET last_value = s.last_value + 1 "
            "RETURNING last_value",
            centre_id,
            year,
        )
        return sequence

    async def add(self, invoice: Invoice) -> None:
        values = _money_out(msgspec.structs.asdict(invoice), "total")
        await insert(self._connection, "invoices", "invoice", values)

    async def _one(self, condition: str, *args: Any) -> Invoice | None:
        row = await self._connection.fetchrow(
            f"SELECT {_INVOICE_COLUMNS} FROM invoices WHERE {condition}", *args
        )
        return None if row is None else _invoice_from_row(row)

    async def get(self, invoice_id: Id) -> Invoice | None:
        return await self._one("id = $1", invoice_id)

    async def active_for_study(self, study_id: Id) -> Invoice | None:
        return await self._one("study_id = $1 AND status <> 'cancelled'", study_id)

    async def update(self, invoice: Invoice) -> Invoice:
        values = _money_out(msgspec.structs.asdict(invoice), "total")
        await update_versioned(
            self._connection, "invoices", "invoice", invoice.id, invoice.version, values
        )
        return msgspec.structs.replace(invoice, version=invoice.version + 1)

    async def list(self, where: InvoiceFilter, page: Page) -> list[Invoice]:
        """Newest first."""
        w = Where()
        w.equal("centre_id", where.centre_id)
        w.equal("status", where.status)
        w.equal("study_id", where.study_id)
        if where.issued_from is not None:
            w.add("issued_on >= {}", where.issued_from)
        if where.issued_to is not None:
            w.add("issued_on <= {}", where.issued_to)
        rows = await self._connection.fetch(
            f"SELECT {_INVOICE_COLUMNS} FROM invoices {w.sql()} "
            f"ORDER BY created_at DESC, id DESC {w.page(page)}",
            *w.args,
        )
        return [_invoice_from_row(row) for row in rows]
