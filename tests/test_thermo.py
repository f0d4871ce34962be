"""Thermodynamic costs (docs/theory.md §7) and trade-off sweeps
(crnfb.analysis.analyses.thermo, crnfb.analysis.analyses.tradeoffs)."""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnfb.analysis.analyses import thermo
from crnfb.analysis.analyses import tradeoffs as T
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.feedback import Learning, Model, Network, Poisson, load_model
from crnfb.feedback.dynamics.ensembles import LearningNetwork

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@lru_cache(maxsize=None)
def model(name: str, clamping: str | None = None):
    m = load_model(EXAMPLES / f"{name}.toml")
    return m if clamping is None else m.with_learning(clamping=clamping)


@lru_cache(maxsize=None)
def network(name: str, clamping: str | None = None) -> LearningNetwork:
    return LearningNetwork(model(name, clamping))


def e1_own_law(clamping="dynamic", mean=None, gamma=1.0):
    """E1 whose environment is the model's own stationary law at the file's energies (Poisson(lambda0))."""
    net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    lam0 = float(np.exp(net.theta0[0]))
    return Model(net, initial={"X": 0}, n_max=60, environment=Poisson(lam0 if mean is None else mean),
                 learning=Learning((0.05,), clamping, gamma, 20.0))


# -- independent references (dense double loops; share no code with crnfb.analysis.analyses.thermo) ----------------
def falling(n, y):
    out = 1.0
    for ni, yi in zip(n, y):
        for k in range(int(yi)):
            out *= max(ni - k, 0)
    return out


def dense_reaction_pairs(states, net, theta_full, reactions):
    """For every ordered pair of states and reaction: (i, j, r, W_ij), by brute force."""
    kp = net.kappa * np.exp(net.Yp @ theta_full)
    km = net.kappa * np.exp(net.Y @ theta_full)
    S = [tuple(int(v) for v in s) for s in states]
    nus = [tuple(int(v) for v in net.nu[r]) for r in range(len(net.kappa))]
    out = []
    for i, s in enumerate(S):
        for j, t in enumerate(S):
            if i == j:
                continue
            d = tuple(b - a for a, b in zip(s, t))
            for r in reactions:
                if d == nus[r] and all(a >= y for a, y in zip(s, net.Y[r])):
                    out.append((i, j, r, kp[r] * falling(s, net.Y[r])))
                if d == tuple(-v for v in nus[r]) and all(a >= y for a, y in zip(s, net.Yp[r])):
                    out.append((i, j, r, km[r] * falling(s, net.Yp[r])))
    return out


def dense_sigma(p, edges_by_mechanism):
    """(1/2) sum over ordered pairs of (J+ - J-) ln(J+/J-), one term per mechanism."""
    W = {}
    for i, j, mech, w in edges_by_mechanism:
        W[(i, j, mech)] = W.get((i, j, mech), 0.0) + w
    total = 0.0
    for (i, j, mech), w in W.items():
        wb = W.get((j, i, mech), 0.0)
        jp, jm = p[i] * w, p[j] * wb
        if jp > 0 and jm > 0:
            total += 0.5 * (jp - jm) * np.log(jp / jm)
        elif jp != jm:
            return np.inf
    return total


def dense_reset_sigma(p, r, gamma):
    total = 0.0
    n = len(p)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            jp, jm = p[i] * gamma * r[j], p[j] * gamma * r[i]
            if jp > 0 and jm > 0:
                total += 0.5 * (jp - jm) * np.log(jp / jm)
            elif jp != jm:
                return np.inf
    return total


def random_state(net: LearningNetwork, rng, theta=None, sparse=False):
    alpha = 0.3 if sparse else 1.0
    p_f = rng.dirichlet(np.full(net.n_f, alpha))
    p_c = rng.dirichlet(np.full(net.n_c, alpha)) if net.n_c else np.zeros(0)
    th = net.model.theta0 + rng.normal(0, 1.0, net.k) if theta is None else np.asarray(theta, float)
    return np.concatenate([p_f, p_c, th])


# -- free ensemble ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "hidden_scaffold"])
def test_free_zero_at_stationarity_for_fixed_theta(name):
    net = network(name)
    rng = np.random.default_rng(1)
    for theta in (net.model.theta0, net.model.theta0 + rng.normal(0, 0.7, net.k)):
        pi = net.free_stationary(theta)
        scale = np.sum(pi[net.edges.src] * net.edges.rates(net.theta_full(theta)))   # total flux
        assert thermo.free_entropy_production(net, pi, theta) <= 1e-12 * scale


