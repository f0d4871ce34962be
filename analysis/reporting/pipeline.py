"""The analysis pipeline: one call, one small function per built-in report section.

:func:`analyse` runs every step of the stability report (docs/cli.md) on a
:class:`~crnfb.feedback.model.model.Model` and returns a
:class:`~crnfb.analysis.reporting.results.Results`. The core (learned fixed point, loop
fixed point, linearisation, stability) must succeed: a
:class:`~crnfb.feedback.errors.ModelError` there is bad input. Every other
section runs through :meth:`_Run.section`, the one place that catches a
section's failure: its keys in ``report.json`` are then ``null`` with the
reason beside them, and the rest of the report is kept. The registered
sections (:data:`crnfb.analysis.reporting.sections.SECTIONS`: thermodynamics, the random
environment) run last, in registry order (:func:`registered_sections`).

Each ``*_section`` function is importable and testable on its own.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable, TypeVar

from dataclasses import replace
from functools import partial

import numpy as np

from crnfb.analysis.analyses.bifurcation import bifurcation
from crnfb.analysis.analyses.context import Analysis
from crnfb.analysis.analyses.disturbance import Disturbance
from crnfb.analysis.linear.fixedpoints import NoFixedPoint, StationaryPoint, quasi_static_trajectory
from crnfb.analysis.linear.frequency import LoopResponse, broken_loop, spec_grid
from crnfb.analysis.analyses.globalbehaviour import global_report, safe_factor
from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.analysis.linear.fixedpoints import LoopFixedPoint
from crnfb.analysis.analyses.margins import Margins
from crnfb.analysis.analyses.region import linear_range_entry, region_of_attraction, region_report
from crnfb.analysis.reporting.results import Distribution, Results, StepResponse, LearningCurve, Unavailable
from crnfb.analysis.linear.stability import Stability, episode_time
from crnfb.analysis.reporting import sections
from crnfb.analysis.reporting.section import Context
from crnfb.analysis.analyses.thermo import EPISODE_TOL, Episode, episode, episode_settings
from crnfb.analysis.analyses.validation import Check, validate as validate_checks, with_consistency
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics.parallel import run_all
from crnfb.feedback.numerics.progress import progress_bar
from crnfb.feedback.model.signals import Step
from crnfb.feedback.dynamics.integrate import SimulationError, simulate
from crnfb.feedback.numerics import sizes

__all__ = ["analyse", "STEP_AMPLITUDE", "frequency_section",
           "step_section", "episode_section", "trajectory_section", "distribution_section",
           "validation_section", "global_section", "region_section", "registered_sections",
           "consistency_section", "check_rate_scales", "MAX_RATE_RATIO"]

#: Largest ratio of the loop's rate constants (kappa, eps, gamma) that the analysis resolves
#: (docs/theory.md §5, "The time unit"): the slow modes' eigenvalues carry an absolute round-off
#: of about 1e-16 x the fastest rate, so at 1e10 they keep six significant digits.
MAX_RATE_RATIO = 1e10


def check_rate_scales(model: Model) -> None:
    """Refuse (:class:`ModelError`, exit 2) rate constants spread over more than :data:`MAX_RATE_RATIO`.

    The loop's spectrum spans from the slowest to the fastest of the rates
    ``kappa_r`` (model network), ``eps_i`` (learning) and ``gamma`` (resets);
    beyond the ratio its slow eigenvalues are round-off of the fast ones (E1
    with ``kappa = 1e300`` read a stable loop as unstable). A change of the
    time unit scales all of them together and never trips this check.
    """
    rates = [(f"reactions[{i}].kappa", float(r.kappa)) for i, r in enumerate(model.network.reactions)]
    rates += [(f"learning.eps[{i}]", float(e)) for i, e in enumerate(model.learning.eps)]
    if model.learning.clamping == "dynamic":
        rates.append(("learning.gamma", float(model.learning.gamma)))
    lo, hi = min(rates, key=lambda kv: kv[1]), max(rates, key=lambda kv: kv[1])
    if hi[1] > MAX_RATE_RATIO * lo[1]:
        raise ModelError(f"the loop's rate constants span {hi[1] / lo[1]:.3g} ({hi[0]} = {hi[1]:.3g} against "
                         f"{lo[0]} = {lo[1]:.3g}); the analysis resolves ratios up to {MAX_RATE_RATIO:.0e}: "
                         "bring them closer (scaling every kappa, eps and gamma together only changes the "
                         "time unit)", key=hi[0], file=model.source)

#: Amplitude of the small step in ``a`` whose nonlinear response is overlaid on the step figure.
STEP_AMPLITUDE = 0.01

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# sections (each testable alone)
# ---------------------------------------------------------------------------------------------
def frequency_section(loop: LinearLoop, dist: Disturbance | None, mg: Margins | None) -> LoopResponse:
    """The responses the Bode and Nyquist figures draw.

    The disturbance section's own responses when it has them (the very data
    its bandwidth and peaks were read from, on a superset of the docs/cli.md
    grid), else the margins' (their analysis grid, also a superset of it: the
    figure draws the loci the crossings were read from, computed once), else
    the loop's responses on that grid (every 7th point for large plants:
    :func:`crnfb.analysis.linear.frequency.spec_grid`).
    """
    if dist is not None and dist.response is not None:
        return dist.response
    if mg is not None and mg.response is not None:
        return mg.response
    blocks = broken_loop(loop)
    return blocks.response(spec_grid(blocks))


def step_section(model: Model, fp: LoopFixedPoint, stab: Stability, dist: Disturbance | None,
                 nonlinear: bool) -> StepResponse:
    """The linear step response the reported step metrics came from, plus (``nonlinear``) the
    full nonlinear loop's response to a small step, rescaled per unit ``a``."""
    if not stab.stable:
        raise Unavailable("the loop is unstable at the given eps: the step response diverges "
                          f"(slowest rate {stab.slowest_rate:.3g})")
    if dist is None or dist.step is None or dist.dtheta_loop is None:
        why = "no disturbance section" if dist is None else (dist.step_reason or dist.reason or "no step response")
        raise Unavailable(why)
    sr = StepResponse(t=np.asarray(dist.step.t, float), y=np.asarray(dist.step.y, float),
                      direction=np.asarray(dist.dtheta_loop, float), source="crnfb.analysis.analyses.disturbance")
    if not nonlinear:
        return sr
    try:
        return _nonlinear_step(model, fp, sr)
    except (ModelError, SimulationError, ValueError) as e:
        return StepResponse(t=sr.t, y=sr.y, direction=sr.direction, source=sr.source,
                            nonlinear_reason=f"nonlinear step simulation failed: {e}")


