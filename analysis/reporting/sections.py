"""The registered report sections, in report order.

Each entry is the :class:`~crnfb.analysis.reporting.section.Section` of one module
(``analysis/section_*.py``). The pipeline runs them after the built-in
sections in this order; ``report.json`` holds their parts in this order
between ``validation`` and ``global``; the summary shows their tables after
the validation table, and the report writes their figures after the built-in
ones. Adding a section is adding its module and one line here
(docs/architecture.md, "Adding a report section").
"""

from __future__ import annotations

from crnfb.analysis.reporting import section_fluctuation, section_thermodynamics
from crnfb.analysis.reporting.section import Section

__all__ = ["SECTIONS", "KEYS", "by_key"]

#: The registered sections, in report order.
SECTIONS: tuple[Section, ...] = (section_thermodynamics.SECTION, section_fluctuation.SECTION)

#: Their ``report.json`` keys.
KEYS: tuple[str, ...] = tuple(s.key for s in SECTIONS)


def by_key(key: str, sections: tuple[Section, ...] | None = None) -> Section:
    """The registered section whose key is ``key`` (KeyError if none)."""
    for s in SECTIONS if sections is None else sections:
        if s.key == key:
            return s
    raise KeyError(f"no registered report section {key!r} (registered: {', '.join(KEYS)})")
