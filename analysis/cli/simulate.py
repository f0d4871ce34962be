"""``crnfb simulate MODEL --level {ode,ssa} --t-end T -o FILE [--rtol R] [--atol A]`` (docs/cli.md).

Writes one CSV (``time, theta_*, m_f_*, m_c_*, D, a``) atomically. Bad
arguments raise :class:`~crnfb.feedback.errors.ModelError` before anything is
computed, so the command exits 2 and writes nothing.

The ODE's tolerances default to those of every other ODE run
(:data:`crnfb.feedback.dynamics.integrate.RTOL`, ``ATOL_P`` on probabilities and
``ATOL_THETA`` on theta); ``--atol`` sets one absolute tolerance for both.
When the loop is unstable at its fixed point (``eps`` above ``eps_crit``)
a trajectory that leaves it grows from round-off and solver error, so its
details depend on the tolerances: the command says so on stderr.
"""

from __future__ import annotations

import math
import sys

from crnfb.feedback.errors import ModelError
from crnfb.feedback.io.files import check_output_file
from crnfb.feedback.dynamics.ssa import simulate_ssa


#: Most output rows of one run (1e6 rows of a few species is ~100 MB of CSV).
MAX_POINTS = 1_000_000


def _validate_args(args) -> None:
    t_end = args.t_end
    if t_end is None or not math.isfinite(t_end) or t_end <= 0:
        raise ModelError(f"--t-end must be a positive finite time, got {t_end!r}", key="--t-end")
    if args.points is None or args.points < 2 or args.points > MAX_POINTS:
        raise ModelError(f"--points must be between 2 and {MAX_POINTS}, got {args.points!r}", key="--points")
    from crnfb.analysis.cli.model_input import input_paths
    check_output_file(args.output, input_paths(args), bool(getattr(args, "force", False)))
    _validate_tolerances(args)


#: The smallest --rtol: below 100 machine epsilons no solver step can meet it (scipy raises it to that).
MIN_RTOL = 1e-13


def _validate_tolerances(args) -> None:
    rtol, atol = getattr(args, "rtol", None), getattr(args, "atol", None)
    if args.level != "ode" and (rtol is not None or atol is not None):
        flag = "--rtol" if rtol is not None else "--atol"
        raise ModelError(f"{flag} sets the ODE solver's tolerance; --level {args.level} is an exact stochastic "
                         "simulation with no tolerance: drop it or use --level ode", key=flag)
    if rtol is not None and not (math.isfinite(rtol) and MIN_RTOL <= rtol < 1):
        raise ModelError(f"--rtol must be a relative tolerance in [{MIN_RTOL:g}, 1), got {rtol!r}", key="--rtol")
    if atol is not None and not (math.isfinite(atol) and atol > 0):
        raise ModelError(f"--atol must be a positive finite absolute tolerance, got {atol!r}", key="--atol")


def _tolerances(args) -> dict:
    """Keyword arguments of :func:`crnfb.feedback.dynamics.integrate.simulate` for ``--rtol/--atol`` (defaults as
    every ODE run when absent)."""
    from crnfb.feedback.dynamics.integrate import ATOL_P, ATOL_THETA, RTOL
    rtol, atol = getattr(args, "rtol", None), getattr(args, "atol", None)
    return {"rtol": RTOL if rtol is None else float(rtol),
            "atol_p": ATOL_P if atol is None else float(atol), "atol_theta": ATOL_THETA if atol is None else float(atol)}


def _instability_warning(model, tol: dict) -> str | None:
    """The stderr line of an unstable loop (the ODE's details then depend on the tolerances), else None."""
    from numpy.linalg import LinAlgError

    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.stability import stability
    try:
        st = stability(linearise(model))
    except (ModelError, LinAlgError):   # no fixed point to judge: the run itself reports what it can
        return None
    if st.stable:
        return None
    return ("crnfb simulate: warning: the learning loop is UNSTABLE at its fixed point (fastest growth rate "
            f"{-st.slowest_rate:.3g}); a trajectory that leaves it grows from round-off and solver error, so its "
            f"details depend on the tolerances (rtol {tol['rtol']:g}, atol {tol['atol_p']:g} on probabilities, "
            f"{tol['atol_theta']:g} on theta): check with a smaller --rtol/--atol")


def _ssa_trajectory(model, args, signal):
    """The stochastic level (:func:`crnfb.feedback.dynamics.ssa.simulate_ssa`)."""
    return simulate_ssa(model, float(args.t_end), n_points=int(args.points), seed=int(args.seed),
                        a_signal=signal)   # progress bar only on a terminal


def run_simulate_command(args) -> int:
    """Entry point of ``crnfb simulate`` (args: model, level, t_end, output, seed, points, environment)."""
    from crnfb.analysis.cli.model_input import check_learned_truncation, load_cli_model
    from crnfb.feedback.model.signals import parse_signal
    from crnfb.feedback.dynamics.integrate import simulate

    _validate_args(args)
    try:
        signal = parse_signal(args.environment, t_end=float(args.t_end), seed=int(args.seed))
    except ValueError as e:  # the library's message, located at the flag that carried the text
        raise ModelError(str(e), key="--environment") from None
    model = load_cli_model(args)
    check_learned_truncation(model, source=args.model)   # the one truncation policy (docs/cli.md)
    if model.change_table is None and signal.bounds() != (0.0, 0.0):
        raise ModelError(f"--environment {args.environment!r} changes the mixing weight a, but the model has no "
                         "[environment.change] (Q_2); add one or use --environment constant",
                         key="--environment", file=args.model)
    if args.level == "ode":
        tol = _tolerances(args)
        warning = _instability_warning(model, tol)
        if warning:
            print(warning, file=sys.stderr)
        traj = simulate(model, float(args.t_end), signal, int(args.points), **tol)
    elif args.level == "ssa":
        traj = _ssa_trajectory(model, args, signal)
    else:
        raise ModelError(f"unknown level {args.level!r}; use ode or ssa", key="--level")
    from crnfb.analysis.cli.model_input import input_paths
    path = traj.to_csv(args.output, overwrite=bool(getattr(args, "force", False)), inputs=input_paths(args))
    meta = getattr(traj, "metadata", {}) or {}
    extra = f", {meta['steps']} steps in {meta['wall_time']:.2f} s" if "steps" in meta else ""
    print(f"wrote {len(traj.t)} rows ({args.level}, t = 0..{args.t_end:g}{extra}) to {path}", file=sys.stderr)
    return 0


__all__ = ["run_simulate_command"]
