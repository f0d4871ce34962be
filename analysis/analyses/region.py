"""Large disturbances: the loop's region of attraction along the environment's change (docs/theory.md §4b).

The environment is ``Q = (1 - a) Q_1 + a Q_2``; the loop sits at its fixed
point ``x*(0)``. A step ``a: 0 -> A`` moves the fixed point to ``x*(A)``;
the linearised loop predicts that the loop returns to it whenever ``x*(A)``
is locally stable. This module measures the largest step after which the
nonlinear loop, started at ``x*(0)``, actually settles at ``x*(A)``
(:func:`crnfb.analysis.analyses.globalbehaviour.settle`, the learning episode's
criterion):

:func:`run_at_step`
    One ODE run: the environment stepped to ``A``; returned or not, and how.
:func:`region_of_attraction`
    The largest returning step in ``(0, 1]``: one run at ``A = 1`` (every
    step returns when it does), else halving down to a returning step and
    trisection (two runs per round, one per core) to a relative bracket of
    :data:`ROA_RTOL`.
:func:`region_report`
    The ``global.region_of_attraction*`` keys of report.json (docs/cli.md),
    with the validation's measured linear range and its quadratic estimate
    beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from crnfb.analysis.analyses.globalbehaviour import DEPLETION, past, piece_simulate, settle, stopped, trisect
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.model.model import Model
from crnfb.feedback.dynamics.integrate import SimulationError, WorkLimitError

__all__ = ["ROA_RTOL", "ROA_MIN_STEP", "ESCAPE", "RegionOfAttraction", "run_at_step",
           "region_of_attraction", "region_report", "linear_range_entry"]

#: Relative width of the final bracket ``hi / lo - 1``.
ROA_RTOL = 0.02
#: The halving search stops below this step (a loop that returns from no larger step).
ROA_MIN_STEP = 1.0 / 64.0
#: A run has escaped (does not return) where |theta - theta*(a)| exceeds this multiple of its initial
#: value, and at least DEPLETION kT (lambda off by a factor 100): stops runs that would spend the time
#: limit in a relaxation oscillation (docs/theory.md §4b).
ESCAPE = 10.0

METHOD = ("ODE runs from the loop's fixed point at a = 0 with the environment stepped to a (settled: the "
          "learning episode's criterion, at the fixed point for the new a); a = 1 first, then halving to a "
          "returning step and trisection of the bracket")


@dataclass(frozen=True, kw_only=True)
class RegionOfAttraction:
    """The largest step of ``a`` after which the loop returns to the new fixed point.

    Attributes
    ----------
    step : float or None
        The largest returning step found (the bracket's lower end; 1 when
        every step returns); None, with ``reason``, when none was found.
    bracket : tuple or None
        ``(lo, hi)``: returns at ``lo``, not at ``hi`` (``hi`` None when
        ``a = 1`` returns).
    tolerance : float
        The bracket's relative width target, ``hi / lo - 1``.
    runs : tuple
        Every step tried: ``(a, returned, mechanism, how)``.
    reason : str or None
        Why ``step`` is None.
    """

    step: float | None
    bracket: tuple[float, float | None] | None
    tolerance: float
    runs: tuple[tuple[float, bool, str, str], ...]
    reason: str | None = None

    @property
    def every_step_returns(self) -> bool:
        """The full step ``a: 0 -> 1`` returns (the search's first run)."""
        return self.bracket is not None and self.bracket[1] is None

    @property
    def ode_runs(self) -> int:
        """Number of nonlinear runs made (steps decided by an unstable linearisation need none)."""
        return sum(1 for r in self.runs if r[3].startswith("ODE"))


def run_at_step(model: Model, x0: np.ndarray, a: float, rtol: float = 1e-8,
                atol: float = 1e-12) -> tuple[float, bool, str, str]:
    """The loop from ``x0`` with the environment at ``a``: ``(a, returned, mechanism, how)``.

    Returned: settled at the loop's fixed point for ``a``
    (:func:`crnfb.analysis.linear.fixedpoints.loop_fixed_point`) by the criterion of
    the learning episode. Not returned: the mechanism as the episode's
    (:func:`crnfb.analysis.analyses.globalbehaviour.classify`), or ``"escape"`` when
    ``|theta - theta*(a)|`` reached ``max(ESCAPE d0, DEPLETION)`` (the run
    stops there); locally unstable there: no run (``how`` says so).

    Raises
    ------
    SimulationError
        The integration failed or hit the solver's work limit (a slow,
        lightly damped return can take more steps than a run may): a
        limitation, not a verdict on the step, and the search stops.
    """
    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    from crnfb.analysis.linear.stability import stability

    net = LearningNetwork(model)
    fpa = loop_fixed_point(model, net, a=float(a))
    st = stability(linearise(model, a=float(a), fixed_point=fpa))
    if not st.stable:
        return (float(a), False, "",
                f"linear: the fixed point at a = {a:.4g} is unstable (slowest rate {st.slowest_rate:.3g})")
    base = net.n_f + net.n_c
    x0 = np.asarray(x0, float)
    limit = max(ESCAPE * float(np.linalg.norm(x0[base:] - fpa.theta)), DEPLETION)
    piece = _escape_piece(piece_simulate(net, rtol, atol, float(a)), base, fpa.theta, limit)
    try:
        run = settle(model, net, x0, fpa.theta, st.slowest_rate, rtol=rtol, atol=atol, points=400,
                     a=float(a), piece=piece)
    except _Escaped as e:
        return float(a), False, "escape", f"ODE: |theta - theta*| reached {limit:.3g} kT at t = {e.t:.4g}"
    except (SimulationError, WorkLimitError) as e:
        raise SimulationError(f"the run stepped to a = {a:.4g} failed: {e}") from e
    if run.failure is not None and run.failure.startswith(WorkLimitError.__name__):
        raise SimulationError(f"the run stepped to a = {a:.4g} hit the solver's work limit: {run.failure}")
    return float(a), bool(run.converged), run.mechanism, "ODE"


class _Escaped(Exception):
    """The run left the new fixed point's neighbourhood (:data:`ESCAPE`): it does not return."""

    def __init__(self, t: float):
        super().__init__(f"escaped at t = {t:g}")
        self.t = float(t)


def _escape_piece(piece: Callable, base: int, theta_fp: np.ndarray, limit: float) -> Callable:
    """``piece`` that also stops, raising :class:`_Escaped`, where ``|theta - theta_fp|`` reaches ``limit``."""
    def run(x, t_eval, stop):
        def both(s, y):
            return min(stop(s, y), limit - float(np.linalg.norm(y[base:] - theta_fp)))

        t, Y, stopped = piece(x, t_eval, both)
        if stopped and float(np.linalg.norm(Y[-1, base:] - theta_fp)) >= limit * (1.0 - 1e-6):
            raise _Escaped(t[-1])
        return t, Y, stopped

    return run


def region_of_attraction(model: Model, fixed_point, rtol: float = ROA_RTOL,
                         ode_rtol: float = 1e-8, deadline: float | None = None) -> RegionOfAttraction:
    """The largest step ``A`` in ``(0, 1]`` of ``a`` after which the loop returns (docs/theory.md §4b).

    ``fixed_point``: the loop's fixed point at ``a = 0`` (the start of
    every run). ``A = 1`` first: when it returns, every step is taken to
    return (the search assumes one change of outcome along ``a``) and the
    region is 1. Else halving (``1/2, 1/4, ...`` down to
    :data:`ROA_MIN_STEP`) to a returning step, then trisection: each round
    runs the two thirds of the bracket at once (one per core) and keeps the
    third where the outcome changes, until ``hi / lo - 1 <= rtol``.
    ``ode_rtol``: the runs' relative tolerance (absolute ``1e-4`` of it),
    the learning episode's by default. ``deadline`` (``time.monotonic()``):
    no new run or round starts after it; the bracket reached is returned
    with the reason.
    """
    run = partial(run_at_step, model, np.asarray(fixed_point.x, float), rtol=ode_rtol, atol=1e-4 * ode_rtol)
    runs = [run(1.0)]
    if runs[0][1]:
        return RegionOfAttraction(step=1.0, bracket=(1.0, None), tolerance=rtol, runs=tuple(runs))
    hi, lo = 1.0, None
    a = 0.5
    while a >= ROA_MIN_STEP:
        if past(deadline):
            return RegionOfAttraction(step=None, bracket=None, tolerance=rtol, runs=tuple(runs),
                                      reason="stopped by the time budget (--global-budget): no step down to "
                                             f"a = {hi:g} returned before it")
        r = run(a)
        runs.append(r)
        if r[1]:
            lo = a
            break
        hi, a = a, 0.5 * a
    if lo is None:
        return RegionOfAttraction(step=None, bracket=None, tolerance=rtol, runs=tuple(runs),
                                  reason=f"no step down to a = {hi:g} returns (the search's limit {ROA_MIN_STEP:g})")
    lo, hi, done = trisect(run, lo, hi, rtol, runs, deadline)
    why = None if done else stopped(lo, hi, rtol, "returns", "does not return").replace("learning ", "the loop ")
    return RegionOfAttraction(step=lo, bracket=(lo, hi), tolerance=rtol, runs=tuple(runs), reason=why)


def linear_range_entry(checks) -> dict | None:
    """The validation's linear-range check (a :class:`~crnfb.analysis.analyses.validation.Check` or its
    report.json dict) as ``{measured, quadratic_estimate, reached}``; None when it was not made."""
    for c in checks or ():
        get = c.get if isinstance(c, dict) else (lambda k, c=c: getattr(c, k))
        if str(get("quantity")).startswith("linear range") and get("passed") is not None:
            return {"measured": _num(get("simulated")), "quadratic_estimate": _num(get("predicted")),
                    "reached": bool((get("details") or {}).get("reached"))}
    return None


def _num(v) -> float | None:
    return float(v) if v is not None and np.isfinite(float(v)) else None


def region_report(roa: RegionOfAttraction | None, reason: str | None, linear: dict | None,
                  linear_reason: str | None = None) -> dict:
    """The ``global.region_of_attraction*`` and ``global.linear_range*`` keys of report.json (docs/cli.md).

    ``linear``: :func:`linear_range_entry` of the validation (None with
    ``linear_reason``). ``region_of_attraction_quadratic_estimate`` is the
    second-order scale ``A_q = A_10 / 0.1`` (docs/theory.md §4b): the step at
    which the quadratic term of the step response, extrapolated from the
    smallest step, is as large as the linear one.
    """
    from crnfb.analysis.analyses.validation import LINEAR_RANGE_ERROR

    out: dict = {}
    if linear is None:
        out.update({"linear_range": None, "linear_range_reason": linear_reason or "no linear-range check",
                    "region_of_attraction_quadratic_estimate": None})
    else:
        q = linear["quadratic_estimate"]
        out.update({"linear_range": linear["measured"], "linear_range_reached": linear["reached"],
                    "linear_range_quadratic_estimate": q,
                    "region_of_attraction_quadratic_estimate": None if q is None else q / LINEAR_RANGE_ERROR})
    if roa is None or roa.step is None or roa.bracket is None:
        why = reason if roa is None else roa.reason
        out.update({"region_of_attraction": None, "region_of_attraction_reason": why,
                    "region_of_attraction_bracket": None})
        if roa is not None:
            out.update(_runs_dict(roa))
        return out
    lo, hi = roa.bracket
    out.update({"region_of_attraction": float(roa.step),
                "region_of_attraction_bracket": [float(lo), None if hi is None else float(hi)],
                "region_of_attraction_every_step_returns": roa.every_step_returns,
                "region_of_attraction_tolerance": float(roa.tolerance),
                "region_of_attraction_meaning": (
                    "every step of a in [0,1] returns: the loop, from its fixed point at a = 0, settles at the "
                    "fixed point of the stepped environment" if roa.every_step_returns else
                    "the largest step of a after which the loop, from its fixed point at a = 0, settles at the "
                    "fixed point of the stepped environment (returns at the bracket's lower end, not at its upper end)")})
    if roa.reason:
        out["region_of_attraction_note"] = roa.reason
    out.update(_runs_dict(roa))
    return out


def _runs_dict(roa: RegionOfAttraction) -> dict:
    return {"region_of_attraction_method": METHOD, "region_of_attraction_ode_runs": roa.ode_runs,
            "region_of_attraction_runs": [{"a": float(a), "returned": bool(ok), "mechanism": m or None, "how": h}
                                          for a, ok, m, h in roa.runs]}
