"""Use cases for prices and invoices.

Admins write prices and issue invoices; the staff of a centre read its prices, and its
manager reads its invoices (an API key needs ``billing:read``). Invoices are also issued
automatically when a report is verified in a centre whose ``auto_invoice`` is on (see
:func:`issue_invoice`, called inside the verification's transaction). Amounts are Decimal;
numbers are gap-free per centre and year because the sequence is reserved in the same
transaction as the invoice. Another centre's price or invoice is not found.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from domain.billing import Currency, Invoice, InvoiceStatus, Money, PriceListEntry, invoice_number
from domain.errors import Conflict, InvalidInput, NotFound, PriceMissing
from domain.events import InvoiceIssued
from domain.identity import Principal, PrincipalKind, Role, Scope
from domain.ports.repositories import InvoiceFilter
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import require_role, require_scope, scoped_centre, visible
from domain.services.auditing import Auditor
from domain.services.workflow import visible_study
from domain.studies import Modality, Study
from domain.values import Id, Page


class CreatePrice(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: Id
    modality: Modality
    amount: Decimal
    currency: Currency


class UpdatePrice(msgspec.Struct, frozen=True, kw_only=True):
    amount: Decimal | msgspec.UnsetType = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class CreateInvoice(msgspec.Struct, frozen=True, kw_only=True):
    study_id: Id


def money(amount: Decimal, currency: Currency) -> Money:
    """A price as ``Money``; too many decimals, a negative or a non-finite amount is 422."""
    try:
        return Money(amount=amount, currency=currency)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"amount: {err}") from None


def invoice_prefix(centre_id: Id) -> str:
    """The centre part of an invoice number: the random tail of its id, upper case.

    Centres have no short code of their own; numbers are unique per centre either way.
    """
    return centre_id.hex[-6:].upper()


async def issue_invoice(
    uow: UnitOfWork, study: Study, *, at: datetime, ids: IdGenerator
) -> Invoice:
    """Issue the invoice of a study at its centre's price, inside the caller's transaction.

    Raises ``Conflict`` when the study already has an invoice that is not cancelled, and
    ``PriceMissing`` (409) when the centre has no active price for the study's modality:
    never a zero invoice. Both checks come before the sequence is reserved.
    """
    if await uow.invoices.active_for_study(study.id) is not None:
        raise Conflict("the study already has an invoice that is not cancelled")
    price = await uow.prices.find(study.centre_id, study.modality)
    if price is None:
        raise PriceMissing(
            f"the centre has no price for modality '{study.modality.value}'; "
            "add one with POST /billing/pricing first"
        )
    sequence = await uow.invoices.next_sequence(study.centre_id, at.year)
    invoice = Invoice(
        id=ids.new_id(),
        centre_id=study.centre_id,
        study_id=study.id,
        number=invoice_number(invoice_prefix(study.centre_id), at.year, sequence),
        year=at.year,
        sequence=sequence,
        total=price.price,
        issued_on=at.date(),
        created_at=at,
        updated_at=at,
    )
    await uow.invoices.add(invoice)
    uow.collect(
        InvoiceIssued(at=at, centre_id=study.centre_id, invoice_id=invoice.id, study_id=study.id)
    )
    return invoice


def _require_price_reader(principal: Principal) -> None:
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.BILLING_READ)


def _require_invoice_reader(principal: Principal) -> None:
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.BILLING_READ)
    else:
        require_role(principal, Role.CENTRE_MANAGER, action="read invoices")


class BillingService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, auditor: Auditor
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._auditor = auditor

    # -- prices ----------------------------------------------------------------------------

    async def create_price(self, principal: Principal, command: CreatePrice) -> PriceListEntry:
        require_role(principal, action="set prices")
        price = money(command.amount, command.currency)
        now = self._clock.now()
        entry = PriceListEntry(
            id=self._ids.new_id(),
            centre_id=command.centre_id,
            modality=command.modality,
            price=price,
            created_at=now,
            updated_at=now,
        )
        async with self._uow() as uow:
            if await uow.centres.get(command.centre_id) is None:
                raise NotFound("centre", command.centre_id)
            await uow.prices.add(entry)
            await uow.commit()
        await self._auditor.record(
            principal,
            "price.create",
            "price",
            entry.id,
            centre_id=entry.centre_id,
            detail=f"{entry.modality.value} {price.amount} {price.currency.value}",
        )
        return entry

    async def get_price(self, principal: Principal, price_id: Id) -> PriceListEntry:
        async with self._uow() as uow:
            entry = visible(principal, await uow.prices.get(price_id), "price", price_id)
        _require_price_reader(principal)
        return entry

    async def update_price(
        self, principal: Principal, price_id: Id, command: UpdatePrice
    ) -> PriceListEntry:
        async with self._uow() as uow:
            entry = await uow.prices.get(price_id)
            if entry is None or not principal.can_see_centre(entry.centre_id):
                raise NotFound("price", price_id)
            require_role(principal, action="change prices")
            amount = entry.price.amount if command.amount is msgspec.UNSET else command.amount
            currency = (
                entry.price.currency if command.currency is msgspec.UNSET else command.currency
            )
            active = entry.active if command.active is msgspec.UNSET else command.active
            changed = msgspec.structs.replace(
                entry,
                price=money(amount, currency),
                active=active,
                updated_at=self._clock.now(),
            )
            stored = await uow.prices.update(changed)
            await uow.commit()
        await self._auditor.record(
            principal,
            "price.update",
            "price",
            price_id,
            centre_id=entry.centre_id,
            detail=f"{stored.modality.value} {stored.price.amount} "
            f"{stored.price.currency.value} active={stored.active}",
        )
        return stored

    async def list_prices(
        self, principal: Principal, centre_id: Id | None, page: Page
    ) -> list[PriceListEntry]:
        """An admin's choice of centre (or all); everyone else their own centre's prices."""
        _require_price_reader(principal)
        async with self._uow() as uow:
            return await uow.prices.list(scoped_centre(principal, centre_id), page)

    # -- invoices --------------------------------------------------------------------------

    async def create_invoice(self, principal: Principal, command: CreateInvoice) -> Invoice:
        """Invoice a study at its centre's current price (admins)."""
        async with self._uow() as uow:
            study = await visible_study(uow, principal, command.study_id)
            require_role(principal, action="issue invoices")
            invoice = await issue_invoice(uow, study, at=self._clock.now(), ids=self._ids)
            await uow.commit()
        await self._auditor.record(
            principal,
            "invoice.create",
            "invoice",
            invoice.id,
            centre_id=invoice.centre_id,
            detail=f"{invoice.number} for study {invoice.study_id}",
        )
        return invoice

    async def get_invoice(self, principal: Principal, invoice_id: Id) -> Invoice:
        async with self._uow() as uow:
            invoice = visible(principal, await uow.invoices.get(invoice_id), "invoice", invoice_id)
        _require_invoice_reader(principal)
        await self._auditor.record(
            principal, "invoice.read", "invoice", invoice.id, centre_id=invoice.centre_id
        )
        return invoice

    async def set_invoice_status(
        self, principal: Principal, invoice_id: Id, status: InvoiceStatus
    ) -> Invoice:
        """``pending -> paid | cancelled`` (admins); anything else is an invalid transition."""
        async with self._uow() as uow:
            invoice = await uow.invoices.get(invoice_id)
            if invoice is None or not principal.can_see_centre(invoice.centre_id):
                raise NotFound("invoice", invoice_id)
            require_role(principal, action="change the status of invoices")
            stored = await uow.invoices.update(invoice.move_to(status, at=self._clock.now()))
            await uow.commit()
        await self._auditor.record(
            principal,
            "invoice.pay" if status is InvoiceStatus.PAID else "invoice.cancel",
            "invoice",
            invoice.id,
            centre_id=invoice.centre_id,
            detail=f"{invoice.number}: {invoice.status.value} -> {status.value}",
        )
        return stored

    async def list_invoices(
        self, principal: Principal, where: InvoiceFilter, page: Page
    ) -> list[Invoice]:
        _require_invoice_reader(principal)
        scoped = msgspec.structs.replace(where, centre_id=scoped_centre(principal, where.centre_id))
        async with self._uow() as uow:
            found = await uow.invoices.list(scoped, page)
        await self._auditor.record(
            principal, "invoice.list", "invoice", None, detail=f"{len(found)} invoice(s)"
        )
        return found
