"""Figures (:mod:`crnfb.analysis.reporting.plots`): non-trivial, and what they draw is what report.json says; gallery."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnfb.analysis.reporting import plots
from crnfb.analysis.linear.frequency import LoopResponse
from crnfb.analysis.reporting.pipeline import analyse
from crnfb.analysis.reporting.results import Distribution, StepResponse, Unavailable

ROOT = Path(__file__).resolve().parent.parent
GALLERY = sorted((ROOT / "examples" / "gallery").glob("*.py"))


@pytest.fixture(scope="module")
def res(e1):
    return analyse(e1, validate=False)


@pytest.fixture(scope="module")
def d(res):
    return res.to_dict()


def _pixels(fig):
    from matplotlib.image import imread
    png = plots.png_bytes(fig, dpi=80)
    return len(png), imread(io.BytesIO(png))


def _non_trivial(fig, min_bytes=15_000):
    size, img = _pixels(fig)
    assert size > min_bytes
    assert img[..., :3].std() > 0.04, "figure is (nearly) blank"


@pytest.mark.parametrize("name", ["bode", "step", "poles", "learning", "distribution", "nyquist", "lag_cost"])
def test_every_figure_is_non_trivial(res, name):
    fig = getattr(res, f"plot_{name}")()
    from matplotlib.figure import Figure
    assert isinstance(fig, Figure)
    assert not fig.crnfb.get("placeholder"), fig.crnfb
    _non_trivial(fig)
    for ax in fig.axes:
        if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>":
            assert ax.get_xlabel() or ax.get_ylabel() or ax.get_title()


def test_bode_crossover_and_phase_margin_where_the_drawn_response_says(res, d):
    """E1: L(s) = eps mu kappa / (s (s + kappa)) (docs/theory.md §8): crossover and phase margin in
    closed form, and read off the very response the figure draws."""
    fig = res.plot_bode()
    _non_trivial(fig)
    wc, pm = d["margins"]["crossover_frequency"], d["margins"]["phase_margin_deg"]
    assert wc is not None and pm is not None          # one learned direction: both must exist
    w_exact = np.sqrt((-1 + np.sqrt(1 + 4 * 0.25 ** 2)) / 2)
    assert wc == pytest.approx(w_exact, rel=1e-3)
    assert pm == pytest.approx(90 - np.degrees(np.arctan(w_exact)), abs=0.05)
    fr = res.frequency
    L = np.interp(np.log(wc), np.log(fr.omega), fr.L[:, 0, 0].real) + 1j * np.interp(
        np.log(wc), np.log(fr.omega), fr.L[:, 0, 0].imag)
    assert abs(L) == pytest.approx(1.0, rel=2e-3)
    assert 180.0 + np.degrees(np.angle(L)) == pytest.approx(pm, abs=0.05)


def test_bandwidth_is_where_sensitivity_crosses_minus_3db(res, d):
    bw = d["disturbance"]["bandwidth"]
    assert bw is not None, d["disturbance"].get("bandwidth_reason")     # E1 rejects slow changes
    fr = res.frequency
    S = np.interp(np.log(bw), np.log(fr.omega), np.abs(fr.S[:, 0, 0]))
    assert S == pytest.approx(1 / np.sqrt(2), rel=5e-3)
    # closed form: |S(jw)|^2 = w^2 (w^2 + 1) / ((eps mu - w^2)^2 + w^2) with eps mu = 0.25, kappa = 1
    w = bw
    assert np.sqrt(w**2 * (w**2 + 1) / ((0.25 - w**2) ** 2 + w**2)) == pytest.approx(1 / np.sqrt(2), rel=5e-3)


def test_nyquist_crossover_on_the_unit_circle(res, d):
    fig = res.plot_nyquist()
    _non_trivial(fig)
    re, im = fig.crnfb["crossover_point"]
    assert abs(complex(re, im)) == pytest.approx(1.0, rel=2e-3)
    assert 180 + np.degrees(np.angle(complex(re, im))) == pytest.approx(d["margins"]["phase_margin_deg"], abs=0.05)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    box = fig.legends[0].get_window_extent(canvas.get_renderer())
    minus_one = fig.axes[0].transData.transform((-1.0, 0.0))
    assert not box.contains(*minus_one), "the legend covers the critical point"


def test_step_metrics_are_those_of_the_drawn_curve(res, d):
    """The reported step metrics, read again off the step series with control.step_info."""
    import control
    st = d["disturbance"]["step"]
    assert st["rise_time"] is not None and st["settling_time"] is not None
    sr = res.step
    info = control.step_info(sr.y, sr.t, yfinal=1.0)
    assert info["RiseTime"] == pytest.approx(st["rise_time"], rel=2e-2)
    assert info["SettlingTime"] == pytest.approx(st["settling_time"], rel=2e-2)
    late = sr.t >= st["settling_time"] + 1e-9
    assert np.all(np.abs(sr.y[late] - 1.0) <= 0.02 + 1e-6)
    assert sr.y[-1] == pytest.approx(1.0, abs=1e-3)   # perfect adaptation under equilibrium clamping
    _non_trivial(res.plot_step())


def test_poles_e1_closed_form(res, d):
    """E1: s^2 + s + eps mu = 0 with eps mu = 0.25: a double root at -1/2; quasi-static rate eps mu."""
    _non_trivial(res.plot_poles())
    ev = np.array(d["closed_loop"]["eigenvalues"])
    assert ev[:2, 0] == pytest.approx([-0.5, -0.5], abs=1e-5)
    assert d["quasi_static"]["rates"] == pytest.approx([0.25], rel=1e-9)


def test_learning_converges_to_the_fixed_point(res, d):
    fig = res.plot_learning()
    theta = fig.crnfb["theta"]
    assert theta[-1, 0] == pytest.approx(d["fixed_point"]["theta"]["X"], abs=2e-3)
    assert fig.crnfb["D"][-1] < fig.crnfb["D"][0]


def test_distribution_matches_environment_for_e1(res):
    fig = res.plot_distribution()
    assert fig.crnfb["total_variation"] < 1e-6       # E1 learns Q = Poisson(5) exactly


def test_lag_cost_e1_closed_form(res):
    """E1 under equilibrium clamping: m_c = E_Q(a)[x] = 5 + 3a does not depend on theta, and the free
    mean answers dm_f = 5/(s+1) dtheta, so dtheta/dt = eps (3 da - 5/(s+1) dtheta) with eps = 0.05:
    dtheta/da = 0.15 (s+1)/(s^2+s+0.25). With dtheta*/da = 3/5 and H = 5 the lag cost is
    H |z|^2 / 4, z = dtheta/da - 3/5 = -0.6 s (s + 0.75)/(s^2 + s + 0.25)."""
    dist = res.disturbance
    lag = np.asarray(dist.lag_cost)
    assert lag.shape[0] >= 10
    s = 1j * lag[:, 0]
    z = -0.6 * s * (s + 0.75) / (s**2 + s + 0.25)
    assert lag[:, 1] == pytest.approx(5.0 * np.abs(z) ** 2 / 4, rel=1e-8)
    assert dist.lag_cost_unadapted == pytest.approx(5.0 * 0.6 ** 2 / 4, rel=1e-8)     # the limit w -> inf
    _non_trivial(res.plot_lag_cost())


def test_placeholders_and_unavailable():
    fig = plots.lag_cost(None, reason="no change")
    assert fig.crnfb["placeholder"] and fig.crnfb["reason"] == "no change"
    _non_trivial(fig, 5_000)

def test_missing_figure_data_raises_unavailable(res):
    import dataclasses
    r = dataclasses.replace(res, step=None, reasons={"step": "no change"})
    with pytest.raises(Unavailable, match="no change"):
        r.plot_step()


def test_mimo_bode_nyquist_and_two_species_distribution():
    w = np.logspace(-4, 3, 300)
    s = 1j * w
    P = np.array([[0.3, 0.05], [0.05, 0.1]])
    L = P[None] / s[:, None, None] / (1 + s[:, None, None])
    S = np.linalg.inv(np.eye(2)[None] + L)
    G = np.stack([1 / (1 + 0.3 / s), 0.5 / (1 + 0.1 / s)], axis=1)
    G_frozen = np.ones((w.size, 2)) * [1.0, 0.5]
    fr = LoopResponse(omega=w, P=P[None].repeat(w.size, 0), G_frozen=G_frozen, L=L, S=S, G_ae=G,
                      G_atheta=np.zeros_like(G))
    fig = plots.bode(fr, None, SimpleNamespace(bandwidth=0.3))
    _non_trivial(fig)
    assert fig.crnfb["bandwidth"] == 0.3
    _non_trivial(plots.nyquist(fr))
    a, b = np.meshgrid(np.arange(8), np.arange(5), indexing="ij")
    states = np.column_stack([a.ravel(), b.ravel()])
    from scipy.stats import binom, poisson
    Q = poisson.pmf(states[:, 0], 2.0) * binom.pmf(states[:, 1], 4, 0.6)
    P2 = poisson.pmf(states[:, 0], 2.5) * binom.pmf(states[:, 1], 4, 0.5)
    fig = plots.distribution(Distribution(states=states, P=P2 / P2.sum(), Q=Q / Q.sum(), names=["A", "B"]))
    _non_trivial(fig)
    assert len(fig.axes) >= 3


def test_step_with_nonlinear_overlay():
    t = np.linspace(0, 20, 200)
    y = 1 - np.exp(-t / 3)
    fig = plots.step(StepResponse(t=t, y=y, direction=np.ones(1), t_nonlinear=t[::10], y_nonlinear=y[::10] * 1.01),
                     SimpleNamespace(rise_time=6.59, settling_time=11.7, overshoot_pct=0.0))
    _non_trivial(fig)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(lab.startswith("nonlinear simulation") for lab in labels)


def test_own_modules_import_matplotlib_lazily():
    """results/report/sweep/plots import matplotlib only inside plotting functions.

    (python-control, a dependency, imports matplotlib itself, so this checks
    our modules' top level rather than ``sys.modules``.)
    """
    import ast
    for name in ("reporting/results", "cli/report", "cli/sweep", "reporting/plots"):
        tree = ast.parse((ROOT / "analysis" / f"{name}.py").read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.startswith("matplotlib") for m in mods), f"analysis/{name}.py imports {mods}"


#: Runs a gallery script with every figure it saves checked by legend_problems (written to a JSON file).
_GALLERY_RUNNER = """
import json, runpy, sys
from matplotlib.figure import Figure
from tests.test_plots import legend_problems
found = {}
save = Figure.savefig
def checked(fig, fname, *a, **k):
    found[str(fname)] = legend_problems(fig)
    return save(fig, fname, *a, **k)
Figure.savefig = checked
runpy.run_path(sys.argv[1], run_name="__main__")
json.dump(found, open(sys.argv[2], "w"))
"""


@pytest.mark.parametrize("script", GALLERY, ids=[p.stem for p in GALLERY])
def test_gallery_script_runs(script, tmp_path):
    """Every gallery script runs, writes its figures, and no legend of them lies on data or off the figure."""
    env = dict(os.environ, MPLBACKEND="Agg", CRNFB_GALLERY_OUT=str(tmp_path))
    report = tmp_path / "legends.json"
    out = subprocess.run([sys.executable, "-c", _GALLERY_RUNNER, str(script), str(report)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, "a gallery script writes at least one figure"
    for p in pngs:
        assert p.stat().st_size > 10_000
    found = json.loads(report.read_text())
    assert len(found) == len(pngs)
    assert not any(found.values()), {k: v for k, v in found.items() if v}


# -- legends never on data -----------------------------------------------------------------------
def _polylines(a, ax) -> list[tuple[np.ndarray, bool]]:
    """What an artist draws in data coordinates, in display coordinates: ``[(points, joined), ...]``.

    A line is one polyline (joined unless it has no line style); a collection
    in data coordinates is one polyline per path (error bars, contours), and
    its offsets in data coordinates are markers (scatter). Reference lines and
    spans (``axhline``, ``axvspan``: transforms blended with the axes) are not
    data and give nothing.
    """
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D

    def disp(xy):
        xy = np.asarray(xy, float).reshape(-1, 2)
        with np.errstate(all="ignore"):
            return ax.transData.transform(xy) if len(xy) else xy

    if isinstance(a, Line2D):
        if a.get_transform() != ax.transData:
            return []
        return [(disp(a.get_xydata()), a.get_linestyle() not in ("None", "none", "", " "))]
    if isinstance(a, Collection):
        out = []
        if a.get_offset_transform() == ax.transData:
            out.append((disp(a.get_offsets()), False))
        if a.get_transform() == ax.transData:
            out += [(disp(p.vertices), True) for p in a.get_paths()]
        return out
    return []


def _crosses(pts: np.ndarray, box) -> bool:
    """Whether the polyline through ``pts`` (broken at non-finite points) passes through ``box``."""
    from matplotlib.path import Path as MPath
    ok = np.all(np.isfinite(pts), axis=1)
    for run in np.split(np.arange(len(pts)), np.nonzero(~ok)[0]):
        run = run[ok[run]]
        if run.size >= 2 and MPath(pts[run]).intersects_bbox(box, filled=False):
            return True
    return False


def _covers(region, a, ax, renderer) -> bool:
    """Whether the data artist ``a`` of ``ax`` shows inside ``region`` (display coordinates)."""
    from matplotlib.patches import Rectangle
    if isinstance(a, Rectangle):     # bars; the axes' own background is in axes coordinates
        return a.get_data_transform() == ax.transData and a.get_window_extent(renderer).overlaps(region)
    for pts, joined in _polylines(a, ax):
        fin = pts[np.all(np.isfinite(pts), axis=1)]
        inside = (fin[:, 0] > region.x0) & (fin[:, 0] < region.x1) & (fin[:, 1] > region.y0) & (fin[:, 1] < region.y1)
        if inside.any() or (joined and _crosses(pts, region)):
            return True
    return False


def _texts(fig) -> list:
    """The figure's titles, axis labels and annotations (what a legend must not hide either)."""
    out = list(fig.texts) + [t for t in (getattr(fig, "_suptitle", None), getattr(fig, "_supxlabel", None),
                                         getattr(fig, "_supylabel", None)) if t is not None]
    for ax in fig.axes:
        if ax.get_visible():
            out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label] + list(ax.texts)
    return [t for t in out if t.get_visible()]


