"""User-facing errors.

Anything the user can get wrong (an unknown task, a length beyond the model's context, a
malformed spec, a corrupt checkpoint) raises :class:`InterpError`. The CLI catches exactly this
class and prints its message with exit code 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class InterpError(Exception):
    """An error caused by bad input, reported to the user as one readable line."""


def unknown_choice(kind: str, value: object, choices: list[str] | tuple[str, ...]) -> InterpError:
    """Build the standard "unknown X; valid choices are ..." error."""
    return InterpError(f"unknown {kind} {value!r}; valid choices: {', '.join(map(str, choices))}")
