"""Figures (:mod:`crnfb.analysis.plots`): non-trivial, and what they draw is what report.json says; gallery."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crnfb.analysis import plots
from crnfb.analysis.results import Distribution, FrequencyResponse, StepResponse, Unavailable, analyse

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


def test_bode_draws_the_reported_margins(res, d):
    fig = res.plot_bode()
    m = fig.crnfb
    assert m["crossover_frequency"] == d["margins"]["crossover_frequency"]
    assert m["phase_margin_deg"] == d["margins"]["phase_margin_deg"]
    assert m["gain_margin"] == d["margins"]["gain_margin"]
    assert m["eps_crit"] == d["margins"]["eps_crit"]
    assert m.get("bandwidth") == d["disturbance"]["bandwidth"]
    # and the crossover drawn is where the drawn |L| is 1, the phase margin read off the drawn phase
    fr = res.frequency
    mag = np.interp(np.log(m["crossover_frequency"]), np.log(fr.omega), np.abs(fr.L[:, 0, 0]))
    assert mag == pytest.approx(1.0, rel=2e-3)
    if m["phase_margin_deg"] is not None:
        assert 180.0 + m["phase_at_crossover_deg"] == pytest.approx(m["phase_margin_deg"], abs=0.05)


def test_bandwidth_drawn_is_where_sensitivity_crosses_minus_3db(res, d):
    bw = d["disturbance"]["bandwidth"]
    if bw is None:
        pytest.skip(d["disturbance"].get("bandwidth_reason"))
    fr = res.frequency
    S = np.interp(np.log(bw), np.log(fr.omega), np.abs(fr.S[:, 0, 0]))
    assert S == pytest.approx(1 / np.sqrt(2), rel=5e-3)


def test_nyquist_marks_the_crossover_on_the_unit_circle(res, d):
    fig = res.plot_nyquist()
    re, im = fig.crnfb["crossover_point"]
    assert abs(complex(re, im)) == pytest.approx(1.0, rel=2e-3)
    if d["margins"]["phase_margin_deg"] is not None:
        assert 180 + np.degrees(np.angle(complex(re, im))) == pytest.approx(d["margins"]["phase_margin_deg"],
                                                                             abs=0.05)


def test_step_draws_the_reported_metrics(res, d):
    fig = res.plot_step()
    st = d["disturbance"]["step"]
    assert fig.crnfb["rise_time"] == st["rise_time"]
    assert fig.crnfb["settling_time"] == st["settling_time"]
    assert fig.crnfb["overshoot_pct"] == st["overshoot_pct"]
    if st["rise_time"] is not None:
        t, y = fig.crnfb["t"], fig.crnfb["y"]
        t10, t90 = fig.crnfb["rise_bracket"]
        assert np.interp(t90, t, y) == pytest.approx(0.9 * fig.crnfb["final_value"], abs=0.01)
        # after the settling time the drawn curve stays within 2 %
        late = t >= st["settling_time"] + 1e-9
        assert np.all(np.abs(y[late] - 1.0) <= 0.02 + 1e-6)
    assert fig.crnfb["final_value"] == pytest.approx(1.0, abs=1e-3)   # perfect adaptation


def test_poles_show_reported_eigenvalues(res, d):
    fig = res.plot_poles()
    ev = np.array(d["closed_loop"]["eigenvalues"])
    drawn = fig.crnfb["eigenvalues"]
    assert np.allclose(drawn.real, ev[:, 0]) and np.allclose(drawn.imag, ev[:, 1])
    assert np.allclose(-fig.crnfb["quasi_static"], d["quasi_static"]["rates"])


def test_learning_converges_to_the_fixed_point(res, d):
    fig = res.plot_learning()
    theta = fig.crnfb["theta"]
    assert theta[-1, 0] == pytest.approx(d["fixed_point"]["theta"]["X"], abs=2e-3)
    assert fig.crnfb["D"][-1] < fig.crnfb["D"][0]


def test_distribution_matches_environment_for_e1(res):
    fig = res.plot_distribution()
    assert fig.crnfb["total_variation"] < 1e-6       # E1 learns Q = Poisson(5) exactly


def test_lag_cost_matches_json(res, d):
    fig = res.plot_lag_cost()
    lag = d["disturbance"]["lag_cost"]
    if lag is None:
        assert fig.crnfb["placeholder"]
    else:
        assert np.allclose(fig.crnfb["omega"], [r[0] for r in lag])
        assert np.allclose(fig.crnfb["lag_cost"], [r[1] for r in lag])


def test_placeholders_and_unavailable():
    fig = plots.lag_cost({"lag_cost": None, "lag_cost_reason": "no change"})
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
    fr = FrequencyResponse(w, L, S, G, np.ones((w.size, 2)) * [1.0, 0.5])
    fig = plots.bode(fr, {"gain_margin": None, "eps_crit": None, "phase_margin_deg": None},
                     {"bandwidth": 0.3})
    _non_trivial(fig)
    assert fig.crnfb["bandwidth"] == 0.3
    _non_trivial(plots.nyquist(fr, {}))
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
                     {"rise_time": 6.59, "settling_time": 11.7, "overshoot_pct": 0.0})
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
    assert gm is not None and fig.crnfb["gain_margin"] == gm
    assert d["margins"]["eps_crit"] == pytest.approx(gm * 0.05, rel=1e-9)
    # |L| where the phase crosses -180 degrees is 1/gm
    assert fig.crnfb["magnitude_at_phase_crossover_db"] == pytest.approx(-20 * np.log10(gm), abs=0.05)
    _non_trivial(fig)
    _non_trivial(res.plot_poles())
