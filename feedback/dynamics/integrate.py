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

The vector field is :class:`~crnfb.feedback.dynamics.ensembles.LoopField`, the
loop's one definition (:func:`loop_system`). :func:`integrate` is the generic
driver, the one every integration of the loop goes through (validation on the
deviation from a fixed point, the learning episodes of the thermodynamics and
global analyses, the switching-driven runs of the fluctuation analysis);
:func:`simulate` runs the learning network from the start of a learning
episode and returns a :class:`Trajectory`.

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
from typing import Callable, TypeAlias

import numpy as np
from scipy import sparse
from scipy.integrate import BDF, LSODA, Radau
from scipy.optimize import brentq

from .bdf import ReuseBDF
from .ensembles import LearningNetwork, LoopField
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


#: A piece's Jacobian for :func:`integrate`: ``jac(t, y)``, a constant matrix, or None (finite differences).
Jacobian: TypeAlias = "Callable | np.ndarray | sparse.spmatrix | None"


def integrate(system: Callable[[float, float], tuple[Callable, Jacobian]], y0: np.ndarray,
              t_eval: np.ndarray, *, breakpoints=(), method: str = DEFAULT_METHOD, rtol: float = RTOL,
              atol=1e-10, max_step: float = math.inf, stop: Callable | None = None,
              progress: bool | None = None, desc: str = "ode", max_steps: int = MAX_STEPS,
              substeps: int = 0) -> tuple[np.ndarray, np.ndarray, IntegrationStats]:
    """Integrate piecewise between breakpoints with a SciPy stiff solver: the package's one ODE front end.

    Parameters
    ----------
    system : callable ``(lo, hi) -> (fun, jac)``
        The vector field ``fun(t, y)`` and Jacobian ``jac(t, y)`` (sparse or
        dense; a constant matrix for a linear system; ``None`` for finite
        differences) valid on the piece ``[lo, hi]``. LSODA gets it densified.
    y0 : ndarray
        State at ``t_eval[0]``.
    t_eval : ndarray
        Increasing output times; the run spans ``[t_eval[0], t_eval[-1]]``.
    breakpoints : iterable of float
        Times where the vector field jumps; the solver restarts there.
    method : ``"ReuseBDF"`` (default) | ``"BDF"`` | ``"Radau"`` | ``"LSODA"``
        Every integration of the loop ODE in the package goes through here
        (docs/decisions.md, "One loop vector field, one integrator front end").
    rtol, atol : tolerances (``atol`` scalar or per component)
    max_step : float
    stop : callable ``(t, y) -> float`` or None
        Terminal event: the run stops where it first falls from > 0 to <= 0
        (located by Brent's method on the dense output).
    progress : bool or None
        tqdm bar over simulated time (None: only on a terminal and outside CI).
    max_steps : int
        Work limit (:class:`WorkLimitError` beyond it), summed over the pieces.
    substeps : int
        0: output at ``t_eval``. ``n > 0``: output at the solver's own accepted
        steps, each divided into ``n`` equal parts by its dense output
        (``t_eval`` then gives only the span): samples that follow the
        solution's time scales, for a quadrature along the run that does not
        depend on a chosen grid.

    Returns
    -------
    t, Y, stats
        Output times reached (``t_eval`` cut at the stop time; with
        ``substeps`` the start and every sub-step up to the end or the stop),
        states ``Y`` (len(t), n) and an :class:`IntegrationStats`.
    """
    t_eval = _check_integrator_args(method, t_eval)
    t0, t1 = float(t_eval[0]), float(t_eval[-1])
    y = np.asarray(y0, float).copy()
    out = np.empty((t_eval.size, y.size))
    out[0] = y
    cuts = sorted({t0, t1, *[float(b) for b in breakpoints if t0 < b < t1]})
    nfev = njev = nlu = 0
    wall = time.perf_counter()
    run = _OdeRun(t_eval, out, stop, stop(t0, y) if stop is not None else None, int(substeps), [t0], [y.copy()])
    Solver = METHODS[method]
    bar = _time_bar(t1 - t0, desc, progress)
    try:
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            fun, jac = system(lo, hi)
            kw = dict(rtol=rtol, atol=atol, max_step=max_step)
            if jac is not None:
                kw["jac"] = _dense_jacobian(jac) if method == "LSODA" else jac
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
    return (*_run_output(run), stats)


