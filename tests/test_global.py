"""Does learning succeed from the file's energies (issue 20; docs/theory.md §4a, docs/global.md).

Independent references: the plain ODE run of :func:`crnfb.feedback.dynamics.integrate.simulate` (its own
output grid, no stop events, no settling logic) for the settled criterion, the mechanisms and
the safe factor's bracket; synthetic trajectories with a known shape for the classifier.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from crnfb import load_model
from crnfb.analysis.cli.entry import main
from crnfb.analysis.analyses.globalbehaviour import (HOLD, SETTLE_TOL, classify, global_report, late_amplitude, safe_factor,
                                                     settle)
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.linear.stability import stability
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.dynamics.integrate import simulate

ROOT = Path(__file__).resolve().parent.parent
CHAIN30 = ROOT / "examples" / "chain30.toml"
CHAIN = ROOT / "examples" / "chain.toml"


def _chain30(factor: float = 1.0):
    m = load_model(CHAIN30)
    return m.with_learning(eps=m.eps * factor)


def _file_with_eps(tmp_path: Path, eps: float) -> Path:
    text = CHAIN30.read_text().replace("eps = 0.3", f"eps = {eps}")
    assert f"eps = {eps}" in text
    path = tmp_path / "chain30.toml"
    path.write_text(text)
    return path


# -- the settled criterion ------------------------------------------------------------------------------------
def test_settled_not_at_a_crossing_chain30():
    """At the file's eps theta_A overshoots (41 %): the old end (first entry into the band) is a crossing;
    the plain ODE shows the distance leaving the band after it, and staying inside after t_settled."""
    m = _chain30()
    fp = loop_fixed_point(m)
    rate = stability(linearise(m, fixed_point=fp)).slowest_rate
    net = LearningNetwork(m)
    run = settle(m, net, net.initial_state(), fp.theta, rate)
    assert run.converged and run.mechanism == "converged"
    tr = simulate(m, run.t_settled + 10 * HOLD / rate, points=4001, progress=False)
    d = np.abs(tr.theta[:, 0] - fp.theta[0])
    band = SETTLE_TOL * abs(m.theta0[0] - fp.theta[0])
    first_in = tr.t[np.argmax(d <= band)]
    assert first_in < run.t_settled - 1.0                      # the band was crossed before
    assert np.any(d[(tr.t > first_in) & (tr.t < run.t_settled)] > 2 * band)   # ... and left again
    after = tr.t >= run.t_settled + 1e-6 * run.t_settled
    assert np.all(d[after] <= band * (1 + 1e-3))               # in for good (10 hold times checked)
    assert np.any(d[(tr.t < run.t_settled) & (tr.t > run.t_settled - 1.0)] > band * (1 - 1e-2))


# -- the classifier on trajectories of known shape ----------------------------------------------------------
def _fake_model(k: int = 1):
    return SimpleNamespace(learned_names=[f"S{i}" for i in range(k)], identifiable=np.eye(k),
                           hessian=lambda theta, a=0.0: np.eye(k))     # the Hessian metric of settle_metric


def _classify(t, theta, theta_fp=0.0, converged_at=None, failure=None, hold=3.0):
    th = np.asarray(theta, float).reshape(len(t), -1)
    d0 = abs(th[0, 0] - theta_fp)
    return classify(_fake_model(th.shape[1]), np.asarray(t, float), th, np.full(th.shape[1], theta_fp), d0,
                    converged_at, failure, hold)


def test_classify_mechanisms():
    t = np.linspace(0, 200, 20001)
    # spikes of constant height every 50 time units on a depleted baseline: relaxation oscillation
    spikes = -8 + 12 * sum(np.exp(-((t - c) / 0.7) ** 2) for c in (10, 60, 110, 160))
    spikes[0] = 1.0
    assert _classify(t, spikes)[0] == "relaxation_oscillation"
    # a decaying oscillation that has not settled yet: not a relaxation oscillation
    decaying = np.exp(-t / 60) * np.cos(t)
    assert _classify(t, decaying)[0] == "not_settled"
    # one overshoot, then stuck far below: depletion (lambda at e^-10 of its fixed-point value)
    stuck = np.where(t < 5, 1 + t, -10 + 1e-4 * t)
    mech, text = _classify(t, stuck)
    assert mech == "depletion" and "lambda_S0" in text
    # settles at +3 (not depleted): a far attractor
    far = 3 - 4 * np.exp(-t)
    assert _classify(t, far)[0] == "far_attractor"
    # the solver failed: divergence
    assert _classify(t, far, failure="SimulationError: step size too small")[0] == "divergence"
    assert _classify(t, np.where(t < 100, -1.0, 800.0))[0] == "divergence"
    assert _classify(t, decaying, converged_at=150.0)[0] == "converged"


def test_late_amplitude_of_known_trajectories():
    """Half the range of theta - theta_fp over the hold (converged) or the run's second half (otherwise)."""
    t = np.linspace(0.0, 100.0, 10001)
    ringing = np.where(t < 60, 3 * np.cos(t), 2e-4 * np.sin(t))[:, None] + 1.5   # settles at t = 60
    assert late_amplitude(t, ringing, [1.5], 60.0) == pytest.approx(2e-4, rel=1e-3)
    assert late_amplitude(t, ringing, [1.5], None) == pytest.approx(3.0, rel=1e-3)  # t >= 50 holds the ringing
    two = np.column_stack([np.full_like(t, 7.0), 1 + 0.5 * np.sin(t)])   # the theta that moves most counts
    assert late_amplitude(t, two, [0.0, 1.0], None) == pytest.approx(0.5, rel=1e-3)
    assert late_amplitude(t, np.where(t < 80, 0.0, np.inf)[:, None], [0.0], None) is None
    assert late_amplitude(np.zeros(0), np.zeros((0, 1)), [0.0], None) is None