def _nonlinear_step(model: Model, fp: LoopFixedPoint, sr: StepResponse,
                    amplitude: float = STEP_AMPLITUDE) -> StepResponse:
    """Overlay the full nonlinear loop's response to a small step in ``a`` (per unit ``a``)."""
    tr = simulate(model, float(sr.t[-1]), signal=Step(0.0, amplitude, 0.0), x0=fp.x, points=121)
    d = sr.direction
    y = (np.asarray(tr.theta) - fp.theta) @ d / (float(d @ d) * amplitude)
    return StepResponse(t=sr.t, y=sr.y, direction=d, t_nonlinear=np.asarray(tr.t), y_nonlinear=y, source=sr.source,
                        amplitude=amplitude)


def episode_section(model: Model, fp: LoopFixedPoint, stab: Stability, quick: bool) -> Episode:
    """The learning episode (docs/theory.md §4), integrated once per report: the thermodynamic
    episode and the learning figure read the same trajectory (:func:`crnfb.analysis.analyses.thermo.episode`)."""
    rate = stab.slowest_rate
    known = bool(np.isfinite(rate) and rate > 0)
    rate = rate if known else float(np.min(model.eps)) * 1e-3
    return episode(model, fp, t_max=50.0 * np.log(1.0 / EPISODE_TOL) / rate, rate=rate if known else None,
                   **episode_settings(quick))


#: Points of the learning figure's trajectory (D is evaluated at each).
TRAJECTORY_POINTS = 401