@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "hidden_scaffold"])
def test_free_positive_while_theta_moves_and_quadratic(name):
    net = network(name)
    m = net.model
    th0 = m.theta0
    pi0 = net.free_stationary(th0)
    u = m.identifiable[:, 0]
    s1 = thermo.free_entropy_production(net, pi0, th0 + 1e-3 * u)
    s2 = thermo.free_entropy_production(net, pi0, th0 + 2e-3 * u)
    assert s1 > 0 and s2 > 0
    assert s2 / s1 == pytest.approx(4.0, rel=1e-2)   # linear response: sigma ~ |dtheta|^2
    # a neutral move (theta_X and theta_Y together, E2) changes nothing: zero again
    if m.neutral.shape[1]:
        assert thermo.free_entropy_production(net, pi0, th0 + 0.5 * m.neutral[:, 0]) <= 1e-12


@pytest.mark.parametrize("name", ["isomerisation", "hidden_scaffold"])
def test_free_matches_dense_double_loop(name):
    net = network(name)
    m = net.model
    rng = np.random.default_rng(7)
    ref_pairs = None
    for _ in range(3):
        x = random_state(net, rng)
        p_f, _, th = net.split(x)
        thf = net.theta_full(th)
        ref_pairs = dense_reaction_pairs(m.space.states, m.network, thf, range(len(m.network.kappa)))
        ref = dense_sigma(p_f, ref_pairs)
        got = thermo.free_entropy_production(net, p_f, th)
        assert got == pytest.approx(ref, rel=1e-10)
        d = thermo.dissipation(net, x)
        assert d.ensemble()["free"] == pytest.approx(m.ensembles.free * ref, rel=1e-10)
        assert d.total_ensemble == pytest.approx(m.ensembles.free * d.free + m.ensembles.clamped * d.clamped
                                                 + m.ensembles.omega * d.learning, rel=1e-12)
    # each reaction is its own mechanism: every dense edge has its reverse in the same reaction
    assert len(ref_pairs) == net.edges.src.size


# -- clamped ensemble --------------------------------------------------------------------------------
def test_reset_closed_form_equals_double_loop():
    rng = np.random.default_rng(3)
    for n in (2, 5, 17):
        for _ in range(5):
            p = rng.dirichlet(np.ones(n) * 0.5)
            r = rng.dirichlet(np.ones(n))
            g = rng.uniform(0.1, 5)
            assert thermo.reset_entropy_production(p, r, g) == pytest.approx(dense_reset_sigma(p, r, g), rel=1e-9,
                                                                           abs=1e-14)
    # unnormalised vectors (the general closed form), and states with p = r = 0 take no part
    p, r = np.array([0.2, 0.5, 0.0, 0.4]), np.array([0.3, 0.1, 0.0, 0.9])
    assert thermo.reset_entropy_production(p, r, 2.0) == pytest.approx(dense_reset_sigma(p, r, 2.0), rel=1e-12)
    # a one-way reset (target puts mass where p has none) is infinitely irreversible
    assert thermo.reset_entropy_production(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 1.0) == np.inf
    assert dense_reset_sigma(np.array([1.0, 0.0]), np.array([0.5, 0.5]), 1.0) == np.inf


def test_clamped_matches_dense_with_resets_as_separate_mechanism():
    """E3: hidden reactions and resets joining the same states each keep their own flux pair."""
    net = network("hidden_scaffold")
    m = net.model
    fp = loop_fixed_point(m, net)
    _, p_c, th = net.split(fp.x)
    states = m.space.states[net.clamped_states]
    hid = [r for r in range(len(m.network.kappa)) if m.network.hidden_only[r]]
    pairs = dense_reaction_pairs(states, m.network, net.theta_full(th), hid)
    # reset target from the environment's own pmf, uniform over hidden states with the same visible part
    vis = states[:, m.network.visible]
    q = m.environment.pmf(vis)
    _, inv, cnt = np.unique(vis, axis=0, return_inverse=True, return_counts=True)
    r = q / cnt[inv.ravel()]
    np.testing.assert_allclose(r, net.reset_target(), rtol=1e-6, atol=1e-14)
    g = m.learning.gamma
    resets = [(i, j, "reset", g * r[j]) for i in range(len(r)) for j in range(len(r)) if i != j]
    separate = dense_sigma(p_c, pairs + resets)
    hidden, reset = thermo.clamped_entropy_production(net, p_c, th)
    assert hidden == pytest.approx(dense_sigma(p_c, pairs), rel=1e-8)
    assert reset == pytest.approx(dense_sigma(p_c, resets), rel=1e-8)
    assert hidden + reset == pytest.approx(separate, rel=1e-8)
    assert hidden > 0 and reset > 0     # hidden relaxation away from u(h|v): the cost of sensing
    # lumping resets with hidden reactions on shared edges understates the cost (log-sum inequality)
    lumped = dense_sigma(p_c, [(i, j, "all", w) for i, j, _, w in pairs + resets])
    assert lumped < separate


