"""Exact SSA of the finite-ensemble learning network (feedback/dynamics/ssa.py, docs/theory.md §6).

Statistical checks compare time averages over independent replicates with
exact stationary laws. Bounds are Student-t quantiles of the replicate mean
with a Bonferroni correction over the compared numbers, for a family-wise
false-alarm probability of 1e-4 per test (seeds fixed, so a given run is
deterministic).
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.model import Ensembles
from crnfb.feedback.dynamics.ssa import simulate_ssa
from tests.conftest import example

ALARM = 1e-4


def _mean_se(x):
    x = np.asarray(x, float)
    return x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(x.shape[0])


def _within(mean, exact, se, replicates):
    """``|mean - exact| <= t-quantile * se`` for every entry (Bonferroni over the entries)."""
    mean, exact, se = np.atleast_1d(mean), np.atleast_1d(exact), np.atleast_1d(se)
    q = stats.t.ppf(1 - ALARM / (2 * mean.size), replicates - 1)
    return bool(np.all(np.abs(mean - exact) <= q * se + 1e-9))


def _frozen(model, t_end=40.0, burn=4.0, R=8, seed=11, clamping="dynamic"):
    return simulate_ssa(model, t_end, 11, seed, replicates=R, progress=False, learn=False, clamping=clamping,
                        occupancy_from=burn)


@pytest.mark.parametrize("name", ["birth_death", "isomerisation"])
def test_frozen_free_ensemble_matches_exact_stationary_law(name):
    model = example(name)
    net = LearningNetwork(model, "dynamic")
    tr = _frozen(model)
    M = model.ensembles.free
    pi = net.free_stationary(model.theta0)
    occ, se = _mean_se(tr.occupancy_f)                       # time-averaged counts per state
    big = M * pi > 1.0
    assert _within(occ[big], M * pi[big], se[big], 8)
    assert abs(occ.sum() - M) < 1e-6 * M                      # copies are conserved
    S = net.S_f[:, model.learned]
    mf, se_m = _mean_se(tr.occupancy_f @ S / M)
    assert _within(mf, pi @ S, se_m, 8)
    # recorded means agree with the occupancy (same process): theta frozen at theta0
    assert np.allclose(tr.theta, model.theta0)


@pytest.mark.parametrize("name", ["isomerisation", "hidden_scaffold"])
def test_frozen_clamped_ensemble_matches_clamped_mean(name):
    """E3 runs hidden-only reactions in the clamped copies (resets at gamma = 0.1)."""
    model = example(name)
    net = LearningNetwork(model, "dynamic")
    tr = _frozen(model, t_end=60.0, burn=5.0)
    Mc = model.ensembles.clamped
    mc, se = _mean_se(tr.occupancy_c @ net.S_c / Mc)
    exact = net.clamped_mean(model.theta0)
    assert _within(mc, exact, se, 8)
    p_c = net.clamped_stationary(model.theta0)
    occ, se_o = _mean_se(tr.occupancy_c)
    big = Mc * p_c > 1.0
    assert _within(occ[big], Mc * p_c[big], se_o[big], 8)


def test_same_seed_same_path_different_seed_different():
    model = example("birth_death")
    a = simulate_ssa(model, 5.0, 11, seed=7, replicates=2, progress=False)
    b = simulate_ssa(model, 5.0, 11, seed=7, replicates=2, progress=False)
    c = simulate_ssa(model, 5.0, 11, seed=8, replicates=2, progress=False)
    assert np.array_equal(a.theta, b.theta) and np.array_equal(a.m_f, b.m_f) and np.array_equal(a.events, b.events)
    assert not np.array_equal(a.theta, c.theta)
    assert not np.array_equal(a.theta[0], a.theta[1])        # replicates are independent streams


def test_replicate_path_independent_of_replicate_count_threads_and_outputs():
    model = example("birth_death")
    one = simulate_ssa(model, 6.0, 7, seed=3, replicates=1, progress=False)
    three = simulate_ssa(model, 6.0, 13, seed=3, replicates=3, progress=False, threads=2)
    assert np.array_equal(one.theta[0], three.theta[0, ::2])
    assert np.array_equal(one.m_f[0], three.m_f[0, ::2])
    assert one.events[0] == three.events[0]


def test_learning_reaches_the_optimum_e1():
    """E1 learns Poisson with the environment's mean: theta -> ln 5 (noise sd ~0.02 at Omega = 1000)."""
    model = example("birth_death")
    tr = simulate_ssa(model, 60.0, 61, seed=5, replicates=4, progress=False)
    late = tr.theta[:, -10:, 0].mean()
    assert abs(late - math.log(5.0)) < 0.05
    assert np.all(tr.m_c == pytest.approx(5.0, abs=1e-6))     # equilibrium clamping: m_c = E_Q[x]
    assert tr.events.min() > 0