# -- the report's verdict (issue 20, Done when) ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("eps, code", [(0.63, 1), (0.3, 0)])
def test_chain30_report_verdict(tmp_path, capsys, eps, code):
    """At eps = 0.63 (0.8 eps_crit) the report says learning does not converge, names the mechanism,
    exits 1; at the file's eps it converges and exits 0. The mechanism is checked on the plain ODE."""
    path = _file_with_eps(tmp_path, eps)
    out = tmp_path / "report"
    assert main(["report", str(path), "-o", str(out), "--no-validate"]) == code
    d = json.loads((out / "report.json").read_text())
    ep = d["global"]["episode"]
    text = capsys.readouterr().out
    assert d["closed_loop"]["stable"] is True
    star = d["fixed_point"]["theta"]["A"]
    d0 = abs(load_model(path).theta0[0] - star)             # theta_A starts at 0: d0 = theta_A* (kT)
    if code == 0:
        assert ep["converged"] and d["verdict"]["learning_converged"] is True
        assert "Verdict: the learning loop is STABLE" in text
        assert 0.0 < ep["amplitude"] < SETTLE_TOL * d0     # inside the settle band over the hold
        return
    assert not ep["converged"] and ep["mechanism"] == "relaxation_oscillation"
    assert ("Verdict: locally stable, but learning from the file's energies does not converge: relaxation "
            "oscillation") in " ".join(text.split())
    assert d["verdict"]["exit_code"] == 1 and d["verdict"]["learning_converged"] is False
    assert d["global"]["region_of_attraction"] is None and "validation off" in d["global"]["region_of_attraction_reason"]
    # the plain ODE: theta_A overshoots, falls to a depleted level, comes back and spikes again
    tr = simulate(_chain30(eps / 0.3), 3000.0, points=6001, progress=False)
    th = tr.theta[:, 0]
    assert th[tr.t > 10].min() < star - math.log(100)       # lambda_A below 1/100 of its fixed-point value
    assert th[tr.t > 1000].max() > star + 2.0               # a second spike above the fixed point
    # the recorded amplitude: half the range of the plain ODE's theta_A over the second half of the episode
    late = th[(tr.t >= ep["t_end"] / 2) & (tr.t <= ep["t_end"])]
    assert ep["amplitude"] > 1000 * SETTLE_TOL * d0
    assert ep["amplitude"] == pytest.approx(0.5 * np.ptp(late), rel=0.05)
    assert d["thermodynamics"]["episode"]["reached"] is False