def trajectory_section(model: Model, optimum: StationaryPoint, fp: LoopFixedPoint,
                       stab: Stability, ep: Episode | None = None) -> LearningCurve:
    """A learning episode from the file's energies: the ensemble-level ODE until the episode
    ends (docs/theory.md §4), read from ``ep`` (the report's one episode) when given; the
    quasi-static flow if the simulator cannot run it.

    The episode is sampled on a logarithmic ladder of shorter runs too when
    its evenly spaced samples are coarser than the fastest quasi-static time
    scale (E3: ``D`` falls from 13 to 0.04 nats in a few time units, then
    learns for 10⁶), so the figure shows both time scales.
    """
    if ep is not None and ep.path_t is not None and ep.path_t.size > 1:
        t, theta = _episode_samples(ep)
        D = np.array([model.divergence(th) for th in theta])
        t, theta, D = _log_sampled(model, t, theta, D, stab)
        run = ep.settling
        return LearningCurve(t=t, theta=theta, D=D, names=model.learned_names,
                             source="ensemble-level ODE (the report's learning episode)",
                             theta_star=np.asarray(optimum.theta, float), D_star=float(optimum.divergence),
                             theta_end=np.asarray(fp.theta, float), target_label="loop's fixed point",
                             bias=float(fp.bias), outcome=None if run is None else _outcome_text(run),
                             t_settled=None if run is None else run.t_settled,
                             converged=None if run is None else bool(run.converged),
                             sensitivity=_sensitivity(model, fp))
    t_ep = episode_time(model, stab)
    try:
        tr = simulate(model, 3.0 * t_ep, points=401, until_episode_end=True, theta_star=fp.theta)
        t, theta, D = _log_sampled(model, np.asarray(tr.t), np.asarray(tr.theta), np.asarray(tr.D), stab)
    except (ModelError, SimulationError, NotImplementedError) as e:
        t, theta, D = quasi_static_trajectory(model, episode_time(model, stab, loop=False))
        return LearningCurve(t=t, theta=theta, D=D, names=model.learned_names,
                             source="quasi-static flow (docs/theory.md §3)",
                             theta_star=np.asarray(optimum.theta, float),
                             D_star=float(model.divergence(optimum.theta)), reason=f"ODE simulator not used: {e}")
    return LearningCurve(t=t, theta=theta, D=D, names=model.learned_names, source="ensemble-level ODE",
                         theta_star=np.asarray(optimum.theta, float), D_star=float(optimum.divergence),
                         theta_end=np.asarray(fp.theta, float), target_label="loop's fixed point",
                         bias=float(fp.bias), sensitivity=_sensitivity(model, fp))


def _sensitivity(model: Model, fp: LoopFixedPoint) -> np.ndarray | None:
    """The diagonal of the Hessian of ``D`` at the loop's fixed point, only when the learning figure
    names a few of many parameters (more than :data:`crnfb.analysis.reporting.plots.MANY`): how much ``D`` rises
    per unit change of each parameter squared, the learning figure's "most sensitive"."""
    from crnfb.analysis.reporting.plots import MANY
    if len(model.learned_names) <= MANY:
        return None
    return np.diag(model.hessian(np.asarray(fp.theta, float))).copy()


def _episode_samples(ep: Episode) -> tuple[np.ndarray, np.ndarray]:
    """About :data:`TRAJECTORY_POINTS` samples of the episode; when learning did not converge, of the
    solver's own steps (the output grid is logarithmic and can step over a late spike)."""
    run = ep.settling
    t, theta = ep.path_t, ep.path_theta
    if t is None or theta is None:
        raise ValueError("the episode carries no path (path_t, path_theta)")
    if run is not None and not run.converged and run.steps_t.size > 1:
        t, theta = run.steps_t, run.steps_theta
    n = 4 * TRAJECTORY_POINTS if t is not ep.path_t else TRAJECTORY_POINTS
    idx = np.unique(np.linspace(0, t.size - 1, n).round().astype(int))
    return t[idx], theta[idx]


def _outcome_text(run) -> str:
    from crnfb.analysis.analyses.globalbehaviour import MECHANISMS
    if run.converged:
        return f"converged: settled at t = {run.t_settled:.4g}"
    return f"does not converge: {MECHANISMS[run.mechanism]}"


#: Ratio of successive horizons of the shorter runs that resolve a fast start (:func:`_log_sampled`).
LADDER = 100.0
#: Most shorter runs (E3 needs 3). Bounds the work when the fast and slow time scales are
#: absurdly far apart (eps = 1e300 asked for ~300 runs: a hang, not a figure).
MAX_RUNGS = 4


