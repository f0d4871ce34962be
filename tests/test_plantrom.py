"""The verified reduced plant model (``crnfb.analysis.linear.plantrom``) against dense transfer functions.

References are computed here with dense NumPy algebra on the generator as
given (``C (jwI - A)^{-1} B``), sharing no code with the model's symmetrised
coordinates, Krylov basis or verification.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

import crnfb.analysis.linear.frequency as F
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.margins import _eig_near_full, critical_gain
from crnfb.analysis.linear.plantrom import ROM_TOL, build_rom, symmetric_plant
from crnfb.feedback.numerics.sparselu import BorderedLU
from crnfb.feedback.numerics import sizes


def _dense_solver(S: sparse.spmatrix):
    """``(s I - S)^{-1} rhs`` at a real shift (what build_rom factorises)."""
    Sd = S.toarray()
    n = Sd.shape[0]
    return lambda s, rhs: np.linalg.solve(s * np.eye(n) - Sd, rhs)


def _reversible_generator(rng, n: int, density: float):
    """A random connected reversible generator (columns sum to zero) and its stationary law."""
    pi = rng.uniform(0.05, 1.0, n) * np.exp(rng.uniform(-8, 0, n))
    pi /= pi.sum()
    K = np.zeros((n, n))
    for i in range(n - 1):                          # a path keeps it connected
        K[i, i + 1] = K[i + 1, i] = rng.uniform(0.1, 10)
    mask = np.triu(rng.uniform(size=(n, n)) < density, 2)
    K[mask] = rng.uniform(0.01, 100, mask.sum())
    K = np.triu(K) + np.triu(K).T
    A = K * pi[:, None]                             # A_ij = K_ij pi_i: A_ij pi_j = A_ji pi_i
    np.fill_diagonal(A, 0.0)
    np.fill_diagonal(A, -A.sum(axis=0))
    return A, pi


def _tangent_inputs(rng, n: int, p: int) -> np.ndarray:
    B = rng.standard_normal((n, p))
    return B - B.mean(axis=0)                       # zero total: probability is conserved


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 60), p=st.integers(1, 4), q=st.integers(1, 3))
def test_model_matches_the_dense_transfer_function_on_random_reversible_plants(seed, n, p, q):
    """Any reversible generator: the verified model agrees with ``C (jwI - A)^{-1} B`` at frequencies it
    was never solved at, inside and beyond its anchors, and its poles lie in ``A``'s non-zero spectrum."""
    rng = np.random.default_rng(seed)
    A, pi = _reversible_generator(rng, n, 0.1)
    B = _tangent_inputs(rng, n, p)
    C = rng.standard_normal((q, n))
    plant = symmetric_plant(sparse.csr_matrix(A), B, sparse.csr_matrix(C), pi, [0, n])
    assert plant is not None and plant.null.shape == (n, 1)
    ev = np.sort(np.abs(np.linalg.eigvals(A)))[1:]            # drop the zero mode
    anchors = np.concatenate([[ev[0] * 1e-9], np.logspace(np.log10(ev[0] / 100), np.log10(ev[-1] * 100), 8),
                              [ev[-1] * 1e9]])
    rom = build_rom(plant, _dense_solver(plant.S), anchors, lam_min=ev[0])
    assert rom.verified and rom.error <= ROM_TOL
    assert np.all(rom.lam < 0)
    assert -rom.lam.max() >= ev[0] * (1 - 1e-8) and -rom.lam.min() <= ev[-1] * (1 + 1e-8)
    for w in np.concatenate([np.logspace(np.log10(ev[0]) - 12, np.log10(ev[-1]) + 12, 37), [np.pi]]):
        x = np.linalg.solve(1j * w * np.eye(n) - A, B)
        x -= pi[:, None] * x.sum(axis=0)        # the exact x has zero total; rounding along pi grows like 1/w
        ref = C @ x
        assert np.linalg.norm(rom(w) - ref) <= 1e-6 * np.linalg.norm(ref), w


