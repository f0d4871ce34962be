"""The symbolic loop (analysis/linear/symbolic.py).

E1 (n_max = 6) and E2 (T = 3): the characteristic polynomial, with the
fixed point's numbers substituted, reproduces the eigenvalues of
crnfb.analysis.linear.stability; the E1 factor s^2 + kappa s + kappa eps lambda is exact
for the mean closure and, on the truncated box, divides the polynomial up
to a remainder carrying lambda^n_max (the boundary's weight); L(s) agrees
with crnfb.analysis.linear.linblocks.loop_transfer_blocks.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import sympy as sp

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.stability import stability
from crnfb.analysis.linear.symbolic import (SymbolicTooLargeError, divide_out, mean_closure, symbolic_loop)
from crnfb.feedback import parse_model
from crnfb.analysis.linear.linblocks import loop_transfer_blocks
from tests.conftest import EXAMPLES

N_MAX = 6


def small_e1():
    data = tomllib.loads((EXAMPLES / "birth_death.toml").read_text())
    data["truncation"] = {"n_max": N_MAX, "tol": 1e-3}
    data["environment"] = {"family": "poisson", "mean": 1.0,
                           "change": {"family": "poisson", "mean": 1.5}}
    return parse_model(data)


def small_e2(clamping):
    data = tomllib.loads((EXAMPLES / "isomerisation.toml").read_text())
    data["initial"] = {"X": 3, "Y": 0}
    data["environment"] = {"family": "binomial", "n": 3, "p": 0.3,
                           "change": {"family": "binomial", "n": 3, "p": 0.5}}
    data["learning"]["clamping"] = clamping
    return parse_model(data)


@pytest.fixture(scope="module")
def e1_small():
    m = small_e1()
    return m, symbolic_loop(m), linearise(m)


def match_error(a, b):
    from scipy.optimize import linear_sum_assignment
    cost = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max())


def test_e1_charpoly_reproduces_numeric_eigenvalues(e1_small):
    m, sl, lp = e1_small
    assert sl.n_reduced == lp.n_reduced == N_MAX + 1
    names = {str(x) for x in sl.charpoly_expr.free_symbols}
    assert names == {"s", "kappa", "epsilon_X", "lambda_X"}
    ev = sl.eigenvalues(sl.values(lp.fixed_point.theta))
    ref = stability(lp).eigenvalues
    assert match_error(ev, ref) < 1e-8 * np.abs(ref).max()
    # the numeric reduced Jacobian has the same spectrum
    assert match_error(np.linalg.eigvals(sl.numeric_jacobian(sl.values(lp.fixed_point.theta))), ref) < 1e-9


def test_eps_mode_names_the_symbol_choice_and_the_old_eps_keyword_still_works():
    """``eps`` names the learning rates everywhere, so the choice of symbols is ``eps_mode``; the keyword it
    replaced still works, with a DeprecationWarning."""
    from crnfb.analysis.linear.symbolic import make_symbols

    m = small_e1()
    assert {str(x) for x in mean_closure(m, eps_mode="scalar").charpoly_expr.free_symbols} >= {"epsilon"}
    with pytest.warns(DeprecationWarning, match="eps_mode"):
        old = mean_closure(m, eps="scalar")
    assert sp.expand(old.charpoly_expr - mean_closure(m, eps_mode="scalar").charpoly_expr) == 0
    with pytest.warns(DeprecationWarning, match="eps_mode"):
        assert [str(e) for e in make_symbols(m, eps="scalar").eps] == ["epsilon"]
    with pytest.raises(TypeError, match="eps_mode only"):
        symbolic_loop(m, eps_mode="scalar", eps="scalar")
    with pytest.raises(ValueError, match="eps_mode must be"):
        make_symbols(m, eps_mode="one")


def test_e1_mean_closure_is_exactly_the_quadratic():
    m = small_e1()
    mc = mean_closure(m)
    s, kappa, eps, lam = mc.sym.s, mc.sym.kappa[0], mc.sym.eps[0], mc.sym.lam[0]
    assert sp.expand(mc.charpoly_expr - (s ** 2 + kappa * s + kappa * eps * lam)) == 0
    assert mc.extra["fixed_point_means"][sp.Symbol("m_0")] == lam
    tex = mc.latex()
    assert r"\kappa" in tex and r"\epsilon_{X}" in tex and r"\lambda_{X}" in tex


def test_e1_truncated_polynomial_has_the_factor_up_to_truncation(e1_small):
    """P(s) = (s^2 + kappa s + kappa eps lambda) Q(s) + R(s) with R = lambda^n_max * (...):

    the remainder is carried by the boundary state's weight lambda^n_max/n_max!
    (the jumps the box drops), so it vanishes with the truncation mass.
    """
    m, sl, lp = e1_small
    s, kappa, eps, lam = sl.sym.s, sl.sym.kappa[0], sl.sym.eps[0], sl.sym.lam[0]
    q, r = divide_out(sl.charpoly, s ** 2 + kappa * s + kappa * eps * lam, s)
    assert r != 0
    num, _ = sp.fraction(sp.factor(r))
    assert sp.Poly(num, lam).monoms()[-1][0] >= N_MAX           # lowest power of lambda in R
    # numerically: R is small relative to P where the truncation mass is small
    vals = {kappa: 1.0, eps: 0.05, lam: 0.5}
    for s0 in (0.3, -0.7 + 0.2j):
        P0 = complex(sl.charpoly_expr.subs(vals).subs(s, s0))
        R0 = complex(r.subs(vals).subs(s, s0))
        assert abs(R0) < 1e-3 * abs(P0)


@pytest.mark.parametrize("clamping", ["dynamic", "equilibrium"])
def test_e2_charpoly_reproduces_numeric_eigenvalues(clamping):
    m = small_e2(clamping)
    lp = linearise(m)
    sl = symbolic_loop(m)
    assert sl.n_reduced == lp.n_reduced
    ev = sl.eigenvalues(sl.values(lp.fixed_point.theta))
    ref = stability(lp).eigenvalues
    # dynamic: the three clamped copies relax at -gamma (a triple root, split ~1e-5 by np.roots)
    assert match_error(ev, ref) < 1e-4
    s, kX, kY = sl.sym.s, *sl.sym.eps
    lX, lY = sl.sym.lam
    kappa = sl.sym.kappa[0]
    # the coupled factor: s^2 + kappa (lX + lY) s + 3 kappa (epsX + epsY) lX lY / (lX + lY)
    quad = s ** 2 + kappa * (lX + lY) * s + 3 * kappa * (kX + kY) * lX * lY / (lX + lY)
    _, r = divide_out(sl.charpoly, quad, s)
    assert sp.simplify(r) == 0
    mc = mean_closure(m)
    assert sp.simplify(mc.charpoly_expr - quad) == 0
    if clamping == "dynamic":
        _, r = divide_out(sl.charpoly, (s + sl.sym.gamma) ** 3, s)
        assert sp.simplify(r) == 0


def test_loop_transfer_matches_python_control(e1_small):
    m, sl, lp = e1_small
    L = sl.loop_transfer
    assert L.shape == (1, 1)
    Lnum = loop_transfer_blocks(lp, reduce_neutral=False)
    vals = sl.values(lp.fixed_point.theta)
    for s0 in (0.3 + 0.7j, 2.0j, 0.05):
        got = complex(L[0, 0].subs(vals).subs(sl.sym.s, s0))
        want = complex(np.squeeze(Lnum(s0)))
        assert abs(got - want) < 1e-9 * abs(want)
    assert sl.latex().count("L(s) =") == 1


def test_too_large_is_a_clear_error(e3):
    with pytest.raises(SymbolicTooLargeError, match="limited to"):
        symbolic_loop(e3)
    with pytest.raises(ValueError, match="first-order"):
        mean_closure(e3)