def _log_sampled(model: Model, t: np.ndarray, theta: np.ndarray, D: np.ndarray,
                 stab: Stability) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add runs over ``t_end/100, t_end/100², ...`` down to the fastest quasi-static time scale."""
    rates = np.asarray(stab.quasi_static_rates, float)
    rates = rates[rates > 0]
    if t.size < 2 or not rates.size:
        return t, theta, D
    fast = 0.1 / float(rates.max())
    horizons: list[float] = []
    horizon = t[-1] / LADDER
    while t[1] > fast and horizon > fast and len(horizons) < MAX_RUNGS:
        horizons.append(float(horizon))
        horizon /= LADDER
    if not horizons:
        return t, theta, D
    # the rungs are independent runs: on every core (crnfb.feedback.numerics.parallel)
    parts = [(t, theta, D)] + run_all([partial(_rung, model, h) for h in horizons])
    t_all = np.concatenate([p[0] for p in parts])
    t_all, keep = np.unique(t_all, return_index=True)     # sorted, each time once
    return (t_all, np.concatenate([p[1] for p in parts])[keep], np.concatenate([p[2] for p in parts])[keep])


def _rung(model: Model, horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    run = simulate(model, horizon, points=201)
    return np.asarray(run.t), np.asarray(run.theta), np.asarray(run.D)


def distribution_section(model: Model, fp: LoopFixedPoint) -> Distribution:
    """The learned law ``P(v)`` at the loop's fixed point against ``Q(v)``."""
    mo = model.landscape.moments(model.full_theta(fp.theta))
    vis = model.network.visible
    return Distribution(states=model.space.visible_states, P=mo.P, Q=model.q,
                        names=[model.network.names[i] for i in vis])


def validation_section(model: Model, loop: LinearLoop, quick: bool, seed: int,
                       noise_budget: float | None = None) -> list[Check]:
    """The checks against the nonlinear loop (:func:`crnfb.analysis.analyses.validation.validate`); the
    parameter-noise check's SSA runs may take ``noise_budget`` CPU seconds (default: its own)."""
    return list(validate_checks(model, loop, quick=quick, seed=seed, noise_budget=noise_budget))


#: Wall seconds the global searches (safe factor, then region of attraction) may take together
#: (``crnfb report --global-budget``): no new round starts after it, and a search whose first run
#: alone would not fit (estimated from the report's own learning episode) is not started.
GLOBAL_BUDGET = 120.0


def global_section(model: Model, fp: LoopFixedPoint, mg: Margins | None, ep: Episode | None,
                   safe: bool, reasons: dict[str, str], checks: list[Check] | None = None,
                   stab: Stability | None = None, budget: float | None = None,
                   episode_seconds: float | None = None, region: bool | None = None,
                   loop: LinearLoop | None = None) -> dict[str, object]:
    """The ``global`` section (:func:`crnfb.analysis.analyses.globalbehaviour.global_report`): the episode's
    outcome and, with ``safe`` (the report validates, not quick), the safe factor of eps beside
    ``eps_crit`` (docs/theory.md §4a) and, with ``region`` (default: ``safe``), the region of attraction
    along ``a`` beside the validation's linear range (``checks``; docs/theory.md §4b). ``budget``: wall
    seconds for both searches (:data:`GLOBAL_BUDGET`); ``episode_seconds``: the report's learning episode,
    the estimate of one run. ``loop``: the linearised loop, for the bifurcation at ``eps_crit``
    (docs/theory.md §4c; its orbits with ``region``, in what is left of the budget)."""
    budget = GLOBAL_BUDGET if budget is None else float(budget)
    deadline = time.monotonic() + budget
    run = ep.settling if ep is not None else None
    gm = mg.gain_margin if mg is not None else None
    ec = mg.eps_crit_value if mg is not None else None
    eps = dict(zip(model.learned_names, map(float, model.eps)))
    sf, why = None, None
    if run is None:
        why = "no learning episode: " + reasons.get("episode", "not computed")
    elif not safe:
        why = "not computed (validation off: --no-validate, validate=False or quick)"
    elif fp.x.size > sizes.SAFE_FACTOR_MAX_STATES:
        why = (f"not computed: the trisection's ~30 nonlinear runs of a {fp.x.size}-state loop exceed a report's "
               f"time (done up to {sizes.SAFE_FACTOR_MAX_STATES} states)")
    elif (why := over_budget(deadline, budget, episode_seconds)) is None:
        sf = safe_factor(model, fp, run.converged, gm, deadline=deadline, episode=run)
    roa = region_section(model, fp, safe if region is None else region, checks, stab, reasons, deadline, budget,
                         episode_seconds)
    bif = bifurcation_section(loop, mg, safe if region is None else region, deadline)
    return global_report(run, sf, why, eps, ec, gm, episode_reason=reasons.get("episode"), region=roa,
                         bifurcation=bif)