def test_irreversible_generators_are_refused():
    """A cycle driven one way has no symmetric form: no model (the exact solves are used)."""
    A = np.array([[-1.0, 0.0, 2.0], [1.0, -3.0, 0.0], [0.0, 3.0, -2.0]])
    B = np.array([[1.0], [-1.0], [0.0]])
    assert symmetric_plant(sparse.csr_matrix(A), B, sparse.identity(3, format="csr"), np.ones(3) / 3, [0, 3]) is None
    # reversible rates but the wrong law: refused by the detailed-balance check
    rng = np.random.default_rng(1)
    A, pi = _reversible_generator(rng, 8, 0.3)
    B = _tangent_inputs(rng, 8, 1)
    wrong = np.roll(pi, 1)
    assert symmetric_plant(sparse.csr_matrix(A), B, sparse.identity(8, format="csr"), wrong, [0, 8]) is None


def test_unverified_model_says_so():
    """With no verification rounds allowed the model reports itself unverified with its last disagreement."""
    rng = np.random.default_rng(3)
    A, pi = _reversible_generator(rng, 40, 0.2)
    B = _tangent_inputs(rng, 40, 2)
    C = sparse.csr_matrix(rng.standard_normal((1, 40)))     # one output: the basis cannot span everything
    plant = symmetric_plant(sparse.csr_matrix(A), B, C, pi, [0, 40])
    ev = np.sort(np.abs(np.linalg.eigvals(A)))[1:]
    rom = build_rom(plant, _dense_solver(plant.S), [ev[0], ev[-1]], lam_min=ev[0], max_rounds=1, tol=1e-14)
    assert not rom.verified and rom.error > 1e-14
    assert rom.to_dict()["verified"] is False


@pytest.mark.parametrize("clamping", ["dynamic", "equilibrium"])
def test_broken_loop_plants_through_the_model_match_exact_solves(monkeypatch, e3, clamping):
    """E3 through the model (threshold lowered) against the reduced-coordinate exact solves, for both
    clampings (the clamped block ``A_hid - gamma I`` shares the free law's weights)."""
    model = e3.with_learning(clamping=clamping)
    loop = linearise(model)
    b = F.broken_loop(loop)

    def fresh():
        return F.BrokenLoop(b.loop, b.A, b.B_theta, b.B_a, b.C_mf, b.C_mc, b.D_mc, b.D_a, b.eps, b.neutral,
                            b.full)

    w = np.concatenate([[0.0], np.logspace(-6, 3, 23) * np.e])      # never an anchor; 0 is below them all
    monkeypatch.setattr(sizes, "ROM_PLANT", 10**9)
    monkeypatch.setattr(sizes, "LARGE_PLANT", 10**9)
    exact = fresh().plants(w)
    monkeypatch.setattr(sizes, "ROM_PLANT", 5)
    monkeypatch.setattr(sizes, "ROM_BASIS_PERCENT", 10**9)     # E3's 11 parameters: 34 vectors a shift
    withrom = fresh()
    approx = withrom.plants(w)
    assert withrom.rom is not None and withrom.rom.verified
    for a, r in zip(approx, exact):
        for i in range(w.size):
            assert np.linalg.norm(a[i] - r[i]) <= 1e-7 * np.linalg.norm(r[i]) + 1e-14
    # open_loop of frequencies not solved before takes only the model's e rows: the same P and G
    fast = fresh()
    assert fast.rom is not None
    P, G = fast.open_loop(w)
    for i in range(w.size):
        ref = exact[0][i] - exact[1][i]
        assert np.linalg.norm(P[i] - ref) <= 1e-7 * np.linalg.norm(ref) + 1e-14
        assert np.linalg.norm(G[i] - exact[2][i]) <= 1e-7 * np.linalg.norm(exact[2][i]) + 1e-14
    L = fast.loop_transfer(w[1:])
    assert np.allclose(L, withrom.response(w[1:]).L, rtol=1e-12, atol=0)


