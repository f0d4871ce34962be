"""The report's figures: their names and captions, drawing them from a :class:`~crnfb.analysis.reporting.results.Results`,
and the Jupyter view (:meth:`Results._repr_html_`).

``crnfb report`` writes :func:`make_figures` as PNG files (:mod:`crnfb.analysis.cli.report`); Jupyter shows
:data:`NOTEBOOK_FIGURES` inline with the same captions and the same summary tables
(:func:`notebook_html`). A figure whose data could not be computed is drawn as a placeholder saying why.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from crnfb.analysis.reporting import plots, sections
from crnfb.analysis.reporting.summary import Figure
from crnfb.feedback.errors import Unavailable

if TYPE_CHECKING:      # Results draws itself through this module (Results._repr_html_)
    from crnfb.analysis.reporting.results import Results

__all__ = ["BUILT_IN", "FIGURES", "FIGURE_CAPTIONS", "all_figures", "caption", "NOTEBOOK_FIGURES", "make_figures", "notebook_html", "report_figures"]


#: The figures of the built-in sections, in report order.
BUILT_IN = ("bode", "step", "poles", "learning", "global", "nyquist", "distribution", "lag_cost")
#: Titles of the built-in figures' placeholders.
TITLES = {"bode": "Bode plot", "step": "Step response", "poles": "Pole map", "learning": "Learning",
          "global": "Outcome of learning", "nyquist": "Nyquist plot", "distribution": "Learned distribution",
          "lag_cost": "Lag cost"}


def all_figures() -> tuple[str, ...]:
    """Every figure a report can write, in report order: the built-in ones, then those of the registered
    sections (:data:`crnfb.analysis.reporting.sections.SECTIONS`)."""
    return BUILT_IN + tuple(s.figure.name for s in sections.SECTIONS if s.figure is not None)


#: Every figure a report can write, in report order (:func:`report_figures`: those of one report).
FIGURES = all_figures()

#: Each figure's caption (those of the registered sections from their
#: :class:`~crnfb.analysis.reporting.section.SectionFigure`).
FIGURE_CAPTIONS = {
    "bode": "Bode plot of the loop transfer L (broken at θ) and the sensitivity S, with the reported "
            "crossover, phase margin and bandwidth marked.",
    "step": "Response of θ along dθ*/da to a unit step in the environment weight a (linearised loop; "
            "the full nonlinear loop's response to a small step, rescaled, when validation ran).",
    "poles": "Closed-loop eigenvalues, quasi-static rates −eig(E H) and the structural or flat modes "
             "removed before stability is judged.",
    "learning": "A learning episode from the file's energies: θ(t) and the excess divergence D(t) − D*. "
                "With more than 15 learned parameters, 5 are named in colour, in turn the slowest to settle "
                "(last to come within 5 % of the largest excursion of its final value) and the most "
                "sensitive (largest diagonal of the Hessian of D at the fixed point); the others are thin grey "
                "lines.",
    "global": "Outcome of learning from the file's energies against the factor on ε (top axis: ε itself): "
              "the late-time amplitude of θ − θ_fp (kT; half of max − min over the hold of a converged run, "
              "over the second half of any other) of every ODE run of the safe-factor search, marked by "
              "outcome, with the gain margin (ε_crit) and the safe factor as vertical lines. Without the "
              "search (--no-validate) the report's own episode alone, at factor 1.",
    "nyquist": "Nyquist plot of L(jω) near the critical point −1. With more than 15 characteristic loci, "
               "5 are named in colour, in turn those nearest −1 and those of largest low-frequency gain; "
               "the others are thin grey lines.",
    "distribution": "The learned law P(v) at the loop's fixed point against the environment Q(v); with three "
                    "or more visible species a corner plot: the marginals on the diagonal, every pair's joint "
                    "P below it with that pair's Q as contours.",
    "lag_cost": "Lag cost: period-mean excess divergence per a₁² for a(t) = a₀ + a₁ sin(ωt).",
    **{s.figure.name: s.figure.caption for s in sections.SECTIONS if s.figure is not None},
}


def caption(name: str) -> str:
    """The caption of the figure ``name`` (:data:`FIGURE_CAPTIONS`, or its registered section's)."""
    if name in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[name]
    return next(s.figure.caption for s in sections.SECTIONS if s.figure is not None and s.figure.name == name)


def report_figures(res: Results) -> tuple[str, ...]:
    """The names of the figures the report of ``res`` writes (``NAME.png``), in order.

    The built-in figures, then those of the registered sections that apply to
    the model (``fluctuation`` only with a random environment: there is nothing
    to draw, and no placeholder is written). A figure whose data could not be
    computed for this model is still written, as a placeholder saying why.
    """
    return BUILT_IN + tuple(s.figure.name for s in sections.SECTIONS
                            if s.figure is not None and s.applies(res.model) is None)


def make_figures(res: Results, names: tuple[str, ...] | None = None) -> dict:
    """``{name: Figure}`` for ``names`` (default :func:`report_figures`); a figure that cannot be drawn says
    why instead."""
    titles = dict(TITLES)
    makers = {"bode": res.plot_bode, "step": res.plot_step, "poles": res.plot_poles, "learning": res.plot_learning,
              "global": res.plot_global,
              "nyquist": res.plot_nyquist, "distribution": res.plot_distribution, "lag_cost": res.plot_lag_cost}
    for sec in sections.SECTIONS:
        if sec.figure is not None:
            titles[sec.figure.name] = sec.figure.title
            makers[sec.figure.name] = partial(res.plot_section, sec.key)
    out = {}
    for name in report_figures(res) if names is None else names:
        try:
            out[name] = makers[name]()
        except Unavailable as e:
            out[name] = plots.placeholder(titles[name], str(e))
    return out


#: the figures :func:`notebook_html` shows inline
NOTEBOOK_FIGURES = ("bode", "step", "poles", "learning")


def notebook_html(res: Results, figures: tuple[str, ...] = NOTEBOOK_FIGURES, dpi: int = 80) -> str:
    """The report as an HTML fragment for Jupyter (:meth:`Results._repr_html_`).

    The verdict, the summary tables and ``figures`` inline as base64 PNG (at
    ``dpi``), laid out by :meth:`crnfb.analysis.reporting.summary.Summary.as_html`, the
    code that writes ``report.html``.
    """
    images = [Figure(name=n, caption=caption(n), png=plots.png_bytes(f, dpi=dpi))
              for n, f in make_figures(res, figures).items()]
    return res.summary().as_html(images, standalone=False)