def test_clamped_zero_without_hidden_species_when_q_is_the_model_law():
    m = e1_own_law()
    net = LearningNetwork(m)
    th0 = m.theta0
    p_c = net.clamped_stationary(th0)
    np.testing.assert_allclose(p_c, net.reset_target(), atol=1e-15)   # reset target equals p_c
    hidden, reset = thermo.clamped_entropy_production(net, p_c, th0)
    assert hidden == 0.0 and reset == 0.0
    # the loop's fixed point is theta0 itself; only the learning cycle dissipates there
    fp = loop_fixed_point(m, net)
    np.testing.assert_allclose(fp.theta, th0, atol=1e-8)
    d = thermo.dissipation(net, fp.x)
    assert d.clamped == pytest.approx(0.0, abs=1e-12) and d.free == pytest.approx(0.0, abs=1e-12)
    assert d.learning > 0


def test_clamped_positive_otherwise():
    # E1, environment changed (Q: Poisson(5) -> Poisson(8)) while p_c is still the old law
    net = network("birth_death", "dynamic")
    th = net.model.theta0
    p_old = net.clamped_stationary(th, a=0.0)
    hidden, reset = thermo.clamped_entropy_production(net, p_old, th, a=1.0)
    r = net.reset_target(1.0)
    jeffreys = np.sum((p_old - r) * np.log(p_old / r))
    assert hidden == 0.0
    assert reset == pytest.approx(net.gamma * jeffreys, rel=1e-10) and reset > 0.1
    # E3 at its stationary clamped law (hidden mixing moves p_c away from the reset target)
    net3 = network("hidden_scaffold")
    p3 = net3.clamped_stationary(net3.model.theta0)
    h3, r3 = thermo.clamped_entropy_production(net3, p3, net3.model.theta0)
    assert h3 > 0 and r3 > 0
    # equilibrium clamping: no clamped dynamics, no number
    assert thermo.clamped_entropy_production(network("birth_death"), np.zeros(0), th) is None


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["birth_death", "isomerisation", "hidden_scaffold"]),
       seed=st.integers(0, 2**32 - 1), sparse=st.booleans(), spread=st.floats(0.0, 3.0),
       a=st.sampled_from([0.0, 0.5, 1.0]))
def test_every_entropy_production_nonnegative(name, seed, sparse, spread, a):
    net = network(name, "dynamic")
    rng = np.random.default_rng(seed)
    theta = net.model.theta0 + rng.normal(0, spread, net.k)
    x = random_state(net, rng, theta, sparse)
    p_f, p_c, th = net.split(x)
    assert thermo.free_entropy_production(net, p_f, th) >= 0
    hidden, reset = thermo.clamped_entropy_production(net, p_c, th, a)
    assert hidden >= 0 and reset >= 0
    assert thermo.learning_dissipation(net, x, a) >= 0
    d = thermo.dissipation(net, x, a)
    assert d.total >= 0 and d.total_ensemble >= 0
    r = rng.dirichlet(np.ones(7))
    assert thermo.reset_entropy_production(rng.dirichlet(np.ones(7) * 0.3), r, 1.0) >= 0


