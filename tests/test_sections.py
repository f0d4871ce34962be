"""The registry of report sections (:mod:`crnfb.analysis.reporting.sections`): a new section is one module.

A toy section registered in the test (and nowhere else) is run by the
pipeline, appears in ``report.json``, the summary, the figures and the report
files, reads what the sections before it computed, and its failure or
absence is handled as any section's; the moved sections (thermodynamics,
fluctuation) keep their ``report.json`` parts.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping

import numpy as np
import pytest

from crnfb.analysis.reporting import section_fluctuation, section_thermodynamics, sections
from crnfb.analysis.reporting.figures import caption, make_figures, report_figures
from crnfb.analysis.reporting.pipeline import analyse
from crnfb.analysis.cli.report import report_files, write_report
from crnfb.analysis.reporting.results import Results
from crnfb.analysis.reporting.section import Context, Section, SectionFigure, null_keys
from crnfb.analysis.reporting.summary import Table, fmt
from crnfb.analysis.analyses.thermo import Thermodynamics, thermodynamics_report
from crnfb.feedback.errors import Unavailable

ROOT = Path(__file__).resolve().parent.parent


# -- a toy section: everything it needs in one place, as a section module would hold it -------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class Toy:
    """The toy section's result: the loop's slowest rate, and whether thermodynamics ran before it."""

    slowest_rate: float
    after_thermodynamics: bool

    def to_dict(self) -> dict:
        return {"slowest_rate": self.slowest_rate, "after_thermodynamics": self.after_thermodynamics}


def _toy_compute(ctx: Context) -> Toy:
    assert ctx.episode is not None and ctx.margins is not None       # the built-in sections ran before it
    return Toy(slowest_rate=float(ctx.stability.slowest_rate),
               after_thermodynamics=section_thermodynamics.KEY in ctx.earlier)


def _toy_table(part: Mapping) -> Table:
    return Table(title="Toy section", header=("quantity", "value"), rows=(("slowest rate", fmt(part["slowest_rate"])),))


def _toy_figure(result: Toy, ax=None):
    from matplotlib.figure import Figure
    fig = Figure()
    (ax or fig.add_subplot()).set_title(f"toy: {result.slowest_rate:.3g}")
    return fig


TOY = Section(key="toy", step="toy step", compute=_toy_compute, not_computed="the toy was not computed",
              missing=lambda why: null_keys(("slowest_rate",), why), table=_toy_table,
              figure=SectionFigure(name="toy", caption="A toy figure.", title="Toy", draw=_toy_figure),
              required=("slowest_rate",), scalars=("slowest_rate",))


def _failing(ctx: Context):
    raise RuntimeError("a bug in the toy")


@pytest.fixture(scope="module")
def core(e1):
    """E1's fixed points, linearised loop and stability, as the pipeline finds them."""
    res = analyse(e1, validate=False, figures=False)
    return e1, res.optimum, res.fixed_point, res.loop, res.stability


def test_a_registered_section_is_run_reported_summarised_and_drawn(e1, monkeypatch, tmp_path):
    """E1 analysed with the toy registered after the built-in registry (the only change anywhere)."""
    monkeypatch.setattr(sections, "SECTIONS", sections.SECTIONS + (TOY,))
    res = analyse(e1, validate=False, figures=False)
    assert isinstance(res.toy, Toy) and res.toy.after_thermodynamics          # registry order
    d = res.to_dict()
    assert d["toy"] == res.toy.to_dict() and list(d).index("toy") == list(d).index("global") - 1
    assert "toy step" in d["meta"]["timings_s"]
    text = res.summary().as_text()
    assert "Toy section" in text and text.index("Thermodynamics") < text.index("Toy section")
    assert report_figures(res)[-1] == "toy" and caption("toy") == "A toy figure."
    fig = res.plot_toy()
    assert fig.axes[0].get_title().startswith("toy: ")
    assert "toy.png" in report_files()
    out = write_report(res, tmp_path / "rep")
    assert (out / "toy.png").exists() and "A toy figure." in (out / "report.md").read_text(encoding="utf-8")
    assert json.loads((out / "report.json").read_text())["toy"]["slowest_rate"] == pytest.approx(
        res.stability.slowest_rate)
    assert "plot_toy" in dir(res) and "toy" in dir(res)


