"""Helpers shared by the command structs of every use case."""

from __future__ import annotations

import msgspec


def changes_of(command: msgspec.Struct) -> dict[str, object]:
    """The fields of a partial-update command that were given (not ``UNSET``)."""
    return {
        field: value
        for field in command.__struct_fields__
        if (value := getattr(command, field)) is not msgspec.UNSET
    }
