"""The ``thermodynamics`` section of the report: dissipation at the fixed point and over the learning episode.

One module per section (:mod:`crnfb.analysis.reporting.section`): what it computes
(:func:`crnfb.analysis.analyses.thermo.thermodynamics`, reading the report's one learning
episode), its ``report.json`` part (:meth:`~crnfb.analysis.analyses.thermo.Thermodynamics.to_dict`),
the keys it keeps when missing, and its summary table. It has no figure.
"""

from __future__ import annotations

from typing import Mapping

from crnfb.analysis.reporting.section import Context, Section, null_keys
from crnfb.analysis.reporting.summary import Table, fmt, reason_of
from crnfb.analysis.analyses.thermo import Thermodynamics, thermodynamics

__all__ = ["KEY", "SECTION", "compute", "missing", "table"]

#: The section's key in ``report.json`` and ``Results.reasons``.
KEY = "thermodynamics"
#: The parts of ``thermodynamics.fixed_point`` (docs/cli.md), each ``null`` with its reason when missing.
PARTS = ("free", "clamped", "learning", "total")


def compute(ctx: Context) -> Thermodynamics:
    """Dissipation at the loop's fixed point and over the report's learning episode (``ctx.episode``)."""
    return thermodynamics(ctx.model, loop=ctx.loop, quick=ctx.quick, episode_result=ctx.episode)


def missing(reason: str) -> dict:
    """The section's keys, ``null`` with ``reason``."""
    out = null_keys(("episode_total",), reason)
    out["fixed_point"] = null_keys(PARTS, reason)
    return out


def table(part: Mapping) -> Table:
    """Dissipation by part at the fixed point, and over the episode."""
    tfp = part["fixed_point"]
    return Table(title="Thermodynamics", header=("part", "dissipation (kT·κ)", "note"),
                 rows=tuple((k, fmt(tfp.get(k)), reason_of(tfp, k)) for k in PARTS)
                 + (("episode total (kT)", fmt(part["episode_total"]), reason_of(part, "episode_total")),))


SECTION = Section(key=KEY, step="thermodynamics", compute=compute, missing=missing,
                  not_computed="the thermodynamic accounting was not computed", table=table,
                  required=("fixed_point", *(f"fixed_point.{k}" for k in PARTS), "episode_total"),
                  scalars=(*(f"fixed_point.{k}" for k in PARTS), "episode_total"))
