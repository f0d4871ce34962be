"""The loop as python-control systems (feedback/dynamics/loop.py).

Checks: the nonlinear interconnection reproduces LearningNetwork.rhs; the
analytic Jacobian agrees with control.linearize and with central finite
differences on E3; the analytic StateSpace blocks, wired by
control.interconnect, give exactly the reduced Jacobian of
crnfb.analysis.linear.linearise and its eigenvalues; blocks can be taken out and
analysed alone; the loop transfer closes back to the same loop.
"""

from __future__ import annotations

import doctest

import control
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import crnfb.analysis.linear.linblocks as linblocks_mod
import crnfb.feedback.dynamics.loop as loop_mod
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.stability import closed_loop_eigenvalues
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.analysis.linear.linblocks import LoopTooLargeError, linear_blocks, linear_loop, loop_transfer_blocks
from crnfb.feedback.dynamics.loop import nonlinear_blocks, nonlinear_loop, signal_names
from crnfb.feedback.numerics import sizes

_LIN: dict = {}


def lin(model, key):
    if key not in _LIN:
        _LIN[key] = linearise(model)
    return _LIN[key]


def match_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance between two eigenvalue sets after optimal matching."""
    assert a.size == b.size
    cost = np.abs(a[:, None] - b[None, :])
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].max())


@pytest.fixture(scope="module")
def loops(e1, e2, chain, dimer):
    return {"E1": lin(e1, "E1"), "E2": lin(e2, "E2"), "chain": lin(chain, "chain"), "dimer": lin(dimer, "dimer")}


# -- nonlinear loop --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["e1", "e2", "dimer"])
def test_nonlinear_loop_is_the_learning_network(name, request):
    model = request.getfixturevalue(name)
    net = LearningNetwork(model)
    sys = nonlinear_loop(model)
    names = signal_names(model)
    assert sys.input_labels == ["a"]
    assert sys.output_labels == names["theta"] + names["m_f"] + names["m_c"] + names["e"]
    assert sys.nstates == net.n_states
    rng = np.random.default_rng(1)
    theta = model.theta0 + 0.3 * rng.standard_normal(net.k)
    x = net.initial_state(theta)
    x[:net.n_f] = rng.dirichlet(np.ones(net.n_f))          # off the fixed point
    for a in (0.0, 0.4):
        np.testing.assert_allclose(sys.dynamics(0.0, x, [a]), net.rhs(x, a), rtol=1e-12, atol=1e-14)
        y = sys.output(0.0, x, [a])
        m_f, m_c = net.means(x, a)
        k = net.k
        np.testing.assert_allclose(y[:k], x[-k:])
        np.testing.assert_allclose(y[k:2 * k], m_f, rtol=1e-12)
        np.testing.assert_allclose(y[2 * k:3 * k], m_c, rtol=1e-12)
        np.testing.assert_allclose(y[3 * k:], m_c - m_f, rtol=1e-10, atol=1e-13)


def test_nonlinear_blocks_have_named_signals(e2):
    b = nonlinear_blocks(e2)
    assert b.K.input_labels == ["e_X", "e_Y"] and b.K.output_labels == ["theta_X", "theta_Y"]
    assert b.K.state_labels == ["theta_X", "theta_Y"]
    assert b.P_f.input_labels == ["theta_X", "theta_Y"] and b.P_f.output_labels == ["m_f_X", "m_f_Y"]
    assert b.P_c.input_labels == ["theta_X", "theta_Y", "a"] and b.P_c.output_labels == ["m_c_X", "m_c_Y"]
    assert b.sum.output_labels == ["e_X", "e_Y"]
    assert b.P_f.nstates == e2.space.size and b.P_c.nstates == LearningNetwork(e2).n_c


def test_analytic_jacobian_vs_linearize_and_central_differences_E3(e3):
    """LearningNetwork.jacobian vs control.linearize of the interconnected loop and vs central FD, E3.

    control.linearize is a *forward* difference with a fixed absolute step
    h = 1e-6 (not scaled to the state). The vector field is linear in the
    probabilities, so their columns are exact up to rounding whatever the
    size of p; in theta it is a sum of exponentials exp(expo . theta) with
    exponents 0/1 on E3, so the forward-difference error there is h/2 of the
    entry (5e-7 relative). We therefore compare entries of meaningful size
    (|J_ij| >= 1e-3 max|J|) relatively at 1e-6, and everything else
    absolutely at 1e-8 max|J|. Central differences use a step scaled to
    each coordinate and meet the same bounds with a wide margin.
    """
    lp = lin(e3, "E3")
    net, x = lp.net, lp.fixed_point.x
    J = lp.J.toarray()
    scale = np.abs(J).max()
    big = np.abs(J) >= 1e-3 * scale

    sys = nonlinear_loop(e3)
    A = control.linearize(sys, x, [0.0]).A            # default eps=1e-6 (fixed absolute step)
    assert A.shape == J.shape
    assert np.max(np.abs(A - J)[big] / np.abs(J)[big]) < 1e-6
    assert np.max(np.abs(A - J)) < 1e-8 * scale
    np.testing.assert_allclose(control.linearize(sys, x, [0.0]).B[:, 0], lp.B, atol=1e-8 * scale)

    n = x.size
    Jc = np.empty_like(J)
    for j in range(n):
        h = 1e-5 * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        Jc[:, j] = (net.rhs(xp) - net.rhs(xm)) / (2 * h)
    assert np.max(np.abs(Jc - J)[big] / np.abs(J)[big]) < 1e-6
    assert np.max(np.abs(Jc - J)) < 1e-8 * scale


# -- linear blocks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["E1", "E2", "chain", "dimer"])
def test_linear_loop_is_the_reduced_jacobian(loops, key):
    lp = loops[key]
    T = linear_loop(lp)
    k = lp.net.k
    assert T.nstates == lp.n_reduced
    np.testing.assert_allclose(T.A, lp.Jr.toarray(), rtol=0, atol=1e-12 * abs(lp.Jr).max())
    np.testing.assert_allclose(T.B[:, 0], lp.Br, atol=1e-14)
    for i, name in enumerate(["theta", "m_f", "m_c", "e"]):
        np.testing.assert_allclose(T.C[i * k:(i + 1) * k], lp.output(name).toarray(), atol=1e-12)
        np.testing.assert_allclose(T.D[i * k:(i + 1) * k, 0], lp.feedthrough(name), atol=1e-14)


@pytest.mark.parametrize("key", ["E1", "E2", "chain", "dimer"])
def test_block_interconnection_eigenvalues_equal_reduced_jacobian(loops, key):
    """(f) eigenvalues of interconnect(blocks) and of feedback(L) equal those of Jr."""
    lp = loops[key]
    ref = closed_loop_eigenvalues(lp)
    scale = np.abs(ref).max()
    T = linear_loop(lp)
    # E1 at eps = 0.05 has a double root (-0.5): any two computations split it differently, by up to
    # ~sqrt(machine eps) of the scale (7e-8 against 1.4e-7 after a fixed point 5e-14 closer)
    tol = 1e-6 if key == "E1" else 1e-9
    assert match_error(np.linalg.eigvals(T.A), ref) < tol * scale
    assert match_error(control.poles(T), ref) < tol * scale
    L = loop_transfer_blocks(lp)
    cl = control.feedback(L, np.eye(lp.net.k))
    assert match_error(np.linalg.eigvals(cl.A), ref) < 1e-6 * scale


@pytest.mark.parametrize("key", ["E2", "dimer"])
def test_plain_integrator_adds_one_zero_per_neutral_direction(loops, key):
    lp = loops[key]
    T = linear_loop(lp, reduce_neutral=False)
    ev = np.linalg.eigvals(T.A)
    n_neutral = lp.removed["neutral"]
    assert n_neutral == 1
    assert T.nstates == lp.n_reduced + n_neutral
    zeros = np.abs(ev) < 1e-10 * np.abs(ev).max()
    assert zeros.sum() == n_neutral
    assert match_error(ev[~zeros], closed_loop_eigenvalues(lp)) < 1e-9 * np.abs(ev).max()


def test_take_out_the_plants_E1(loops):
    """P_f alone: DC gain Var_pi(x) = mu; under equilibrium clamping P_c = 0 for E1; P_f - P_c = H."""
    lp = loops["E1"]
    b = linear_blocks(lp)
    assert b.P_f.input_labels == ["theta_X"] and b.P_f.output_labels == ["m_f_X"]
    assert b.P_f.nstates == lp.net.n_f - 1
    H = lp.net.model.hessian(lp.fixed_point.theta)
    np.testing.assert_allclose(control.dcgain(b.P_f), H[0, 0], rtol=1e-8)
    np.testing.assert_allclose(H[0, 0], 5.0, rtol=1e-6)
    # no hidden species: m_c = E_Q[x], independent of theta; d m_c/d a = 8 - 5 (the change's mean)
    np.testing.assert_allclose(b.P_c.D, [[0.0, 3.0]], atol=1e-9)
    # free plant poles: the master-equation modes -j kappa, j >= 1
    p = np.sort(control.poles(b.P_f).real)[::-1]
    np.testing.assert_allclose(p[:5], -np.arange(1, 6), rtol=1e-8)


def test_dynamic_clamped_plant_dc_gain_is_stationary_sensitivity(loops):
    """Dynamic P_c (dimer): DC gain theta -> m_c equals d m_c^stat / d theta (finite differences)."""
    lp = loops["dimer"]
    net = lp.net
    b = linear_blocks(lp)
    G = control.dcgain(b.P_c)[:, :net.k]
    th = lp.fixed_point.theta
    L = net.model.learned
    fd = np.empty((net.k, net.k))
    for j in range(net.k):
        h = 1e-5
        tp, tm = th.copy(), th.copy()
        tp[j] += h
        tm[j] -= h
        fd[:, j] = (net.clamped_mean(tp)[L] - net.clamped_mean(tm)[L]) / (2 * h)
    np.testing.assert_allclose(G, fd, rtol=1e-6, atol=1e-8)


def test_loop_transfer_low_frequency_is_eps_H_over_s(e2):
    """Equilibrium clamping: s L(s) -> E H as s -> 0 (exactly: DC gain of P_f - P_c is H)."""
    model = e2.with_learning(clamping="equilibrium")
    lp = linearise(model)
    L = loop_transfer_blocks(lp, reduce_neutral=False)
    assert L.input_labels == ["theta_in_X", "theta_in_Y"] and L.output_labels == ["theta_ret_X", "theta_ret_Y"]
    s0 = 1e-7j
    sL = s0 * L(s0)
    EH = model.eps[:, None] * model.hessian(lp.fixed_point.theta)
    np.testing.assert_allclose(sL.real, EH, rtol=1e-5, atol=1e-9)


def test_dense_models_refuse_large_loops(loops, monkeypatch):
    monkeypatch.setattr(sizes, "MAX_DENSE_STATES", 10)
    with pytest.raises(LoopTooLargeError, match="MAX_DENSE_STATES = 10"):
        linear_blocks(loops["E1"])
    with pytest.raises(LoopTooLargeError):
        loop_transfer_blocks(loops["E1"])


@pytest.mark.parametrize("mod", [loop_mod, linblocks_mod])
def test_docstring_examples(mod):
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 3 and res.failed == 0


def test_linear_loop_object_hands_out_its_state_space(loops):
    """``LinearLoop.state_space()`` (like ``control.linearize``) is the reduced Jacobian itself."""
    lp = loops["E2"]
    T = lp.state_space()
    np.testing.assert_allclose(T.A, lp.Jr.toarray(), atol=1e-12)
    np.testing.assert_allclose(np.ravel(T.B), lp.Br, atol=1e-12)
    assert lp.blocks().P_f.ninputs == lp.net.k
    L = lp.loop_transfer()
    assert L.input_labels == [f"theta_in_{s}" for s in lp.net.model.learned_names]
