"""Exceptions raised for bad input.

Every error about user input says where (file, table/key, line when known),
what was wrong and what would be right. The command line turns
:class:`ModelError` into a message on stderr and exit code 2.
"""

from __future__ import annotations

from math import isfinite
from typing import Literal, overload


class ModelError(ValueError):
    """Invalid model: bad file, bad key, inconsistent network or environment.

    Parameters
    ----------
    message
        What was wrong and what would be right.
    file
        The model file (``None`` when the model was built in Python).
    key
        Dotted TOML key, e.g. ``"reactions[2].eq"`` or ``"environment.mean"``.
    line
        Line number when the TOML parser reports one.
    """

    def __init__(self, message: str, *, file: str | None = None,
                 key: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file) + (f":{self.line}" if self.line else ""))
        if self.key:
            where.append(f"[{self.key}]")
        prefix = " ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def located(self, file: str | None = None, key: str | None = None) -> "ModelError":
        """Return a copy with the file (and key, if not yet set) filled in."""
        return ModelError(self.message, file=self.file or file,
                          key=self.key or key, line=self.line)


class DetailedBalanceError(ModelError):
    """Rate constants violate the Wegscheider conditions."""


class TruncationError(ModelError):
    """The truncation box drops more stationary mass than the tolerance."""


class EnvironmentModelError(ModelError):
    """The environment is not a valid law on the reachable visible states."""


@overload
def check_number(x, key: str, *, positive: bool = ..., nonneg: bool = ..., integer: Literal[True],
                 prob: bool = ...) -> int: ...


@overload
def check_number(x, key: str, *, positive: bool = ..., nonneg: bool = ..., integer: Literal[False] = ...,
                 prob: bool = ...) -> float: ...


def check_number(x, key: str, *, positive: bool = False, nonneg: bool = False, integer: bool = False,
                 prob: bool = False) -> float | int:
    """Validate one numeric value from a model file (bools and strings are not numbers).

    Returns an ``int`` when ``integer`` is set, else a ``float``; raises
    :class:`ModelError` naming ``key`` with what was wrong.
    """
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ModelError(f"must be a number, got {x!r}", key=key)
    if not isfinite(x):
        raise ModelError(f"must be finite, got {x!r}", key=key)
    if integer and int(x) != x:
        raise ModelError(f"must be a whole number, got {x!r}", key=key)
    if integer and abs(x) > 2 ** 53:
        raise ModelError(f"must be at most 2**53 in magnitude, got {x!r}", key=key)
    if positive and x <= 0:
        raise ModelError(f"must be > 0, got {x!r}", key=key)
    if nonneg and x < 0:
        raise ModelError(f"must be >= 0, got {x!r}", key=key)
    if prob and not 0 <= x <= 1:
        raise ModelError(f"must be a probability in [0, 1], got {x!r}", key=key)
    return int(x) if integer else float(x)


class Unavailable(Exception):
    """A section or figure of an analysis cannot be computed (a stated limitation, not a bug)."""


__all__ = ["check_number", "DetailedBalanceError", "EnvironmentModelError", "ModelError", "TruncationError",
           "Unavailable"]