def test_eigenvalue_near_the_axis_in_full_coordinates_matches_dense(e3):
    """Around E3's stability boundary (where margins use it) the inverse iteration on the bordered full
    Jacobian returns the dense reduced spectrum's eigenvalue nearest ``j w``."""
    loop = linearise(e3)
    cg = critical_gain(loop)            # dense scan (E3 is small)
    w = abs(cg.eigenvalue.imag)
    assert w > 0
    pos = np.nonzero(loop.rest >= loop.net.n_f + loop.net.n_c)[0]
    for g in cg.gain * np.array([0.999, 1.0, 1.001]):
        Jr = loop.Jr.toarray()
        Jr[pos] *= g
        ev = np.linalg.eigvals(Jr)
        ref = ev[np.argmin(np.abs(ev - 1j * w))]
        got = _eig_near_full(loop, np.full(loop.net.k, g), w)
        assert abs(got - ref) <= 1e-9 * abs(ref)


def _bordered(rng, n: int, s: int, seed: int) -> sparse.csc_matrix:
    """A sparse, diagonally dominant matrix with ``s`` dense last rows and columns."""
    M = (sparse.random(n, n, density=0.01, random_state=seed) + 5 * sparse.identity(n)).tolil()
    M[:, -s:] = rng.standard_normal((n, s))
    M[-s:, :] = rng.standard_normal((s, n))
    return sparse.csc_matrix(M)


def test_bordered_lu_solves_complex_systems():
    """``BorderedLU`` keeps the imaginary part of a complex matrix (a shifted Jacobian)."""
    rng = np.random.default_rng(0)
    n = 300
    M = _bordered(rng, n, 2, 1) + 2j * sparse.identity(n)
    lu = BorderedLU(M, border=np.array([n - 2, n - 1]))
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    assert np.allclose(M @ lu.solve(b), b, atol=1e-10)


def test_bordered_lu_with_new_border_rows_solves_the_new_matrix():
    """Scaling the border rows (the loop's theta rows times a learning-rate factor) reuses the sparse LU:
    the solve is that of the new matrix; a changed sparse block is refused."""
    rng = np.random.default_rng(2)
    n = 300
    M = _bordered(rng, n, 3, 3) + 0.7j * sparse.identity(n)
    lu = BorderedLU(M, border=np.arange(n - 3, n))
    D = sparse.diags(np.concatenate([np.ones(n - 3), [2.5, 0.3, 7.0]]))
    M2 = sparse.csc_matrix(D @ M)
    lu2 = lu.with_border_rows(M2)
    b = rng.standard_normal((n, 2)) + 1j * rng.standard_normal((n, 2))
    assert np.allclose(M2 @ lu2.solve(b), b, atol=1e-10)
    assert np.allclose(M @ lu.solve(b), b, atol=1e-10)          # the original is untouched
    M3 = M2.copy()
    M3[0, 0] += 1.0                                              # the sparse block changed
    with pytest.raises(ValueError, match="sparse block"):
        lu.with_border_rows(M3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(8, 50), p=st.integers(1, 3), q=st.integers(1, 3))
