"""The structured integrator (crnfb.feedback.dynamics.bdf): bordered LU, Newton-matrix reuse, agreement with SciPy's BDF."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy import sparse

from crnfb.feedback.dynamics.bdf import ReuseBDF
from crnfb.feedback.numerics.sparselu import BorderedLU, border_indices
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.model.signals import Step
from crnfb.feedback.dynamics.ensembles import LoopField
from crnfb.feedback.dynamics.integrate import integrate, simulate
from crnfb.feedback.numerics import sizes


def _bordered_matrix(n: int, k: int, seed: int) -> sparse.csc_matrix:
    """Tridiagonal sparse block plus ``k`` dense rows and columns (like the loop's theta border)."""
    rng = np.random.default_rng(seed)
    A = sparse.diags([rng.uniform(-1, 0, n - 1), rng.uniform(3, 4, n), rng.uniform(-1, 0, n - 1)], [-1, 0, 1])
    M = A.tolil()
    border = rng.choice(n, size=k, replace=False)
    M[border, :] = rng.normal(size=(k, n)) * 0.1
    M[:, border] = rng.normal(size=(n, k)) * 0.1
    M[border, border] = 5.0 + rng.uniform(size=k)
    return M.tocsc(), np.sort(border)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bordered_lu_solves_like_dense(seed):
    M, border = _bordered_matrix(400, 5, seed)
    assert np.array_equal(border_indices(M), border)          # the dense lines are found
    lu = BorderedLU(M)
    assert np.array_equal(lu.border, border)
    b = np.random.default_rng(seed).normal(size=(400, 3))
    x_ref = scipy.linalg.solve(M.toarray(), b)
    assert np.allclose(lu.solve(b), x_ref, rtol=1e-10, atol=1e-12)
    assert np.allclose(lu.solve(b[:, 0]), x_ref[:, 0], rtol=1e-10, atol=1e-12)
    # same pattern, new values: the cached layout gives the new matrix's solution
    M2 = M.copy()
    M2.data *= 1.0 + 0.1 * np.random.default_rng(seed + 10).uniform(size=M2.nnz)
    lu2 = BorderedLU(M2, layout=lu.layout)
    assert lu2.layout is lu.layout
    assert np.allclose(lu2.solve(b), scipy.linalg.solve(M2.toarray(), b), rtol=1e-10, atol=1e-12)


def test_bordered_lu_without_dense_lines_is_plain_splu():
    M = sparse.diags([np.full(99, -1.0), np.full(100, 3.0), np.full(99, -1.0)], [-1, 0, 1]).tocsc()
    lu = BorderedLU(M)
    assert lu.border.size == 0
    b = np.arange(100.0)
    assert np.allclose(M @ lu.solve(b), b, atol=1e-12)


def test_reuse_bdf_matches_matrix_exponential():
    """Linear ODE ``y' = J y`` with a bordered stiff J: closed form ``expm(J t) y0``."""
    M, _ = _bordered_matrix(300, 4, 3)
    J = -(M + sparse.diags(np.geomspace(1e-2, 1e3, 300))).tocsc()     # stiff: rates 1e-2 .. 1e3
    y0 = np.ones(300)
    t_eval = np.array([0.0, 0.5, 2.0, 10.0])
    t, Y, stats = integrate(lambda lo, hi: ((lambda t, y: J @ y), (lambda t, y: J)), y0, t_eval,
                            rtol=1e-10, atol=1e-13, progress=False)
    Jd = J.toarray()
    for ti, yi in zip(t, Y):
        exact = scipy.linalg.expm(Jd * ti) @ y0
        assert np.max(np.abs(yi - exact)) <= 1e-7 * np.max(np.abs(y0))
    assert stats.nlu < stats.steps / 2               # the Jacobian is constant: few factorisations


def _loop_run(model, method, rtol=1e-9):
    net = LearningNetwork(model)
    f = LoopField(net)
    y0 = net.initial_state()
    t_eval = np.linspace(0.0, 60.0, 31)
    atol = np.full(net.n_states, 1e-12)
    return integrate(lambda lo, hi: ((lambda t, y: f(y)), (lambda t, y: f.jacobian(y))), y0, t_eval,
                     method=method, rtol=rtol, atol=atol, progress=False)


@pytest.mark.parametrize("name", ["birth_death", "hidden_scaffold"])
def test_reuse_bdf_matches_scipy_bdf_on_the_loop(name):
    """Same trajectory as SciPy's BDF at tight tolerance (E1, E3 with dynamic clamping)."""
    from conftest import example
    model = example(name).with_learning(clamping="dynamic")
    _, Y_new, st_new = _loop_run(model, "ReuseBDF")
    _, Y_old, st_old = _loop_run(model, "BDF")
    scale = np.maximum(np.abs(Y_old), 1e-6)
    assert np.max(np.abs(Y_new - Y_old) / scale) < 1e-5
    # reuse is happening: fewer factorisations than SciPy's refactorisation on every change of h
    assert st_new.nlu < st_old.nlu
    assert st_new.nlu < st_new.steps / 3


def test_nested_dissection_without_pivoting_on_the_loop(monkeypatch):
    """The large-block path (METIS order, no row pivoting, ``ND_ABOVE``) lowered to E3: the bordered LU
    is a permuted unpivoted one and the trajectory is SciPy BDF's."""
    from conftest import example
    from crnfb.feedback.numerics.sparselu import PermutedLU

    monkeypatch.setattr(sizes, "ND_ABOVE", 10)
    model = example("hidden_scaffold").with_learning(clamping="dynamic")
    net = LearningNetwork(model)
    J = LoopField(net).jacobian(net.initial_state())
    M = (sparse.identity(J.shape[0]) - 3.0 * J).tocsc()
    lu = BorderedLU(M)
    assert isinstance(lu._lu, PermutedLU) and lu.border.size == net.k
    b = np.random.default_rng(0).normal(size=(J.shape[0], 2))
    assert np.allclose(M @ lu.solve(b), b, rtol=0, atol=1e-10 * np.abs(b).max())
    _, Y_new, _ = _loop_run(model, "ReuseBDF")
    _, Y_old, _ = _loop_run(model, "BDF")
    assert np.max(np.abs(Y_new - Y_old) / np.maximum(np.abs(Y_old), 1e-6)) < 1e-5


def test_non_dominant_blocks_keep_pivoting(monkeypatch):
    """A sparse block that is not column diagonally dominant keeps the METIS order and is factorised with
    threshold pivoting: a zero on its diagonal (which an unpivoted LU cannot take) solves to rounding."""
    from crnfb.feedback.numerics.sparselu import PermutedLU, column_dominant

    monkeypatch.setattr(sizes, "ND_ABOVE", 10)
    M, border = _bordered_matrix(400, 5, 0)
    M = M.tolil()
    M[3, 3] = 0.0                      # no diagonal pivot in this column
    M = M.tocsc()
    lu = BorderedLU(M)
    assert isinstance(lu._lu, PermutedLU) and not column_dominant(M[lu.rest][:, lu.rest])
    b = np.random.default_rng(1).normal(size=400)
    x = scipy.linalg.solve(M.toarray(), b)
    cond = np.linalg.cond(M.toarray(), 1)
    assert np.linalg.norm(lu.solve(b) - x) <= 100 * cond * np.finfo(float).eps * np.linalg.norm(x)


def test_sparse_lu_orders_large_matrices_by_nested_dissection(monkeypatch):
    """``sparse_lu`` on both sides of ``ND_ABOVE``, on the shifted loop Jacobian of a generated network
    (dominant) and on the Jacobian itself (theta rows: not dominant): one solution to the backward-error
    bound, whichever order and pivoting."""
    from crnfb.feedback.numerics.sparselu import PermutedLU, sparse_lu
    from conftest import example

    net = LearningNetwork(example("hidden_scaffold").with_learning(clamping="dynamic"))
    J = LoopField(net).jacobian(net.initial_state()).tocsc()
    n = J.shape[0]
    b = np.random.default_rng(2).normal(size=n)
    for M in ((sparse.identity(n) - 3.0 * J).tocsc(), (J - 0.1 * sparse.identity(n)).tocsc()):
        x = scipy.linalg.solve(M.toarray(), b)
        bound = 100 * np.linalg.cond(M.toarray(), 1) * np.finfo(float).eps * np.linalg.norm(x)
        monkeypatch.setattr(sizes, "ND_ABOVE", n + 1)
        small = sparse_lu(M)
        monkeypatch.setattr(sizes, "ND_ABOVE", n)
        large = sparse_lu(M)
        assert isinstance(large, PermutedLU) and not isinstance(small, PermutedLU)
        assert np.linalg.norm(small.solve(b) - x) <= bound and np.linalg.norm(large.solve(b) - x) <= bound


def test_reuse_bdf_counts_requests_and_factorisations(e1):
    """Property of the reuse rule: every request beyond the factorisations was answered from the cache."""
    net = LearningNetwork(e1.with_learning(clamping="dynamic"))
    f = LoopField(net)
    solver = ReuseBDF(lambda t, y: f(y), 0.0, net.initial_state(), 100.0, jac=lambda t, y: f.jacobian(y),
                      rtol=1e-8, atol=1e-12)
    steps = 0
    while solver.status == "running":
        solver.step()
        steps += 1
    assert solver.status == "finished"
    assert 0 < solver.nlu < solver.nlu_requests
    assert solver.nlu <= steps


def test_simulate_default_and_scipy_bdf_agree_on_a_step(e1):
    """simulate() under a step in a: the default integrator and method='BDF' agree."""
    kw = dict(points=21, progress=False, rtol=1e-9, atol_p=1e-12, atol_theta=1e-11)
    new = simulate(e1, 100.0, Step(0.0, 1.0, 30.0), **kw)
    old = simulate(e1, 100.0, Step(0.0, 1.0, 30.0), method="BDF", **kw)
    assert new.metadata["method"] == "ReuseBDF" and old.metadata["method"] == "BDF"
    assert np.allclose(new.theta, old.theta, rtol=0, atol=1e-6)
    assert new.metadata["nlu"] < old.metadata["nlu"]


def test_scipy_solvers_still_selectable(e1):
    for method in ("BDF", "Radau", "LSODA"):
        tr = simulate(e1, 5.0, points=3, method=method, progress=False)
        assert tr.metadata["method"] == method and np.all(np.isfinite(tr.theta))


def test_reuse_bdf_with_dense_jacobian():
    """A dense Jacobian takes LAPACK's LU (reuse still applies)."""
    J = np.array([[-1000.0, 1.0], [0.5, -0.1]])
    y0 = np.array([1.0, 1.0])
    t, Y, _ = integrate(lambda lo, hi: ((lambda t, y: J @ y), (lambda t, y: J)), y0, np.array([0.0, 1.0, 5.0]),
                        rtol=1e-10, atol=1e-13, progress=False)
    for ti, yi in zip(t, Y):
        assert np.allclose(yi, scipy.linalg.expm(J * ti) @ y0, rtol=1e-7, atol=1e-10)



def test_borderless_matrices_keep_their_order_per_pattern(monkeypatch):
    """A large matrix without dense lines is factorised in its layout's METIS order, computed once per
    sparsity pattern: a second matrix of the same pattern reuses it (no METIS call) and both solve to
    the backward-error bound."""
    import crnfb.feedback.numerics.sparselu as slu

    monkeypatch.setattr(sizes, "ND_ABOVE", 10)
    rng = np.random.default_rng(3)
    n = 300
    G = sparse.random(n, n, density=0.01, random_state=4, data_rvs=lambda k: rng.uniform(0.1, 1.0, k))
    G = (G + G.T).tocsc()
    G.setdiag(0)
    G.eliminate_zeros()
    A = (G - sparse.diags(np.asarray(G.sum(axis=0)).ravel())).tocsc()     # a generator: columns sum to 0
    calls = []
    real = slu.nested_dissection
    monkeypatch.setattr(slu, "nested_dissection", lambda M: calls.append(M.shape) or real(M))
    first = BorderedLU((sparse.identity(n) - 2.0 * A).tocsc())
    assert first.border.size == 0 and first.layout is not None and isinstance(first._lu, slu.PermutedLU)
    M2 = (sparse.identity(n) - 5.0 * A).tocsc()
    second = BorderedLU(M2, layout=first.layout)
    assert len(calls) == 1
    b = rng.normal(size=n)
    x = scipy.linalg.solve(M2.toarray(), b)
    bound = 100 * np.linalg.cond(M2.toarray(), 1) * np.finfo(float).eps * np.linalg.norm(x)
    assert np.linalg.norm(second.solve(b) - x) <= bound