class _Step:
    """A piecewise-constant signal with the interface of crnfb.feedback.model.signals."""

    piecewise_constant = True

    def __init__(self, t0):
        self.t0 = t0

    def __call__(self, t):
        return 0.0 if t < self.t0 else 1.0

    def breakpoints(self, t0, t1):
        return (self.t0,) if t0 < self.t0 < t1 else ()


@pytest.mark.parametrize("clamping", ["equilibrium", "dynamic"])
def test_step_in_the_environment_is_tracked(clamping):
    """Q switches from Poisson(5) to Poisson(8) at t = 30: theta follows to ln 8 (integral action)."""
    model = example("birth_death").with_learning(eps=0.2)
    tr = simulate_ssa(model, 60.0, 121, seed=2, replicates=2, progress=False, a_signal=_Step(30.0),
                      clamping=clamping)
    assert np.all(tr.a[tr.t < 30] == 0) and np.all(tr.a[tr.t >= 30] == 1)
    before = tr.theta[:, (tr.t > 20) & (tr.t < 30), 0].mean()
    after = tr.theta[:, tr.t > 50, 0].mean()
    assert abs(before - math.log(5.0)) < 0.05
    assert abs(after - math.log(8.0)) < 0.05


def test_non_piecewise_constant_signal_is_refused():
    model = example("birth_death")

    def sine(t):
        return 0.5 + 0.4 * math.sin(t)

    with pytest.raises(ModelError, match="piecewise-constant"):
        simulate_ssa(model, 5.0, 3, seed=0, a_signal=sine, progress=False)
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        simulate_ssa(model, 5.0, 3, seed=0, a_signal=1.5, progress=False)


def test_equilibrium_clamping_with_hidden_species_uses_exact_clamped_mean():
    """E3 under equilibrium clamping: recorded m_c is <n>_Qt at the recorded theta."""
    model = example("hidden_scaffold").replace(ensembles=Ensembles(200, 200, 200.0)).with_learning(eps=0.2)
    tr = simulate_ssa(model, 2.0, 5, seed=1, progress=False, clamping="equilibrium")
    for i in range(tr.t.size):
        th = model.full_theta(tr.theta[0, i])
        exact = model.landscape.moments(th).mean_clamped[model.learned]
        assert np.allclose(tr.m_c[0, i], exact, rtol=1e-9, atol=1e-12)
    assert not np.allclose(tr.theta[0, -1], tr.theta[0, 0])   # it learned


def test_csv_has_interface_columns_and_exact_divergence(tmp_path):
    model = example("birth_death")
    tr = simulate_ssa(model, 3.0, 4, seed=0, progress=False)
    path = tr.to_csv(tmp_path / "ssa.csv")
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["time", "theta_X", "m_f_X", "m_c_X", "D", "a"]
    for row, th in zip(rows, tr.theta[0]):
        assert float(row["D"]) == pytest.approx(model.divergence(th), rel=1e-8)
    multi = simulate_ssa(model, 3.0, 4, seed=0, replicates=2, progress=False)
    rows = list(csv.DictReader(open(multi.to_csv(tmp_path / "multi.csv"))))
    assert list(rows[0])[0] == "replicate" and len(rows) == 8
    with pytest.raises(ModelError):
        tr.to_csv(tmp_path / "missing" / "x.csv")
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_arguments_are_model_errors():
    model = example("birth_death")
    with pytest.raises(ModelError):
        simulate_ssa(model, -1.0, 3, seed=0, progress=False)
    with pytest.raises(ModelError):
        simulate_ssa(model, 1.0, 1, seed=0, progress=False)
    with pytest.raises(ModelError, match="omega"):
        simulate_ssa(model.replace(ensembles=Ensembles(10, 10, 1.0)), 1.0, 3, seed=0, progress=False,
                     theta_start=np.array([-3.0]))


@pytest.mark.slow
def test_frozen_free_occupancy_chi_square_e2():
    """Pooled occupancy over many replicates passes a chi-square-type check on every state."""
    model = example("isomerisation")
    net = LearningNetwork(model, "dynamic")
    tr = _frozen(model, t_end=100.0, burn=5.0, R=16, seed=4)
    M = model.ensembles.free
    pi = net.free_stationary(model.theta0)
    occ, se = _mean_se(tr.occupancy_f)
    big = M * pi > 0.5
    z = (occ[big] - M * pi[big]) / se[big]
    # the z-scores are approximately standard normal (t with 15 d.o.f.)
    assert stats.kstest(z, stats.t(15).cdf).pvalue > 1e-4