def legend_problems(fig) -> list[str]:
    """Every legend that covers data or leaves the figure, in display coordinates after a draw.

    For each legend (of an axes or of the figure): its box must lie inside
    the figure, and no data of any axes may show inside it: no point of a
    line, marker or collection, no segment of a line crossing it, no bar
    overlapping it (only the part of the box inside that axes counts, as the
    axes clips its data), and no title, axis label or annotation under it.
    Reference lines and shaded spans are not data.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    problems = []
    fb = fig.bbox
    for leg in legends:
        box = leg.get_window_extent(renderer)
        name = f"legend {[t.get_text() for t in leg.get_texts()][:3]}"
        if box.x0 < fb.x0 - 1 or box.y0 < fb.y0 - 1 or box.x1 > fb.x1 + 1 or box.y1 > fb.y1 + 1:
            problems.append(f"{name} leaves the figure: {box.bounds} outside {fb.bounds}")
        for text in _texts(fig):
            tb = text.get_window_extent(renderer)
            if text.get_text().strip() and tb.width > 0 and Bbox.intersection(box, tb.padded(-1)) is not None:
                problems.append(f"{name} covers the text {text.get_text()!r}")
        for ax in fig.axes:
            region = Bbox.intersection(box, ax.bbox) if ax.get_visible() else None
            if region is None or region.width < 1 or region.height < 1:
                continue
            region = region.padded(-0.5)
            for a in ax.get_children():
                if a.get_visible() and _covers(region, a, ax, renderer):
                    problems.append(f"{name} covers {type(a).__name__} {a.get_label()!r} of axes {ax.get_title()!r}")
    return problems


def _legend_demo(loc_kwargs: dict):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.add_subplot()
    x = np.linspace(0, 1, 50)
    ax.plot(x, x, label="diagonal")
    ax.axhline(0.5, color="k", label="reference")
    ax.legend(**loc_kwargs)
    return fig


def test_legend_problems_finds_covered_data_and_cut_legends():
    """The checker itself: a legend on the curve and one half off the figure are found; one beside the
    axes and one on a reference line only are not."""
    assert legend_problems(_legend_demo({"loc": "center"}))                       # on the diagonal
    assert legend_problems(_legend_demo({"loc": "upper left", "bbox_to_anchor": (1.6, 1.0)}))   # off the figure
    assert not legend_problems(_legend_demo({"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)}))
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 0.1], label="low line")
    ax.axhline(0.9, label="reference")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")                                                 # on the reference line only
    assert not legend_problems(fig)
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "o", ls="none", label="markers only")                # between the two points: clear
    ax.plot([], [], label="nothing")
    ax.legend(loc="center")
    assert not legend_problems(fig)
    fig = Figure(figsize=(5, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.bar([0, 1, 2], [1, 1, 1], label="bars")
    ax.legend(loc="center")
    assert legend_problems(fig)
    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 0], label="flat")
    fig.suptitle("a title the legend must not hide")
    fig.legend(loc="upper center")
    assert any("covers the text" in p for p in legend_problems(fig))


@pytest.fixture(scope="module")
def report_results(res, e2):
    from crnfb.feedback.io.modelfile import load_model
    tele = analyse(load_model(ROOT / "examples" / "birth_death_telegraph.toml"), validate=False)
    return {"birth_death": res, "isomerisation": analyse(e2, validate=False), "birth_death_telegraph": tele}


@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "birth_death_telegraph"])
def test_report_figures_legends_clear_of_data(report_results, name):
    from crnfb.analysis.reporting.figures import make_figures
    figs = make_figures(report_results[name])
    bad = {n: legend_problems(f) for n, f in figs.items()}
    assert not any(bad.values()), {n: p for n, p in bad.items() if p}


def test_report_figures_and_the_getting_started_list(report_results, tmp_path):
    """fluctuation.png only with a random environment; the docs' figure table names what a report writes."""
    from crnfb.analysis.cli.report import FIGURES, report_figures, write_report
    assert "fluctuation" not in report_figures(report_results["birth_death"])
    assert report_figures(report_results["birth_death_telegraph"]) == FIGURES
    write_report(report_results["birth_death"], tmp_path / "r")
    assert sorted(p.stem for p in (tmp_path / "r").glob("*.png")) == sorted(report_figures(report_results["birth_death"]))
    text = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("| `") and ".png`" in line]
    import re
    listed = [m for line in table for m in re.findall(r"`([a-z_]+)\.png`", line.split("|")[1])]
    assert sorted(listed) == sorted(FIGURES)


