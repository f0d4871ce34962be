"""Does learning from the file's energies succeed? The loop's global behaviour (docs/theory.md §4a).

The stability report is local: it linearises the loop at its fixed point.
This module answers the global question with the nonlinear ensemble-level ODE
(:mod:`crnfb.feedback.dynamics.integrate`):

:func:`settle`
    Integrate the learning loop from the start of the learning episode until
    it has *settled*: ``theta - theta_fp`` in the Hessian's metric (:func:`settle_metric`) has entered
    the band ``tol`` times its initial size and stayed inside for
    :data:`HOLD` slowest time constants of the closed loop (a crossing of the
    fixed point is not an end), or until the time limit ``t_max``.
:func:`classify`
    Name what happened when it did not settle, from the trajectory:
    divergence, relaxation oscillation, overshoot into parameter-species
    depletion, escape to a far attractor, or still moving at the time limit.
:func:`safe_factor`
    The largest common factor of the learning-rate vector ``eps`` for which
    learning from the file's energies converges, by trisection on nonlinear
    runs (two runs per round, one per core: :func:`crnfb.feedback.numerics.parallel.run_all`).
:func:`global_report`
    The ``global`` section of ``report.json`` (docs/cli.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
from scipy.signal import find_peaks

from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.model.landscape import curved_directions
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics.parallel import run_all
from crnfb.feedback.model.signals import Constant
from crnfb.feedback.dynamics.integrate import SimulationError, WorkLimitError, integrate, loop_system, state_atol

__all__ = ["SETTLE_TOL", "HOLD", "T_MAX_RATES", "Settling", "SafeFactor", "settle", "classify", "time_limit",
           "late_amplitude", "AMPLITUDE_MEANING", "run_at_factor", "safe_factor", "trisect", "past", "stopped",
           "global_report", "NOT_IMPLEMENTED", "MECHANISMS"]

#: The band: identifiable distance to the fixed point below this fraction of its initial size.
SETTLE_TOL = 1e-3
#: The trajectory must stay inside the band this many slowest closed-loop time constants.
HOLD = 3.0
#: Time limit in slowest time constants: 50 ln(1/SETTLE_TOL) (50 times what a linear decay needs).
T_MAX_RATES = 50.0 * math.log(1.0 / SETTLE_TOL)
#: A learned theta this far (kT) below its fixed-point value: lambda under 1/100 of its fixed-point value.
DEPLETION = math.log(100.0)
#: Peaks of the oscillation: prominence at least this fraction of the initial distance.
PEAK_PROMINENCE = 0.1
#: Non-decaying: the last peak's excursion at least this fraction of the first one's.
NON_DECAYING = 0.8
#: theta beyond this (kT) overflows exp(theta): the loop blows up.
BLOW_UP = 700.0
#: Relative width of the safe factor's final bracket, and the search's limits.
SAFE_RTOL = 0.02
SAFE_EXPAND = 64.0

NOT_IMPLEMENTED = "not computed (not implemented)"

#: What the ``amplitude`` of an episode and of a safe-factor run means (report.json, docs/cli.md).
AMPLITUDE_MEANING = ("late-time amplitude of theta - theta_fp in kT (theta = -G/kT): half of max - min over the "
                     "run's late part, for the learned theta that moves most there; the late part is the hold "
                     "(from settled_at to the end) of a converged run, the second half of the run otherwise; "
                     "read from every solver step; null for a factor decided by the linearisation (no run)")

#: Mechanism keys and their names in the verdict.
MECHANISMS = {
    "converged": "converged",
    "divergence": "divergence",
    "relaxation_oscillation": "relaxation oscillation",
    "depletion": "overshoot into parameter-species depletion",
    "far_attractor": "escape to a far attractor",
    "not_settled": "not settled within the time limit",
}


@dataclass(frozen=True, eq=False, kw_only=True)
class Settling:
    """One nonlinear learning run from the episode start, and whether it settled.

    Attributes
    ----------
    t, X : output times and loop states ``(n_states, len(t))`` (the grid the costs are integrated on)
    converged : bool            entered the band and stayed for ``hold``
    t_settled : float or None   when it entered the band for good (the episode's end)
    hold, t_max : float         the hold time (``HOLD / rate``) and the time limit
    tolerance : float           the band, relative to the initial distance ``distance0``
    rate : float                the slowest closed-loop rate the times are measured in
    steps_t, steps_theta :      every solver step (time, learned theta): the record the mechanism
                                is read from (the output grid can be coarser than a fast spike)
    mechanism, detail : str     :data:`MECHANISMS` key and what the trajectory showed
    failure : str or None       the integrator's message when it failed
    amplitude : float or None   :func:`late_amplitude` (kT; :data:`AMPLITUDE_MEANING`)
    """

    t: np.ndarray
    X: np.ndarray
    converged: bool
    t_settled: float | None
    hold: float
    t_max: float
    tolerance: float
    distance0: float
    rate: float
    steps_t: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    steps_theta: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    mechanism: str = "converged"
    detail: str = ""
    failure: str | None = None
    amplitude: float | None = None

    def to_dict(self) -> dict:
        """The ``global.episode`` entries of report.json (docs/cli.md)."""
        return {"converged": bool(self.converged), "mechanism": self.mechanism,
                "mechanism_name": MECHANISMS[self.mechanism], "detail": self.detail,
                "settled_at": None if self.t_settled is None else float(self.t_settled),
                "t_end": float(self.t[-1]) if self.t.size else 0.0,
                "tolerance": float(self.tolerance), "hold_time_constants": HOLD, "hold": float(self.hold),
                "time_limit": float(self.t_max), "time_limit_time_constants": T_MAX_RATES,
                "slowest_rate": float(self.rate),
                "amplitude": None if self.amplitude is None else float(self.amplitude),
                "criterion": (f"theta - theta_fp in the Hessian metric (flat directions excluded) below "
                              f"{self.tolerance:g} of its initial size and staying there for {HOLD:g} slowest closed-loop time constants "
                              f"(1/slowest_rate), within {T_MAX_RATES:.4g} time constants")}


# -- one run: integrate until settled ------------------------------------------------------------------
def time_limit(rate: float, eps: np.ndarray) -> float:
    """``T_MAX_RATES / rate``; for a loop without a positive rate, measured in ``1e-3 min(eps)``."""
    rate = rate if np.isfinite(rate) and rate > 0 else float(np.min(eps)) * 1e-3
    return T_MAX_RATES / rate


def piece_simulate(net: LearningNetwork, rtol: float, atol: float, a: float = 0.0) -> Callable:
    """A piece runner on :func:`crnfb.feedback.dynamics.integrate.integrate` (ReuseBDF, analytic sparse Jacobian),
    the environment held at mixing weight ``a``."""
    system = loop_system(net, Constant(float(a)))
    tol = state_atol(net, atol, atol)

    def piece(x, t_eval, stop):
        t, Y, stats = integrate(system, x, t_eval, rtol=rtol, atol=tol, stop=stop, progress=False, desc="episode")
        return np.asarray(t, float), np.asarray(Y, float), stats.t_stop is not None

    return piece


def _grid(base: np.ndarray, lo: float, hi: float, extra: int = 0) -> np.ndarray:
    """Output times of one piece: ``base`` inside ``(lo, hi)``, the ends, ``extra`` evenly spaced."""
    inner = base[(base > lo) & (base < hi)]
    parts = [np.array([lo]), inner, np.array([hi])] + ([np.linspace(lo, hi, extra)] if extra else [])
    return np.unique(np.concatenate(parts))


class _Recorder:
    """Distance to the fixed point as a stop function, recording every (t, theta) the solver visits."""

    def __init__(self, U: np.ndarray, theta_fp: np.ndarray, base: int):
        self.U, self.th, self.base = U, theta_fp, base
        self.t: list[float] = []
        self.theta: list[np.ndarray] = []

    def distance(self, t: float, x: np.ndarray) -> float:
        th = x[self.base:]
        self.t.append(float(t))
        self.theta.append(np.array(th, float))
        return float(np.linalg.norm(self.U.T @ (th - self.th)))

    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(self.t, float)
        order = np.argsort(t, kind="stable")
        th = np.asarray(self.theta, float).reshape(len(self.t), -1)
        t, keep = np.unique(t[order], return_index=True)
        return t, th[order][keep]


def settle_metric(model: Model, theta_fp: np.ndarray, a: float = 0.0) -> np.ndarray:
    """``W`` with ``|W^T dtheta|^2 = dtheta^T H dtheta`` on the curved directions of ``D`` at ``theta_fp``
    (the environment at mixing weight ``a``).

    The distance to the fixed point is measured in the Hessian's metric (twice
    the quadratic excess of ``D``): flat directions (a line of fixed points,
    eigenvalues within ``sqrt(eps_mach)`` of the largest) do not count, as the
    loop may settle anywhere along them, and sloppy ones count by their
    curvature, so an episode does not wait 1e11 time units for a direction
    that changes ``D`` by 1e-10 (docs/theory.md §4a).
    """
    w, Q = curved_directions(np.asarray(model.hessian(np.asarray(theta_fp, float), float(a)), float))
    return Q * np.sqrt(w)


def settle(model: Model, net: LearningNetwork, x0: np.ndarray, theta_fp: np.ndarray, rate: float, *,
           piece: Callable | None = None, tol: float = SETTLE_TOL, t_max: float | None = None,
           rtol: float = 1e-8, atol: float = 1e-12, points: int = 3000, a: float = 0.0) -> Settling:
    """Integrate from ``x0`` until the loop has settled at ``theta_fp`` or ``t_max`` has passed.

    Alternates two kinds of piece: *approach* (until the identifiable
    distance falls into the band ``tol * d0``) and *hold* (``HOLD / rate``
    long, stopped if the distance leaves the band). The run has settled when
    a hold completes; ``t_settled`` is when that hold began. Output times:
    ``[0] + geomspace(1e-6 t_max, t_max, points)`` (dense early, where the
    free ensemble's fast transient lives) plus 41 evenly spaced ones per hold.
    ``piece(x, t_eval, stop) -> (t, Y, stopped)`` integrates one piece
    (default :func:`piece_simulate`). ``a``: the environment's mixing weight
    during the run (``theta_fp`` is the loop's fixed point there).
    """
    base_i = net.n_f + net.n_c
    U = settle_metric(model, theta_fp, a)
    rec = _Recorder(U, np.asarray(theta_fp, float), base_i)
    d0 = rec.distance(0.0, x0)
    t_max = time_limit(rate, model.eps) if t_max is None else float(t_max)
    hold = HOLD / rate if np.isfinite(rate) and rate > 0 else t_max
    piece = piece or piece_simulate(net, rtol, atol, a)
    band = tol * d0
    grid = np.concatenate([[0.0], np.geomspace(1e-6 * t_max, t_max, points)])
    ts, Xs = [np.zeros(1)], [np.asarray(x0, float)[None, :]]
    t, x, t_settled, failure = 0.0, np.asarray(x0, float), None, None
    if d0 == 0.0:
        t_settled = 0.0
    while t_settled is None and t < t_max:
        try:
            tt, YY, entered = piece(x, _grid(grid, t, t_max), lambda s, y: rec.distance(s, y) - band)
            ts.append(tt[1:])
            Xs.append(YY[1:])
            if not entered:
                break
            t_in = float(tt[-1])
            tt, YY, left = piece(YY[-1], _grid(grid, t_in, t_in + hold, 41), lambda s, y: band - rec.distance(s, y))
            ts.append(tt[1:])
            Xs.append(YY[1:])
        except (SimulationError, WorkLimitError, FloatingPointError) as e:
            if len(ts) == 1:    # no step at all: a limitation of the solver, not a verdict on learning
                raise SimulationError(f"the learning episode could not start: {e}") from e
            failure = f"{type(e).__name__}: {e}"
            break
        if not left:
            t_settled = t_in
        t, x = float(tt[-1]), YY[-1]
    tt, XX = np.concatenate(ts), np.vstack(Xs).T
    st, sth = rec.steps()
    mech, detail = classify(model, st, sth, theta_fp, d0, t_settled, failure, hold, tol, a)
    return Settling(t=tt, X=XX, converged=t_settled is not None, t_settled=t_settled, hold=hold, t_max=t_max,
                    tolerance=tol, distance0=d0, rate=float(rate), steps_t=st, steps_theta=sth, mechanism=mech,
                    detail=detail, failure=failure, amplitude=late_amplitude(st, sth, theta_fp, t_settled))


def late_amplitude(t: np.ndarray, theta: np.ndarray, theta_fp: np.ndarray,
                   t_settled: float | None) -> float | None:
    """Late-time amplitude of ``theta - theta_fp`` (kT): half of max - min over the run's late part.

    Parameters
    ----------
    t, theta : the solver's steps (times, learned theta ``(len(t), n_learned)``), as :class:`Settling` keeps them
    theta_fp : the fixed point the run is measured against
    t_settled : when a converged run entered the band for good; None for a run that did not converge

    Returns
    -------
    float or None
        The largest, over the learned thetas, of half their range over the
        late part: from ``t_settled`` to the end for a converged run (its
        hold), the second half ``t >= t_end / 2`` otherwise (a relaxation
        oscillation's late spikes fall in it when the run saw two; theta at
        ``t_end / 2`` interpolated linearly between the steps). None
        without steps or when a theta is not finite there (a divergence).
        docs/theory.md §4a; :data:`AMPLITUDE_MEANING`.
    """
    t = np.asarray(t, float)
    if t.size == 0:
        return None
    th = np.asarray(theta, float).reshape(t.size, -1)
    start = float(t_settled) if t_settled is not None else 0.5 * float(t[-1])
    late = th[t >= start]
    if t_settled is None:       # the trajectory at t_end / 2 itself (a slow run may step over it)
        late = np.vstack([[np.interp(start, t, th[:, j]) for j in range(th.shape[1])], late])
    late = late - np.asarray(theta_fp, float)
    if late.size == 0 or not np.all(np.isfinite(late)):
        return None
    return float(0.5 * np.max(np.ptp(late, axis=0)))


# -- what happened --------------------------------------------------------------------------------------------
def classify(model: Model, t: np.ndarray, theta: np.ndarray, theta_fp: np.ndarray, d0: float,
             t_settled: float | None, failure: str | None, hold: float, tol: float = SETTLE_TOL,
             a: float = 0.0) -> tuple[str, str]:
    """The mechanism (a :data:`MECHANISMS` key) and a sentence on what the trajectory shows.

    In this order: converged; divergence (the solver failed, a theta not
    finite or beyond :data:`BLOW_UP`); relaxation oscillation (at least two
    maxima, or two minima, of the learned theta that moves most, with
    prominence above :data:`PEAK_PROMINENCE` of the initial distance, the
    last excursion from the fixed point at least :data:`NON_DECAYING` of the
    first); parameter-species depletion (at the end a learned theta more
    than :data:`DEPLETION` below its fixed-point value); escape to a far
    attractor (outside the band, but theta changed by less than the band
    over the last hold time); otherwise still moving at the time limit.
    """
    names = model.learned_names
    if t_settled is not None:
        return "converged", (f"settled at t = {t_settled:.4g}: within {tol:g} of the initial distance to the "
                             f"fixed point, and stayed there for {HOLD:g} time constants")
    if failure is not None or not np.all(np.isfinite(theta)) or np.max(np.abs(theta)) > BLOW_UP:
        why = failure or f"|theta| reached {np.max(np.abs(theta[np.isfinite(theta)])):.3g}"
        return "divergence", f"the loop blows up: {why} (t = {t[-1]:.4g})"
    dev = theta - np.asarray(theta_fp, float)
    osc = _oscillation(t, dev, names, d0)
    if osc:
        return "relaxation_oscillation", osc
    j = int(np.argmin(dev[-1]))
    if dev[-1, j] < -DEPLETION:
        return "depletion", (f"theta_{names[j]} overshot and fell to {theta[-1, j]:.4g} ({-dev[-1, j]:.3g} kT below "
                             f"its fixed-point value: lambda_{names[j]} = exp(theta) is {math.exp(dev[-1, j]):.2g} "
                             f"of its fixed-point value), still there at t = {t[-1]:.4g}")
    late = t >= t[-1] - hold
    moved = float(np.max(np.linalg.norm(theta[late] - theta[-1], axis=1))) if late.any() else np.inf
    dist = float(np.linalg.norm(settle_metric(model, theta_fp, a).T @ dev[-1]))
    if moved < tol * d0 and dist > tol * d0:
        at = ", ".join(f"theta_{n} = {v:.4g}" for n, v in zip(names, theta[-1]))
        return "far_attractor", f"the loop settles elsewhere: at {at}, {dist:.3g} from the fixed point"
    return "not_settled", (f"at t = {t[-1]:.4g} the identifiable distance to the fixed point is {dist:.3g} "
                           f"({dist / d0:.2g} of the initial one) and theta still moves")


def _oscillation(t: np.ndarray, dev: np.ndarray, names, d0: float) -> str:
    """The relaxation-oscillation sentence, or '' (see :func:`classify`)."""
    j = int(np.argmax(np.ptp(dev, axis=0)))
    s = dev[:, j]
    for sign, word in ((1.0, "maxima"), (-1.0, "minima")):
        pk, _ = find_peaks(sign * s, prominence=PEAK_PROMINENCE * d0)
        pk = pk[sign * s[pk] > 0]
        if pk.size >= 2 and sign * s[pk[-1]] >= NON_DECAYING * sign * s[pk[0]]:
            shown = ", ".join(f"{s[i]:+.3g} at t = {t[i]:.4g}" for i in pk[:4])
            return (f"theta_{names[j]} - theta_fp has {pk.size} {word} of non-decaying size ({shown}"
                    f"{', ...' if pk.size > 4 else ''})")
    return ""


# -- the safe factor -----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SafeFactor:
    """The largest common factor of ``eps`` for which learning from the file's energies converges.

    ``bracket = (lo, hi)``: learning converges at ``lo`` (the reported
    ``factor``) and does not at ``hi``; ``hi / lo - 1 <= tolerance``.
    ``runs``: every factor tried, ``(factor, converged, mechanism, how, amplitude)``
    (``amplitude``: the run's :func:`late_amplitude` in kT, None for a factor
    decided by the linearisation). ``factor`` is None (with ``reason``) when
    no bracket was found.
    """

    factor: float | None
    bracket: tuple[float, float] | None
    tolerance: float
    runs: tuple[tuple[float, bool, str, str, float | None], ...]
    reason: str | None = None


def run_at_factor(model: Model, theta_fp: np.ndarray, factor: float, fixed_point=None,
                  rtol: float = 1e-8, atol: float = 1e-12) -> tuple[float, bool, str, str, float | None]:
    """Learning from the file's energies with ``eps`` scaled by ``factor``:
    ``(factor, converged, mechanism, how, amplitude)``.

    ``amplitude``: the run's late-time amplitude of ``theta - theta_fp``
    (:func:`late_amplitude`, kT). Locally unstable at that factor: not
    converged without a run (``how = "linear: ..."``, amplitude None).
    """
    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.stability import stability

    scaled = model.with_learning(eps=model.eps * factor)
    st = stability(linearise(scaled, fixed_point=fixed_point))
    if not st.stable:
        return float(factor), False, "divergence", "linear: the fixed point is unstable at this factor", None
    net = LearningNetwork(scaled)
    run = settle(scaled, net, net.initial_state(), theta_fp, st.slowest_rate, rtol=rtol, atol=atol, points=400)
    return float(factor), bool(run.converged), run.mechanism, "ODE", run.amplitude


def safe_factor(model: Model, fixed_point, converged_at_1: bool, gain_margin: float | None,
                rtol: float = SAFE_RTOL, deadline: float | None = None,
                episode: Settling | None = None) -> SafeFactor:
    """Trisection for the safe factor between a converging and a failing factor (docs/theory.md §4a).

    The bracket starts at ``[1, gain_margin]`` when learning converges at the
    file's ``eps`` (beyond the gain margin the fixed point is unstable), else
    at ``[1/2^k, 1]``; each round runs two factors at once (one per core) and
    keeps the third of the bracket where the outcome changes. Assumes one
    change of outcome inside the bracket (learning that converges again at a
    larger factor is not searched for). ``deadline`` (a ``time.monotonic()``
    value): no new round starts after it; the result is then the bracket
    reached, with the reason (:func:`past`). ``episode``: the report's own
    run at factor 1, whose mechanism and amplitude its entry in ``runs`` carries.
    """
    th = np.asarray(fixed_point.theta, float)
    run = partial(run_at_factor, model, th, fixed_point=fixed_point)
    runs: list[tuple] = [(1.0, bool(converged_at_1), episode.mechanism if episode is not None else "",
                          "the report's episode", episode.amplitude if episode is not None else None)]
    lo, hi = _initial_bracket(run, runs, converged_at_1, gain_margin, deadline)
    if lo is None or hi is None:
        last = runs[-1][0]
        why = ("stopped by the time budget (--global-budget) before a bracket was found (last factor tried "
               f"{last:g})" if past(deadline) else
               f"learning converges up to factor {SAFE_EXPAND:g} (the search's limit)" if hi is None else
               f"learning does not converge down to factor 1/{SAFE_EXPAND:g} (the search's limit)")
        return SafeFactor(factor=None, bracket=None, tolerance=rtol, runs=tuple(runs), reason=why)
    lo, hi, done = trisect(run, lo, hi, rtol, runs, deadline)
    return SafeFactor(factor=lo, bracket=(lo, hi), tolerance=rtol, runs=tuple(runs),
                      reason=None if done else stopped(lo, hi, rtol, "converges", "does not"))


def trisect(run: Callable, lo: float, hi: float, rtol: float, runs: list,
            deadline: float | None = None) -> tuple[float, float, bool]:
    """Narrow ``(lo, hi)`` (``run`` succeeds at ``lo``, fails at ``hi``) to ``hi / lo - 1 <= rtol``.

    Each round runs the two inner thirds at once (one per core,
    :func:`crnfb.feedback.numerics.parallel.run_all`) and keeps the third where the
    outcome changes; ``run(x)`` returns ``(x, succeeded, ...)``, appended to
    ``runs``. Returns ``(lo, hi, reached)``: ``reached`` False when the
    ``deadline`` stopped it first. Shared by the safe factor and the region
    of attraction.
    """
    while hi / lo - 1.0 > rtol:
        if past(deadline):
            return lo, hi, False
        p = [lo + (hi - lo) / 3.0, lo + 2.0 * (hi - lo) / 3.0]
        res = run_all([partial(run, x) for x in p])
        runs += res
        ok = [r[1] for r in res]
        lo, hi = (lo, p[0]) if not ok[0] else (p[0], p[1]) if not ok[1] else (p[1], hi)
    return lo, hi, True


def past(deadline: float | None) -> bool:
    """Whether the search's time budget (a ``time.monotonic()`` deadline) is spent."""
    return deadline is not None and time.monotonic() > deadline


def stopped(lo: float, hi: float, rtol: float, yes: str, no: str) -> str:
    """The reason of a bracket left wider than ``rtol`` by the time budget."""
    return (f"stopped by the time budget (--global-budget): learning {yes} at {lo:.6g} and {no} at {hi:.6g}, "
            f"a bracket wider than the {rtol:g} aimed at; the value is its converging end")


def _initial_bracket(run, runs: list, converged_at_1: bool, gain_margin: float | None,
                     deadline: float | None = None):
    """``(lo, hi)`` with ``lo`` converging and ``hi`` not; ``None`` for the end not found (also when
    the ``deadline`` passed first)."""
    if converged_at_1:
        if gain_margin is not None and np.isfinite(gain_margin) and gain_margin > 1.0:
            runs.append((float(gain_margin), False, "", "linear: the gain margin (unstable beyond)", None))
            return 1.0, float(gain_margin)
        lo, f = 1.0, 2.0
        while f <= SAFE_EXPAND and not past(deadline):
            r = run(f)
            runs.append(r)
            if not r[1]:
                return lo, f
            lo, f = f, 2.0 * f
        return lo, None
    hi, f = 1.0, 0.5
    while f >= 1.0 / SAFE_EXPAND and not past(deadline):
        r = run(f)
        runs.append(r)
        if r[1]:
            return f, hi
        hi, f = f, 0.5 * f
    return None, hi


# -- the report section ----------------------------------------------------------------------------------
def global_report(episode: Settling | None, safe: SafeFactor | None, safe_reason: str | None,
                  eps: dict, eps_crit, gain_margin, episode_reason: str | None = None,
                  region: dict | None = None, bifurcation: dict | None = None) -> dict:
    """The ``global`` section of report.json (docs/cli.md): the episode's outcome, the safe factor beside
    ``eps_crit`` and the gain margin, the region of attraction along ``a`` (``region``: the keys of
    :func:`crnfb.analysis.analyses.region.region_report`), the bifurcation at ``eps_crit`` (``bifurcation``: the
    ``bifurcation`` or ``bifurcation_reason`` key), and what was not computed with the reason."""
    out: dict = {}
    if episode is None:
        out["episode"] = None
        out["episode_reason"] = episode_reason or "the learning episode was not computed"
    else:
        out["episode"] = episode.to_dict()
    out.update(_safe_dict(safe, safe_reason, eps))
    out["eps_crit"] = eps_crit
    out["gain_margin"] = gain_margin
    if region is None:
        out["region_of_attraction"] = None
        out["region_of_attraction_reason"] = NOT_IMPLEMENTED
    else:
        out.update(region)
    out["amplitude_meaning"] = AMPLITUDE_MEANING
    bif = bifurcation or {"bifurcation_reason": "not computed (no linearised loop given)"}
    out["bifurcation"] = bif.get("bifurcation")
    if out["bifurcation"] is None:
        out["bifurcation_reason"] = bif["bifurcation_reason"]
    return out


def _safe_dict(safe: SafeFactor | None, reason: str | None, eps: dict) -> dict:
    keys = ("safe_factor", "safe_eps", "safe_factor_bracket")
    if safe is None or safe.factor is None or safe.bracket is None:
        why = reason if safe is None else safe.reason
        out: dict[str, object] = {k: None for k in keys}
        out.update({f"{k}_reason": why for k in keys})
        if safe is not None:
            out["safe_factor_runs"] = _runs(safe)
        return out
    return {"safe_factor": float(safe.factor), "safe_eps": {k: float(v) * safe.factor for k, v in eps.items()},
            "safe_factor_bracket": [float(safe.bracket[0]), float(safe.bracket[1])],
            "safe_factor_tolerance": float(safe.tolerance),
            "safe_factor_meaning": ("the largest common factor of the file's eps for which learning from the "
                                    "file's energies converges (converges at the bracket's lower end, not at its "
                                    "upper end; found by trisection on ODE runs)"),
            "safe_factor_runs": _runs(safe),
            **({"safe_factor_note": safe.reason} if safe.reason else {})}


def _runs(safe: SafeFactor) -> list[dict]:
    return [{"factor": float(f), "converged": bool(c), "mechanism": m or None, "how": h,
             "amplitude": None if amp is None else float(amp)}
            for f, c, m, h, amp in safe.runs]
