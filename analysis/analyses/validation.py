"""Validation of the linear analysis against the nonlinear ODE of the full loop.

Every check compares a prediction of the linearised loop (:mod:`crnfb.analysis.linear.linearise`,
:mod:`crnfb.analysis.linear.stability`) or of the quasi-static theory (docs/theory.md §3)
with the same quantity measured on the *nonlinear* ensemble-level ODE
(:mod:`crnfb.feedback.dynamics.integrate`), and returns a :class:`Check`
``{quantity, predicted, simulated, rel_error, tolerance, passed}``.

The nonlinear runs integrate the deviation ``y = x - x*`` from the loop's
fixed point ``x*`` with the vector field ``f(x* + y, a) - f(x*, 0)``; the
subtracted residual ``f(x*, 0)`` (below 1e-12) makes ``x*`` an exact fixed
point, so a long run does not drift on the solver's fixed-point error.
Absolute tolerances are scaled to the perturbation's size.

Checks (docs/validation.md gives each tolerance's derivation):

``convergence rate``
    slowest closed-loop eigenvalue vs the decay rate fitted to a small
    perturbation of the ODE along its eigenvector (projected on the left
    eigenvector, log-linear fit after the faster modes have died).
``step response``
    reduced linear system vs nonlinear ODE for a step ``a: 0 -> A``; the
    nonlinear linear-order response is Richardson-extrapolated from the
    steps ``A`` and ``2A`` (``(4 y(A) - y(2A)) / 2`` cancels the second
    order), compared over time relative to the step's final size in theta.
``frequency response``
    at 5 frequencies around the slowest closed-loop rate: gain and phase of
    theta along ``dtheta*/da`` from sinusoidal forcing of the ODE (harmonic
    least-squares fit over whole periods, Richardson over ``A`` and ``2A``)
    vs the reduced linear system's frequency response.
``quasi-static rate``
    the slowest rate of the ODE (equilibrium clamping, ``eps`` scaled down
    until the slowest learning rate is 1e-3 of the slowest plant rate) vs
    ``eps * eig_min(H)``.
``linear range``
    growing step sizes until the plain linear step-response error passes
    10 %: that amplitude (measured) vs its second-order estimate from the
    smallest step.
``parameter noise``
    (LNA vs SSA) from :func:`crnfb.analysis.analyses.noise.validate_noise` when that module
    exists.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Callable

import numpy as np
import scipy.linalg
from scipy import sparse

from crnfb.analysis.analyses.context import Analysis, model_and_loop
from crnfb.analysis.linear.linearise import LinearLoop, linearise
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.linear.frequency import broken_loop, closed_loop_direct
from crnfb.analysis.linear.slowmodes import ShiftedReduced, reduced_solve
from crnfb.analysis.linear.stability import stability
from crnfb.feedback.numerics import sizes
from crnfb.feedback.numerics.sparselu import inverse_operator
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics.parallel import run_all
from crnfb.feedback.model.signals import Constant, Signal, Sine, Step
from crnfb.feedback.dynamics.ensembles import LoopField
from crnfb.feedback.dynamics.integrate import integrate

# -- settings (docs/validation.md justifies each) --------------------------------------------
#: Size of the perturbation along the slowest eigenvector (largest theta entry, kT).
DELTA_RATE = 1e-3
#: Solver tolerances of the decay runs, relative to the others (the perturbation is small).
RATE_TOL_SCALE = 0.1
#: Step size of the environment's mixing weight for the step and frequency checks.
A_STEP = 0.01
A_FREQ = 0.01
#: Solver tolerance of the deviation runs. The error is controlled relative to the
#: fixed-point state (absolute tolerance ``RTOL * |x*|``, at least ``RTOL`` kT on theta
#: and ``ATOL_P`` on probabilities), as for a plain run of the loop: BDF at much tighter
#: tolerances climbs to orders whose stability wedge misses the loop's oscillatory
#: modes and thrashes (E3: 45 steps at 1e-7, 467 at 1e-8, thousands at 1e-9).
RTOL = 1e-7
ATOL_P = 1e-12
#: Slowest learning rate / slowest plant rate for the quasi-static check.
QS_SEPARATION = 1e-3
#: Frequencies, in units of the slowest closed-loop rate.
FREQ_FACTORS = np.logspace(-0.5, 1.0, 5)
#: Plain linear step-response error that bounds the linear range.
LINEAR_RANGE_ERROR = 0.10
#: Smallest probe amplitude (below it the solver's error, not the nonlinearity, dominates).
A_MIN = 1e-4
#: The probe amplitude is chosen so that the estimated third-order residual of the
#: Richardson extrapolation is at most this fraction of the check's tolerance.
AMPLITUDE_SAFETY = 0.25

TOL = {
    "convergence rate": 1e-2,
    "step response": 2e-3,
    "frequency response": 2e-3,
    "quasi-static rate": 2e-2,
    "linear range": 1.0,
}


@dataclass(frozen=True, kw_only=True)
class Check:
    """One comparison of a linear (or quasi-static) prediction with the nonlinear ODE.

    ``rel_error = |simulated - predicted| / |predicted|`` unless the check
    defines it otherwise (step and frequency response: the largest deviation
    relative to the response's size); ``passed = rel_error <= tolerance``.
    """

    quantity: str
    predicted: float
    simulated: float
    rel_error: float
    tolerance: float
    passed: bool | None
    details: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """Plain JSON types; non-finite numbers become None."""
        def clean(v):
            if isinstance(v, dict):
                return {str(k): clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple, np.ndarray)):
                return [clean(x) for x in v]
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            if isinstance(v, (int, np.integer)):
                return int(v)
            if isinstance(v, (float, np.floating)):
                return float(v) if math.isfinite(v) else None
            return v
        out = {"quantity": self.quantity, "predicted": clean(self.predicted),
               "simulated": clean(self.simulated), "rel_error": clean(self.rel_error),
               "tolerance": clean(self.tolerance), "passed": None if self.passed is None else bool(self.passed)}
        if self.details:
            out["details"] = clean(self.details)
        return out


def not_made(quantity: str, reason: str) -> Check:
    """A check that was not made: ``passed`` None, with the reason (docs/validation.md)."""
    nan = float("nan")
    return Check(quantity=quantity, predicted=nan, simulated=nan, rel_error=nan, tolerance=nan, passed=None,
                 details={"reason": reason})


def _check(quantity, predicted, simulated, rel_error, tol_key, **details) -> Check:
    tol = TOL[tol_key]
    ok = bool(np.isfinite(rel_error) and rel_error <= tol)
    return Check(quantity=quantity, predicted=float(predicted), simulated=float(simulated),
                 rel_error=float(rel_error), tolerance=tol, passed=ok, details=details)


# -- the loop at its fixed point, with the pieces every check needs --------------------------------
class _Setup:
    """Fixed point, reduced linear system and slowest mode of one loop."""

    def __init__(self, loop: LinearLoop):
        self.loop = loop
        self.net: LearningNetwork = loop.net
        self.model: Model = loop.net.model
        self.x = loop.fixed_point.x

        self.a_star = loop.fixed_point.a
        self.base = self.net.n_f + self.net.n_c
        self.Jr = loop.Jr.tocsc()
        self.Br = np.asarray(loop.Br, float)
        self.Ct = loop.output("theta")
        atol = RTOL * np.abs(self.x) + ATOL_P
        atol[self.base:] = RTOL * np.maximum(np.abs(self.x[self.base:]), 1.0)
        self.atol = atol
        self.V = loop.V.tocsr()
        self.rest = loop.rest
        self.field = LoopField(self.net)
        self.r0_rest = self.field(self.x, loop.fixed_point.a)[self.rest]

    @cached_property
    def stability(self):
        return stability(self.loop)

    @cached_property
    def eig(self):
        """Eigenvalues (slowest first), right and left eigenvectors of ``Jr``."""
        n = self.loop.n_reduced
        if n <= sizes.STABILITY_DENSE_LIMIT:
            lam, W, Vr = scipy.linalg.eig(self.Jr.toarray(), left=True, right=True)
        else:
            from scipy.sparse.linalg import LinearOperator, eigs
            k = min(12, n - 2)
            # shift-invert next to the slowest eigenvalue (from the stability analysis): the
            # modes wanted are the ones nearest it; which="LR" did not converge on 1321 states.
            # (Jr - sigma I)^{-1} by the bordered LU (ShiftedReduced): SuperLU of the whole
            # reduced Jacobian took 26 s at 10^4 states
            target = complex(self.stability.eigenvalues[0])
            sigma = target.real + 1e-3 * max(abs(target), 1e-12)
            shifted = ShiftedReduced(self.loop, sigma)
            # a fixed start vector: the same eigenvectors (and fits) on every run
            opts = {"k": k, "sigma": sigma, "which": "LM", "tol": 1e-12, "maxiter": max(5000, 20 * n),
                    "v0": np.random.default_rng(0).standard_normal(n)}
            lam, Vr = eigs(self.Jr.tocsc(), OPinv=LinearOperator((n, n), matvec=shifted.solve, dtype=float), **opts)
            lamT, W = eigs(self.Jr.T.tocsc(), OPinv=LinearOperator((n, n), matvec=shifted.solve_T, dtype=float),
                           **opts)
            order = [int(np.argmin(np.abs(lamT - np.conj(l)))) for l in lam]
            W = W[:, order]
        order = np.lexsort((np.abs(lam.imag), -lam.real))
        return lam[order], Vr[:, order], W[:, order]

    @cached_property
    def dc(self) -> np.ndarray:
        """``dtheta*/da`` of the loop (``-C_theta Jr^{-1} Br``)."""
        return -(self.Ct @ reduced_solve(self.loop, self.Br))

    def theta_of(self, Y: np.ndarray) -> np.ndarray:
        """theta deviation (T, k) from full deviations (T, n)."""
        return Y[:, self.base:]

    def nonlinear(self, signal: Signal, y0: np.ndarray, t_eval: np.ndarray, tol_scale: float = 1.0):
        """Deviation ``y = x - x*`` of the nonlinear loop under ``a(t)`` (T, n).

        Integrated on the invariant manifold (reduced coordinates ``y = V y_r``):
        the structural zero modes (normalisation, neutral directions) are then
        conserved exactly instead of drifting with the solver's round-off, which
        the loop's slowest mode would otherwise integrate over long runs.
        """
        V, rest, xs, r0 = self.V, self.rest, self.x, self.r0_rest
        field_, net = self.field, self.net
        # the network's Jacobian is the field's on this manifold (sum dp = 0 at sum p = 1: the
        # normalisation terms of LoopField.jacobian vanish there), so they are not built

        def system(lo, hi):
            if signal.piecewise_constant:
                a = float(signal(0.5 * (lo + hi)))
                return ((lambda t, y: field_(xs + V @ y, a)[rest] - r0),
                        (lambda t, y: (net.jacobian(xs + V @ y, a)[rest] @ V).tocsc()))
            return ((lambda t, y: field_(xs + V @ y, float(signal(t)))[rest] - r0),
                    (lambda t, y: (net.jacobian(xs + V @ y, float(signal(t)))[rest] @ V).tocsc()))

        y0r = np.asarray(y0, float)[rest]
        t, Yr, stats = integrate(system, y0r, t_eval, breakpoints=signal.breakpoints(t_eval[0], t_eval[-1]),
                                 rtol=RTOL * tol_scale, atol=self.atol[rest] * tol_scale,
                                 max_step=signal.max_step(), progress=False)
        return (V @ Yr.T).T, stats

    def linear(self, signal: Signal, y0r: np.ndarray, t_eval: np.ndarray):
        """Reduced linear system ``dy/dt = Jr y + Br a(t)`` (T, n_reduced)."""
        Jr, Br = self.Jr, self.Br

        def system(lo, hi):
            if signal.piecewise_constant:
                a = float(signal(0.5 * (lo + hi)))
                return (lambda t, y: Jr @ y + Br * a), (lambda t, y: Jr)
            return (lambda t, y: Jr @ y + Br * float(signal(t))), (lambda t, y: Jr)

        t, Y, stats = integrate(system, y0r, t_eval, breakpoints=signal.breakpoints(t_eval[0], t_eval[-1]),
                                rtol=RTOL, atol=self.atol[self.loop.rest], max_step=signal.max_step(),
                                progress=False)
        return Y, stats


def _slowest(setup: _Setup):
    """Slowest mode: eigenvalue, right/left eigenvectors, whether it is (nearly) defective."""
    lam, Vr, W = setup.eig
    target = setup.stability.eigenvalues[0]
    i = int(np.argmin(np.abs(lam - target)))
    v, w = Vr[:, i], W[:, i]
    cond = np.linalg.norm(v) * np.linalg.norm(w) / max(abs(np.vdot(w, v)), 1e-300)
    return lam[i], v, w, cond, lam


# -- convergence rate ------------------------------------------------------------------------------------
def _fit_decay(setup: _Setup, label: str, predicted: float, tol_key: str, **extra) -> Check:
    """Perturb along the slowest eigenvector, fit log|projection| after the faster modes died."""
    lam, v, w, cond, spectrum = _slowest(setup)
    defective = cond > 1e6          # Jordan block (e.g. E1's critically damped pair): project on v
    if defective or abs(lam.imag) <= 1e-9 * abs(lam):
        v = v.real / np.linalg.norm(v.real)
    full = setup.loop.V @ v.real
    th = full[setup.base:]
    size = np.max(np.abs(th)) if np.max(np.abs(th)) > 1e-12 * np.max(np.abs(full)) else np.max(np.abs(full))
    y0r = DELTA_RATE * v.real / size
    y0 = setup.loop.V @ y0r
    rate = -lam.real
    if rate > 0:
        # next distinct decay rate: the window starts when those modes are e^-5 below
        others = -spectrum.real
        faster = others[others > 1.2 * rate]
        gap = (faster.min() - rate) if faster.size else rate
        t_a = min(5.0 / gap, 2.0 / rate)
        t_b = t_a + 2.0 / rate
    else:
        # unstable loop: the growth while the deviation stays small (delta -> delta e^2)
        t_a, t_b = 0.0, 2.0 / abs(rate)
    t_eval = np.concatenate([[0.0], np.linspace(t_a, t_b, 201)])
    # the deviation decays to ~DELTA_RATE e^-4 by t_b: tolerances scaled with it
    Y, stats = setup.nonlinear(Constant(setup.a_star), y0, t_eval, RATE_TOL_SCALE)
    Yr = Y[1:, setup.loop.rest]
    if defective:
        z = Yr @ v.real
    else:
        z = (Yr @ np.conj(w)) / np.vdot(w, v)
    ts = t_eval[1:]
    slope, _ = np.polyfit(ts, np.log(np.abs(z)), 1)
    fitted = -slope
    return _check(label, predicted, fitted, abs(fitted - predicted) / abs(predicted), tol_key,
                  eigenvalue=[lam.real, lam.imag], window=[t_a, t_b], perturbation=DELTA_RATE,
                  projection="eigenvector (defective)" if defective else "left eigenvector",
                  steps=stats.steps, **extra)


def check_convergence(setup: _Setup) -> Check:
    """Slowest closed-loop rate vs the decay fitted to the nonlinear ODE."""
    return _fit_decay(setup, "convergence rate", setup.stability.slowest_rate, "convergence rate")


# -- step response and linear range -------------------------------------------------------------------------
def _step_times(setup: _Setup) -> np.ndarray:
    rate = setup.stability.slowest_rate
    T = 8.0 / rate
    fast = np.geomspace(T * 1e-5, T, 150)
    return np.unique(np.concatenate([[0.0], fast, np.linspace(0, T, 250)]))


class _StepRuns:
    """Linear unit-step response and nonlinear steps of several sizes (shared by two checks)."""

    def __init__(self, setup: _Setup):
        self.setup = setup
        self.t = _step_times(setup)
        self.lin: np.ndarray | None = None      # theta response to a unit step (T, k): linear_run()
        self.g = setup.dc
        self.cache: dict[float, np.ndarray] = {}

    def linear_run(self) -> np.ndarray:
        s = self.setup
        Yl, _ = s.linear(Step(0.0, 1.0, 0.0), np.zeros(s.loop.n_reduced), self.t)
        return (s.Ct @ Yl.T).T

    def run(self, A: float) -> np.ndarray:
        """theta deviation (T, k) of the nonlinear step of size ``A`` (not cached: a worker's task)."""
        s = self.setup
        Y, _ = s.nonlinear(Step(s.a_star, s.a_star + A, 0.0), np.zeros(s.net.n_states), self.t)
        return s.theta_of(Y)

    def nonlinear(self, A: float) -> np.ndarray:
        if A not in self.cache:
            self.cache[A] = self.run(A)
        return self.cache[A]

    def plain_error(self, A: float) -> float:
        if self.lin is None:
            raise ValueError("plain_error needs the linear step response (linear_run) first")
        return float(np.max(np.linalg.norm(self.nonlinear(A) - A * self.lin, axis=1)) / (A * np.linalg.norm(self.g)))


def probe_amplitude(runs: _StepRuns, A0: float = A_STEP, tol: float | None = None) -> tuple[float, dict]:
    """Step size for the step and frequency checks, chosen inside the measured linear range.

    The Richardson value ``R(A) = (4 y(A) - y(2A)) / (2A)`` cancels the
    second-order term; what is left is ``-2 r A^2`` (``r`` the third-order
    coefficient of the nonlinear response), so ``R(2A0) - R(A0) = -6 r A0^2``
    measures it from the nonlinear runs alone (the linear prediction does not
    enter). The amplitude is ``A0`` when the estimated residual
    ``|R(2A0) - R(A0)| / 3`` (relative to the step's final size) is below
    ``AMPLITUDE_SAFETY * tol``, else ``A0 sqrt(AMPLITUDE_SAFETY tol / residual)``
    (at least :data:`A_MIN`). A failed check is then a wrong prediction, not a
    probe too large for the loop's linear range.
    """
    tol = TOL["step response"] if tol is None else tol
    gn = float(np.linalg.norm(runs.g))

    def rich(A):
        return (4 * runs.nonlinear(A) - runs.nonlinear(2 * A)) / (2 * A)

    resid = float(np.max(np.linalg.norm(rich(2 * A0) - rich(A0), axis=1)) / gn) / 3.0
    A = A0
    if resid > AMPLITUDE_SAFETY * tol:
        A = max(A_MIN, A0 * math.sqrt(AMPLITUDE_SAFETY * tol / resid))
    return A, {"amplitude_chosen_from": f"third-order residual {resid:.3g} at a = {A0:g} (nonlinear runs at "
                                        f"{A0:g}, {2 * A0:g}, {4 * A0:g}); target {AMPLITUDE_SAFETY:g} x tolerance",
               "residual_estimate": resid * (A / A0) ** 2}


def check_step(runs: _StepRuns, A: float = A_STEP, choice: dict | None = None) -> Check:
    """Linear step response vs the Richardson-extrapolated nonlinear one."""
    rich = (4 * runs.nonlinear(A) - runs.nonlinear(2 * A)) / (2 * A)
    gn = np.linalg.norm(runs.g)
    u = runs.g / gn
    err = float(np.max(np.linalg.norm(rich - runs.lin, axis=1)) / gn)
    pred_peak = float(np.max(np.abs(runs.lin @ u)))
    sim_peak = float(np.max(np.abs(rich @ u)))
    return _check("step response theta/a (peak along dtheta*/da)", pred_peak, sim_peak, err, "step response",
                  amplitude=A, dc_gain=gn, plain_error=runs.plain_error(A), t_end=float(runs.t[-1]),
                  **(choice or {}))


def check_linear_range(runs: _StepRuns, A0: float = A_STEP, target: float = LINEAR_RANGE_ERROR) -> Check:
    """Largest environment step whose plain linear step-response error stays below ``target``."""
    amps, errs = [], []
    A = A0
    while True:
        amps.append(A)
        errs.append(runs.plain_error(A))
        if errs[-1] > target or A >= 1.0:
            break
        A = min(2 * A, 1.0)
    predicted = target * A0 / errs[0] if errs[0] > 0 else math.inf
    if errs[-1] > target and len(amps) > 1:
        a_lo, a_hi, e_lo, e_hi = amps[-2], amps[-1], errs[-2], errs[-1]
        found = a_lo * math.exp(math.log(target / e_lo) * math.log(a_hi / a_lo) / math.log(e_hi / e_lo))
        reached = True
    elif errs[-1] > target:           # already above at the smallest step
        found = amps[0] * target / errs[0]
        reached = True
    else:
        found = 1.0                      # a lower bound: the whole change Q_1 -> Q_2 stays linear
        reached = False
    if reached or predicted < 1.0:
        rel = abs(found - predicted) / predicted
    else:
        rel = 0.0                        # both beyond the full change: consistent
    return _check("linear range: step size a with 10% linear error", predicted, found, rel, "linear range",
                  amplitudes=amps, errors=errs, reached=reached,
                  note=None if reached else "error stays below 10% up to a = 1 (the whole change); "
                                            "simulated is a lower bound")


# -- frequency response -------------------------------------------------------------------------------------
def _linear_theta_response(setup: _Setup, omega: np.ndarray) -> np.ndarray:
    """``C_theta (jw I - Jr)^{-1} Br`` (nw, k); crnfb.analysis.linear.frequency's when available.

    Loops above ``crnfb.feedback.numerics.sizes.STABILITY_DENSE_LIMIT`` reduced states take the closed-loop response
    ``a -> theta`` of the
    loop broken at theta (:meth:`crnfb.analysis.linear.frequency.BrokenLoop.response`, the plant through its
    verified reduced model when large): the same transfer, without factorising ``jw I - Jr``.
    """
    if setup.loop.n_reduced > sizes.STABILITY_DENSE_LIMIT:
        return broken_loop(setup.loop).response(omega).G_atheta
    return np.asarray(closed_loop_direct(setup.loop, omega, "theta"))


def _harmonic(t, y, omega):
    """Complex amplitude ``c`` of ``y ~ m0 + m1 t + Im(c e^{j w t})`` (least squares)."""
    tc = t - t.mean()
    M = np.column_stack([np.ones_like(t), tc, np.sin(omega * t), np.cos(omega * t)])
    coef, *_ = np.linalg.lstsq(M, y, rcond=None)
    # y = s sin + c cos = Im((s + j c) e^{jwt})
    return coef[2] + 1j * coef[3]


def check_frequency(setup: _Setup, omegas: np.ndarray | None = None, A: float = A_FREQ) -> list[Check]:
    """Gain and phase of theta along ``dtheta*/da`` under ``a = a* + A + A sin(w t)``."""
    rate = setup.stability.slowest_rate
    omegas = rate * FREQ_FACTORS if omegas is None else np.asarray(omegas, float)
    g = setup.dc
    u = g / np.linalg.norm(g)
    G = _linear_theta_response(setup, omegas) @ u
    ydc = -reduced_solve(setup.loop, setup.Br)
    plans = []
    for w, Gw in zip(omegas, G):
        period = 2 * np.pi / w
        # the one shifted solve of the reduced loop (bordered LU, refined on its residual)
        yw = -ShiftedReduced(setup.loop, 1j * w).solve(setup.Br.astype(complex))
        start_r = ydc + yw.imag          # the linear periodic orbit at t = 0 (per unit A)
        t_w = period                     # started on the linear orbit: one period of settling
        t_fit = t_w + np.linspace(0.0, 2 * period, 161)
        # small responses (high frequencies) get proportionally tighter tolerances
        tol_scale = float(np.clip(abs(Gw) / np.linalg.norm(g), 0.03, 1.0))
        plans.append((w, Gw, start_r, t_fit, tol_scale))

    def run(w, start_r, t_fit, tol_scale, Ak):
        sig = Sine(setup.a_star + Ak, Ak, w)
        Y, st = setup.nonlinear(sig, setup.loop.V @ (Ak * start_r), np.concatenate([[0.0], t_fit]), tol_scale)
        return _harmonic(t_fit, setup.theta_of(Y[1:]) @ u, w) / Ak, st.steps

    # every frequency and amplitude is an independent ODE run (crnfb.feedback.numerics.parallel); the third
    # amplitude measures each frequency's own third-order residual (resonances amplify it past the step's)
    res = iter(run_all([partial(run, w, s0, tf, ts, Ak) for w, _, s0, tf, ts in plans
                        for Ak in (A, 2 * A, 4 * A)]))
    first = [(next(res), next(res), next(res)) for _ in plans]
    amps = [_frequency_amplitude(h1, h2, h4, A, Gw) for ((h1, _), (h2, _), (h4, _)), (_, Gw, *_) in zip(first, plans)]
    # a frequency whose residual is too large is probed again, inside its own linear range
    redo = [(i, Ai) for i, (Ai, _) in enumerate(amps) if Ai != A]
    again = iter(run_all([partial(run, plans[i][0], plans[i][2], plans[i][3], plans[i][4], Ak) for i, Ai in redo
                          for Ak in (Ai, 2 * Ai)]))
    runs = [list(f[:2]) for f in first]
    for i, _ in redo:
        runs[i] = [next(again), next(again)]
    out = []
    for (w, Gw, *_), ((h1, s1), (h2, s2)), (Ai, choice) in zip(plans, runs, amps):
        rich = 2 * h1 - h2                 # (4 h(A) - h(2A)) / (2A), h are responses per unit A
        rel = abs(rich - Gw) / abs(Gw)
        out.append(_check(f"frequency response theta/a at omega={w:.4g}", abs(Gw), abs(rich), rel,
                          "frequency response", omega=w, phase_predicted_deg=np.degrees(np.angle(Gw)),
                          phase_simulated_deg=np.degrees(np.angle(rich)),
                          plain_rel_error=abs(h1 - Gw) / abs(Gw), amplitude=Ai, steps=[s1, s2], **choice))
    return out


def _frequency_amplitude(h1: complex, h2: complex, h4: complex, A: float, Gw: complex) -> tuple[float, dict]:
    """The amplitude of one frequency's check from its runs at ``A``, ``2A``, ``4A`` (responses per unit ``a``).

    As for the step (:func:`probe_amplitude`): ``R(A) = 2 h(A) - h(2A)`` leaves ``-2 r A^2``, and
    ``R(2A) - R(A) = -6 r A^2`` measures it; ``A`` is kept when that residual, relative to ``|G|``, is
    below ``AMPLITUDE_SAFETY`` times the tolerance, else the amplitude that brings it there (at least
    :data:`A_MIN`).
    """
    resid = abs((2 * h2 - h4) - (2 * h1 - h2)) / 3.0 / abs(Gw)
    tol = TOL["frequency response"]
    Ai = A if resid <= AMPLITUDE_SAFETY * tol else max(A_MIN, A * math.sqrt(AMPLITUDE_SAFETY * tol / resid))
    return Ai, {"amplitude_chosen_from": f"third-order residual {resid:.3g} at a = {A:g} (nonlinear runs at "
                                        f"{A:g}, {2 * A:g}, {4 * A:g}); target {AMPLITUDE_SAFETY:g} x tolerance",
                "residual_estimate": resid * (Ai / A) ** 2}


SLOW_MODES = "slowest modes: sparse search vs the closed loop through the reduced plant"
#: A closed-loop mode of the reduced-plant loop outside the sparse search's disc counts as missed when
#: it decays slower than the reported slowest mode by more than this share of its modulus.
MISSED_TOL = 1e-6


def check_slow_modes(setup: _Setup) -> Check:
    """No closed-loop mode beyond the sparse slow-mode search decays slower than the slowest it found.

    The sparse search returns the eigenvalues nearest zero (within a radius
    ``rho``); a mode with a large imaginary part and a small real part could
    lie beyond ``rho`` (docs/theory.md §5). The closed loop with the plant's
    verified reduced model (``m + k`` states, dense) has every mode that the
    loop broken at theta sees; each of its eigenvalues outside the disc that
    would decay slower than the reported slowest mode is checked by inverse
    iteration on the full Jacobian at that point, and the check fails if the
    exact eigenvalue there decays slower too.
    """
    from crnfb.analysis.linear.frequency import broken_loop
    from crnfb.analysis.analyses.margins import eigenvalue_near

    loop, st = setup.loop, setup.stability
    model = broken_loop(loop).closed_loop_model()
    rho = st.search_radius
    if model is None or rho is None:
        return not_made(SLOW_MODES, "no verified reduced plant model" if model is None
                        else "the eigenvalues were computed densely (every mode)" if loop.spectrum.complete
                        else "the slow modes came from the fallback search on the full Jacobian (no search radius)")
    ev = np.linalg.eigvals(model[0])
    slowest = -st.slowest_rate
    outside = ev[np.abs(ev) > rho * (1 + 1e-9)]
    suspects = outside[outside.real > slowest + MISSED_TOL * np.abs(outside)]
    exact = [eigenvalue_near(loop, s) for s in suspects]
    missed = [z for z in exact if z.real > slowest + MISSED_TOL * abs(z) and abs(z) > rho]
    worst = max(missed, key=lambda z: z.real) if missed else (outside[np.argmax(outside.real)] if outside.size
                                                              else complex(slowest))
    return Check(quantity=SLOW_MODES, predicted=float(st.slowest_rate), simulated=float(-worst.real),
                 rel_error=float("nan"), tolerance=MISSED_TOL, passed=not missed,
                 details={"search_radius": float(rho), "model_modes": int(ev.size),
                          "modes_beyond_radius": int(outside.size), "suspects_checked": int(len(suspects)),
                          "meaning": "predicted: the slowest rate the sparse search found; simulated: the slowest "
                                     "rate of the reduced-plant closed loop's modes beyond the search radius (a "
                                     "missed mode if smaller, after an exact check)"})


def _n_flat_at_optimum(model: Model, opt) -> int:
    from crnfb.analysis.linear.fixedpoints import classify

    return int(classify(model, opt.theta).flat.size)


# -- quasi-static limit -----------------------------------------------------------------------------------------
def check_quasi_static(setup: _Setup) -> Check:
    """Slowest rate of the ODE at small eps (equilibrium clamping) vs ``eps * eig_min(H)``."""
    model = setup.model
    opt = setup.loop.fixed_point.optimum
    qs = np.sort(setup.stability.quasi_static_rates[setup.stability.quasi_static_rates > 0])
    net_eq = LearningNetwork(model, "equilibrium")
    A = net_eq.free_generator(opt.theta)
    if A.shape[0] <= sizes.STABILITY_DENSE_LIMIT:
        ev = np.abs(np.linalg.eigvals(A.toarray()))
    else:
        from scipy.sparse.linalg import eigs
        # shift just right of the generator's zero (sigma = 0 factorises a singular matrix) and a
        # fixed start vector: the same plant rate on every run
        sigma = 1e-6 * float(np.abs(A.diagonal()).max())
        ev = np.abs(eigs(A.tocsc(), k=6, sigma=sigma, which="LM", v0=np.ones(A.shape[0]),
                         OPinv=inverse_operator(A - sigma * sparse.identity(A.shape[0], format="csc")),
                         return_eigenvectors=False))
    ev = np.sort(ev[ev > 1e-10 * max(ev.max(), 1e-300)])
    plant = float(ev[0])
    # flat directions (docs/theory.md §2) are removed from the loop as they are from the
    # closed-loop spectrum: the slowest rate the ODE can show is the first one the loop keeps.
    # The count is the sub-loop's own (modes within FLAT_TOL of zero), not the Hessian's: the
    # T = 40 scaffold has curvatures 2e-8..2e-7 (below KIND_TOL of the largest, 41) that are
    # real, slow loop modes (1.2e-9, 3.8e-9, 1.1e-8 at eps 0.05; dense eig and the ODE agree).
    # eps is scaled down for the fastest candidate (the first rate the Hessian calls non-flat):
    # every slower one is then separated from the plant at least as well
    n_flat_h = _n_flat_at_optimum(model, opt)
    qs_min = float(qs[min(n_flat_h, qs.size - 1)]) if qs.size else float("nan")
    scale = min(1.0, QS_SEPARATION * plant / qs_min)
    small = model.with_learning(eps=model.eps * scale, clamping="equilibrium")
    net = LearningNetwork(small)
    fp = loop_fixed_point(small, net, setup.a_star, optimum=opt)
    sub = _Setup(linearise(small, fixed_point=fp))
    n_flat = int(sub.stability.flat_modes.size)
    predicted = scale * float(qs[min(n_flat, qs.size - 1)]) if qs.size else float("nan")
    return _fit_decay(sub, "quasi-static rate: eps*eig_min(H) vs ODE at small eps", predicted,
                      "quasi-static rate", eps_scale=scale, plant_rate=plant,
                      separation=predicted / plant, linear_rate=sub.stability.slowest_rate)


# -- all checks --------------------------------------------------------------------------------------------------------
def validate(model: Model | LinearLoop | Analysis, loop: LinearLoop | None = None, quick: bool = False,
             seed: int = 0, noise: bool = True, noise_budget: float | None = None) -> list[Check]:
    """Run the validation checks on ``model`` (its loop linearised if not given).

    Parameters
    ----------
    model : Model, LinearLoop or Analysis
        A linearised loop may stand in for the model (``validate(loop)``, as ``margins(loop)``),
        or the model's :class:`~crnfb.analysis.analyses.context.Analysis` (its loop is used).
    loop : LinearLoop or None
    quick : bool
        Only the convergence rate, step response and frequency response (3
        frequencies); skips the quasi-static, linear-range and noise checks.
    seed : int
        Passed to the noise check (SSA) when available.
    noise : bool
        Include the parameter-noise check (LNA vs SSA,
        :func:`crnfb.analysis.analyses.noise.validate_noise`) when that module exists; it
        returns no entry when the SSA cannot sample the slowest mode (E3).
    noise_budget : float or None
        CPU seconds its SSA runs may take (default
        :data:`crnfb.analysis.analyses.noise.NOISE_BUDGET`); when the estimate exceeds
        it the entry says so, with the estimate.

    Returns
    -------
    list[Check]
        Step, frequency and linear-range checks need an ``[environment.change]``
        (a non-zero disturbance) and a stable loop; otherwise they are left
        out. For an unstable loop the rate check fits the growth of the
        unstable mode (while the deviation stays small); for a marginal one
        (slowest rate exactly zero) no check is made.
    """
    model, loop = model_and_loop(model, loop)
    loop = loop or linearise(model)
    setup = _Setup(loop)
    st = setup.stability

    if st.slowest_rate == 0 or not np.isfinite(st.slowest_rate):
        # marginal loop: no rate to fit, no steady state to compare
        return [not_made("convergence rate", "marginal loop (slowest rate 0): no rate to fit")]
    # step, frequency and linear-range checks need an attracting fixed point
    disturbed = (st.stable and bool(np.any(setup.Br != 0)) and bool(np.linalg.norm(setup.dc) > 0))
    qs = st.quasi_static_rates
    quasi = not quick and bool(qs.size and np.all(qs > 0))   # the quasi-static limit is a stable gradient flow
    runs = _StepRuns(setup) if disturbed else None
    done = _first_runs(setup, runs, quick, quasi)
    checks: list[Check] = list(done["rate"])

    def timed(fn, *args):
        checks.extend(_timed(fn, *args))

    if runs is not None:        # disturbed
        runs.lin = done["linear"]
        runs.cache.update({k: v for k, v in done.items() if isinstance(k, float)})
        A, choice = probe_amplitude(runs)
        timed(check_step, runs, A, choice)
        om = setup.stability.slowest_rate * (FREQ_FACTORS[[0, 2, 4]] if quick else FREQ_FACTORS)
        timed(check_frequency, setup, om, A_FREQ * A / A_STEP)
    else:
        why = ("the loop is unstable: no steady response to compare" if not st.stable else
               "no [environment.change] (zero disturbance): nothing to respond to")
        checks += [not_made(q, why) for q in ("step response", "frequency response")]
    if quick:
        checks += [not_made(q, "quick validation (crnfb sweep) skips it")
                   for q in ("quasi-static rate", "linear range", "parameter noise (LNA vs SSA)")]
    else:
        if quasi:
            checks.extend(done["quasi"])
        else:
            checks.append(not_made("quasi-static rate", "a quasi-static rate is not positive (flat or "
                                   "non-minimum landscape)"))
        if runs is not None:
            timed(check_linear_range, runs)
        else:
            checks.append(not_made("linear range", "no step response to measure it on (see step response)"))
        checks += _noise_checks(model, loop, seed, noise, st.stable, noise_budget)
    if loop.n_reduced > sizes.STABILITY_DENSE_LIMIT:          # small loops: dense eigenvalues, every mode
        timed(check_slow_modes, setup)
    return checks


def _first_runs(setup: _Setup, runs: "_StepRuns | None", quick: bool, quasi: bool) -> dict:
    """The independent ODE runs, on every core (crnfb.feedback.numerics.parallel): the rate fit, the linear step,
    the nonlinear steps the amplitude choice and the linear range need, the quasi-static fit."""
    setup.eig      # the slowest modes' eigenvectors, computed once here: the forked workers inherit them
    tasks: dict[str | float, Callable[[], object]] = {"rate": partial(_timed, check_convergence, setup)}
    if runs is not None:
        tasks["linear"] = runs.linear_run
        for Ak in A_STEP * np.array([1, 2, 4] if quick else [1, 2, 4, 8]):
            tasks[float(Ak)] = partial(runs.run, float(Ak))
    if quasi:
        tasks["quasi"] = partial(_timed, check_quasi_static, setup)
    return dict(zip(tasks, run_all(list(tasks.values()))))


def _timed(fn, *args) -> list[Check]:
    """``fn(*args)`` as a list of checks, each with its share of the wall time in ``details.seconds``."""
    t0 = time.perf_counter()
    res = fn(*args)
    dt = time.perf_counter() - t0
    res = res if isinstance(res, list) else [res]
    for c in res:
        c.details.setdefault("seconds", dt / len(res))
    return res


def _noise_checks(model: Model, loop: LinearLoop, seed: int, noise: bool, stable: bool,
                  budget: float | None = None) -> list[Check]:
    """The parameter-noise check (LNA vs SSA), or one entry saying why it was not made."""
    from crnfb.analysis.analyses.noise import NOISE_BUDGET, NoStationaryCovariance, validate_noise

    name = "parameter noise (LNA vs SSA)"
    if not stable:
        return [not_made(name, "the loop is unstable: no stationary noise")]
    if not noise:
        return [not_made(name, "not requested (noise=False)")]
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)   # its "not checked" message is the reason
        try:
            res = validate_noise(model, loop=loop, seed=seed, budget=NOISE_BUDGET if budget is None else float(budget))
        except NoStationaryCovariance as e:      # a stated limitation, not a failed check
            return [not_made(name, str(e))]
    if not res:
        why = [str(w.message) for w in caught if str(w.message).startswith("parameter noise not checked")]
        return [not_made(name, "; ".join(why) or "the SSA run was not made")]
    return [Check(quantity=r["quantity"], predicted=r["predicted"], simulated=r["simulated"],
                  rel_error=r["rel_error"], tolerance=r.get("tolerance", float("nan")), passed=bool(r["passed"]),
                  details={k: v for k, v in r.items()
                           if k not in ("quantity", "predicted", "simulated", "rel_error", "tolerance", "passed")})
            for r in res]


def table(checks: list[Check]) -> str:
    """Plain-text table of checks."""
    rows = [f"{'quantity':<58s} {'predicted':>12s} {'simulated':>12s} {'rel_error':>10s} {'tol':>8s}  ok"]
    for c in checks:
        def g(v, spec):
            return format(v, spec) if isinstance(v, (int, float, np.floating)) else f"{'-':>{int(spec.split('.')[0])}}"
        rows.append(f"{c.quantity[:58]:<58s} {g(c.predicted, '12.5g')} {g(c.simulated, '12.5g')} "
                    f"{g(c.rel_error, '10.2e')} {g(c.tolerance, '8.1e')}  "
                    f"{'-' if c.passed is None else 'yes' if c.passed else 'NO'}")
    return "\n".join(rows)


# -- consistency of the verdict with the numbers it rests on (issue: extreme rates) ------------------
#: Gain margins within this relative band of 1 are marginal: no disagreement is claimed there.
MARGINAL_BAND = 1e-6


def _entry(quantity: str, predicted, simulated, passed, **details) -> dict:
    def num(v):
        return float(v) if isinstance(v, (int, float, np.floating)) and math.isfinite(v) else None
    return {"quantity": quantity, "predicted": num(predicted), "simulated": num(simulated), "rel_error": None,
            "tolerance": None, "passed": passed, "details": details}


def consistency_checks(report: dict) -> list[dict]:
    """Check that verdict, eigenvalues, gain margin, ``eps_crit`` and the fixed point agree.

    ``report`` is the ``report.json`` dictionary. Each entry is a validation
    entry (``passed`` False on a disagreement, None with a reason when the
    check cannot be made); a STABLE verdict with a gain margin below one,
    for example, is a failure, not a silent pass (docs/validation.md).
    """
    stable = bool(report.get("verdict", {}).get("stable"))
    cl, mg = report.get("closed_loop") or {}, report.get("margins") or {}
    out = []
    rate = cl.get("slowest_rate")
    if rate is None:
        out.append(_entry("consistency: verdict vs eigenvalues", None, None, None,
                          reason=cl.get("slowest_rate_reason", "no closed-loop eigenvalue")))
    else:
        out.append(_entry("consistency: verdict vs eigenvalues", rate, float(stable), (rate > 0) == stable,
                          meaning="predicted: slowest decay rate -max Re(lambda); simulated: 1 if STABLE"))
    gm = mg.get("gain_margin")
    if isinstance(gm, (int, float)) and math.isfinite(gm):
        ok = True if abs(gm - 1.0) <= MARGINAL_BAND else (gm > 1.0) == stable
        out.append(_entry("consistency: verdict vs gain margin", gm, float(stable), ok,
                          meaning="STABLE needs gain_margin > 1 (the smallest destabilising common "
                                  "scaling of the learning rates)"))
    elif isinstance(mg.get("stable_at_nominal"), bool):
        # no crossing in the scanned range: the margins' own nominal stability must match the verdict
        out.append(_entry("consistency: verdict vs gain margin", float(mg["stable_at_nominal"]), float(stable),
                          mg["stable_at_nominal"] == stable,
                          meaning="no destabilising factor found (" + str(mg.get("gain_margin_reason")) +
                                  "); predicted: 1 if the margins scan found the loop stable at factor 1"))
    else:
        out.append(_entry("consistency: verdict vs gain margin", None, None, None,
                          reason=mg.get("gain_margin_reason") or "no gain margin"))
    ec = mg.get("eps_crit")
    eps = (report.get("model") or {}).get("eps") or {}
    if isinstance(ec, (int, float)) and math.isfinite(ec) and eps:
        e = max(eps.values())
        ok = True if abs(ec / e - 1.0) <= MARGINAL_BAND else (ec > e) == stable
        out.append(_entry("consistency: verdict vs eps_crit", ec, e, ok,
                          meaning="predicted: eps_crit; simulated: the largest learning rate of the file"))
    elif ec is None and isinstance(mg.get("stable_at_nominal"), bool) and mg["stable_at_nominal"] == stable and stable:
        out.append(_entry("consistency: verdict vs eps_crit", None, None, True,
                          meaning="STABLE and no eps_crit: " + str(mg.get("eps_crit_reason"))))
    else:
        out.append(_entry("consistency: verdict vs eps_crit", None, None, None,
                          reason=mg.get("eps_crit_reason") or "eps_crit is per loop (stability need not be "
                                                               "monotone in one rate) or not available"))
    opt = (report.get("fixed_point") or {}).get("optimum") or {}
    conv = opt.get("converged")
    out.append(_entry("consistency: learned fixed point converged", opt.get("gradient_norm"), None,
                      None if conv is None else bool(conv), note=opt.get("note") or "",
                      # predicted is |grad D|: printed as a residual (summary.fmt_residual)
                      residual=True))
    return out


def with_consistency(validation: list | None, report: dict) -> list | None:
    """``validation`` plus the consistency entries.

    When validation was not run (``None``) only failed consistency entries
    are added (a disagreement is never silent); otherwise all of them.
    """
    entries = consistency_checks(report)
    if validation is None:
        bad = [c for c in entries if c["passed"] is False]
        return bad or None
    return list(validation) + entries


__all__ = ["Check", "check_convergence", "check_frequency", "check_linear_range", "check_quasi_static",
           "check_slow_modes", "check_step", "table", "validate",
           "consistency_checks", "with_consistency"]