def test_no_fluctuation_placeholder_and_unit_spelling(report_results):
    """A random environment's figure has its axes in the report's units (kT, κ); no k_BT anywhere."""
    fig = report_results["birth_death_telegraph"].plot_fluctuation()
    labels = [t for ax in fig.axes for t in (ax.get_xlabel(), ax.get_ylabel(), ax.get_title())]
    assert any("kT" in t for t in labels) and not any("k_B" in t or "k_{B}" in t for t in labels)
    assert "learning rate  ε  (κ)" in labels
    src = ((ROOT / "analysis" / "reporting" / "plots.py").read_text()
           + (ROOT / "analysis" / "analyses" / "fluctuation.py").read_text())
    assert "k_B" not in src and "k_{B}" not in src


# -- multiplicities ------------------------------------------------------------------------------
def test_poles_show_e1_double_root(res):
    """E1: s^2 + s + eps mu = 0 with eps mu = 0.25 is (s + 1/2)^2 (docs/theory.md §8): one root of
    multiplicity 2, marked x2, and every other eigenvalue once."""
    fig = res.plot_poles()
    reps = fig.crnfb["multiplicities"]
    assert sum(m for _, m in reps) == len(fig.crnfb["eigenvalues"])
    repeated = [(z, m) for z, m in reps if m > 1]
    assert len(repeated) == 1
    z, m = repeated[0]
    assert m == 2 and z == pytest.approx(-0.5, abs=1e-6)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("×2") == 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_multiplicities_of_jordan_blocks(sizes, seed):
    """A matrix built from Jordan blocks at distinct eigenvalues -1, -2, ..., hidden by a random orthogonal
    similarity: the groups found are the blocks (an eigensolver splits each defective block by round-off)."""
    from scipy.linalg import block_diag
    from scipy.stats import ortho_group
    blocks = []
    for k, m in enumerate(sizes):
        J = np.diag(np.full(m, -(k + 1.0))) + np.diag(np.ones(m - 1), 1)
        blocks.append(J)
    A = block_diag(*blocks)
    Q = ortho_group.rvs(A.shape[0], random_state=seed) if A.shape[0] > 1 else np.eye(1)
    ev = np.linalg.eigvals(Q @ A @ Q.T)
    got = sorted((round(z.real), m) for z, m in plots.multiplicities(ev))
    assert got == sorted((-(k + 1), m) for k, m in enumerate(sizes))


