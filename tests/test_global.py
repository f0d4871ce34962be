"""Does learning succeed from the file's energies (issue 20; docs/theory.md §4a, docs/global.md).

Independent references: the plain ODE run of :func:`crnfb.feedback.simulate.simulate` (its own
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
from crnfb.analysis.cli import main
from crnfb.analysis.globalbehaviour import HOLD, SETTLE_TOL, classify, safe_factor, settle
from crnfb.analysis.linearise import linearise, loop_fixed_point
from crnfb.analysis.stability import stability
from crnfb.feedback.ensembles import LearningNetwork
from crnfb.feedback.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
CHAIN30 = ROOT / "examples" / "chain30.toml"


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
    if code == 0:
        assert ep["converged"] and d["verdict"]["learning_converged"] is True
        assert "Verdict: the learning loop is STABLE" in text
        return
    assert not ep["converged"] and ep["mechanism"] == "relaxation_oscillation"
    assert ("Verdict: locally stable, but learning from the file's energies does not converge: relaxation "
            "oscillation") in " ".join(text.split())
    assert d["verdict"]["exit_code"] == 1 and d["verdict"]["learning_converged"] is False
    assert d["global"]["region_of_attraction"] is None and "validation off" in d["global"]["region_of_attraction_reason"]
    # the plain ODE: theta_A overshoots, falls to a depleted level, comes back and spikes again
    tr = simulate(_chain30(eps / 0.3), 3000.0, points=6001, progress=False)
    th = tr.theta[:, 0]
    star = d["fixed_point"]["theta"]["A"]
    assert th[tr.t > 10].min() < star - math.log(100)       # lambda_A below 1/100 of its fixed-point value
    assert th[tr.t > 1000].max() > star + 2.0               # a second spike above the fixed point
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
    from crnfb.analysis.globalbehaviour import global_report
    g = global_report(None, None, "not computed (validation off)", {"A": 0.3}, 0.79, 2.63)
    assert g["safe_factor"] is None and g["safe_factor_reason"].startswith("not computed")
    assert g["bifurcation"] is None and g["bifurcation_reason"] == "not computed (not implemented)"
    json.dumps(g, allow_nan=False)


def test_example_ships():
    m = load_model(CHAIN30)
    assert m.learned_names == ["A"] and m.learning.clamping == "equilibrium"
    assert float(m.eps[0]) == 0.3
