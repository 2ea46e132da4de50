"""Ports for moving work and news between processes: the task queue and the event bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from domain.events import DomainEvent
from domain.values import Id


class TaskQueue(Protocol):
    """Carries job ids to workers; the database stays the source of truth for jobs."""

    async def enqueue(self, job_id: Id, *, delay_s: float = 0.0) -> None: ...

    async def ping(self) -> None: ...


class EventBus(Protocol):
    """Publish events; subscribe to the events of one key (e.g. ``job:<id>``)."""

    async def publish(self, event: DomainEvent) -> None: ...

    def subscribe(self, key: str) -> AsyncIterator[DomainEvent]:
        """Events published on ``key`` after the subscription started, until the iterator
        is closed."""

    def subscription(self, key: str) -> AbstractAsyncContextManager[AsyncIterator[DomainEvent]]:
        """A subscription that is live once the ``async with`` is entered: every event
        published on ``key`` after that reaches the iterator it gives, until the block
        ends (or the bus closes). Read the current state *after* entering it, and no change
        falls between the state and the first event."""
