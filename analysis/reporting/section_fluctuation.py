"""The ``fluctuation`` section of the report: the mean cost of learning in a random environment against eps.

One module per section (:mod:`crnfb.analysis.reporting.section`): what it computes
(:func:`crnfb.analysis.analyses.fluctuation.analyse_fluctuation`; docs/theory.md §5a),
its ``report.json`` part (``available`` beside the result's own keys), its
summary table, its figure (:func:`crnfb.analysis.reporting.plots.fluctuation`) and the
checks it adds to the report's validation. It applies only to a model with an
``[environment.fluctuation]``.
"""

from __future__ import annotations

from typing import Mapping

from crnfb.analysis.reporting import plots
from crnfb.analysis.analyses.fluctuation import (NO_RANDOM_ENVIRONMENT, FluctuationResult, analyse_fluctuation,
                                                 cost_refusal)
from crnfb.analysis.reporting.section import Context, Section, SectionFigure
from crnfb.analysis.reporting.summary import Table, fmt, rates_text, reason_of
from crnfb.analysis.analyses.validation import Check
from crnfb.feedback.errors import Unavailable
from crnfb.feedback.model.model import Model

__all__ = ["KEY", "SECTION", "fluctuation_section", "fluctuation_checks", "table"]

#: The section's key in ``report.json`` and ``Results.reasons``, and its figure's name.
KEY = "fluctuation"


def applies(model: Model) -> str | None:
    """Why the section does not apply to ``model`` (no random environment), or None."""
    return NO_RANDOM_ENVIRONMENT if model.fluctuation is None else None


def fluctuation_section(model: Model, validate: bool, quick: bool, seed: int) -> FluctuationResult:
    """Mean cost of learning in the random environment ``[environment.fluctuation]`` against eps
    (:func:`crnfb.analysis.analyses.fluctuation.analyse_fluctuation`; docs/theory.md §5a); refused with its
    estimated cost when that is above the budget."""
    if model.fluctuation is None:
        raise Unavailable(NO_RANDOM_ENVIRONMENT)
    refusal = cost_refusal(model)      # estimated before the work: levels grow the cost as (n + K)^3
    if refusal is not None:
        raise Unavailable(refusal)
    return analyse_fluctuation(model, validate=validate, seed=seed, quick=quick)


def compute(ctx: Context) -> FluctuationResult:
    """:func:`fluctuation_section` with the report's settings."""
    return fluctuation_section(ctx.model, ctx.validate, ctx.quick, int(ctx.seed))


def fluctuation_checks(result: FluctuationResult | None) -> list[Check]:
    """The fluctuation checks that were made, as report ``validation`` entries (those not made stay,
    with ``passed: null`` and the reason, in the ``fluctuation`` section)."""
    out = []
    for c in (result.validation if result is not None else ()):
        if c.get("passed") is None:
            continue
        details = {k: v for k, v in c.items()
                   if k not in ("quantity", "predicted", "simulated", "rel_error", "tolerance", "passed")}
        out.append(Check(quantity=c["quantity"], predicted=c["predicted"], simulated=c["simulated"],
                         rel_error=c["rel_error"], tolerance=c["tolerance"], passed=bool(c["passed"]), details=details))
    return out


def to_dict(result: FluctuationResult) -> dict:
    """The result's keys and ``available: true``."""
    return dict(result.to_dict(), available=True)


def missing(reason: str) -> dict:
    """``available: false`` and the reason."""
    return {"available": False, "reason": reason}


def table(part: Mapping) -> Table | None:
    """The random-environment block (docs/theory.md §5a): costs at eps_opt, eps_crit, linear range
    (None when the section is not available)."""
    if not part.get("available"):
        return None
    at = part.get("at_eps_opt") or {}
    lin = part.get("linear_range") or {}
    rows = [("eps_opt (least mean excess divergence)", rates_text(part.get("eps_opt")), reason_of(part, "eps_opt")),
            ("eps_crit", rates_text(part.get("eps_crit")), reason_of(part, "eps_crit")),
            ("eps_opt / eps_crit", fmt(part.get("eps_opt_over_eps_crit"), ".3g"),
             reason_of(part, "eps_opt_over_eps_crit"))]
    rows += [(f"at eps_opt: {k} (nats)", fmt(at.get(k)), "") for k in ("tracking", "noise", "bias", "total")]
    rows.append(("at eps_opt: dissipation (kT/time per cell)", fmt(at.get("dissipation")), ""))
    rows.append(("linear range: worst quadratic error", fmt(lin.get("max_rel_error"), ".2g"),
                 "in range" if lin.get("in_range") else f"**OUT OF RANGE**: {lin.get('reason', '')}"))
    return Table(title="Random environment", header=("quantity", "value", "note"), rows=tuple(rows))


FIGURE = SectionFigure(
    name=KEY, title="Random environment", draw=plots.fluctuation,
    caption="Learning in a random environment (docs/theory.md §5a): predicted mean excess divergence "
            "against ε with its tracking, noise and bias parts, the simulated costs (SSA, 95 % interval; "
            "ODE tracking term), ε_opt, ε_crit, and the dissipation rate (right axis).")

SECTION = Section(key=KEY, step="fluctuation", compute=compute, missing=missing, to_dict=to_dict,
                  not_computed="the fluctuation analysis was not run", table=table, figure=FIGURE,
                  applies=applies, checks=fluctuation_checks)
