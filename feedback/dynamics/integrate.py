"""Deterministic simulation of the full learning loop (infinite ensembles, docs/theory.md §4).

The state ``x = (p_f, p_c, theta)`` of :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork`
follows its closed-loop vector field under an environment signal ``a(t)``
(:mod:`crnfb.feedback.model.signals`). The system is stiff (fast master-equation modes,
slow learning), so it is integrated by an implicit solver with the network's
analytic sparse Jacobian: by default :class:`~crnfb.feedback.dynamics.bdf.ReuseBDF`
(SciPy's BDF keeping its Newton matrix across steps, factorised as the
ensembles' sparse block plus a dense theta border), or SciPy's own ``BDF``,
``Radau``, ``LSODA``. The run is split at the signal's
breakpoints (steps, telegraph switches): each piece starts a fresh solver,
so no step straddles a jump of ``a``.

:func:`integrate` is the generic driver (also used by :mod:`crnfb.analysis.analyses.validation`
on the deviation from a fixed point); :func:`simulate` runs the learning
network from the start of a learning episode and returns a :class:`Trajectory`.

Example::

    from crnfb.feedback import load_model
    from crnfb.feedback.model.signals import Step
    from crnfb.feedback.dynamics.integrate import simulate
    traj = simulate(load_model("examples/birth_death.toml"), t_end=200.0, signal=Step(0, 1, 100))
    traj.to_csv("run.csv")
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import sparse
from scipy.integrate import BDF, LSODA, Radau
from scipy.optimize import brentq

from .bdf import ReuseBDF
from .ensembles import LearningNetwork
from ..io.files import atomic_file
from ..errors import ModelError
from ..model.model import Model
from ..numerics.progress import progress_bar
from ..model.signals import Constant, Signal

#: Integrators: ``ReuseBDF`` (default: SciPy's BDF reusing its Newton matrix across steps, with a
#: bordered sparse LU, :mod:`crnfb.feedback.dynamics.bdf`) and SciPy's own ``BDF``, ``Radau``, ``LSODA``.
METHODS = {"ReuseBDF": ReuseBDF, "BDF": BDF, "Radau": Radau, "LSODA": LSODA}
DEFAULT_METHOD = "ReuseBDF"

#: Default tolerances of :func:`simulate`: relative, and absolute for
#: probabilities (per state) and learned parameters (kT).
RTOL = 1e-7
ATOL_P = 1e-10
ATOL_THETA = 1e-9


class SimulationError(RuntimeError):
    """The integrator failed (step size underflow, singular Newton matrix)."""


class WorkLimitError(ModelError):
    """The run would take unreasonably long (bad input: a shorter time span is needed)."""


#: Most integration steps one ODE run may take (~5 ms each on the examples: minutes of compute).
MAX_STEPS = 20_000


def ode_work_estimate(t_end: float, breakpoints=(), max_step: float = math.inf) -> float:
    """Steps an ODE run needs at least: restarts at breakpoints plus ``t_end / max_step``.

    Constant pieces cost a few hundred steps per piece (the step size grows
    geometrically once the loop settles; measured: birth_death 199 steps to
    t = 1e3, 837 to 1e7).
    """
    pieces = 1 + len(tuple(breakpoints))
    steady = float(t_end) / max_step if math.isfinite(max_step) and max_step > 0 else 0.0
    return 200.0 * pieces + steady


@dataclass(frozen=True)
class IntegrationStats:
    """Cost of one integration (summed over the pieces between breakpoints)."""

    nfev: int
    njev: int
    nlu: int
    steps: int
    pieces: int
    wall_time: float
    t_stop: float | None = None

    def to_dict(self) -> dict:
        return {"nfev": self.nfev, "njev": self.njev, "nlu": self.nlu, "steps": self.steps,
                "pieces": self.pieces, "wall_time": self.wall_time, "t_stop": self.t_stop}


def integrate(system: Callable[[float, float], tuple[Callable, Callable | None]], y0: np.ndarray,
              t_eval: np.ndarray, *, breakpoints=(), method: str = DEFAULT_METHOD, rtol: float = RTOL,
              atol=1e-10, max_step: float = math.inf, stop: Callable | None = None,
              progress: bool | None = None, desc: str = "ode",
              max_steps: int = MAX_STEPS) -> tuple[np.ndarray, np.ndarray, IntegrationStats]:
    """Integrate piecewise between breakpoints with a SciPy stiff solver.

    Parameters
    ----------
    system : callable ``(lo, hi) -> (fun, jac)``
        The vector field ``fun(t, y)`` and Jacobian ``jac(t, y)`` (sparse or
        dense; ``None`` for finite differences) valid on the piece ``[lo, hi]``.
    y0 : ndarray
        State at ``t_eval[0]``.
    t_eval : ndarray
        Increasing output times; the run spans ``[t_eval[0], t_eval[-1]]``.
    breakpoints : iterable of float
        Times where the vector field jumps; the solver restarts there.
    method : ``"ReuseBDF"`` (default) | ``"BDF"`` | ``"Radau"`` | ``"LSODA"``
    rtol, atol : tolerances (``atol`` scalar or per component)
    max_step : float
    stop : callable ``(t, y) -> float`` or None
        Terminal event: the run stops where it first falls from > 0 to <= 0
        (located by Brent's method on the dense output).
    progress : bool or None
        tqdm bar over simulated time (None: only on a terminal and outside CI).

    Returns
    -------
    t, Y, stats
        Output times reached (``t_eval`` cut at the stop time), states
        ``Y`` (len(t), n) and an :class:`IntegrationStats`.
    """
    t_eval = _check_integrator_args(method, t_eval)
    t0, t1 = float(t_eval[0]), float(t_eval[-1])
    y = np.asarray(y0, float).copy()
    out = np.empty((t_eval.size, y.size))
    out[0] = y
    cuts = sorted({t0, t1, *[float(b) for b in breakpoints if t0 < b < t1]})
    nfev = njev = nlu = 0
    wall = time.perf_counter()
    run = _OdeRun(t_eval, out, stop, stop(t0, y) if stop is not None else None)
    Solver = METHODS[method]
    bar = None
    if t1 > t0:
        bar = progress_bar(t1 - t0, desc, progress, unit="t", mininterval=0.5,
                           bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")
    try:
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            fun, jac = system(lo, hi)
            kw = dict(rtol=rtol, atol=atol, max_step=max_step)
            if method != "LSODA" and jac is not None:
                kw["jac"] = jac
            solver = Solver(fun, lo, y, hi, **kw)
            _advance_piece(run, solver, method, max_steps, t0, t1, bar)
            nfev += solver.nfev
            njev += solver.njev
            nlu += solver.nlu
            y = solver.y
            if not np.all(np.isfinite(y)):
                raise SimulationError(f"{method} produced non-finite values at t = {solver.t:.6g}")
            if run.t_stop is not None:
                break
    finally:
        if bar is not None:
            bar.close()
    stats = IntegrationStats(nfev, njev, nlu, run.steps, len(cuts) - 1, time.perf_counter() - wall, run.t_stop)
    if run.t_stop is not None and run.stop_dense is not None:     # set together by _advance_piece
        t_out, Y = _cut_at_stop(t_eval, out, run.t_stop, run.stop_dense)
        return t_out, Y, stats
    return t_eval, out, stats


def _check_integrator_args(method: str, t_eval) -> np.ndarray:
    """Validate the solver name and the output times of :func:`integrate`."""
    if method not in METHODS:
        raise ModelError(f"unknown integrator {method!r}; use one of {sorted(METHODS)}")
    t_eval = np.asarray(t_eval, float)
    if t_eval.ndim != 1 or t_eval.size < 1 or np.any(np.diff(t_eval) < 0):
        raise ModelError("output times must be an increasing 1-D array")
    return t_eval


@dataclass
class _OdeRun:
    """Mutable state of one :func:`integrate` run, carried across the pieces between breakpoints."""

    t_eval: np.ndarray
    out: np.ndarray
    stop: Callable | None
    g_old: float | None
    k: int = 1
    steps: int = 0
    t_stop: float | None = None
    stop_dense: Callable | None = None


def _advance_piece(run: _OdeRun, solver, method: str, max_steps: int, t0: float, t1: float, bar) -> None:
    """Step ``solver`` to the end of its piece or to the stop event, filling ``run.out`` on the way."""
    t_eval, stop = run.t_eval, run.stop
    while solver.status == "running":
        t_old = solver.t
        # a rejected trial step may overflow exp(theta); the solver discards it
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                msg = solver.step()
            except RuntimeError as e:
                if "singular" not in str(e):     # SuperLU's zero pivot in I - c J; anything else is not ours to name
                    raise
                raise SimulationError(f"{method} failed at t = {t_old:.6g}: the Newton matrix I - c J is singular "
                                      f"in double precision ({e}); the loop's rates span more than floating "
                                      "point resolves") from e
        if solver.status == "failed":
            raise SimulationError(f"{method} failed at t = {t_old:.6g}: {msg}")
        run.steps += 1
        if run.steps > max_steps:
            pace = run.steps / max(solver.t - t0, 1e-300)
            raise WorkLimitError(
                f"the integration took {run.steps} steps to reach t = {solver.t:.4g} of {t1:.4g} "
                f"(at this pace about {pace * (t1 - t0):.2g} steps in all, limit {max_steps}); "
                "the loop settles long before: choose a shorter --t-end", key="--t-end")
        t_new = solver.t
        dense = None
        if stop is not None:
            g_new = stop(t_new, solver.y)
            if run.g_old is not None and run.g_old > 0 >= g_new:
                dense = solver.dense_output()
                run.t_stop = brentq(lambda s: stop(s, dense(s)), t_old, t_new, xtol=1e-12 * max(1.0, abs(t_new)))
                run.stop_dense = dense
                t_new = run.t_stop
            run.g_old = g_new
        j = int(np.searchsorted(t_eval, t_new, side="right"))
        if j > run.k:
            if dense is None:
                dense = solver.dense_output()
            run.out[run.k:j] = dense(t_eval[run.k:j]).T
            run.k = j
        if bar is not None:
            bar.update(t_new - t_old)
        if run.t_stop is not None:
            break


def _cut_at_stop(t_eval: np.ndarray, out: np.ndarray, t_stop: float,
                 dense: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Output times and states cut at the stop time, with the state at ``t_stop`` appended."""
    keep = int(np.searchsorted(t_eval, t_stop, side="right"))
    t_out = np.append(t_eval[:keep], t_stop) if t_eval[keep - 1] < t_stop else t_eval[:keep]
    Y = out[:keep]
    if t_out.size > keep:
        Y = np.vstack([Y, dense(t_stop)[None, :]])
    return t_out, Y


class LoopField:
    """Fast evaluation of :meth:`LearningNetwork.rhs` for the integrators.

    Same vector field, but the generators are applied edge by edge
    (``np.bincount`` of the probability fluxes) instead of being assembled
    as sparse matrices on every call, and the fixed species' factors of the
    propensities are folded into the constants once. The tests check it
    against ``LearningNetwork.rhs``.

    The controller uses *normalised* ensemble means ``S^T p / sum(p)``:
    identical on the physical states (``sum p = 1``), but then the neutral
    invariants ``N^T E^{-1} theta`` are conserved exactly even when the
    solver lets ``sum p_f`` wander at round-off level (a zero mode of the
    master equation). With plain means that wander is integrated by the
    neutral direction: on E3 over 2e6 time units ``N^T E^{-1} theta`` drifted
    by 5e-4 and the solver needed twice the steps. :meth:`jacobian` is the
    matching Jacobian.
    """

    def __init__(self, net: LearningNetwork):
        self.net = net
        model = net.model
        L = model.learned
        th_fixed = model.full_theta(np.zeros(net.k))      # the fixed species' theta, zeros at learned
        e = net.edges
        self.src, self.dst = e.src, e.dst
        self.coef = e.coef * np.exp(e.expo @ th_fixed)
        self.expo = np.ascontiguousarray(e.expo[:, L])
        self.n_f, self.n_c, self.k = net.n_f, net.n_c, net.k
        self.SfL = np.ascontiguousarray(net.S_f[:, L])
        self.eps = net.eps
        if net.dynamic:
            h = net.hidden_edges
            self.hsrc, self.hdst = h.src, h.dst
            self.hcoef = h.coef * np.exp(h.expo @ th_fixed)
            self.hexpo = np.ascontiguousarray(h.expo[:, L])
            self.ScL = np.ascontiguousarray(net.S_c[:, L])
            self.r1 = net.reset_target(0.0)
            self.r2 = net.reset_target(1.0)
            self.gamma = net.gamma
        else:
            sp = model.space
            self.log_base = sp.states @ th_fixed - sp.log_factorial
            self.states_L = np.ascontiguousarray(sp.states[:, L].astype(float))
            self.vi = sp.visible_index
            self.nv = sp.visible_states.shape[0]
            self.q1, self.q2 = model.q, model.q_change

    def clamped_mean(self, theta: np.ndarray, a: float) -> np.ndarray:
        """``<n>_Qt`` of the learned species (equilibrium clamping)."""
        lw = self.log_base + self.states_L @ theta
        pi = np.exp(lw - lw.max())
        pi /= pi.sum()
        P = np.bincount(self.vi, weights=pi, minlength=self.nv)
        q = (1.0 - a) * self.q1 + a * self.q2
        ratio = np.divide(q, P, out=np.zeros_like(P), where=P > 0)
        return self.states_L.T @ (pi * ratio[self.vi])

    def __call__(self, x: np.ndarray, a: float = 0.0) -> np.ndarray:
        n_f, n_c = self.n_f, self.n_c
        p_f, p_c, theta = x[:n_f], x[n_f:n_f + n_c], x[n_f + n_c:]
        out = np.empty_like(x)
        flux = self.coef * np.exp(self.expo @ theta) * p_f[self.src]
        out[:n_f] = np.bincount(self.dst, flux, n_f) - np.bincount(self.src, flux, n_f)
        m_f = self.SfL.T @ p_f / p_f.sum()
        if n_c:
            fl = self.hcoef * np.exp(self.hexpo @ theta) * p_c[self.hsrc]
            reset = (1.0 - a) * self.r1 + a * self.r2
            out[n_f:n_f + n_c] = (np.bincount(self.hdst, fl, n_c) - np.bincount(self.hsrc, fl, n_c)
                                  + self.gamma * (reset - p_c))
            m_c = self.ScL.T @ p_c / p_c.sum()
        else:
            m_c = self.clamped_mean(theta, a)
        out[n_f + n_c:] = self.eps * (m_c - m_f)
        return out

    def jacobian(self, x: np.ndarray, a: float = 0.0) -> sparse.csr_matrix:
        """Jacobian of :meth:`__call__`: ``LearningNetwork.jacobian`` with the normalisation terms.

        For ``m = S^T p / s`` (``s = sum p``): ``dm/dp = S^T / s - m 1^T / s``;
        the network's Jacobian has ``S^T`` (``s = 1``), so the correction is
        ``S^T (1/s - 1) - m 1^T / s`` in the theta rows (times ``-eps`` for the
        free, ``+eps`` for the clamped ensemble).
        """
        net = self.net
        n_f, n_c, k = self.n_f, self.n_c, self.k
        J = net.jacobian(x, a)
        base = n_f + n_c
        blocks = [(0, n_f, self.SfL, -1.0)]
        if n_c:
            blocks.append((n_f, n_c, self.ScL, 1.0))
        rows, cols, vals = [], [], []
        for start, size, SL, sign in blocks:
            p = x[start:start + size]
            tot = p.sum()
            m = SL.T @ p / tot
            corr = SL.T * (1.0 / tot - 1.0) - m[:, None] / tot          # (k, size)
            corr *= sign * self.eps[:, None]
            rr, cc = np.nonzero(np.ones((k, size), bool))
            rows.append(base + rr)
            cols.append(start + cc)
            vals.append(corr.ravel())
        C = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=J.shape)
        return (J + C).tocsr()