def test_the_residual_bound_bounds_the_true_error(seed, n, p, q):
    """The verification's bound (module docstring) is never below the true relative output error, computed
    densely, at any frequency, for a deliberately coarse model (two shifts, no refinement)."""
    from crnfb.analysis.linear.plantrom import _ResidualBound

    rng = np.random.default_rng(seed)
    A, pi = _reversible_generator(rng, n, 0.15)
    B = _tangent_inputs(rng, n, p)
    C = rng.standard_normal((q, n))
    plant = symmetric_plant(sparse.csr_matrix(A), B, sparse.csr_matrix(C), pi, [0, n])
    ev = np.sort(np.abs(np.linalg.eigvals(A)))[1:]
    rom = build_rom(plant, _dense_solver(plant.S), [ev[0], ev[-1]], lam_min=ev[0], max_rounds=0)
    Sd = plant.S.toarray()
    null = plant.null
    # the basis the model was built on: rebuild it the way build_rom does (real solves of B and the outputs)
    dual = plant.C.T.toarray() - null @ (null.T @ plant.C.T.toarray())
    rhs = np.hstack([plant.B, dual])
    from crnfb.analysis.linear.plantrom import _extend
    V = np.zeros((n, 0))
    for s in (ev[0], ev[-1]):
        X = np.linalg.solve(s * np.eye(n) - Sd, rhs)
        V = _extend(V, X - null @ (null.T @ X), null)
    bound = _ResidualBound(plant, V, rhs, p, [(slice(None), slice(None))], ev[0], float(np.abs(Sd).sum(0).max()))
    for w in np.logspace(np.log10(ev[0]) - 3, np.log10(ev[-1]) + 3, 25):
        x = np.linalg.solve(1j * w * np.eye(n) - A, B)
        x -= pi[:, None] * x.sum(axis=0)
        ref = C @ x
        true = np.linalg.norm(rom(w) - ref) / np.linalg.norm(ref)
        assert true <= bound(w) * (1 + 1e-6) + 1e-12, (w, true, bound(w))


def test_no_reduced_model_whose_basis_spans_the_plant(monkeypatch, e3):
    """``ROM_BASIS_PERCENT`` and ``MODAL_PLANT_MAX`` on both sides, on E3 with the model's size threshold
    lowered. At 100 % its first shifts' basis (34 vectors a shift) outgrows the plant: the plant's exact
    modal form is used (dense ``eigh``), and its responses equal exact sparse solves to rounding; with
    the modal form capped below the plant's size, exact solves with the reason in the report; at an
    unbounded percentage the reduced model is built and verified."""
    loop = linearise(e3)
    b = F.broken_loop(loop)

    def fresh():
        return F.BrokenLoop(b.loop, b.A, b.B_theta, b.B_a, b.C_mf, b.C_mc, b.D_mc, b.D_a, b.eps, b.neutral,
                            b.full)

    w = np.concatenate([[0.0], np.logspace(-6, 3, 13) * np.e])
    monkeypatch.setattr(sizes, "ROM_PLANT", 10**9)
    exact = fresh().plants(w)
    monkeypatch.setattr(sizes, "ROM_PLANT", 5)
    monkeypatch.setattr(sizes, "ROM_BASIS_PERCENT", 100)
    modal = fresh()
    sym = modal.symmetric
    assert modal.rom is not None and modal.rom.order == sym.S.shape[0] - sym.null.shape[1]
    pm = modal.plant_model
    assert pm["method"] == "reduced model" and pm["verification"].startswith("exact modal form")
    assert pm["relative_error"] <= 1e-12 and pm["band"] == [0.0, None]
    for a, r in zip(modal.plants(w), exact):
        for i in range(w.size):
            # a dense eigendecomposition of a symmetric matrix: backward stable, the responses to
            # rounding times the plant's condition (rates spread over 4 decades on E3)
            assert np.linalg.norm(a[i] - r[i]) <= 1e-8 * np.linalg.norm(r[i]) + 1e-14
    monkeypatch.setattr(sizes, "MODAL_PLANT_MAX", modal.n_p - 1)
    refused = fresh()
    assert refused.rom is None
    pm = refused.plant_model
    assert pm["method"] == "exact" and "would not be smaller than the plant" in pm["reason"]
    assert "no dense modal form above" in pm["reason"]
    monkeypatch.setattr(sizes, "MODAL_PLANT_MAX", modal.n_p)
    assert fresh().rom is not None
    monkeypatch.setattr(sizes, "ROM_BASIS_PERCENT", 10**9)
    built = fresh()
    assert built.rom is not None and built.rom.verified and built.plant_model["verification"] == "residual bound"
