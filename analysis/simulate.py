"""``crnfb simulate MODEL --level {ode,ssa} --t-end T -o FILE`` (docs/cli.md).

Writes one CSV (``time, theta_*, m_f_*, m_c_*, D, a``) atomically. Bad
arguments raise :class:`~crnfb.feedback.errors.ModelError` before anything is
computed, so the command exits 2 and writes nothing.
"""

from __future__ import annotations

import math
import sys

from crnfb.feedback.errors import ModelError
from crnfb.feedback.files import check_output_file
from crnfb.feedback.ssa import simulate_ssa


#: Most output rows of one run (1e6 rows of a few species is ~100 MB of CSV).
MAX_POINTS = 1_000_000


def _validate_args(args) -> None:
    t_end = args.t_end
    if t_end is None or not math.isfinite(t_end) or t_end <= 0:
        raise ModelError(f"--t-end must be a positive finite time, got {t_end!r}", key="--t-end")
    if args.points is None or args.points < 2 or args.points > MAX_POINTS:
        raise ModelError(f"--points must be between 2 and {MAX_POINTS}, got {args.points!r}", key="--points")
    from crnfb.analysis.model_input import input_paths
    check_output_file(args.output, input_paths(args), bool(getattr(args, "force", False)))


def _ssa_trajectory(model, args, signal):
    """The stochastic level (:func:`crnfb.feedback.ssa.simulate_ssa`)."""
    return simulate_ssa(model, float(args.t_end), n_points=int(args.points), seed=int(args.seed),
                        a_signal=signal)   # progress bar only on a terminal


def run_simulate_command(args) -> int:
    """Entry point of ``crnfb simulate`` (args: model, level, t_end, output, seed, points, environment)."""
    from crnfb.analysis.model_input import check_learned_truncation, load_cli_model
    from crnfb.feedback.signals import parse_signal
    from crnfb.feedback.simulate import simulate

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
        traj = simulate(model, float(args.t_end), signal, int(args.points))
    elif args.level == "ssa":
        traj = _ssa_trajectory(model, args, signal)
    else:
        raise ModelError(f"unknown level {args.level!r}; use ode or ssa", key="--level")
    from crnfb.analysis.model_input import input_paths
    path = traj.to_csv(args.output, overwrite=bool(getattr(args, "force", False)), inputs=input_paths(args))
    meta = getattr(traj, "metadata", {}) or {}
    extra = f", {meta['steps']} steps in {meta['wall_time']:.2f} s" if "steps" in meta else ""
    print(f"wrote {len(traj.t)} rows ({args.level}, t = 0..{args.t_end:g}{extra}) to {path}", file=sys.stderr)
    return 0


__all__ = ["run_simulate_command"]
