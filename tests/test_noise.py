"""Linear noise approximation of the finite-ensemble loop (analysis/noise.py) against
closed forms and the exact SSA (docs/theory.md §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crnfb.analysis.linearise import linearise
from crnfb.analysis.noise import diffusion_matrix, lyapunov, parameter_noise, validate_noise
from crnfb.feedback.model import Ensembles
from tests.conftest import example


def _e1_closed_form(mu, eps, kappa, M_f, omega):
    """E1 under equilibrium clamping: the mean m and theta close on
    ``dm = kappa (mu dtheta - dm) + noise(2 kappa mu / M_f)``, ``dtheta = -eps dm + noise(2 eps / Omega)``;
    the Lyapunov equation of that 2x2 system gives var(theta) in closed form."""
    return 1.0 / (omega * mu) + (eps / kappa) * (1.0 / omega + 1.0 / M_f)


@pytest.mark.parametrize("sizes,eps", [((1000, 1000, 1000.0), 0.05), ((200, 200, 200.0), 1.0),
                                       ((500, 50, 2000.0), 0.3)])
def test_e1_equilibrium_matches_closed_form(sizes, eps):
    model = example("birth_death").replace(ensembles=Ensembles(*sizes)).with_learning(eps=eps)
    pred = parameter_noise(model)
    expected = _e1_closed_form(5.0, eps, 1.0, sizes[0], sizes[2])
    assert pred.covariance[0, 0] == pytest.approx(expected, rel=1e-6)
    # parts are additive and the learning part is the M_f -> infinity limit
    assert sum(pred.parts.values())[0, 0] == pytest.approx(pred.covariance[0, 0], rel=1e-12)
    assert pred.parts["learning"][0, 0] == pytest.approx(_e1_closed_form(5.0, eps, 1.0, np.inf, sizes[2]), rel=1e-6)
    assert pred.parts["clamped"][0, 0] == 0.0
    assert pred.neutral_diffusion.size == 0


def test_diffusion_matrix_structure():
    """Copy noise conserves each ensemble's probability; D is symmetric positive semidefinite."""
    model = example("isomerisation")
    loop = linearise(model)
    D, parts = diffusion_matrix(loop)
    net = loop.net
    assert np.allclose(D, D.T)
    assert np.min(np.linalg.eigvalsh(D)) > -1e-12
    assert np.allclose(D[:net.n_f].sum(axis=0), 0.0, atol=1e-12)
    assert np.allclose(D[net.n_f:net.n_f + net.n_c].sum(axis=0), 0.0, atol=1e-12)
    # learning noise: eps (m_c + m_f) / (Omega lambda) on the theta diagonal
    m_f, m_c = net.means(loop.fixed_point.x)
    th = loop.fixed_point.theta
    expect = model.eps * (m_c + m_f) / (model.ensembles.omega * np.exp(th))
    assert np.allclose(np.diag(parts["learning"])[-net.k:], expect)


def test_neutral_direction_is_split_off_e2():
    """E2: theta_X + theta_Y is neutral; its component is a random walk, reported separately."""
    model = example("isomerisation")
    pred = parameter_noise(model)
    N = pred.neutral_directions
    W = (N / model.eps[:, None]).T
    assert np.allclose(W @ pred.covariance @ W.T, 0.0, atol=1e-14)
    assert pred.identifiable_covariance.shape == (1, 1) and pred.identifiable_covariance[0, 0] > 0
    assert pred.neutral_diffusion[0, 0] > 0
    # Ito: the neutral coordinate drifts towards small lambda (prod lambda^(n/eps) is a martingale)
    lam_change = N @ pred.neutral_drift
    assert np.all(lam_change < 0)


def test_lyapunov_solvers_agree():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6)) - 4 * np.eye(6)
    B = rng.normal(size=(6, 3))
    Q = B @ B.T
    X = lyapunov(A, Q)
    assert np.allclose(A @ X + X @ A.T + Q, 0.0, atol=1e-10)
    from scipy.linalg import solve_continuous_lyapunov
    assert np.allclose(X, solve_continuous_lyapunov(A, -Q), atol=1e-10)


def test_lna_matches_ssa_e1():
    """The SSA's stationary var(theta) lies within the replicates' 95 % CI (+5 %) of the LNA."""
    model = example("birth_death").replace(ensembles=Ensembles(200, 200, 200.0)).with_learning(eps=1.0)
    res = validate_noise(model, replicates=8, seed=1, max_events=2.5e6)
    assert len(res) == 1
    r = res[0]
    assert r["quantity"] == "parameter noise var(theta_X)"
    assert r["predicted"] == pytest.approx(_e1_closed_form(5.0, 1.0, 1.0, 200, 200.0), rel=1e-6)
    assert r["passed"], r
    assert r["ci"][0] < r["simulated"] < r["ci"][1]
    assert set(r) >= {"quantity", "predicted", "simulated", "rel_error", "tolerance", "passed", "ci"}
    assert all(isinstance(v, (int, float, str, bool, list)) and v == v for v in r.values())


@pytest.mark.slow
def test_lna_matches_ssa_e1_dynamic_clamping():
    """Dynamic clamping adds the clamped ensemble's reset noise (here as large as the free part)."""
    model = example("birth_death").replace(ensembles=Ensembles(200, 200, 200.0)).with_learning(eps=1.0)
    pred = parameter_noise(model, "dynamic")
    assert pred.parts["clamped"][0, 0] > 0
    res = validate_noise(model, replicates=8, seed=2, clamping="dynamic", max_events=5e6, prediction=pred)
    assert res[0]["passed"], res[0]


@pytest.mark.slow
def test_lna_matches_ssa_e2_identifiable_coordinate():
    """E2 at large Omega (slow neutral random walk): var(theta_Y - theta_X)/2 agrees."""
    model = example("isomerisation").replace(ensembles=Ensembles(500, 500, 5000.0)).with_learning(eps=0.5)
    res = validate_noise(model, replicates=16, seed=1, burn_in=3.0)
    assert len(res) == 1 and "theta_X" in res[0]["quantity"] and "theta_Y" in res[0]["quantity"]
    assert res[0]["passed"], res[0]


def test_unstable_loop_has_no_stationary_covariance(monkeypatch):
    model = example("birth_death")
    loop = linearise(model)
    import crnfb.analysis.noise as noise
    bad = type(loop)(loop.net, loop.fixed_point, -loop.J, -loop.B, loop.V, loop.rest, loop.removed)
    with pytest.raises(ValueError, match="not stable"):
        noise.parameter_noise(model, loop=bad)
    assert math.isfinite(parameter_noise(model, loop=loop).covariance[0, 0])


def test_unaffordable_check_is_skipped_with_a_reason():
    """If burn-in + 20 correlation times exceed the event budget, no check (empty list) and a warning."""
    model = example("birth_death")
    with pytest.warns(RuntimeWarning, match="correlation time"):
        assert validate_noise(model, max_events=1e4) == []