# -- sweep panels --------------------------------------------------------------------------------
def test_sweep_panels_have_quantity_and_unit():
    """Every column sweep.png draws has a title and a y label with its unit; an unknown column too."""
    from crnfb.analysis.cli.sweep import PLOT_COLUMNS
    for c in PLOT_COLUMNS:
        title, ylabel = plots.SWEEP_LABELS[c]
        assert title and "(" in ylabel and ylabel.endswith(")"), c
    cols = list(PLOT_COLUMNS) + ["fluctuation.noise", "some.new_column"]
    rows = [dict({c: 1.0 + i * (j + 1) for j, c in enumerate(cols)}, eps=0.01 * 2 ** i, switching=s)
            for i in range(5) for s in (0.5, 2.0)]
    fig = plots.sweep(rows, ["eps", "switching"], {"eps": "log10"}, cols)
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == len(cols)
    for ax in shown:
        assert ax.get_title() and "(" in ax.get_ylabel() and "(" in ax.get_xlabel()
    assert not legend_problems(fig)


def test_chain_bode_draws_gain_margin_at_the_phase_crossover(chain):
    """examples/chain.toml has a finite eps_crit: the gain margin drawn is the one reported."""
    res = analyse(chain, validate=False)
    d = res.to_dict()
    fig = res.plot_bode()
    gm = d["margins"]["gain_margin"]
    assert gm is not None
    assert d["margins"]["eps_crit"] == pytest.approx(gm * 0.05, rel=1e-9)
    # |L| where the phase crosses -180 degrees is 1/gm
    assert fig.crnfb["magnitude_at_phase_crossover_db"] == pytest.approx(-20 * np.log10(gm), abs=0.05)
    _non_trivial(fig)
    _non_trivial(res.plot_poles())