# -- the safe factor --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_safe_factor_validated_by_ode_chain30():
    """The bracket by trisection, then plain ODE runs just inside (converges) and just outside (does not)."""
    m = _chain30()
    fp = loop_fixed_point(m)
    sf = safe_factor(m, fp, True, 2.6316, rtol=0.05)
    lo, hi = sf.bracket
    assert sf.factor == lo and hi / lo - 1 <= 0.05 and 1.0 < lo < hi < 2.6316
    star = fp.theta[0]
    d0 = abs(m.theta0[0] - star)
    inside = simulate(_chain30(0.98 * lo), 600.0, points=6001, progress=False).theta[:, 0]
    assert np.all(np.abs(inside[-3000:] - star) <= SETTLE_TOL * d0)
    outside = simulate(_chain30(1.02 * hi), 600.0, points=6001, progress=False).theta[:, 0]
    late = outside[1000:]                                   # t > 100
    assert np.mean(late < star - math.log(100)) > 0.5       # mostly depleted, far from the fixed point


@pytest.mark.slow
def test_safe_factor_validated_by_ode_small_scaffold_dynamic():
    """The E3-type scaffold with dynamic clamping: learning converges wherever the loop is locally stable,
    so the bracket ends at the gain margin; plain ODE runs from the file's energies just inside settle, just
    outside (past its supercritical Hopf crossing) they stay on an orbit far outside the settle band."""
    from crnfb.analysis.analyses.globalbehaviour import settle_metric
    from crnfb.analysis.analyses.margins import margins
    m = load_model(ROOT / "tests" / "data" / "scaffold_small_dynamic.toml")
    fp = loop_fixed_point(m)
    gm = margins(linearise(m, fixed_point=fp)).gain_margin
    sf = safe_factor(m, fp, True, gm, rtol=0.05)
    lo, hi = sf.bracket
    assert sf.factor == lo and hi / lo - 1 <= 0.05 and 1.0 < lo < hi <= gm * (1 + 1e-12)
    U = settle_metric(m, fp.theta)
    dist = lambda th: np.linalg.norm((th - fp.theta) @ U, axis=-1)  # noqa: E731  (the episode's metric)
    d0 = float(dist(m.theta0))
    # slowest closed-loop rate just inside: 0.018 at 0.98 lo (1000 = 18 / 0.018); growth just outside: 0.0066
    def run(factor):     # a plain stiff run from the file's energies (an oscillating one takes many steps)
        from crnfb.analysis.analyses.bifurcation import _flow
        net = LearningNetwork(m.with_learning(eps=m.eps * factor))
        return _flow(net, net.initial_state(), np.linspace(0.0, 1000.0, 2001), max_steps=400_000)[1][:, -net.k:]

    inside = run(0.98 * lo)
    assert dist(inside[-1]) <= SETTLE_TOL * d0
    outside = run(1.02 * hi)
    assert dist(outside[-400:]).min() > 10 * SETTLE_TOL * d0


def _global_of(model, rtol: float = 0.1) -> tuple[dict, dict]:
    """The report's ``global`` section of ``model`` with a safe-factor search to ``rtol``; its eps."""
    from crnfb.analysis.analyses.margins import margins
    fp = loop_fixed_point(model)
    loop = linearise(model, fixed_point=fp)
    st, mg = stability(loop), margins(loop)
    net = LearningNetwork(model)
    ep = settle(model, net, net.initial_state(), fp.theta, st.slowest_rate)
    sf = safe_factor(model, fp, ep.converged, mg.gain_margin, rtol=rtol, episode=ep)
    eps = dict(zip(model.learned_names, map(float, model.eps)))
    return global_report(ep, sf, None, eps, mg.eps_crit_value, mg.gain_margin), eps


def _markers(ax) -> list:
    return [ln for ln in ax.get_lines() if ln.get_linestyle() == "None"]