def bifurcation_section(loop: LinearLoop | None, mg: Margins | None, orbits: bool,
                        deadline: float | None) -> dict[str, object]:
    """``global.bifurcation`` (:func:`crnfb.analysis.analyses.bifurcation.bifurcation`) or its reason."""
    if loop is None or mg is None:
        return {"bifurcation_reason": "not computed: no linearised loop or margins"}
    if mg.gain_margin is None or mg.critical_frequency is None:
        return {"bifurcation_reason": "not computed: no crossing (" + (mg.eps_crit_reason or "no eps_crit") + ")"}
    if loop.n_reduced > sizes.BIFURCATION_MAX_STATES:
        return {"bifurcation_reason": f"not computed: loop too large ({loop.n_reduced} states > "
                                      f"{sizes.BIFURCATION_MAX_STATES})"}
    try:
        b = bifurcation(loop, mg.gain_margin, mg.critical_frequency, orbits=orbits, deadline=deadline)
    except (SimulationError, ArithmeticError, np.linalg.LinAlgError, ValueError, RuntimeError) as e:
        return {"bifurcation_reason": f"not computed: limitation: {type(e).__name__}: {e}"}
    return {"bifurcation": b.to_dict(loop.net.model.learned_names, loop.net.eps)}


def over_budget(deadline: float, budget: float, episode_seconds: float | None) -> str | None:
    """Why a global search is not started: the time left cannot hold one learning episode (None: start)."""
    left = deadline - time.monotonic()
    need = float(episode_seconds) if episode_seconds is not None and np.isfinite(episode_seconds) else 0.0
    if left > need:
        return None
    return (f"not computed: {max(left, 0.0):.3g} s of the global searches' time budget of {budget:g} s "
            f"(--global-budget) left, and one ODE run takes about {need:.3g} s (the report's learning episode)")


def region_section(model: Model, fp: LoopFixedPoint, search: bool, checks: list[Check] | None,
                   stab: Stability | None, reasons: dict[str, str], deadline: float | None = None,
                   budget: float = GLOBAL_BUDGET, episode_seconds: float | None = None) -> dict[str, object]:
    """The region of attraction along the environment's change (:func:`crnfb.analysis.analyses.region.region_of_attraction`)
    with the linear range beside it; searched with ``search`` (as the safe factor) on loops up to
    :data:`crnfb.feedback.numerics.sizes.ROA_MAX_STATES` states that are locally stable at ``a = 0``."""
    lin = linear_range_entry(checks)
    lin_why = None if lin is not None else ("validation not run: " + reasons.get("validation", "not run")
                                            if checks is None else "the validation made no linear-range check")
    roa, why = None, None
    if not search:
        why = "not computed (validation off: --no-validate, validate=False or quick)"
    elif fp.x.size > sizes.ROA_MAX_STATES:
        why = f"not computed: loop too large ({fp.x.size} states > {sizes.ROA_MAX_STATES})"
    elif stab is not None and not stab.stable:
        why = "not computed: the loop is not locally stable at its fixed point for a = 0"
    elif deadline is not None and (why := over_budget(deadline, budget, episode_seconds)) is not None:
        pass
    else:
        try:
            roa = region_of_attraction(model, fp, deadline=deadline)
        except (ModelError, SimulationError, NoFixedPoint, ArithmeticError, np.linalg.LinAlgError) as e:
            why = f"not computed: limitation: {e}"      # the episode and the safe factor are kept
    return region_report(roa, why, lin, lin_why)