# -- learning reactions ---------------------------------------------------------------------------------
def test_learning_cost_at_e1_fixed_point():
    m = model("birth_death")
    d = thermo.fixed_point_dissipation(m)
    mu = 5.0                              # E_Q[x]; lambda = mu, m_c = m_f = mu
    eps, dmu = m.eps[0], m.learning.dmu
    assert d.learning == pytest.approx(2 * dmu * eps * mu * mu, rel=1e-8)
    assert d.learning == pytest.approx(50.0, rel=1e-8)
    assert d.free == pytest.approx(0.0, abs=1e-15)
    assert d.clamped is None
    assert d.total == pytest.approx(d.learning)
    # maintenance cost: linear in eps and dmu; ensemble sizes only scale
    c = thermo.maintenance_cost(m, eps=0.1, dmu=40.0, omega=10.0)
    assert c["learning_cycle"] == pytest.approx(4 * 50.0, rel=1e-8)
    assert c["learning_cycle_cell"] == pytest.approx(10.0 * 4 * 50.0, rel=1e-8)
    assert c["sensing"] is None and "sensing_reason" in c


def test_sensing_cost_e3_scales_with_ensemble_and_depends_on_gamma():
    m = model("hidden_scaffold")
    a = thermo.maintenance_cost(m, clamped=10)
    b = thermo.maintenance_cost(m, clamped=20)
    assert a["sensing"] > 0
    assert b["sensing_ensemble"] == pytest.approx(2 * a["sensing_ensemble"], rel=1e-12)
    c = thermo.maintenance_cost(m, gamma=1.0)
    assert c["sensing"] != pytest.approx(a["sensing"], rel=1e-3)


# -- episodes and the report ---------------------------------------------------------------------------
def test_episode_total_finite_positive_on_e1():
    m = model("birth_death")
    ep = thermo.episode(m)
    assert ep.reached
    assert np.isfinite(ep.total) and ep.total > 0
    assert ep.free > 0                              # the free ensemble lags while theta moves
    assert ep.learning > 0 and ep.total == pytest.approx(ep.free + ep.learning, rel=1e-12)
    assert ep.quadrature_error < 1e-5 * ep.total
    # the learning cycle never exceeds its fixed-point rate here (lambda rises from 1 to 5)
    assert ep.learning <= 50.0 * ep.duration
    # the episode ended where the identifiable distance reached 1e-3 of the initial one
    U = m.identifiable
    d0 = np.linalg.norm(U.T @ (m.theta0 - ep.theta_target))
    assert np.linalg.norm(U.T @ (ep.theta_end - ep.theta_target)) == pytest.approx(1e-3 * d0, rel=1e-3)
    # the two integrators (ReuseBDF on a log grid, SciPy's BDF on its own steps) agree
    other = thermo.episode(m, integrator="steps")
    assert other.source.endswith("(BDF, solver steps)") and ep.source != other.source
    assert other.total == pytest.approx(ep.total, rel=1e-6)
    assert other.free == pytest.approx(ep.free, rel=1e-4)


@pytest.mark.parametrize("name", ["birth_death", "isomerisation"])
def test_thermodynamics_report_keys(name):
    m = model(name)
    rep = thermo.thermodynamics_report(m)
    json.dumps(rep, allow_nan=False)
    fp = rep["fixed_point"]
    for k in ("free", "clamped", "learning", "total", "total_ensemble"):
        assert k in fp
    assert rep["episode_total"] > 0
    assert rep["units"]["learning"].endswith("(lambda as concentrations)")
    if m.learning.clamping == "equilibrium":
        assert fp["clamped"] is None and "equilibrium" in fp["clamped_reason"]
        assert fp["total"] == pytest.approx(fp["free"] + fp["learning"])
    else:
        assert fp["clamped"] == pytest.approx(0.0, abs=1e-12)    # E2: no hidden-only reaction
        assert fp["total"] == pytest.approx(fp["free"] + fp["clamped"] + fp["learning"])


# -- trade-offs --------------------------------------------------------------------------------------------
def test_pareto_mask():
    v = np.array([[1.0, 1.0], [2.0, 2.0], [2.0, 0.5], [3.0, 2.0 + 1e-14], [0.5, 0.1], [np.nan, 5.0]])
    # minimise column 0, maximise column 1
    mask = T.pareto_mask(v, ["min", "max"])
    assert mask.tolist() == [True, True, False, False, True, False]


