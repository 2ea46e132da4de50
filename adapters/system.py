"""The real clock and identifier generator."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class UuidIdGenerator:
    """UUIDv7 (RFC 9562): time-ordered, so new rows land at the end of b-tree indexes."""

    def new_id(self) -> uuid.UUID:
        unix_ms = time.time_ns() // 1_000_000
        random_bits = int.from_bytes(os.urandom(10), "big")
        value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
        value |= 0x7 << 76  # version
        value |= ((random_bits >> 62) & 0xFFF) << 64  # rand_a
        value |= 0b10 << 62  # variant
        value |= random_bits & 0x3FFF_FFFF_FFFF_FFFF  # rand_b
        return uuid.UUID(int=value)
