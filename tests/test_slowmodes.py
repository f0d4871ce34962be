"""The sparse slowest-mode path (crnfb.analysis.linear.slowmodes / stability) against dense ``eig``.

Independent reference: ``numpy.linalg.eigvals`` of the reduced Jacobian
``Jr`` (all of its spectrum). The sparse path is forced by lowering
``STABILITY_DENSE_LIMIT``; it must return the slowest eigenvalues to ~1e-8 relative
(dense ``eig`` itself is accurate to about ``eps_mach |J| / |s|``, 2e-9 for
E3's slowest rate 7e-6), with the ``-gamma`` copies of the clamped ensemble
at their full multiplicity, and give the same stability verdict and slowest
rate. Examples: E3 (hidden scaffold: rates 7e-6 .. 0.1, complex pairs), the
chain, and the two-visible family of ``examples/research_scale.py`` at
``T = 4, K = 2`` (``T = 8, K = 4``, 1106 reduced states with near-degenerate
modes 1.52e-3 +- 2.7e-4 j / 1.535e-3, is the slow test).
"""

from __future__ import annotations

import importlib.util
import tomllib

import numpy as np
import pytest

import crnfb.analysis.linear.stability as stab
from crnfb.analysis.linear.linearise import linearise
from crnfb.feedback import load_model, parse_model
from crnfb.feedback.numerics import sizes
from tests.conftest import EXAMPLES

_CACHE: dict = {}


