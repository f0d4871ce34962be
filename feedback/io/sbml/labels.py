"""Copy-state labels and SBML ids (docs/sbml.md, "Ids")."""

from __future__ import annotations

import re

from ...errors import ModelError

__all__ = ["SID", "state_label", "parse_state_label", "check_ids", "to_sid"]

#: What SBML allows as an id.
SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def state_label(names, state) -> str:
    """Label of a copy state: each species name followed by its count, joined by ``_``.

    All species are listed, in network order (zeros included), so the label
    decodes unambiguously given the species names (:func:`parse_state_label`),
    even when names end in digits or contain ``_``.

    >>> state_label(["X", "Y"], [3, 17])
    'X3_Y17'
    """
    return "_".join(f"{n}{int(c)}" for n, c in zip(names, state))


def parse_state_label(names, label: str) -> tuple[int, ...]:
    """Inverse of :func:`state_label` (``ValueError`` if ``label`` is not one)."""
    pos, out = 0, []
    for k, n in enumerate(names):
        if k:
            if label[pos:pos + 1] != "_":
                raise ValueError(f"{label!r} is not a state label over {list(names)}")
            pos += 1
        if not label.startswith(n, pos):
            raise ValueError(f"{label!r} is not a state label over {list(names)}")
        pos += len(n)
        m = re.compile(r"\d+").match(label, pos)
        if not m:
            raise ValueError(f"{label!r} is not a state label over {list(names)}")
        out.append(int(m.group()))
        pos = m.end()
    if pos != len(label):
        raise ValueError(f"{label!r} is not a state label over {list(names)}")
    return tuple(out)


def check_ids(ids, what: str = "SBML ids") -> None:
    """Raise :class:`ModelError` if an id is not a valid SBML id or is used twice."""
    seen = set()
    for i in ids:
        if not SID.match(i):
            raise ModelError(f"{i!r} is not a valid SBML id")
        if i in seen:
            raise ModelError(f"the SBML id {i!r} would be used twice; rename the species so that "
                             f"generated ids ({what}) do not collide")
        seen.add(i)


def to_sid(text: str) -> str:
    """``text`` made into a valid SBML id (invalid characters become ``_``)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return s if re.match(r"[A-Za-z_]", s) else f"m_{s}"
