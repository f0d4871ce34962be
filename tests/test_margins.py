"""Margins and eps_crit (analysis/analyses/margins.py, analysis/linear/frequency.py)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import control
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from crnfb.analysis.analyses.disturbance import disturbance
from crnfb.analysis.linear.frequency import broken_loop
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.margins import critical_gain, margins, scaled_jacobian
from crnfb.feedback import Binomial, Learning, Model, Network, Poisson
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.io.modelfile import load_model
from crnfb.feedback.numerics import sizes

EX = Path(__file__).resolve().parents[1] / "examples"


def _no_nan(obj):
    if isinstance(obj, float):
        assert np.isfinite(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _no_nan(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _no_nan(v)


def _small_chain(T: int = 4, clamping: str = "equilibrium") -> Model:
    """examples/chain.toml with total T (15 states at T = 4: small enough for transfer functions)."""
    net = Network.from_equations({"A": dict(visible=False), "B": dict(learn=False),
                                  "X": dict(visible=True, learn=False)},
                                 [("A <-> B", 0.2), ("B <-> X", 0.2)], name=f"chain{T}")
    return Model(net, initial={"A": T}, environment=Binomial(T, 0.25), change=Binomial(T, 0.3),
                 learning=Learning((0.05,), clamping=clamping))


@pytest.fixture(scope="module")
def e1_loop():
    return linearise(load_model(EX / "birth_death.toml").replace(n_max=30))


@pytest.fixture(scope="module")
def e1_margins(e1_loop):
    return margins(e1_loop)


@pytest.fixture(scope="module")
def chain_loop():
    return linearise(load_model(EX / "chain.toml"))


@pytest.fixture(scope="module")
def chain_margins(chain_loop):
    return margins(chain_loop)


# -- E1: SISO margins against python-control and the closed form --------------------------------
def test_e1_phase_margin_matches_control_margin_and_closed_form(e1_loop, e1_margins):
    M = e1_margins
    L = broken_loop(e1_loop).loop_ss()          # 31 states: the TF route is still accurate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm, pm, wpc, wgc = control.margin(L)
    assert M.phase_margin_deg == pytest.approx(pm, rel=1e-8)
    assert M.crossover_frequency == pytest.approx(wgc, rel=1e-8)
    # closed form: L = eps mu kappa / (s (s + kappa)), eps = 0.05, mu = 5, kappa = 1
    c = 0.05 * 5.0
    wc = np.sqrt((-1 + np.sqrt(1 + 4 * c * c)) / 2)
    assert M.crossover_frequency == pytest.approx(wc, rel=1e-6)
    assert M.phase_margin_deg == pytest.approx(90 - np.degrees(np.arctan(wc)), rel=1e-6)
    # second-order loop: no finite gain margin. control.margin reports its degenerate
    # phase crossover at w = 0 (the integrator); ours says none, with a reason.
    assert M.gain_margin is None and M.eps_crit is None and "10000" in M.eps_crit_reason
    assert M.gain_margin_freq is None and M.gain_margin_freq_reason
    assert not np.isfinite(gm) or wpc == 0.0
    assert M.stable_at_nominal and M.identifiable_directions == 1


def test_e1_disk_margin_matches_control(e1_loop, e1_margins):
    M = e1_margins
    L = broken_loop(e1_loop).loop_ss()
    dm, dgm_db, dpm = control.disk_margins(L, np.logspace(-3, 2, 3000))
    assert M.disk_margin == pytest.approx(dm, rel=1e-6)
    assert 20 * np.log10(M.disk_gain_margin) == pytest.approx(dgm_db, rel=1e-6)
    assert M.disk_phase_margin_deg == pytest.approx(dpm, rel=1e-6)
    # singular-value margin = 1 / max |S|
    w = np.logspace(-3, 2, 20001)
    s = 1j * w
    S = s * (s + 1) / (s * s + s + 0.25)
    assert M.singular_value_margin == pytest.approx(1 / np.abs(S).max(), rel=1e-6)


# -- the chain: finite eps_crit, two ways, and the nonlinear loop ----------------------------------
def test_chain_eps_crit_eigenvalue_vs_frequency_domain(chain_loop, chain_margins):
    M = chain_margins
    assert M.stable_at_nominal
    assert M.eps_crit is not None and np.isfinite(M.eps_crit).all()
    assert M.eps_crit[0] == pytest.approx(0.05 * M.gain_margin, rel=1e-12)
    assert M.gain_margin > 1
    assert M.gain_margin_freq == pytest.approx(M.gain_margin, rel=1e-3)
    assert M.gain_margin_agreement < 1e-6
    assert M.critical_frequency_freq == pytest.approx(M.critical_frequency, rel=1e-3)
    d = M.to_dict()
    assert d["eps_crit"] == pytest.approx(float(M.eps_crit[0]))
    assert d["phase_margin_deg"] is not None
    json.dumps(d)
    _no_nan(d)


def test_chain_eps_crit_closed_form(chain_margins):
    """Linear network: the means close exactly. At the optimum A:B:X = 2:1:1 (T = 10), so
    P_f(s) = (s + 0.4)/(s^2 + s + 0.16), P_c = E_Q[Var(A|x)] = 5/3 and with k = g eps the
    characteristic polynomial is s^3 + (1 - 5k/3) s^2 + (0.16 - 2k/3) s + 2k/15. Routh-Hurwitz:
    125 k^2 - 120 k + 18 = 0, k = (12 - 3 sqrt 6)/25, crossing at w^2 = 0.16 - 2k/3."""
    k = (12 - 3 * np.sqrt(6)) / 25
    assert chain_margins.eps_crit[0] == pytest.approx(k, rel=1e-8)
    assert chain_margins.critical_frequency == pytest.approx(np.sqrt(0.16 - 2 * k / 3), rel=1e-8)


def test_small_chain_gain_and_phase_margin_match_control_margin():
    lp = linearise(_small_chain(4))
    M = margins(lp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm, pm, wpc, wgc = control.margin(broken_loop(lp).loop_ss())
    assert M.gain_margin == pytest.approx(gm, rel=1e-6)
    assert M.gain_margin_freq == pytest.approx(gm, rel=1e-6)
    assert M.critical_frequency == pytest.approx(wpc, rel=1e-6)
    assert M.phase_margin_deg == pytest.approx(pm, rel=1e-6)
    assert M.crossover_frequency == pytest.approx(wgc, rel=1e-6)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_chain_nonlinear_loop_decays_below_and_grows_above_eps_crit(chain_loop, chain_margins, factor):
    model = chain_loop.net.model
    g = chain_margins.gain_margin * factor
    ev = np.linalg.eigvals(scaled_jacobian(chain_loop, g).toarray())
    lam = ev[np.argmax(ev.real)]
    net = LearningNetwork(model.with_learning(eps=model.eps * g))
    x_star = chain_loop.fixed_point.x
    x0 = x_star.copy()
    x0[-1] += 1e-5                       # nudge theta_A
    T = 6.0 / abs(lam.real)
    period = 2 * np.pi / abs(lam.imag)
    sol = solve_ivp(lambda t, x: net.rhs(x), (0.0, T), x0, method="BDF", jac=lambda t, x: net.jacobian(x),
                    rtol=1e-10, atol=1e-14, dense_output=True)
    assert sol.success
    t = np.linspace(0.0, T, 4000)
    dth = sol.sol(t)[-1] - x_star[-1]
    a0 = np.abs(dth[t <= period]).max()
    a1 = np.abs(dth[t >= T - period]).max()
    rate = np.log(a1 / a0) / (T - period)
    if factor < 1:
        assert a1 < a0 / 20
    else:
        assert a1 > 20 * a0
    assert rate == pytest.approx(lam.real, rel=0.15)


def test_open_chain_with_visible_learned_has_no_eps_crit():
    net = Network.from_equations({"A": dict(visible=False, learn=False), "X": dict(visible=True)},
                                 [("0 <-> A", 0.2), ("A <-> X", 0.2)], name="open-chain")
    model = Model(net, initial={"A": 0, "X": 0}, n_max=10, environment=Poisson(1.5),
                  learning=Learning((0.05,), clamping="equilibrium"))
    M = margins(linearise(model), omega=np.logspace(-4, 3, 700))
    assert M.stable_at_nominal
    assert M.eps_crit is None and M.gain_margin is None
    assert "no eigenvalue crosses" in M.eps_crit_reason
    assert M.gain_margin_freq is None
    d = M.to_dict()
    assert d["eps_crit"] is None and d["eps_crit_reason"] and d["gain_margin"] is None
    json.dumps(d)


# -- machinery -------------------------------------------------------------------------------------
def _same_spectrum(a, b, tol):
    a, b = np.asarray(a), np.asarray(b)
    assert a.size == b.size
    from scipy.optimize import linear_sum_assignment
    r, c = linear_sum_assignment(np.abs(a[:, None] - b[None, :]))
    assert np.max(np.abs(a[r] - b[c])) < tol * max(1.0, np.abs(a).max())


def test_scaled_jacobian_equals_relinearisation_with_scaled_eps():
    model = load_model(EX / "isomerisation.toml")      # one neutral direction
    lp = linearise(model)
    for gains in ([2.0, 0.5], [3.0, 3.0], [1.0, 7.0]):
        ref = linearise(model.with_learning(eps=model.eps * np.array(gains)), fixed_point=lp.fixed_point)
        _same_spectrum(np.linalg.eigvals(scaled_jacobian(lp, gains).toarray()),
                       np.linalg.eigvals(ref.Jr.toarray()), 1e-9)
    # scalar factor: only the theta rows scale
    Jg = lp.Jr.toarray()
    pos = np.nonzero(lp.rest >= lp.net.n_f + lp.net.n_c)[0]
    Jg[pos] *= 2.5
    np.testing.assert_allclose(scaled_jacobian(lp, 2.5).toarray(), Jg, atol=1e-14)


def test_unstable_at_nominal_eps_reports_instead_of_crashing(chain_margins):
    model = load_model(EX / "chain.toml")
    eps_crit = float(chain_margins.eps_crit[0])
    lp = linearise(model.with_learning(eps=2 * eps_crit))
    M = margins(lp, omega=np.logspace(-3, 2, 600))
    assert not M.stable_at_nominal
    assert M.gain_margin == pytest.approx(0.5, rel=1e-6)
    assert M.eps_crit[0] == pytest.approx(eps_crit, rel=1e-6) and M.eps_crit[0] < 2 * eps_crit
    assert M.disk_margin is None and "unstable" in M.robust_reason
    d = M.to_dict()
    assert d["stable_at_nominal"] is False and d["robust_margins_reason"]
    _no_nan(d)
    D = disturbance(lp)
    dd = D.to_dict()
    assert dd["bandwidth"] is None and "unstable" in dd["bandwidth_reason"]
    assert dd["hinf_norm"] is None and dd["step"]["rise_time"] is None and dd["lag_cost"] is None
    assert "unstable" in dd["step"]["rise_time_reason"]
    _no_nan(dd)


def test_critical_gain_of_single_species_loop_equals_overall():
    lp = linearise(_small_chain(4))
    a = critical_gain(lp)
    b = critical_gain(lp, 0)
    assert a.gain == pytest.approx(b.gain, rel=1e-9)


def test_two_species_chain_mimo_and_per_loop_margins():
    """Chain (T = 4) with A and B learned at different rates: two identifiable directions."""
    net = Network.from_equations({"A": dict(visible=False), "B": dict(), "X": dict(visible=True, learn=False)},
                                 [("A <-> B", 0.2), ("B <-> X", 0.2)], name="chain4-AB")
    model = Model(net, initial={"A": 4}, environment=Binomial(4, 0.25), change=Binomial(4, 0.3),
                  learning=Learning((0.05, 0.02), clamping="equilibrium"))
    lp = linearise(model)
    M = margins(lp, omega=np.logspace(-4, 3, 800))
    assert M.identifiable_directions == 2 and M.phase_margin_deg is None
    assert M.gain_margin_freq == pytest.approx(M.gain_margin, rel=1e-6)
    d = M.to_dict()
    assert d["eps_crit"] == pytest.approx({"A": 0.05 * M.gain_margin, "B": 0.02 * M.gain_margin})
    for i, p in enumerate(M.per_loop):
        assert p["gain_margin"] is not None
        assert p["gain_margin_frequency_domain"] == pytest.approx(p["gain_margin"], rel=1e-6)
        # the coarse grid + frequency-domain brackets give the plain dense scan's answer
        dense = critical_gain(lp, i, per_decade=8)
        assert p["gain_margin"] == pytest.approx(dense.gain, rel=1e-8)
    # multiloop disk margin of python-control (mu bound, slycot) >= unstructured alpha
    dm, _, _ = control.disk_margins(broken_loop(lp).loop_ss(), np.logspace(-3, 2, 600))
    assert M.disk_margin <= dm * (1 + 1e-6)
    # sigma_min(I + L) = 1/sigma_max(S) at the worst frequency
    b = broken_loop(lp)
    S = b.response([M.singular_value_frequency]).S[0]
    assert M.singular_value_margin == pytest.approx(1 / np.linalg.svd(S, compute_uv=False)[0], rel=1e-9)
    _no_nan(d)


@pytest.mark.slow
def test_dimer_mimo_margins():
    lp = linearise(load_model(EX / "dimer.toml"))
    M = margins(lp)
    assert M.identifiable_directions == 2
    assert M.phase_margin_deg is None and "2 identifiable directions" in M.phase_margin_reason
    assert [p["species"] for p in M.per_loop] == ["A", "B", "C"]
    assert M.disk_margin is not None and 0 < M.disk_margin <= 2
    assert M.singular_value_margin is not None and M.singular_value_margin > 0
    # python-control's multiloop disk margin (mu upper bound, diagonal complex perturbations,
    # slycot ab13md) can only be larger than the unstructured alpha = 1/max sigma_max(S - I/2)
    w = np.logspace(-3, 2, 400)
    dm, _, _ = control.disk_margins(broken_loop(lp).loop_ss(), w)
    assert M.disk_margin <= dm * (1 + 1e-6)
    _no_nan(M.to_dict())


# -- issue 12: the sparse paths give the dense paths' numbers ----------------------------------------
def test_sparse_eps_crit_matches_dense_scan_on_e3(monkeypatch):
    """Characteristic-loci crossing verified by inverse iteration == the dense eigenvalue scan.

    E3 (361 reduced states) runs the dense scan by default; with the limit
    lowered it takes the sparse path. Both are refined to the eigenvalue
    crossing, so they agree to brentq's tolerance.
    """
    import crnfb.analysis.analyses.margins as M

    model = load_model(Path(__file__).resolve().parents[1] / "examples" / "hidden_scaffold.toml")
    loop = linearise(model)
    dense = margins(loop, per_loop=False)
    monkeypatch.setattr(sizes, "DENSE_SCAN_LIMIT", 10)
    sparse_ = margins(linearise(model), per_loop=False)
    assert dense.gain_margin is not None
    assert sparse_.gain_margin == pytest.approx(dense.gain_margin, rel=1e-8)
    assert sparse_.critical_frequency == pytest.approx(dense.critical_frequency, rel=1e-6)
    # the crossing eigenvalue sits on the imaginary axis
    assert abs(sparse_.critical_frequency) > 0


def test_full_coordinate_plants_equal_reduced_ones_on_e3(monkeypatch):
    """Full copy-state solves (large plants) == reduced solves, including the disturbance input."""
    import dataclasses

    model = load_model(Path(__file__).resolve().parents[1] / "examples" / "hidden_scaffold.toml")
    blocks = broken_loop(linearise(model))
    w = np.logspace(-3, 2, 12)
    reduced = dataclasses.replace(blocks, full=None).plants(w)
    monkeypatch.setattr(sizes, "LARGE_PLANT", 0)
    full = dataclasses.replace(blocks).plants(w)
    for a, b in zip(full, reduced):
        assert np.allclose(a, b, rtol=1e-8, atol=1e-10 * np.max(np.abs(b)))


@pytest.mark.parametrize("k", [2, 3, 7, 20])
def test_every_loop_at_a_time_from_one_inverse_equals_each_schur_complement(k):
    """``loops_at_a_time`` (one inverse of ``sI + E P`` a frequency) gives each ``loop_at_a_time`` (the
    Schur complement of the other loops) on random plants, where ``|T_i|`` is not far below 1."""
    from crnfb.analysis.analyses.margins import loop_at_a_time, loops_at_a_time

    rng = np.random.default_rng(k)
    P = rng.standard_normal((6, k, k)) + 1j * rng.standard_normal((6, k, k))
    eps = rng.uniform(0.1, 1.0, k)
    w = np.logspace(-1, 1, 6)
    T = loops_at_a_time(P, eps, w)
    for i in range(k):
        ref = loop_at_a_time(P, eps, w, i)
        assert np.all(np.abs(T[:, i] - ref) <= 1e-10 * np.maximum(np.abs(ref), 1.0))
