"""Linear noise approximation of the finite-ensemble loop (analysis/analyses/noise.py) against
closed forms and the exact SSA (docs/theory.md §6)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.noise import diffusion_matrix, lyapunov, parameter_noise, validate_noise
from crnfb.feedback import load_model
from crnfb.feedback.model.model import Ensembles
from tests.conftest import EXAMPLES, ROOT, example

DATA = ROOT / "tests" / "data"


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
    """The SSA's stationary var(theta) lies within the batch-means 99 % interval (+ tolerance) of the LNA."""
    model = example("birth_death").replace(ensembles=Ensembles(200, 200, 200.0)).with_learning(eps=1.0)
    res = validate_noise(model, replicates=8, seed=1)
    assert len(res) == 1
    r = res[0]
    assert r["quantity"] == "parameter noise var(theta_X)"
    assert r["predicted"] == pytest.approx(_e1_closed_form(5.0, 1.0, 1.0, 200, 200.0), rel=1e-6)
    assert r["passed"], r
    assert r["ci"][0] < r["simulated"] < r["ci"][1]
    assert r["batches"] == 32 and r["confidence"] == 0.99
    assert set(r) >= {"quantity", "predicted", "simulated", "rel_error", "tolerance", "passed", "ci", "cpu_seconds",
                      "cpu_estimate", "budget", "events_per_cpu_second"}


@pytest.mark.slow
def test_lna_matches_ssa_e1_dynamic_clamping():
    """Dynamic clamping adds the clamped ensemble's reset noise (here as large as the free part)."""
    model = example("birth_death").replace(ensembles=Ensembles(200, 200, 200.0)).with_learning(eps=1.0)
    pred = parameter_noise(model, "dynamic")
    assert pred.parts["clamped"][0, 0] > 0
    res = validate_noise(model, replicates=8, seed=2, clamping="dynamic", prediction=pred)
    assert res[0]["passed"], res[0]


@pytest.mark.slow
def test_lna_matches_ssa_e2_identifiable_coordinate():
    """E2 at large Omega (slow neutral random walk): var(theta_Y - theta_X)/2 agrees."""
    model = example("isomerisation").replace(ensembles=Ensembles(500, 500, 5000.0)).with_learning(eps=0.5)
    res = validate_noise(model, replicates=8, seed=1)
    assert len(res) == 1 and "theta_X" in res[0]["quantity"] and "theta_Y" in res[0]["quantity"]
    assert res[0]["passed"], res[0]


def test_correlation_times_against_quadrature():
    """tau_c and tau_2 of the LNA (modal sums) against the autocovariance integrated on a grid."""
    from scipy.integrate import trapezoid
    from scipy.linalg import expm

    from crnfb.analysis.analyses.noise import _reduced_covariance, correlation_times

    pred = parameter_noise(example("chain"))
    loop = pred.loop
    S = _reduced_covariance(pred)
    a = loop.V.toarray()[loop.net.n_f + loop.net.n_c:].T[:, 0]
    t = np.linspace(0.0, 40.0 / pred.slowest_rate, 8001)
    step = expm(loop.Jr.toarray() * (t[1] - t[0]))
    b, C = S @ a, []
    for _ in t:
        C.append(float(a @ b))
        b = step @ b
    C = np.array(C)
    tau_c, tau_2 = correlation_times(pred)
    assert tau_c[0] == pytest.approx(trapezoid(C, t) / C[0], rel=1e-4)
    assert tau_2[0] == pytest.approx(2 * trapezoid(C ** 2, t) / C[0] ** 2, rel=1e-4)


def test_result_does_not_depend_on_the_worker_count():
    """Replicate i runs from child i of SeedSequence(seed), in whichever process."""
    model = example("birth_death").replace(ensembles=Ensembles(200, 200, 200.0)).with_learning(eps=1.0)
    one = validate_noise(model, seed=3, workers=1, speed=1e7)
    two = validate_noise(model, seed=3, workers=2, speed=1e7)
    assert one[0]["simulated"] == two[0]["simulated"] and one[0]["events"] == two[0]["events"]