# -- many visible species, many learned parameters (issue 21, deliverable 5) ---------------------
def _figure_results(net, tmp_path):
    """The figure data of a generated network (tests/corpus.py): fixed point, loop, learning episode,
    frequency response on a coarse grid (60 points), distribution. Margins, disturbance and the rest are
    left out: with 60 learned parameters they cost minutes (issue 21, deliverable 2), and the figures
    that need them become placeholders, which are checked too."""
    from crnfb.analysis.reporting import pipeline as pl
    from crnfb.analysis.analyses.context import Analysis
    from crnfb.analysis.linear.frequency import broken_loop
    from crnfb.analysis.reporting.results import Results
    from crnfb.feedback.io.modelfile import load_model
    path = tmp_path / f"{net.name}.toml"
    path.write_text(net.text)
    model = load_model(path)
    an = Analysis(model)
    optimum, fp, loop, stab = an.optimum, an.fixed_point, an.loop, an.stability
    ep = pl.episode_section(model, fp, stab, True)
    return Results(model=model, optimum=optimum, fixed_point=fp, loop=loop, stability=stab,
                   frequency=broken_loop(loop).response(np.logspace(-4, 3, 60)),
                   trajectory=pl.trajectory_section(model, optimum, fp, stab, ep),
                   distribution=pl.distribution_section(model, fp), reasons={"step": "not computed here"})


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A pool of three visible species (343 states) and a one-token walk on 84 sites with 63 learned
    parameters (84 states), both from the generated corpus."""
    from corpus import make
    tmp = tmp_path_factory.mktemp("crowded")
    pool, walk = make("pool", 17, "bench"), make("walk", 0, "ci", n_species=84)
    assert len(pool.visible) == 3 and len(walk.learned) >= 60
    return {"pool": _figure_results(pool, tmp), "walk": _figure_results(walk, tmp)}


@pytest.mark.parametrize("name", ["pool", "walk"])
def test_crowded_report_figures_legends_clear_of_data(crowded, name, tmp_path):
    """Three visible species and 63 learned parameters: every report figure's legends clear of the data."""
    from crnfb.analysis.reporting.figures import make_figures
    figs = make_figures(crowded[name])
    bad = {n: legend_problems(f) for n, f in figs.items()}
    assert not any(bad.values()), {n: p for n, p in bad.items() if p}
    for n in ("learning", "distribution", "bode", "nyquist"):
        assert not figs[n].crnfb.get("placeholder"), (n, figs[n].crnfb)
        _non_trivial(figs[n])


