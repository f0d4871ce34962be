"""A report section as one value: what it computes, its ``report.json`` part, its summary table, its figure.

A registered section is one module (``analysis/section_*.py``) that defines a
:class:`Section` and is listed once in :data:`crnfb.analysis.reporting.sections.SECTIONS`;
:func:`crnfb.analysis.reporting.pipeline.analyse`, :class:`~crnfb.analysis.reporting.results.Results`
(``to_dict``, ``summary``, the ``plot_*`` methods) and the report's figures
(:mod:`crnfb.analysis.reporting.figures`) iterate that registry and never name the section.
docs/architecture.md, "Adding a report section", walks through one.

A section computes from a :class:`Context`: the model, the core results every
report has (fixed points, linearised loop, stability), the built-in sections
(margins, disturbance, learning episode, validation, global behaviour) and the
registered sections before it in the registry. Registered sections run after
the built-in ones, in registry order.

This module imports nothing of the package at run time: section modules import
it, and the registry imports them (no import cycle, tests/test_layering.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:   # annotations only
    from matplotlib.figure import Figure

    from crnfb.analysis.analyses.disturbance import Disturbance
    from crnfb.analysis.linear.fixedpoints import LoopFixedPoint, StationaryPoint
    from crnfb.analysis.linear.linearise import LinearLoop
    from crnfb.analysis.analyses.margins import Margins
    from crnfb.analysis.linear.stability import Stability
    from crnfb.analysis.reporting.summary import Table
    from crnfb.analysis.analyses.thermo import Episode
    from crnfb.analysis.analyses.validation import Check
    from crnfb.feedback.model.model import Model

__all__ = ["Context", "SectionFigure", "Section", "null_keys"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Context:
    """What a registered section computes from (``None``: that part was not computed; its reason is in ``reasons``).

    Attributes
    ----------
    model, optimum, fixed_point, loop, stability :
        The core of every report (:func:`crnfb.analysis.reporting.pipeline.analyse`).
    margins, disturbance, episode, validation, global_behaviour :
        The built-in sections' results (``validation``: the checks, None when not run).
    earlier : Mapping[str, object]
        The results of the registered sections run before this one, by key.
    reasons : Mapping[str, str]
        Why a section is missing, by key.
    validate, quick, seed, figures :
        The settings of :func:`~crnfb.analysis.reporting.pipeline.analyse`.
    """

    model: Model
    optimum: StationaryPoint
    fixed_point: LoopFixedPoint
    loop: LinearLoop
    stability: Stability
    margins: Margins | None = None
    disturbance: Disturbance | None = None
    episode: Episode | None = None
    validation: list[Check] | None = None
    global_behaviour: dict | None = None
    earlier: Mapping[str, object] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    validate: bool = True
    quick: bool = False
    seed: int = 0
    figures: bool = True


@dataclass(frozen=True, kw_only=True)
class SectionFigure:
    """A section's figure in the report: file stem ``name`` (``name.png``), ``caption``, the ``title`` of the
    placeholder drawn when the section is missing, and ``draw(result, ax) -> Figure`` (a function of
    :mod:`crnfb.analysis.reporting.plots`)."""

    name: str
    caption: str
    title: str
    draw: Callable[..., Figure]


def _no_table(part: Mapping) -> Table | None:
    return None


def _own_dict(result: Any) -> dict:
    return result.to_dict()


def _no_checks(result: Any) -> list[Check]:
    return []


def _applies(model: Model) -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class Section:
    """One report section.

    Attributes
    ----------
    key : str
        Its key in ``report.json``, in ``Results.reasons`` and in ``Results.sections``
        (also ``Results.<key>``).
    step : str
        Its name in the progress bar and in ``meta.timings_s``.
    compute : Callable[[Context], object]
        The result (a value with ``to_dict``). It may raise
        :class:`~crnfb.feedback.errors.Unavailable` (the message is the reason), a
        :class:`~crnfb.feedback.errors.ModelError` or a ``SimulationError`` (a limitation);
        anything else is recorded as an internal error (exit 3).
    missing : Callable[[str], dict]
        Its ``report.json`` part when it was not computed, from the reason: the keys
        docs/cli.md requires, ``null`` with the reason beside them.
    not_computed : str
        The reason when none was recorded.
    to_dict : Callable[[object], dict]
        Its ``report.json`` part from the result (default ``result.to_dict()``).
    table : Callable[[Mapping], Table | None]
        Its summary table from its ``report.json`` part (None: no table).
    figure : SectionFigure or None
        Its figure in the report, if it has one.
    applies : Callable[[Model], str | None]
        Why the section does not apply to a model (then it is neither run nor timed and
        its figure is not written), or None (default: every model).
    checks : Callable[[object], list[Check]]
        Validation entries the result adds to the report's ``validation`` list (when
        validation ran).
    required : tuple[str, ...]
        Its keys that docs/cli.md requires (dotted paths below ``key``; part of
        :data:`crnfb.analysis.reporting.results.REQUIRED_KEYS`).
    scalars : tuple[str, ...]
        Its scalar results that ``crnfb sweep`` tabulates (dotted paths below ``key``; part of
        :data:`crnfb.analysis.reporting.results.SCALAR_KEYS`).
    """

    key: str
    step: str
    compute: Callable[[Context], Any]
    missing: Callable[[str], dict]
    not_computed: str
    to_dict: Callable[[Any], dict] = _own_dict
    table: Callable[[Mapping], Table | None] = _no_table
    figure: SectionFigure | None = None
    applies: Callable[[Model], str | None] = _applies
    checks: Callable[[Any], list[Check]] = _no_checks
    required: tuple[str, ...] = ()
    scalars: tuple[str, ...] = ()

    def part(self, result: Any, reason: str | None) -> dict:
        """The section's ``report.json`` part: from ``result``, else :attr:`missing` with ``reason``."""
        if result is None:
            return self.missing(reason or self.not_computed)
        return self.to_dict(result)


def null_keys(keys: tuple[str, ...], reason: str) -> dict:
    """Each of ``keys`` ``null`` with ``reason`` beside it (``<key>_reason``): a section not computed."""
    out: dict = {}
    for k in keys:
        out[k] = None
        out[f"{k}_reason"] = reason
    return out
