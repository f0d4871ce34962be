"""Disturbance rejection (analysis/analyses/disturbance.py) and the shared frequency responses."""

from __future__ import annotations

import json
from pathlib import Path

import control
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

from crnfb.analysis.analyses.disturbance import disturbance, optimum_derivative
from crnfb.analysis.linear.fixedpoints import learned_fixed_point
from crnfb.analysis.linear.frequency import closed_loop_direct, dc_response, broken_loop
from crnfb.analysis.linear.linearise import linearise
from crnfb.feedback import Binomial, Learning, Model, Network
from crnfb.feedback.io.modelfile import load_model

EX = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def e1():
    lp = linearise(load_model(EX / "birth_death.toml"))
    return lp, disturbance(lp)


def _dynamic_chain() -> Model:
    """examples/chain.toml at T = 4 with dynamic clamping: A <-> B is hidden-only, so the loop is biased."""
    net = Network.from_equations({"A": dict(visible=False), "B": dict(learn=False),
                                  "X": dict(visible=True, learn=False)},
                                 [("A <-> B", 0.2), ("B <-> X", 0.2)], name="chain4-dynamic")
    return Model(net, initial={"A": 4}, environment=Binomial(4, 0.25), change=Binomial(4, 0.3),
                 learning=Learning((0.05,), clamping="dynamic", gamma=1.0))