def loop_system(net: LearningNetwork, signal: Signal, offset: np.ndarray | None = None,
                shift: np.ndarray | None = None):
    """``system(lo, hi)`` factory for :func:`integrate`: the closed loop under ``signal``.

    With ``shift`` (a loop state ``x*``) and ``offset`` (a vector) the system
    is written for the deviation ``y = x - x*``: ``dy/dt = f(x* + y, a) - offset``.
    """
    field_ = LoopField(net)
    xs = 0.0 if shift is None else shift
    off = 0.0 if offset is None else offset

    def system(lo, hi):
        if signal.piecewise_constant:
            a = float(signal(0.5 * (lo + hi)))
            return (lambda t, x: field_(xs + x, a) - off), (lambda t, x: field_.jacobian(xs + x, a))
        return ((lambda t, x: field_(xs + x, float(signal(t))) - off),
                (lambda t, x: field_.jacobian(xs + x, float(signal(t)))))

    return system


def state_atol(net: LearningNetwork, atol_p: float = ATOL_P, atol_theta: float = ATOL_THETA) -> np.ndarray:
    """Per-component absolute tolerance: ``atol_p`` on probabilities, ``atol_theta`` on theta."""
    tol = np.full(net.n_states, atol_p)
    tol[net.n_f + net.n_c:] = atol_theta
    return tol


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A simulated learning trajectory (one row per output time).

    Attributes
    ----------
    t : ndarray (T,)
    theta : ndarray (T, k)      learned parameters
    m_f, m_c : ndarray (T, k)   ensemble means of the learned species (free, clamped)
    e : ndarray (T, k)          error ``m_c - m_f``
    D : ndarray (T,)            ``D(Q(a(t)) || P_theta(t))`` (nats)
    a : ndarray (T,)            environment mixing weight
    names : tuple[str, ...]     learned species
    level : str                 ``"ode"`` (or ``"ssa"``)
    metadata : dict             model, clamping, signal, solver, tolerances, cost
    x : ndarray or None         full loop states (T, n) when kept
    """

    t: np.ndarray
    theta: np.ndarray
    m_f: np.ndarray
    m_c: np.ndarray
    e: np.ndarray
    D: np.ndarray
    a: np.ndarray
    names: tuple[str, ...]
    level: str = "ode"
    metadata: dict = field(default_factory=dict)
    x: np.ndarray | None = None

    @property
    def columns(self) -> list[str]:
        """CSV header (docs/cli.md): time, theta_*, m_f_*, m_c_*, D, a."""
        return (["time"] + [f"theta_{n}" for n in self.names] + [f"m_f_{n}" for n in self.names]
                + [f"m_c_{n}" for n in self.names] + ["D", "a"])

    def table(self) -> np.ndarray:
        """The CSV body as an array (T, len(columns))."""
        return np.column_stack([self.t, self.theta, self.m_f, self.m_c, self.D, self.a])

    def to_csv(self, path, *, overwrite: bool = True, inputs=()) -> Path:
        """Write the CSV atomically (temporary file in the same folder, then ``os.replace``)."""
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ModelError(f"cannot write {path}: folder {folder} does not exist")
        with atomic_file(path, "w", newline="", overwrite=overwrite, inputs=inputs) as fh:
            fh.write(",".join(self.columns) + "\n")
            np.savetxt(fh, self.table(), delimiter=",", fmt="%.12g")
        return path

    def __len__(self) -> int:
        return self.t.size


def outputs(net: LearningNetwork, t: np.ndarray, X: np.ndarray, signal: Signal):
    """``theta, m_f, m_c, D, a`` along a run of loop states ``X`` (T, n)."""
    model = net.model
    a = np.asarray(signal(t), float) if t.size else np.zeros(0)
    # at a breakpoint the state is the left limit; report the value of a in force from then on
    T = t.size
    k = net.k
    theta = X[:, net.n_f + net.n_c:]
    m_f = np.empty((T, k))
    m_c = np.empty((T, k))
    D = np.empty(T)
    for i in range(T):
        m_f[i], m_c[i] = net.means(X[i], float(a[i]))
        D[i] = model.divergence(theta[i], float(a[i]))
    return theta.copy(), m_f, m_c, D, a


def _episode_end_event(model: Model, net: LearningNetwork, x0: np.ndarray,
                       theta_star: np.ndarray | None) -> Callable[[float, np.ndarray], float]:
    """Terminal event of :func:`simulate`: the identifiable part of ``theta - theta*`` at 1e-3 of its start."""
    if theta_star is None:
        raise ValueError("until_episode_end needs theta_star, the loop's fixed point "
                         "(crnfb.analysis.linear.fixedpoints.loop_fixed_point(model).theta)")
    U = model.identifiable
    th_star = np.asarray(theta_star, float)
    base = net.n_f + net.n_c
    size0 = np.linalg.norm(U.T @ (x0[base:] - th_star))
    return lambda t, x: float(np.linalg.norm(U.T @ (x[base:] - th_star)) - 1e-3 * size0)


def _check_ode_work(t_end: float, signal: Signal, max_step: float) -> None:
    """Refuse, before integrating, a run whose step count alone exceeds ``MAX_STEPS``."""
    need = ode_work_estimate(t_end, signal.breakpoints(0.0, float(t_end)), max_step)
    if need > MAX_STEPS:
        raise WorkLimitError(f"the run needs at least {need:.3g} integration steps (signal breakpoints and "
                             f"its largest step {max_step:g}) > {MAX_STEPS}; choose a shorter --t-end",
                             key="--t-end")


def simulate(model: Model, t_end: float, signal: Signal | None = None, points: int = 501, *,
             theta0: np.ndarray | None = None, x0: np.ndarray | None = None, clamping: str | None = None,
             method: str = DEFAULT_METHOD, rtol: float = RTOL, atol_p: float = ATOL_P, atol_theta: float = ATOL_THETA,
             progress: bool | None = None, keep_states: bool = False,
             until_episode_end: bool = False, theta_star: np.ndarray | None = None,
             net: LearningNetwork | None = None) -> Trajectory:
    """Integrate the learning loop from the start of a learning episode.

    Parameters
    ----------
    model : Model
    t_end : float
        Length of the run (> 0).
    signal : Signal or None
        Environment ``a(t)``; default ``Constant(0)`` (the file's environment).
    points : int
        Output times ``linspace(0, t_end, points)`` (>= 2).
    theta0, x0 :
        Start: by default the episode start (docs/theory.md §4): theta from
        the file, ``p_f = pi(theta0)``, ``p_c`` stationary for ``theta0`` at
        ``a(0)``. ``theta0`` changes the parameters only; ``x0`` gives the
        full loop state.
    clamping : str or None
        Override the model's clamping.
    method, rtol, atol_p, atol_theta :
        Solver and tolerances (absolute: per probability and per theta).
    progress : bool or None
        tqdm progress bar (None: only on a terminal and when ``CI`` is unset).
    keep_states : bool
        Keep the full loop states in ``Trajectory.x``.
    until_episode_end : bool
        Stop when the identifiable part of ``theta - theta*`` has shrunk to
        1e-3 of its initial size (docs/theory.md §4), or at ``t_end`` if that
        comes first. Needs ``theta_star``.
    theta_star : ndarray or None
        The loop's fixed point ``theta*`` (learned coordinates), e.g.
        ``crnfb.analysis.linear.fixedpoints.loop_fixed_point(model).theta``: the
        caller computes it, since finding fixed points is analysis.

    Raises
    ------
    ValueError
        ``t_end`` or ``points`` out of range, ``x0`` of the wrong size, or
        ``until_episode_end`` without ``theta_star``.
    """
    if not (isinstance(t_end, (int, float, np.floating)) and math.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be a positive finite time, got {t_end!r}")
    if isinstance(points, bool) or int(points) != points or points < 2:
        raise ValueError(f"points must be a whole number >= 2, got {points!r}")
    signal = Constant(0.0) if signal is None else signal
    net = net or LearningNetwork(model, clamping)
    start = "episode" if x0 is None and theta0 is None else ("theta0" if x0 is None else "x0")
    if x0 is None:
        x0 = net.initial_state(theta0, float(signal(0.0)))
    x0 = np.asarray(x0, float)
    if x0.shape != (net.n_states,):
        raise ValueError(f"x0 must have {net.n_states} entries (p_f, p_c, theta), got {x0.shape}")
    t_eval = np.linspace(0.0, float(t_end), int(points))
    stop = _episode_end_event(model, net, x0, theta_star) if until_episode_end else None
    max_step = signal.max_step()
    _check_ode_work(t_end, signal, max_step)
    t, X, stats = integrate(loop_system(net, signal), x0, t_eval,
                            breakpoints=signal.breakpoints(0.0, float(t_end)), method=method, rtol=rtol,
                            atol=state_atol(net, atol_p, atol_theta), max_step=max_step, stop=stop,
                            progress=progress, desc=f"simulate {model.name}")
    theta, m_f, m_c, D, a = outputs(net, t, X, signal)
    meta = {
        "model": model.name, "source": model.source, "clamping": net.clamping, "signal": signal.describe(),
        "method": method, "rtol": rtol, "atol_p": atol_p, "atol_theta": atol_theta,
        "n_states": int(net.n_states), "t_end": float(t_end), "start": start,
        **stats.to_dict(),
    }
    return Trajectory(t, theta, m_f, m_c, m_c - m_f, D, a, tuple(model.learned_names), "ode", meta,
                      X if keep_states else None)


__all__ = ["integrate", "IntegrationStats", "loop_system", "LoopField", "outputs",
           "simulate", "SimulationError", "state_atol", "Trajectory"]
