"""Contract: one active price per centre and modality; gap-free invoice numbers."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest

from domain.billing import Currency, InvoiceStatus, Money
from domain.errors import ConcurrentModification, Conflict
from domain.ports import InvoiceFilter, UnitOfWorkFactory
from domain.studies import Modality
from domain.values import Page
from tests.contract.conftest import Make, replace, store


async def test_a_price_keeps_its_exact_decimal_amount_and_currency(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    price = make.price(
        centre,
        Modality.MR,
        "1234567.89",
        price=Money(amount=Decimal("1234567.89"), currency=Currency.INR),
    )
    await store(uow_factory, centre, price)

    async with uow_factory() as uow:
        stored = await uow.prices.get(price.id)
        found = await uow.prices.find(centre.id, Modality.MR)

    assert stored == price == found
    assert stored is not None and stored.price.amount == Decimal("1234567.89")
    assert stored.price.currency is Currency.INR


async def test_a_second_active_price_for_a_modality_is_a_conflict(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre, other = make.centre(), make.centre()
    await store(uow_factory, centre, other, make.price(centre, Modality.CT))

    async with uow_factory() as uow:
        await uow.prices.add(make.price(centre, Modality.MR))
        await uow.prices.add(make.price(other, Modality.CT))
        await uow.prices.add(make.price(centre, Modality.CT, active=False))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.prices.add(make.price(centre, Modality.CT))


async def test_a_retired_price_makes_room_for_a_new_one(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    old = make.price(centre, Modality.US, "80.00")
    await store(uow_factory, centre, old)

    async with uow_factory() as uow:
        retired = await uow.prices.update(replace(old, active=False, updated_at=make.now()))
        new = make.price(centre, Modality.US, "95.50")
        await uow.prices.add(new)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.prices.find(centre.id, Modality.US) == new
        assert await uow.prices.get(old.id) == retired
        assert {p.id for p in await uow.prices.list(centre.id, Page())} == {old.id, new.id}
        assert await uow.prices.find(centre.id, Modality.PET) is None
    assert retired.version == 2


async def test_a_stale_price_update_is_refused(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    price = make.price(centre)
    await store(uow_factory, centre, price)

    async with uow_factory() as uow:
        await uow.prices.update(
            replace(price, price=Money(amount=Decimal("1"), currency=Currency.USD))
        )
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrentModification):
            await uow.prices.update(replace(price, active=False))


async def test_prices_list_per_centre_in_pages(uow_factory: UnitOfWorkFactory, make: Make):
    a, b = make.centre(), make.centre()
    in_a = [make.price(a, m) for m in (Modality.CT, Modality.MR, Modality.US)]
    in_b = make.price(b)
    await store(uow_factory, a, b, *in_a, in_b)

    async with uow_factory() as uow:
        first = await uow.prices.list(a.id, Page(limit=2))
        rest = await uow.prices.list(a.id, Page(skip=2))
        every = await uow.prices.list(None, Page())

    assert len(first) == 2 and len(rest) == 1
    assert {p.id for p in first + rest} == {p.id for p in in_a}
    assert len(every) == 4


async def test_invoice_numbers_start_at_one_per_centre_and_year(
    uow_factory: UnitOfWorkFactory, make: Make
):
    a, b = make.centre(), make.centre()
    await store(uow_factory, a, b)

    async with uow_factory() as uow:
        numbers = [
            await uow.invoices.next_sequence(a.id, 2026),
            await uow.invoices.next_sequence(a.id, 2026),
            await uow.invoices.next_sequence(b.id, 2026),
            await uow.invoices.next_sequence(a.id, 2027),
            await uow.invoices.next_sequence(a.id, 2026),
        ]
        await uow.commit()

    assert numbers == [1, 2, 1, 1, 3]


async def test_a_rolled_back_transaction_gives_its_invoice_number_back(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    await store(uow_factory, centre)

    async with uow_factory() as uow:
        assert await uow.invoices.next_sequence(centre.id, 2026) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.invoices.next_sequence(centre.id, 2026) == 2
        # left without commit
    async with uow_factory() as uow:
        assert await uow.invoices.next_sequence(centre.id, 2026) == 2


async def test_concurrent_transactions_get_gap_free_invoice_numbers(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    await store(uow_factory, centre)

    async def issue(fail: bool) -> int | None:
        async with uow_factory() as uow:
            sequence = await uow.invoices.next_sequence(centre.id, 2026)
            await asyncio.sleep(0.005)  # hold the number while others queue up
            if fail:
                return None  # rolled back: the number goes back
            await uow.commit()
            return sequence

    outcomes = await asyncio.gather(*(issue(fail=i % 5 == 4) for i in range(25)))

    assert sorted(n for n in outcomes if n is not None) == list(range(1, 21))


async def test_an_invoice_reads_back_unchanged_and_moves_to_paid(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    invoice = make.invoice(study, 1, total=Money(amount=Decimal("99.90"), currency=Currency.AED))
    await store(uow_factory, centre, study, invoice)

    async with uow_factory() as uow:
        assert await uow.invoices.get(invoice.id) == invoice
        assert await uow.invoices.active_for_study(study.id) == invoice
        paid = await uow.invoices.update(invoice.move_to(InvoiceStatus.PAID, at=make.now()))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.invoices.get(invoice.id) == paid
        with pytest.raises(ConcurrentModification):
            await uow.invoices.update(invoice.move_to(InvoiceStatus.CANCELLED, at=make.now()))
    assert paid.version == 2 and paid.paid_at is not None


async def test_a_study_has_at_most_one_invoice_that_is_not_cancelled(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    first = make.invoice(study, 1)
    await store(uow_factory, centre, study, first)

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.invoices.add(make.invoice(study, 2))

    async with uow_factory() as uow:
        await uow.invoices.update(first.move_to(InvoiceStatus.CANCELLED, at=make.now()))
        reissued = make.invoice(study, 2)
        await uow.invoices.add(reissued)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.invoices.active_for_study(study.id) == reissued


async def test_invoices_list_newest_first_with_filters(uow_factory: UnitOfWorkFactory, make: Make):
    a, b = make.centre(), make.centre()
    s1, s2, s3 = make.study(a), make.study(a), make.study(b)
    january = make.invoice(s1, 1, issued_on=date(2026, 1, 31))
    february = make.invoice(s2, 2, issued_on=date(2026, 2, 1), status=InvoiceStatus.PAID)
    in_b = make.invoice(s3, 1, issued_on=date(2026, 2, 15))
    await store(uow_factory, a, b, s1, s2, s3, january, february, in_b)

    async def ids(where: InvoiceFilter, page: Page | None = None) -> list:
        async with uow_factory() as uow:
            return [i.id for i in await uow.invoices.list(where, page or Page())]

    assert await ids(InvoiceFilter()) == [in_b.id, february.id, january.id]
    assert await ids(InvoiceFilter(centre_id=a.id)) == [february.id, january.id]
    assert await ids(InvoiceFilter(status=InvoiceStatus.PAID)) == [february.id]
    assert await ids(InvoiceFilter(study_id=s1.id)) == [january.id]
    assert await ids(InvoiceFilter(issued_from=date(2026, 2, 1))) == [in_b.id, february.id]
    assert await ids(InvoiceFilter(issued_to=date(2026, 2, 1))) == [february.id, january.id]
    assert await ids(InvoiceFilter(), Page(skip=2)) == [january.id]