def test_sweep_e1_eps_and_plot(tmp_path):
    m = model("birth_death")
    eps = np.array([0.005, 0.02, 0.04, 0.2, 1.0])
    res = T.sweep(m, eps=eps, bandwidth=False)
    cost = res.column("dissipation_ensemble")
    rate = res.column("slowest_rate")
    np.testing.assert_allclose(cost, 1000.0 * 2 * 20.0 * eps * 25.0, rtol=1e-8)   # Omega * 2 dmu eps mu^2
    # s^2 + s + eps mu: slowest rate (1 - sqrt(1 - 4 eps mu))/2 up to eps mu = 1/4, then 1/2
    expect = np.where(4 * eps * 5 < 1, (1 - np.sqrt(np.clip(1 - 4 * eps * 5, 0, None))) / 2, 0.5)
    np.testing.assert_allclose(rate, expect, rtol=1e-3)
    assert res.front("slowest_rate").tolist() == [True, True, True, True, False]  # beyond eps mu = 1/4: wasted fuel
    assert res.pareto.tolist() == res.front("slowest_rate").tolist()   # the only objective that varies here
    # below critical damping the swept points lie on the analytic front 2 dmu mu Omega r (1 - r/kappa)
    sub = eps * 5 < 0.25
    np.testing.assert_allclose(cost[sub], T.birth_death_front(m, rate[sub]), rtol=1e-6)
    rows = list(csv.DictReader(io.StringIO(res.to_csv(tmp_path / "t.csv"))))
    assert len(rows) == 5 and rows[-1]["pareto"] == "0" and float(rows[2]["eps"]) == 0.04
    assert (tmp_path / "t.csv").read_text().startswith("eps,")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    from crnfb.analysis.reporting.plots import tradeoffs as plot_tradeoffs
    assert plot_tradeoffs(res, ax=ax, metrics=["slowest_rate"]) is fig
    assert "(κ)" in ax.get_xlabel() and "(kT·κ)" in ax.get_ylabel()     # units: rates in κ, time in 1/κ
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "Pareto front" in labels
    plt.close(fig)


def test_point_metrics_scalars_and_reasons():
    why = {}
    pm = T.point_metrics(model("isomerisation"), reasons=why)
    for k, v in pm.items():
        assert v is None or isinstance(v, float), k
        if v is None:
            assert k in why
    assert pm["bias"] >= 0 and pm["slowest_rate"] > 0 and pm["dissipation_clamped"] == pytest.approx(0, abs=1e-12)
    assert pm["dissipation_learning"] > 0 and pm["dissipation_free"] == pytest.approx(0, abs=1e-12)


def test_csv_round_trip(tmp_path):
    rows = [{"eps": 0.1, "dissipation_ensemble": 1.0, "slowest_rate": 0.1, "noise": None},
            {"eps": 0.2, "dissipation_ensemble": 2.0, "slowest_rate": 0.3, "noise": None}]
    res = T.TradeoffResult(params=["eps"], rows=rows)
    assert res.pareto.tolist() == [True, True] and list(res.objectives) == ["slowest_rate"]
    res.to_csv(tmp_path / "r.csv")
    back = T.TradeoffResult.from_csv(tmp_path / "r.csv")
    assert back.params == ["eps"] and np.all(np.isnan(back.column("noise")))
    np.testing.assert_allclose(back.column("dissipation_ensemble"), [1.0, 2.0])
    assert back.pareto.tolist() == [True, True]


def test_learning_cost_times_learning_noise_on_e1():
    """Cross-check with the LNA: the learning events that burn dmu each are the ones that diffuse theta.

    sigma_cell,learning * Var_learning(theta) = 2 dmu eps mu (1 + eps mu / kappa), whatever Omega is.
    """
    noise = pytest.importorskip("crnfb.analysis.analyses.noise")
    m = model("birth_death")
    for omega, eps in ((100.0, 0.05), (1e4, 0.005)):
        mm = T.apply_param(T.apply_param(m, "omega", omega), "eps", eps)
        var = noise.parameter_noise(mm).parts["learning"][0, 0]
        d = thermo.fixed_point_dissipation(mm)
        assert mm.ensembles.omega * d.learning * var == pytest.approx(2 * 20.0 * eps * 5 * (1 + eps * 5), rel=1e-6)
    why = {}
    pm = T.point_metrics(m, bandwidth=False, reasons=why)
    assert pm["noise"] is not None and "noise" not in why
    assert pm["noise"] == pytest.approx(np.sqrt(noise.parameter_noise(m).identifiable_covariance.trace()), rel=1e-12)
