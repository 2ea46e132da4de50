"""An in-process event bus: every subscriber of a key gets its own unbounded queue."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from domain.events import DomainEvent

_CLOSED: Final = object()
"""Put in a subscriber's queue when the bus closes: the subscription ends."""


class MemoryEventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self._closed = False

    async def publish(self, event: DomainEvent) -> None:
        for queue in list(self._subscribers.get(event.key, ())):
            queue.put_nowait(event)

    async def subscribe(self, key: str) -> AsyncIterator[DomainEvent]:
        if self._closed:
            return
        async with self.subscription(key) as events:
            async for event in events:
                yield event

    @asynccontextmanager
    async def subscription(self, key: str) -> AsyncIterator[AsyncIterator[DomainEvent]]:
        """Live as soon as the ``async with`` is entered."""
        if self._closed:
            raise RuntimeError("MemoryEventBus is closed")
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers[key].add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers[key].discard(queue)
            if not self._subscribers[key]:
                del self._subscribers[key]

    async def aclose(self) -> None:
        """End every subscription (a server shutting down ends its websocket streams)."""
        self._closed = True
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(_CLOSED)

    def subscriber_count(self, key: str) -> int:
        return len(self._subscribers.get(key, ()))


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[DomainEvent]:
    while True:
        item = await queue.get()
        if item is _CLOSED:
            return
        yield item