# ---------------------------------------------------------------------------------------------
# the run: timing, progress, one try/except per section
# ---------------------------------------------------------------------------------------------
class _Run:
    """Times each step, advances the progress bar and turns a section's failure into a reason."""

    def __init__(self, steps: list[str], progress: bool):
        self.bar = progress_bar(len(steps), "analysis", progress, unit="step")
        self.reasons: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def core(self, name: str, fn: Callable[..., T], *args, **kwargs) -> T:
        """A step the report cannot do without: its errors propagate."""
        t0 = self._start(name)
        try:
            return fn(*args, **kwargs)
        finally:
            self._stop(name, t0)

    def section(self, name: str, key: str, fn: Callable[..., T], *args, **kwargs) -> T | None:
        """A section that may fail: ``None`` and ``reasons[key]`` instead of an exception."""
        t0 = self._start(name)
        try:
            return fn(*args, **kwargs)
        except Unavailable as e:
            self.reasons[key] = str(e)
        except (ModelError, SimulationError) as e:      # bad input, or beyond what the solvers resolve
            self.reasons[key] = f"limitation: {e}"
        except NotImplementedError as e:
            self.reasons[key] = f"not implemented: {e}"
        except Exception as e:  # noqa: BLE001 - a section's bug must not lose the rest of the report
            msg = f"{type(e).__name__}: {e}"
            warnings.warn(f"{key} failed ({msg}); its keys are null in the report", RuntimeWarning, stacklevel=3)
            self.reasons[key] = f"failed: {msg}"
        finally:
            self._stop(name, t0)
        return None

    def _start(self, name: str) -> float:
        if self.bar is not None:
            # the step now running, and where the time went so far (docs/cli.md, meta.timings_s)
            done = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            self.bar.set_postfix_str(f"{name} | {done}" if done else name)
        return time.perf_counter()

    def _stop(self, name: str, t0: float) -> None:
        self.timings[name] = time.perf_counter() - t0
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _core(an: Analysis, run: _Run) -> tuple[StationaryPoint, LoopFixedPoint, LinearLoop, Stability]:
    """The learned and the loop's fixed points, the linearised loop and its stability, read from ``an``
    (computed there, once) and timed as the report's first three steps."""
    optimum, fp = run.core("fixed point", lambda: (an.optimum, an.fixed_point))
    loop = run.core("linearisation", lambda: an.loop)
    return optimum, fp, loop, run.core("stability", lambda: an.stability)


def registered_sections(run: _Run, ctx: Context,
                        checks: list[Check] | None) -> tuple[dict[str, object], list[Check] | None]:
    """Run the registered sections (:data:`crnfb.analysis.reporting.sections.SECTIONS`) in order, each through
    :meth:`_Run.section`: ``({key: result}, checks)`` with the checks each adds to the validation (when it
    ran). A section that does not apply to the model has its reason recorded and is neither run nor timed."""
    done: dict[str, object] = {}
    for sec in sections.SECTIONS:
        why = sec.applies(ctx.model)
        if why is not None:
            run.reasons[sec.key] = why
            continue
        result = run.section(sec.step, sec.key, sec.compute, replace(ctx, earlier=dict(done)))
        if result is None:
            continue
        done[sec.key] = result
        if checks is not None:
            checks = checks + sec.checks(result)
    return done, checks


def _steps(model: Model, validate: bool, figures: bool) -> list[str]:
    """The steps :func:`analyse` runs, in order (the progress bar's length)."""
    return (["fixed point", "linearisation", "stability", "margins", "disturbance", "learning episode"]
            + (["frequency response", "step response", "learning trajectory", "distribution"] if figures else [])
            + (["validation"] if validate else []) + ["global behaviour"]
            + [sec.step for sec in sections.SECTIONS if sec.applies(model) is None])


