"""An in-process event bus: every subscriber of a key gets its own unbounded queue."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

from domain.events import DomainEvent


class MemoryEventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[DomainEvent]]] = defaultdict(set)

    async def publish(self, event: DomainEvent) -> None:
        for queue in list(self._subscribers.get(event.key, ())):
            queue.put_nowait(event)

    async def subscribe(self, key: str) -> AsyncIterator[DomainEvent]:
        queue: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._subscribers[key].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers[key].discard(queue)
            if not self._subscribers[key]:
                del self._subscribers[key]

    def subscriber_count(self, key: str) -> int:
        return len(self._subscribers.get(key, ()))