def test_corner_plot_of_three_visible_species(crowded):
    """A corner plot: three marginals on the diagonal, the three pairs below it, nothing above; each axis
    labelled with its species and copies, one colour bar."""
    fig = crowded["pool"].plot_distribution()
    names = crowded["pool"].distribution.names
    assert sorted(fig.crnfb["corner_pairs"]) == [(1, 0), (2, 0), (2, 1)]
    shown = [ax for ax in fig.axes if ax.axison]
    assert len(shown) == 3 + 3
    grid = np.array(fig.axes[:9], dtype=object).reshape(3, 3)
    for i in range(3):
        assert grid[i, i].get_title() == f"marginal of {names[i]}"
        assert grid[2, i].get_xlabel() == f"{names[i]}  (copies)"
        assert not any(grid[i, j].axison for j in range(i + 1, 3))
    assert [grid[i, 0].get_ylabel() for i in (1, 2)] == [f"{names[1]}  (copies)", f"{names[2]}  (copies)"]
    assert sum(len(ax.images) for ax in shown) == 3 and all(ax.collections for ax in shown if ax.images)
    # every pair's heatmap is that pair's marginal of the learned law
    d = crowded["pool"].distribution
    for ax, (i, j) in zip([grid[1, 0], grid[2, 0], grid[2, 1]], [(1, 0), (2, 0), (2, 1)]):
        img = np.asarray(ax.images[0].get_array())
        assert np.nansum(img) == pytest.approx(float(np.sum(d.P)), rel=1e-9)
        assert img[0, 0] == pytest.approx(d.P[(d.states[:, i] == d.states[:, i].min())
                                              & (d.states[:, j] == d.states[:, j].min())].sum(), rel=1e-9)


