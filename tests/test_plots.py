"""Figures (:mod:`crnfb.analysis.plots`): non-trivial, and what they draw is what report.json says; gallery."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest

from crnfb.analysis import plots
from crnfb.analysis.frequency import LoopResponse
from crnfb.analysis.results import Distribution, StepResponse, Unavailable, analyse

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
    box = fig.axes[0].get_legend().get_window_extent(canvas.get_renderer())
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
    fr = LoopResponse(w, P[None].repeat(w.size, 0), G_frozen, L, S, G, np.zeros_like(G))
    fig = plots.bode(fr, None, SimpleNamespace(bandwidth=0.3))
    _non_trivial(fig)
    assert fig.crnfb["bandwidth"] == 0.3
    _non_trivial(plots.nyquist(fr))
    a, b = np.meshgrid(np.arange(8), np.arange(5), indexing="ij")
    states = np.column_stack([a.ravel(), b.ravel()])
    from scipy.stats import binom, poisson
    Q = poisson.pmf(states[:, 0], 2.0) * binom.pmf(states[:, 1], 4, 0.6)
    P2 = poisson.pmf(states[:, 0], 2.5) * binom.pmf(states[:, 1], 4, 0.5)
    fig = plots.distribution(Distribution(states, P2 / P2.sum(), Q / Q.sum(), ["A", "B"]))
    _non_trivial(fig)
    assert len(fig.axes) >= 3


def test_step_with_nonlinear_overlay():
    t = np.linspace(0, 20, 200)
    y = 1 - np.exp(-t / 3)
    fig = plots.step(StepResponse(t, y, np.ones(1), t[::10], y[::10] * 1.01),
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
    for name in ("results", "report", "sweep", "plots"):
        tree = ast.parse((ROOT / "analysis" / f"{name}.py").read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(m.startswith("matplotlib") for m in mods), f"analysis/{name}.py imports {mods}"


@pytest.mark.parametrize("script", GALLERY, ids=[p.stem for p in GALLERY])
def test_gallery_script_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", CRNFB_GALLERY_OUT=str(tmp_path))
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, "a gallery script writes at least one figure"
    for p in pngs:
        assert p.stat().st_size > 10_000


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