# -- shared frequency responses ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["birth_death", "isomerisation"])
def test_block_responses_equal_direct_reduced_loop(name):
    lp = linearise(load_model(EX / f"{name}.toml"))
    w = np.logspace(-3, 2, 25)
    R = broken_loop(lp).response(w)
    np.testing.assert_allclose(R.G_ae, closed_loop_direct(lp, w, "e"), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(R.G_atheta, closed_loop_direct(lp, w, "theta"), rtol=1e-9, atol=1e-12)
    frd = R.frd("G_ae")
    assert isinstance(frd, control.FrequencyResponseData) and frd.ninputs == 1


def test_block_responses_equal_direct_reduced_loop_dynamic_clamping():
    lp = linearise(_dynamic_chain())
    w = np.logspace(-3, 1, 15)
    R = broken_loop(lp).response(w)
    np.testing.assert_allclose(R.G_ae, closed_loop_direct(lp, w, "e"), rtol=1e-9, atol=1e-12)


# -- perfect adaptation ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "chain", "dimer"])
def test_perfect_adaptation_dc_gain_of_G_ae_is_zero(name):
    lp = linearise(load_model(EX / f"{name}.toml"))
    b = broken_loop(lp)
    frozen = np.linalg.norm(b.open_loop([0.0])[1][0])
    assert frozen > 1e-3                               # the environment change does move e
    assert np.linalg.norm(dc_response(lp, "e")) <= 1e-10 * frozen
    # integral action: |G_ae(jw)| ~ w at low frequency
    g = np.linalg.norm(b.response([1e-6, 1e-5]).G_ae, axis=1)
    assert g[1] / g[0] == pytest.approx(10.0, rel=1e-2)


# -- E1 against the 2-state closed form -----------------------------------------------------------------
# equilibrium clamping: dm/dt = kappa (lambda - m), dtheta/dt = eps (mu(a) - m), lambda = e^theta;
# at the optimum lambda = mu, so with d mu/d a = dmu:
#   G_ae(s) = dmu * s (s + kappa) / (s^2 + kappa s + kappa eps mu)
KAPPA, EPS, MU, DMU = 1.0, 0.05, 5.0, 3.0


def _e1_S(w):
    s = 1j * np.asarray(w)
    return s * (s + KAPPA) / (s * s + KAPPA * s + KAPPA * EPS * MU)


def test_e1_bandwidth_and_hinf_closed_form(e1):
    lp, D = e1
    c = KAPPA * EPS * MU
    b2 = KAPPA ** 2 + 2 * c
    w_bw = np.sqrt((-b2 + np.sqrt(b2 * b2 + 4 * c * c)) / 2)   # |S| = 1/sqrt(2)
    assert D.bandwidth == pytest.approx(w_bw, rel=1e-4)
    res = minimize_scalar(lambda u: -abs(_e1_S(np.exp(u))), bounds=(-5, 3), method="bounded",
                          options={"xatol": 1e-12})
    assert D.hinf_norm == pytest.approx(DMU * -res.fun, rel=1e-7)
    assert D.hinf_frequency == pytest.approx(np.exp(res.x), rel=1e-4)
    assert D.sensitivity_peak == pytest.approx(-res.fun, rel=1e-7)


def test_e1_hinf_matches_control_linfnorm():
    lp = linearise(load_model(EX / "birth_death.toml").replace(n_max=30))
    D = disturbance(lp)
    sys = control.ss(lp.Jr.toarray(), lp.Br[:, None], lp.output("e").toarray(), lp.feedthrough("e")[:, None])
    gpeak, fpeak = control.linfnorm(sys)
    assert D.hinf_norm == pytest.approx(gpeak, rel=1e-6)
    assert D.hinf_frequency == pytest.approx(fpeak, rel=1e-3)


def test_e1_step_response_closed_form(e1):
    lp, D = e1
    st = D.step
    # y(s) = c (s + kappa) / (s (s + 1/2)^2) with c = kappa eps mu = 1/4 (double pole):
    # y(t) = 1 - exp(-t/2) (1 + t/4), monotone
    y = lambda t: 1 - np.exp(-t / 2) * (1 + t / 4)  # noqa: E731
    np.testing.assert_allclose(st.y, y(st.t), atol=1e-9)
    dt = st.t[1] - st.t[0]
    t10 = brentq(lambda t: y(t) - 0.1, 0, 100)
    t90 = brentq(lambda t: y(t) - 0.9, 0, 100)
    t98 = brentq(lambda t: y(t) - 0.98, 0, 200)
    assert st.rise_time == pytest.approx(t90 - t10, abs=0.05)
    assert st.settling_time == pytest.approx(t98, abs=2 * dt)
    assert st.overshoot_pct == 0.0
    assert st.y[-1] == pytest.approx(1.0, abs=1e-6)
    d = D.to_dict()["step"]
    assert set(d) == {"rise_time", "settling_time", "overshoot_pct"}


def test_chain_step_settles_to_one():
    D = disturbance(linearise(load_model(EX / "chain.toml")))
    st = D.step
    assert st.y[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.isfinite(st.settling_time) and st.settling_time < st.t[-1]
    assert st.rise_time > 0 and st.overshoot_pct >= 0


# -- lag cost ------------------------------------------------------------------------------------------
def test_e1_lag_cost_static_zero_grows_and_saturates(e1):
    lp, D = e1
    lag = np.asarray(D.lag_cost)
    assert lag.shape == (30, 2)
    assert D.lag_cost_static == pytest.approx(0.0, abs=1e-20)
    c = lag[:, 1]
    assert c[0] < 1e-3 * c[-1]
    assert np.all(np.diff(c[:18]) > 0)                       # grows through the loop's band
    # no adaptation at high frequency: (1/4) (d theta*/d a)^2 Var = (1/4) (3/5)^2 5
    assert D.lag_cost_unadapted == pytest.approx(0.25 * 0.36 * 5.0, rel=1e-9)
    assert c[-1] == pytest.approx(D.lag_cost_unadapted, rel=1e-3)
    # closed form: z = G_a->theta - 3/5, G_a->theta = eps dmu (s + 1) / (s^2 + s + 1/4)
    s = 1j * lag[:, 0]
    z = EPS * DMU * (s + 1) / (s * s + s + 0.25) - 0.6
    np.testing.assert_allclose(c, 0.25 * 5.0 * np.abs(z) ** 2, rtol=1e-6)


def test_optimum_derivative_matches_finite_differences():
    model = load_model(EX / "isomerisation.toml")
    opt = learned_fixed_point(model)
    d, H = optimum_derivative(model, opt.theta)
    h = 1e-4
    fd = (learned_fixed_point(model, a=h).theta - learned_fixed_point(model, a=-h).theta) / (2 * h)
    np.testing.assert_allclose(H @ d, H @ fd, rtol=1e-5, atol=1e-8)


def test_lag_cost_static_term_nonzero_under_dynamic_clamping_bias():
    lp = linearise(_dynamic_chain())
    assert lp.fixed_point.bias > 0
    D = disturbance(lp)
    assert D.lag_cost_static > 0
    lag = np.asarray(D.lag_cost)
    assert lag[0, 1] == pytest.approx(D.lag_cost_static, rel=1e-2)
    assert lag[-1, 1] == pytest.approx(D.lag_cost_unadapted, rel=5e-2)


# -- no disturbance direction ------------------------------------------------------------------------------
def test_no_environment_change_gives_nulls_with_reason():
    model = load_model(EX / "birth_death.toml").replace(change=None)
    D = disturbance(linearise(model))
    assert not D.available
    d = D.to_dict()
    for key in ("bandwidth", "hinf_norm", "lag_cost"):
        assert d[key] is None and "environment.change" in d[f"{key}_reason"]
    for key in ("rise_time", "settling_time", "overshoot_pct"):     # docs/cli.md: the step keys exist
        assert d["step"][key] is None and "environment.change" in d["step"][f"{key}_reason"]
    json.dumps(d)


def test_to_dict_is_plain_json(e1):
    _, D = e1
    d = D.to_dict()
    text = json.dumps(d)
    assert "NaN" not in text and "Infinity" not in text
    assert d["perfect_adaptation"] is True
    assert isinstance(d["lag_cost"][0][0], float)


def test_plants_split_and_loop_in_learned_coordinates():
    """E1: P_f = kappa mu/(s + kappa), P_c = 0; chain: P_c = E_Q[Var(A|x)] = 5/3 (static)."""
    w = np.logspace(-2, 1, 7)
    lp = linearise(load_model(EX / "birth_death.toml"))
    R = broken_loop(lp).response(w)
    s = 1j * w
    np.testing.assert_allclose(R.P_f[:, 0, 0], KAPPA * MU / (s + KAPPA), rtol=1e-9)
    np.testing.assert_allclose(R.P_c, 0.0, atol=1e-12)
    np.testing.assert_allclose(R.L_full, R.L, rtol=1e-12)           # one species, no neutral direction
    R = broken_loop(linearise(load_model(EX / "chain.toml"))).response(w)
    np.testing.assert_allclose(R.P_c[:, 0, 0], 5.0 / 3.0, rtol=1e-9)
    np.testing.assert_allclose(R.P_f[:, 0, 0], (s + 0.4) / (s * s + s + 0.16), rtol=1e-9)
    assert isinstance(R.frd("P_c"), control.FrequencyResponseData)