def test_a_failing_section_keeps_its_keys_null_with_the_reason(e1):
    bad = dataclasses.replace(TOY, compute=_failing)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sections, "SECTIONS", sections.SECTIONS + (bad,))
        with pytest.warns(RuntimeWarning, match="toy failed"):
            res = analyse(e1, validate=False, figures=False)
        d = res.to_dict()
        assert d["toy"]["slowest_rate"] is None and "a bug in the toy" in d["toy"]["slowest_rate_reason"]
        assert res.toy is None and res.exit_code == 3 and d["verdict"]["internal_errors"] == ["toy"]
        with pytest.raises(Unavailable, match="a bug in the toy"):
            res.plot_toy()
        # the figure is a placeholder saying why
        assert "a bug in the toy" in make_figures(res, ("toy",))["toy"].crnfb["reason"]


def test_a_section_that_does_not_apply_is_neither_run_nor_drawn(e1):
    never = dataclasses.replace(TOY, applies=lambda model: "not for this model", compute=_failing)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sections, "SECTIONS", sections.SECTIONS + (never,))
        res = analyse(e1, validate=False, figures=False)
        d = res.to_dict()
        assert d["toy"] == {"slowest_rate": None, "slowest_rate_reason": "not for this model"}
        assert "toy step" not in d["meta"]["timings_s"] and "toy" not in report_figures(res)
        assert "Toy section" in res.summary().as_text()        # its table, with n/a


def test_the_registry():
    keys = [s.key for s in sections.SECTIONS]
    assert keys == list(sections.KEYS) and len(set(keys)) == len(keys)
    assert keys[:2] == [section_thermodynamics.KEY, section_fluctuation.KEY]
    assert sections.by_key(section_fluctuation.KEY) is section_fluctuation.SECTION
    with pytest.raises(KeyError, match="no registered report section"):
        sections.by_key("nonesuch")
    # nothing outside a section's own module names it: pipeline, results, summary, report and figures
    # iterate the registry
    for name in ("reporting/pipeline", "reporting/results", "reporting/summary", "cli/report", "reporting/figures"):
        src = (ROOT / "analysis" / f"{name}.py").read_text(encoding="utf-8")
        for key in keys:
            assert f'"{key}"' not in src and f"'{key}'" not in src, (name, key)


def test_thermodynamics_is_an_object_whose_dict_is_the_report_section(core):
    model, opt, fp, loop, st = core
    th = section_thermodynamics.compute(Context(model=model, optimum=opt, fixed_point=fp, loop=loop, stability=st,
                                                quick=True))
    assert isinstance(th, Thermodynamics) and dataclasses.is_dataclass(th)
    with pytest.raises(dataclasses.FrozenInstanceError):
        th.episode = None
    with pytest.raises(TypeError):
        Thermodynamics(th.fixed_point, th.maintenance)           # keyword only
    d = th.to_dict()
    assert d == thermodynamics_report(model, loop=loop, quick=True)
    assert d["episode_total"] == th.episode_total and np.isfinite(th.episode_total)
    assert [r[0] for r in section_thermodynamics.table(d).rows][:4] == list(section_thermodynamics.PARTS)
    assert set(section_thermodynamics.missing("why")) == {"episode_total", "episode_total_reason", "fixed_point"}


def test_results_without_a_section_reports_it_missing(core):
    model, opt, fp, loop, st = core
    d = Results(model=model, optimum=opt, fixed_point=fp, loop=loop, stability=st,
                reasons={section_thermodynamics.KEY: "skipped"}).to_dict()
    assert d["thermodynamics"]["episode_total_reason"] == "skipped"
    assert d["thermodynamics"]["fixed_point"]["free"] is None
    assert d["fluctuation"] == {"available": False, "reason": "the fluctuation analysis was not run"}