def _vlines(ax) -> list[float]:
    return [float(ln.get_xdata()[0]) for ln in ax.get_lines()
            if ln.get_linestyle() != "None" and ln.get_xdata()[0] == ln.get_xdata()[1]]


def test_global_figure_one_point_per_ode_run_and_the_two_lines():
    """chain (1 s runs): every ODE run of the search (and the episode) is one marker at its recorded
    amplitude; the gain margin and the safe factor are vertical lines; the legend is off the data."""
    from crnfb.analysis.reporting.plots import global_outcome
    from tests.test_plots import legend_problems
    g, eps = _global_of(load_model(CHAIN))
    runs = [r for r in g["safe_factor_runs"] if r["how"] in ("ODE", "the report's episode")]
    assert len(runs) >= 3 and all(r["amplitude"] is not None for r in runs)
    assert all(r["amplitude"] is None for r in g["safe_factor_runs"] if r["how"].startswith("linear"))
    fig = global_outcome(g, eps)
    ax = fig.axes[0]
    pts = sorted(xy for ln in _markers(ax) for xy in zip(ln.get_xdata(), ln.get_ydata()))
    assert pts == sorted((r["factor"], r["amplitude"]) for r in runs)
    assert sorted(_vlines(ax)) == sorted([g["gain_margin"], g["safe_factor"]])
    assert g["safe_factor"] < g["gain_margin"]
    assert ax.get_xlabel() and ax.get_ylabel().endswith("(kT)") and ax.get_yscale() == "log"
    assert not legend_problems(fig)
    # without the search (--no-validate): the report's episode alone, at factor 1, and the gain margin
    g2 = global_report(None, None, "not computed (validation off)", eps, g["eps_crit"], g["gain_margin"])
    g2["episode"] = g["episode"]
    ax2 = global_outcome(g2, eps).axes[0]
    assert [(float(x), float(y)) for ln in _markers(ax2) for x, y in zip(ln.get_xdata(), ln.get_ydata())] == \
        [(1.0, g["episode"]["amplitude"])]
    assert _vlines(ax2) == [g["gain_margin"]]


def test_safe_factor_stopped_by_its_deadline_keeps_the_bracket_it_reached():
    """A deadline already past: the initial bracket [1, gain margin] is kept, with the reason."""
    import time
    m = _chain30()
    fp = loop_fixed_point(m)
    sf = safe_factor(m, fp, True, 2.6316, rtol=0.05, deadline=time.monotonic() - 1.0)
    assert sf.bracket == (1.0, 2.6316) and sf.factor == 1.0
    assert "stopped by the time budget" in sf.reason and "1 and does not at 2.6316" in sf.reason


def test_global_budget_zero_starts_no_search(tmp_path, capsys):
    """--global-budget 0: neither search starts (each says why); everything else of the report stands."""
    path = _file_with_eps(tmp_path, 0.3)
    assert main(["report", str(path), "-o", str(tmp_path / "r"), "--global-budget", "0"]) == 0
    g = json.loads((tmp_path / "r" / "report.json").read_text())["global"]
    assert g["safe_factor"] is None and "time budget of 0 s" in g["safe_factor_reason"]
    assert g["region_of_attraction"] is None and "time budget of 0 s" in g["region_of_attraction_reason"]
    assert g["episode"]["converged"] is True
    assert main(["report", str(path), "-o", str(tmp_path / "r2"), "--global-budget", "-1"]) == 2
    assert "--global-budget" in capsys.readouterr().err


def test_safe_factor_not_computed_without_validation():
    from crnfb.analysis.analyses.globalbehaviour import global_report
    g = global_report(None, None, "not computed (validation off)", {"A": 0.3}, 0.79, 2.63)
    assert g["safe_factor"] is None and g["safe_factor_reason"].startswith("not computed")
    assert g["bifurcation"] is None and g["bifurcation_reason"] == "not computed (no linearised loop given)"
    json.dumps(g, allow_nan=False)


def test_example_ships():
    m = load_model(CHAIN30)
    assert m.learned_names == ["A"] and m.learning.clamping == "equilibrium"
    assert float(m.eps[0]) == 0.3