def _two_visible(T: int, K: int):
    spec = importlib.util.spec_from_file_location("research_scale", EXAMPLES / "research_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return parse_model(tomllib.loads(mod.two_visible(T, K, f"tv-{T}-{K}")))


def _loop_and_dense(name: str):
    if name not in _CACHE:
        model = _two_visible(4, 2) if name == "two_visible_4_2" else (
            _two_visible(8, 4) if name == "two_visible_8_4" else load_model(EXAMPLES / f"{name}.toml"))
        lp = linearise(model)
        ev = np.linalg.eigvals(lp.Jr.toarray())
        _CACHE[name] = (lp, ev[np.lexsort((np.abs(ev.imag), -ev.real))])
    return _CACHE[name]


def _check_against_dense(name: str, monkeypatch, count: int = 10):
    lp, dense = _loop_and_dense(name)
    monkeypatch.setattr(sizes, "STABILITY_DENSE_LIMIT", 10)
    sp = stab.loop_spectrum(lp, count)
    assert sp.method == "shift-invert reduced" and sp.search_radius is not None
    found = sp.eigenvalues
    # every value returned is an eigenvalue of Jr (relative to its size)
    rel = np.array([np.min(np.abs(dense - z)) / abs(z) for z in found])
    assert rel.max() < 1e-8, (found, rel)
    # the dense `count` slowest (closed under conjugation) are all found
    slow = dense[:count]
    slow = np.concatenate([slow, np.conj(slow)])
    miss = np.array([np.min(np.abs(found - d)) / abs(d) for d in slow])
    assert miss.max() < 1e-8, (slow, miss)
    # multiplicity of -gamma exact (it is in Jr once per hidden component beyond the first)
    if lp.net.dynamic:
        g = lp.net.gamma
        assert np.sum(np.abs(found + g) < 1e-9 * g) == np.sum(np.abs(dense + g) < 1e-7 * g)
    return lp, dense


@pytest.mark.parametrize("name", ["hidden_scaffold", "chain", "two_visible_4_2"])
def test_sparse_slowest_modes_equal_dense(name, monkeypatch):
    _check_against_dense(name, monkeypatch)


@pytest.mark.slow
def test_sparse_slowest_modes_near_degenerate_two_visible(monkeypatch):
    lp, dense = _check_against_dense("two_visible_8_4", monkeypatch, count=12)
    # the near-degenerate cluster is really there (so the test tests it)
    assert np.sum(np.abs(dense[:8].real + 1.53e-3) < 2e-5) >= 3


@pytest.mark.parametrize("name", ["hidden_scaffold", "two_visible_4_2"])
def test_stability_verdict_and_slowest_rate_unchanged(name, monkeypatch):
    lp, dense = _loop_and_dense(name)
    ref = stab.stability(lp)
    monkeypatch.setattr(sizes, "STABILITY_DENSE_LIMIT", 10)
    new = stab.stability(lp, count=10)
    assert new.stable == ref.stable
    assert abs(new.slowest_rate - ref.slowest_rate) <= 1e-8 * ref.slowest_rate


def test_reduced_inverse_inverts_the_reduced_jacobian():
    """``Jr (Jr^{-1} x) = x`` for random x (block elimination vs the assembled sparse Jr)."""
    lp, _ = _loop_and_dense("hidden_scaffold")
    ri = lp.reduced_inverse
    x = np.random.default_rng(1).standard_normal(lp.n_reduced)
    y = ri.op.matvec(x)
    assert np.linalg.norm(lp.Jr @ y - x) <= 1e-9 * np.linalg.norm(x)
    # the Krylov start avoids the -gamma modes: zero total on every hidden component
    v = (lp.V @ ri.start(5))[lp.net.n_f:lp.net.n_f + lp.net.n_c]
    v_seedless = v - (lp.V @ ri.seed[:, :5].real.sum(axis=1))[lp.net.n_f:lp.net.n_f + lp.net.n_c] / \
        np.linalg.norm(ri.seed[:, :5].real.sum(axis=1))
    sums = np.bincount(ri.components, weights=v_seedless)
    assert np.abs(sums).max() <= 1e-12 * np.linalg.norm(v_seedless)


def test_nested_dissection_factorisation_agrees(monkeypatch):
    """The METIS-ordered LU used from ND_ABOVE unknowns (no row pivoting) gives the same modes as dense eig."""
    monkeypatch.setattr(sizes, "ND_ABOVE", 10)
    _check_against_dense("two_visible_4_2", monkeypatch)


@pytest.mark.parametrize("s", [-2e-5, -0.3, 0.05j, 3e-6j, -1e-9])
def test_shifted_reduced_solves_match_dense(e3, s):
    """``(Jr - s I)^{-1}`` and its transpose by the bordered LU of ``Jr - s I`` equal dense solves with
    ``Jr`` (shifts near the slow modes, on the axis, and 1e-9 from zero: solving through the full
    Jacobian, whose structural zeros sit there, diverged at such a shift)."""
    from crnfb.analysis.linear.slowmodes import ShiftedReduced

    loop = linearise(e3)
    Jr = loop.Jr.toarray()
    n = Jr.shape[0]
    M = Jr - s * np.eye(n)
    b = np.random.default_rng(0).standard_normal((n, 2))
    sh = ShiftedReduced(loop, s)
    ref, refT = np.linalg.solve(M, b), np.linalg.solve(M.T, b)
    assert np.linalg.norm(sh.solve(b) - ref) <= 1e-9 * np.linalg.norm(ref)
    assert np.linalg.norm(sh.solve_T(b) - refT) <= 1e-9 * np.linalg.norm(refT)


def test_reduced_solve_by_block_elimination_matches_splu(e3, monkeypatch):
    """``Jr^{-1} b`` by block elimination (large loops) equals the dense solve (E3, limit lowered)."""
    from crnfb.analysis.linear.slowmodes import reduced_solve

    loop = linearise(e3)
    b = np.asarray(loop.Br, float)
    ref = np.linalg.solve(loop.Jr.toarray(), b)
    monkeypatch.setattr(sizes, "STABILITY_DENSE_LIMIT", 5)
    got = reduced_solve(loop, b)
    assert np.linalg.norm(got - ref) <= 1e-9 * np.linalg.norm(ref)
    assert np.linalg.norm(reduced_solve(loop, np.column_stack([b, 2 * b]))[:, 1] - 2 * ref) <= \
        1e-9 * np.linalg.norm(ref)
    # no usable block elimination (e.g. a singular quasi-static Schur complement): the bordered LU of Jr
    from crnfb.analysis.linear.linearise import LinearLoop

    def unusable(loop):
        raise RuntimeError("singular generator")
    monkeypatch.setattr(LinearLoop, "reduced_inverse", property(unusable))
    assert np.linalg.norm(reduced_solve(loop, b) - ref) <= 1e-9 * np.linalg.norm(ref)
