"""The stationary law and the divergence landscape (docs/theory.md §1-3).

Exactness of the product form on the (truncated) class, D >= 0, gradient and
Hessian against finite differences of D, neutral directions, and D as a
Lyapunov function of the quasi-static flow.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import sparse, stats
from scipy.special import gammaln

from crnfb.feedback import Model, Network, Poisson

from conftest import example

NAMES = ["birth_death", "isomerisation", "dimer", "chain", "hidden_scaffold"]


def thetas(k, scale=2.0):
    return arrays(np.float64, k, elements=st.floats(-scale, scale, allow_nan=False))


def generator(space, theta):
    """Master-equation generator (columns sum to zero) from the jump list."""
    n = space.size
    rows, cols, vals = [], [], []
    for e in space.edges:
        rate = e.coef * np.exp(e.exponent @ theta)
        rows += [e.dst, e.src]
        cols += [e.src, e.src]
        vals += [rate, -rate]
    return sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n, n)).tocsr()


# -- stationary law ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_stationary_law_is_a_distribution_in_product_form(name, data):
    model = example(name)
    sp = model.space
    theta = data.draw(thetas(model.network.n_species))
    pi = sp.stationary(theta)
    assert (pi >= 0).all()
    assert abs(pi.sum() - 1) < 1e-12
    # pi(n) proportional to exp(theta . n) / prod n_i!
    logw = sp.states @ theta - gammaln(sp.states + 1.0).sum(axis=1)
    ref = np.exp(logw - logw.max())
    np.testing.assert_allclose(pi, ref / ref.sum(), rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("name", NAMES)
def test_product_form_is_exactly_stationary_on_the_box(name):
    # the generator built from the kept jumps annihilates pi (box jumps dropped, not redirected)
    model = example(name)
    rng = np.random.default_rng(7)
    for _ in range(3):
        theta = rng.normal(0, 1, model.network.n_species)
        pi = model.space.stationary(theta)
        A = generator(model.space, theta)
        flux = np.abs(A).sum(axis=0).A1 * pi
        assert np.max(np.abs(A @ pi)) <= 1e-12 * max(flux.max(), 1e-300)


def test_truncation_mass_matches_the_poisson_tail():
    net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    model = Model(net, initial={"X": 0}, n_max=15, environment=Poisson(2.0), truncation_tol=1e-2)
    sp = model.space
    # enlarged box: n_max + max(10, n_max/2) (docs/decisions.md)
    assert sp.enlarged.bounds.tolist() == [25]
    mu = 5.0
    got = sp.truncation_mass(np.array([np.log(mu)]))
    want = (stats.poisson.cdf(25, mu) - stats.poisson.cdf(15, mu)) / stats.poisson.cdf(25, mu)
    assert got == pytest.approx(want, rel=1e-10)
    assert got == pytest.approx(stats.poisson.sf(15, mu), rel=1e-3)
    # closed classes are not truncated
    assert example("isomerisation").space.truncation_mass(np.zeros(2)) == 0.0


# -- divergence ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_divergence_is_nonnegative_for_random_tables(name, data):
    model = example(name)
    land = model.landscape
    nv = model.space.visible_states.shape[0]
    w = data.draw(arrays(np.float64, nv, elements=st.floats(0, 1)).filter(lambda w: w.sum() > 1e-6))
    q = w / w.sum()
    theta = data.draw(thetas(model.network.n_species))
    D = land.divergence(theta, q)
    # independent value (divergence() clips rounding-level negatives to 0, so check the raw sum)
    sp = model.space
    logw = sp.states @ theta - gammaln(sp.states + 1.0).sum(axis=1)
    pi = np.exp(logw - logw.max())
    pi /= pi.sum()
    P = np.zeros(nv)
    for v, p in zip(sp.visible_index, pi):
        P[v] += p
    m = q > 0
    raw = float(np.sum(q[m] * np.log(q[m] / P[m])))
    assert np.isfinite(raw) and raw >= -1e-12
    assert D == pytest.approx(max(raw, 0.0), rel=1e-9, abs=1e-12)
    # D = 0 exactly when Q is the model's own marginal
    P = land.marginal(model.space.stationary(theta))
    assert abs(land.divergence(theta, P)) < 1e-10


def fd_gradient(f, x, h=1e-5):
    I = np.eye(x.size)
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in I])


def fd_hessian(f, x, h=3e-4):
    k = x.size
    I = h * np.eye(k)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            H[i, j] = H[j, i] = (f(x + I[i] + I[j]) - f(x + I[i] - I[j]) - f(x - I[i] + I[j])
                                 + f(x - I[i] - I[j])) / (4 * h * h)
    return H


@pytest.mark.parametrize("name", ["hidden_scaffold", "dimer"])
def test_gradient_and_hessian_match_finite_differences_of_D(name):
    model = example(name)
    rng = np.random.default_rng(2024)
    for _ in range(3):
        theta = rng.normal(0, 1, len(model.learned))
        g, H = model.gradient(theta), model.hessian(theta)
        g_fd = fd_gradient(model.divergence, theta)
        H_fd = fd_hessian(model.divergence, theta)
        assert np.linalg.norm(g - g_fd) <= 1e-6 * np.linalg.norm(g)
        assert np.linalg.norm(H - H_fd) <= 1e-6 * np.linalg.norm(H)
        assert np.allclose(H, H.T, atol=1e-12)
        # and the Hessian is the Jacobian of the gradient
        Hg = np.array([(model.gradient(theta + 1e-5 * e) - model.gradient(theta - 1e-5 * e)) / 2e-5
                       for e in np.eye(theta.size)])
        assert np.linalg.norm(H - Hg) <= 1e-6 * np.linalg.norm(H)


@given(thetas(1, 3.0))
def test_without_hidden_species_the_hessian_is_the_covariance(theta):
    model = example("birth_death")
    pi = model.space.stationary(model.full_theta(theta))
    x = model.space.states[:, 0]
    var = pi @ x**2 - (pi @ x) ** 2
    H = model.hessian(theta)
    assert H.shape == (1, 1) and H[0, 0] == pytest.approx(var, rel=1e-10)


@pytest.mark.parametrize("name", ["isomerisation", "dimer"])
@given(data=st.data())
def test_hidden_determined_by_visible_gives_the_covariance(name, data):
    # in E2 (y = T - x) and the dimer (c = 4 - b) the hidden part is a function of v:
    # E_Q[Cov(n|v)] vanishes and H = Cov_pi, positive semidefinite (docs/theory.md §2)
    model = example(name)
    theta = data.draw(thetas(model.network.n_species))
    land = model.landscape
    pi = model.space.stationary(theta)
    np.testing.assert_allclose(land.conditional_covariance(pi), 0, atol=1e-10)
    H = land.hessian(theta)
    np.testing.assert_allclose(H, land.covariance(pi), atol=1e-10)
    assert np.linalg.eigvalsh(H).min() >= -1e-9


# -- neutral directions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["isomerisation", "dimer", "hidden_scaffold"])
@given(data=st.data())
def test_neutral_directions_leave_the_law_unchanged(name, data):
    model = example(name)
    N = model.neutral
    assert N.shape[1] == model.network.conservation_laws.shape[0]
    np.testing.assert_allclose(N.T @ N, np.eye(N.shape[1]), atol=1e-12)
    theta = data.draw(thetas(len(model.learned)))
    c = data.draw(arrays(np.float64, N.shape[1], elements=st.floats(-5, 5)))
    moved = theta + N @ c
    land = model.landscape
    pi0 = model.space.stationary(model.full_theta(theta))
    pi1 = model.space.stationary(model.full_theta(moved))
    np.testing.assert_allclose(pi1, pi0, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(land.marginal(pi1), land.marginal(pi0), rtol=1e-8, atol=1e-14)
    assert model.divergence(moved) == pytest.approx(model.divergence(theta), rel=1e-8, abs=1e-12)
    H = model.hessian(theta)
    assert np.linalg.norm(H @ N) <= 1e-9 * max(1.0, np.linalg.norm(H))
    assert np.linalg.norm(N.T @ model.gradient(theta)) <= 1e-9 * max(1.0, np.linalg.norm(model.gradient(theta)))


def test_no_neutral_direction_when_the_conservation_law_touches_a_fixed_species():
    # chain: A + B + X conserved, only A learned -> no neutral direction
    assert example("chain").neutral.shape == (1, 0)
    assert example("birth_death").neutral.shape == (1, 0)


# -- D is a Lyapunov function of the quasi-static flow ------------------------------------------------------

@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "dimer", "hidden_scaffold"])
@given(data=st.data())
def test_divergence_decreases_along_the_quasi_static_flow(name, data):
    model = example(name)
    eps = model.eps
    theta = model.theta0 + data.draw(thetas(len(model.learned), 1.5))
    D = model.divergence(theta)
    for _ in range(5):
        g = model.gradient(theta)
        if np.linalg.norm(g) < 1e-9:
            break
        lam = max(1.0, np.max(np.abs(np.linalg.eigvalsh(model.hessian(theta)))))
        h = 0.1 / (lam * eps.max())  # Euler step, small against the curvature
        new = theta - h * eps * g
        D_new = model.divergence(new)
        # strict decrease, at the first-order rate dD/dt = -g.E g (within the step's second-order error)
        assert D_new < D
        assert D - D_new == pytest.approx(h * g @ (eps * g), rel=0.2)
        theta, D = new, D_new