def _time_bar(span: float, desc: str, progress: bool | None):
    """The tqdm bar over simulated time of :func:`integrate` (None for an empty span)."""
    if span <= 0:
        return None
    return progress_bar(span, desc, progress, unit="t", mininterval=0.5,
                        bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}]")


def _run_output(run: "_OdeRun") -> tuple[np.ndarray, np.ndarray]:
    """Output times and states of a finished run: the sub-steps, ``t_eval`` cut at the stop, or ``t_eval``."""
    if run.substeps > 0:
        return np.asarray(run.sub_t, float), np.vstack(run.sub_y)
    if run.t_stop is not None and run.stop_dense is not None:     # set together by _advance_piece
        return _cut_at_stop(run.t_eval, run.out, run.t_stop, run.stop_dense)
    return run.t_eval, run.out


def _dense_jacobian(jac):
    """LSODA's Jacobian: dense (its banded or full LU); a sparse one is densified, a constant one kept."""
    if not callable(jac):
        return jac.toarray() if sparse.issparse(jac) else jac

    def dense(t, y):
        J = jac(t, y)
        return J.toarray() if sparse.issparse(J) else J

    return dense


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
    substeps: int = 0
    sub_t: list = field(default_factory=list)       # the output of ``substeps > 0``
    sub_y: list = field(default_factory=list)
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
        if run.substeps > 0:
            _record_substeps(run, solver, dense, t_old, t_new)
        j = int(np.searchsorted(t_eval, t_new, side="right"))
        if run.substeps <= 0 and j > run.k:
            if dense is None:
                dense = solver.dense_output()
            run.out[run.k:j] = dense(t_eval[run.k:j]).T
            run.k = j
        if bar is not None:
            bar.update(t_new - t_old)
        if run.t_stop is not None:
            break


def _record_substeps(run: _OdeRun, solver, dense: Callable | None, t_old: float, t_new: float) -> None:
    """Append the step ``[t_old, t_new]`` divided into ``run.substeps`` parts (the step's end exactly)."""
    dense = solver.dense_output() if dense is None else dense
    ts = np.linspace(t_old, t_new, run.substeps + 1)[1:]
    Y = dense(ts).T
    if run.t_stop is None:
        Y[-1] = solver.y        # the accepted step itself, not its interpolant
    run.sub_t.extend(ts.tolist())
    run.sub_y.append(Y)


def _cut_at_stop(t_eval: np.ndarray, out: np.ndarray, t_stop: float,
                 dense: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Output times and states cut at the stop time, with the state at ``t_stop`` appended."""
    keep = int(np.searchsorted(t_eval, t_stop, side="right"))
    t_out = np.append(t_eval[:keep], t_stop) if t_eval[keep - 1] < t_stop else t_eval[:keep]
    Y = out[:keep]
    if t_out.size > keep:
        Y = np.vstack([Y, dense(t_stop)[None, :]])
    return t_out, Y


def loop_system(net: LearningNetwork, signal: Signal, offset: np.ndarray | None = None,
                shift: np.ndarray | None = None):
    """``system(lo, hi)`` factory for :func:`integrate`: the closed loop under ``signal``.

    The field is :class:`~crnfb.feedback.dynamics.ensembles.LoopField` with normalised
    means (the network's :meth:`~LearningNetwork.rhs` is the same field with plain
    means, equal on the physical states; the normalisation keeps the neutral invariants
    exact against round-off drift of ``sum p``) and its analytic sparse Jacobian.
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


__all__ = ["integrate", "IntegrationStats", "loop_system", "outputs",
           "simulate", "SimulationError", "state_atol", "Trajectory"]