def test_many_parameters_named_and_the_rest_grey(crowded):
    """63 learned parameters: five named in colour with why (slowest or most sensitive), the others thin
    grey under one legend entry; characteristic loci the same way."""
    fig = crowded["walk"].plot_learning()
    k = len(crowded["walk"].trajectory.names)
    assert len(fig.crnfb["named"]) == plots.NAMED and set(fig.crnfb["why"]) == {"slowest", "most sensitive"}
    # the most sensitive: the largest diagonal of the Hessian of D at the fixed point
    traj = crowded["walk"].trajectory
    top = traj.names[int(np.argmax(traj.sensitivity))]
    assert top in fig.crnfb["named"] and fig.crnfb["why"][fig.crnfb["named"].index(top)] == "most sensitive"
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert f"other {k - plots.NAMED} parameters" in labels
    assert sum(lab.startswith("θ_") for lab in labels) == plots.NAMED
    grey = [ln for ln in fig.axes[0].get_lines() if ln.get_color() == plots.OTHER_STYLE["color"]]
    assert len(grey) == k - plots.NAMED + 1        # the curves and the legend's sample
    ny = crowded["walk"].plot_nyquist()
    assert 1 <= len(ny.crnfb["named"]) <= plots.NAMED
    assert len(ny.legends[0].get_texts()) <= plots.NAMED + 3


def test_pick_named_takes_in_turn_without_repeats():
    assert plots.pick_named([("a", [3, 1, 2, 0]), ("b", [3, 0, 1, 2])], k=3) == [(3, "a"), (0, "b"), (1, "a")]
    assert plots.pick_named([("a", [1]), ("b", [1, 2])]) == [(1, "a"), (2, "b")]
    assert plots.pick_named([("a", [])]) == []


def test_captions_and_gallery_state_the_selection_rule():
    """The rule that picks the named curves is stated where the figures are read: the report's captions
    (with the thresholds the code uses) and docs/gallery.md."""
    from crnfb.analysis.reporting.figures import FIGURE_CAPTIONS
    for name in ("learning", "nyquist"):
        caption = FIGURE_CAPTIONS[name]
        assert f"more than {plots.MANY}" in caption and f"{plots.NAMED} are named" in caption
    assert "corner plot" in FIGURE_CAPTIONS["distribution"]
    text = (ROOT / "docs" / "gallery.md").read_text(encoding="utf-8")
    assert f"Up to {plots.MANY} learned parameters" in text and f"{plots.NAMED} are named" in text
