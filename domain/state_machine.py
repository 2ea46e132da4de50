"""State machines as an enum plus a transition table.

Each aggregate that has a lifecycle declares one :class:`TransitionTable`; moving an
aggregate goes through :meth:`TransitionTable.check`, which raises
:class:`~domain.errors.InvalidTransition` naming the current and requested states.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

from domain.errors import InvalidTransition

S = TypeVar("S", bound=enum.Enum)


class TransitionTable(Generic[S]):
    """The allowed moves of one state machine."""

    def __init__(self, machine: str, moves: Mapping[S, Iterable[S]]) -> None:
        self.machine = machine
        self._moves: dict[S, frozenset[S]] = {state: frozenset(to) for state, to in moves.items()}

    def allowed(self, current: S) -> frozenset[S]:
        return self._moves.get(current, frozenset())

    def can(self, current: S, requested: S) -> bool:
        return requested in self.allowed(current)

    def check(self, current: S, requested: S) -> S:
        """Return ``requested`` when the move is legal, else raise ``InvalidTransition``."""
        if not self.can(current, requested):
            raise InvalidTransition(self.machine, str(current.value), str(requested.value))
        return requested

    def is_terminal(self, state: S) -> bool:
        return not self.allowed(state)