def test_fast_mode_target_is_the_projected_lyapunov_solution():
    """The check restricted to the faster modes predicts U^T Vt (Pf S Pf^T) Vt^T U, which also solves
    the Lyapunov equation driven by the projected noise only (Pf commutes with Jr)."""
    from crnfb.analysis.analyses.noise import _fast_projector, _fast_target, _mode_rates, sparse_diffusion

    model = load_model(DATA / "scaffold_small_dynamic.toml")
    pred = parameter_noise(model)
    loop, net = pred.loop, pred.loop.net
    Jr = loop.Jr.toarray()
    r_cut = float(_mode_rates(loop)[2])
    Pf, excluded = _fast_projector(Jr, r_cut)
    assert excluded == 2
    assert np.allclose(Pf @ Jr, Jr @ Pf, atol=1e-10 * np.abs(Jr).max()) and np.allclose(Pf @ Pf, Pf, atol=1e-9)
    n, base = net.n_states, net.n_f + net.n_c
    N = pred.neutral_directions
    W = (N / model.eps[:, None]).T
    P = np.eye(n)
    P[base:, base:] -= N @ np.linalg.solve(W @ N, W)
    D = sum(d.dense() for d in sparse_diffusion(loop).values())
    Dr = (P @ D @ P.T)[np.ix_(loop.rest, loop.rest)]
    X = lyapunov(Jr, Pf @ Dr @ Pf.T)
    A = loop.V.toarray()[base:].T @ pred.identifiable_basis
    target = _fast_target(pred, model.learned_names, r_cut)
    assert np.allclose(target.predicted, np.diag(A.T @ X @ A), rtol=1e-8)
    assert np.all(target.predicted > 0)   # (its share of the full variance may exceed 1: the modes are not orthogonal)


def test_noise_budget_cli(tmp_path):
    """--noise-budget 0: the report is written, the noise check says why it was not made; a negative
    budget is bad input (exit 2, nothing written)."""
    import json

    from crnfb.analysis.cli.entry import main

    out = tmp_path / "r"
    assert main(["report", str(EXAMPLES / "birth_death.toml"), "-o", str(out), "--noise-budget", "0"]) == 0
    noise = [c for c in json.loads((out / "report.json").read_text())["validation"]
             if c["quantity"].startswith("parameter noise")]
    assert len(noise) == 1 and noise[0]["passed"] is None
    assert "CPU s" in noise[0]["details"]["reason"] and "budget of 0 CPU s" in noise[0]["details"]["reason"]
    bad = tmp_path / "bad"
    assert main(["report", str(EXAMPLES / "birth_death.toml"), "-o", str(bad), "--noise-budget", "-1"]) == 2
    assert not bad.exists()


@pytest.mark.slow
@pytest.mark.parametrize("path", ["examples/chain.toml", "tests/data/chain30.toml",
                                  "tests/data/scaffold_small_dynamic.toml"])
def test_noise_check_made_and_passes(path):
    """Issue 22: the check is made within the default budget, and passes (each under a minute here)."""
    res = validate_noise(load_model(ROOT / path), seed=0)
    assert res, "check not made"
    assert all(r["passed"] for r in res), res
    assert all(r["cpu_seconds"] <= r["budget"] for r in res)


@pytest.mark.slow
def test_noise_check_made_and_passes_e3():
    """E3 (dynamic clamping, slowest mode 1.4e5): the full check would need ~5e5 CPU s, so the check is
    made on the modes the budget reaches (the slower ones projected out) and passes."""
    res = validate_noise(example("hidden_scaffold"), seed=0)
    assert res and all(r["passed"] for r in res), res
    assert all("modes with rate >=" in r["quantity"] and r["modes_excluded"] > 0 for r in res)
    assert "CPU s" in res[0]["full_check_not_made"]


def test_unstable_loop_has_no_stationary_covariance(monkeypatch):
    model = example("birth_death")
    loop = linearise(model)
    import crnfb.analysis.analyses.noise as noise
    bad = type(loop)(loop.net, loop.fixed_point, -loop.J, -loop.B, loop.V, loop.rest, loop.removed)
    with pytest.raises(ValueError, match="not stable"):
        noise.parameter_noise(model, loop=bad)
    assert math.isfinite(parameter_noise(model, loop=loop).covariance[0, 0])


def test_unaffordable_check_is_skipped_with_a_reason():
    """If the plan's estimated CPU time exceeds the budget, no check (empty list) and a warning with the estimate."""
    model = example("birth_death")
    with pytest.warns(RuntimeWarning, match=r"CPU s at the measured .* > the budget of 0.001 CPU s"):
        assert validate_noise(model, budget=1e-3) == []