def analyse(model: Model | Analysis, validate: bool = True, seed: int = 0, progress: bool = False,
            quick: bool = False, figures: bool = True, noise_budget: float | None = None,
            global_budget: float | None = None, safe_factor: bool | None = None) -> Results:
    """Run the full stability analysis of ``model``.

    Parameters
    ----------
    model : Model or Analysis
        The learning problem, or its :class:`~crnfb.analysis.analyses.context.Analysis`
        (what that computed is used; what the report computes is kept in it).
    validate : bool
        Run the nonlinear-simulation checks (:mod:`crnfb.analysis.analyses.validation`).
    seed : int
        Seed for the stochastic parts (validation).
    progress : bool
        Show a progress bar on stderr (only on a terminal, never when ``CI`` is set).
    quick : bool
        Cheaper settings where a section offers them: the short validation
        and a looser integration of the thermodynamic episode (used by ``crnfb sweep``).
    figures : bool
        Also compute the data the figures draw (frequency responses, step response, learning
        trajectory, distributions); ``crnfb sweep`` turns this off.
    noise_budget : float or None
        CPU seconds the parameter-noise check's SSA runs may take
        (default :data:`crnfb.analysis.analyses.noise.NOISE_BUDGET`, 60); the check is
        made when its estimated cost fits (docs/validation.md).
    global_budget : float or None
        Wall seconds the global searches (safe factor of eps, region of
        attraction along ``a``) may take together (default
        :data:`GLOBAL_BUDGET`, 120); a search stopped by it reports the
        bracket it reached, with the reason (docs/global.md).
    safe_factor : bool or None
        Search the safe factor of eps (docs/global.md): None (default) when
        the report validates and is not ``quick``, as the region of
        attraction; True also without validation or with ``quick``
        (``crnfb sweep --safe-factor``); False never.

    Raises
    ------
    ModelError
        The model cannot be analysed (bad input).
    """
    an = model if isinstance(model, Analysis) else Analysis(model)
    model = an.model
    check_rate_scales(model)
    run = _Run(_steps(model, validate, figures), progress)
    fig: dict[str, Any] = {}     # Results' figure data by field name (frequency, step, trajectory, distribution)
    try:
        optimum, fp, loop, stab = _core(an, run)
        mg = run.section("margins", "margins", lambda: an.margins)
        dist = run.section("disturbance", "disturbance", lambda: an.disturbance)
        ep = run.section("learning episode", "episode", episode_section, model, fp, stab, quick)
        if figures:
            fig["frequency"] = run.section("frequency response", "frequency", frequency_section, loop, dist, mg)
            fig["step"] = run.section("step response", "step", step_section, model, fp, stab, dist, validate)
            fig["trajectory"] = run.section("learning trajectory", "trajectory", trajectory_section,
                                            model, optimum, fp, stab, ep)
            fig["distribution"] = run.section("distribution", "distribution", distribution_section, model, fp)
        else:
            run.reasons["frequency"] = "not computed (figures=False)"
        checks = None
        if validate:
            checks = run.section("validation", "validation", validation_section, model, loop, quick, int(seed),
                                 noise_budget)
        else:
            run.reasons["validation"] = "not run (validate=False / --no-validate)"
        full = bool(validate and not quick)
        glob = run.section("global behaviour", "global", global_section, model, fp, mg, ep,
                           full if safe_factor is None else bool(safe_factor), run.reasons, checks, stab,
                           global_budget, run.timings.get("learning episode"), full, loop)
        ctx = Context(model=model, optimum=optimum, fixed_point=fp, loop=loop, stability=stab, margins=mg,
                      disturbance=dist, episode=ep, validation=checks, global_behaviour=glob, reasons=run.reasons,
                      validate=validate, quick=quick, seed=int(seed), figures=figures)
        done, checks = registered_sections(run, ctx, checks)
    finally:
        run.close()
    return consistency_section(Results(model=model, optimum=optimum, fixed_point=fp, loop=loop, stability=stab,
                                       margins=mg, disturbance=dist, validation=checks, sections=done,
                                       reasons=run.reasons, timings=run.timings, seed=int(seed),
                                       global_behaviour=glob, **fig))


def consistency_section(res: Results) -> Results:
    """``res`` with the verdict checked against the numbers it rests on (eigenvalues, gain margin,
    ``eps_crit``, convergence; :func:`crnfb.analysis.analyses.validation.consistency_checks`). A disagreement
    is a failed validation entry, never a silent pass; without validation only disagreements are added."""
    entries = with_consistency(None if res.validation is None else [], res.to_dict())
    if not entries:
        return res
    extra = [Check(quantity=e.get("quantity", "consistency"), predicted=e.get("predicted"),
                   simulated=e.get("simulated"), rel_error=e.get("rel_error"), tolerance=e.get("tolerance"),
                   passed=e.get("passed"), details=dict(e.get("details") or {})) for e in entries]
    return replace(res, validation=list(res.validation or []) + extra)
