"""The ``crnfb`` command line (docs/cli.md).

Exit codes (docs/cli.md, "Exit codes"): 0 success; 1 a verdict: the loop is
unstable, learning from the file's energies does not converge (``report``),
a validation check failed or no converged fixed point was found
(outputs still written); 2 bad input (one message on stderr naming file,
key and what would be right; nothing written); 3 internal error (one line;
the traceback with ``--debug``); 130 / 143 interrupted by SIGINT / SIGTERM
(temporary files removed, nothing half-written). Each subcommand lives in
the module that does its work; this file only parses arguments and maps
errors to exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import traceback
import warnings

from threadpoolctl import threadpool_limits

from crnfb.analysis.linear.fixedpoints import NoFixedPoint
from crnfb.feedback.errors import ModelError
from crnfb.feedback.io.files import OutputError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that every ``finally`` and cleanup runs."""


class UsageError(ModelError):
    """Bad command-line arguments (exit 2)."""


def _load(args):
    """The model argument: a model file, or SBML/Antimony with --visible and --environment-file."""
    from crnfb.analysis.cli.model_input import load_cli_model
    return load_cli_model(args)


def _load_input(args):
    """:class:`~crnfb.analysis.cli.model_input.ModelInput` of the model argument (with the SBML unit rule)."""
    from crnfb.analysis.cli.model_input import model_input
    return model_input(args)


# -- check / fit ---------------------------------------------------------------------------
def cmd_check(args) -> int:
    from crnfb.analysis.cli.model_input import check_learned_truncation
    inp = _load_input(args)
    model = inp.model
    check_learned_truncation(model, source=args.model)   # the one truncation policy (docs/cli.md)
    info = model.describe()
    if inp.units is not None:
        info["units"] = inp.units
    if args.json:
        keys = ("species", "visible", "hidden", "conservation_laws", "state_count", "truncation_mass",
                "detailed_balance")
        out = {k: info[k] for k in keys}
        out.update({k: v for k, v in info.items() if k not in keys})
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"model            {info['name']}  ({args.model})")
    if inp.units is not None:
        print(f"units            {inp.units}")
    print(f"species          {', '.join(info['species'])}")
    print(f"visible          {', '.join(info['visible']) or '-'}")
    print(f"hidden           {', '.join(info['hidden']) or '-'}")
    print(f"learned          {', '.join(info['learned'])}")
    print("reactions")
    for r in info["reactions"]:
        print(f"  {r}")
    laws = info["conservation_laws"]
    names = info["species"]
    print("conservation laws" + ("  none" if not laws else ""))
    for row in laws:
        print("  " + " + ".join(f"{c}*{n}" if c != 1 else n for c, n in zip(row, names) if c) + " = const")
    print(f"class size       {info['state_count']} states")
    where = "the initial energies" if model.start_note is None else "the flow's starting point"
    print(f"truncation mass  {info['truncation_mass']:.3g} (at {where})")
    if model.start_note:
        print(f"note             {model.start_note}")
    print(f"environment tail {info['environment_tail_mass']:.3g}")
    print(f"detailed balance holds (residual {info['detailed_balance_residual']:.2g} kT)")
    bad = model.space.hidden_disconnected()
    if bad and model.learning.clamping == "dynamic":
        print(f"warning: hidden-only reactions do not connect the hidden states for v = {bad[:5]}; "
              "dynamic clamping cannot reach pi(h|v) there", file=sys.stderr)
    return EXIT_OK


def cmd_fit(args) -> int:
    from crnfb.analysis.linear.fixedpoints import (learned_fixed_point, plateaus_at_infinity, quasi_static_rates,
                                                   stationary_points)
    from crnfb.analysis.cli.model_input import check_learned_truncation
    from crnfb.analysis.reporting.summary import fmt, fmt_residual
    model = _load(args)
    if args.starts < 0:
        raise UsageError("--starts must be >= 0")
    pts = stationary_points(model, starts=args.starts) if args.starts else [learned_fixed_point(model)]
    # docs/theory.md §1: dropped mass above the tolerance is an error, at the learned point too
    check_learned_truncation(model, pts[0].theta, source=args.model)
    names = model.learned_names
    rows = []
    for p in pts:
        d = p.to_dict(names)
        d["rates"] = [float(x) for x in quasi_static_rates(model, p.theta)]
        d["truncation_mass"] = float(model.space.truncation_mass(model.full_theta(p.theta)))
        rows.append(d)
    plateaus = [p.to_dict(names) for p in plateaus_at_infinity(model, pts)]
    rows = [r for i, (r, p) in enumerate(zip(rows, pts)) if i == 0 or not p.plateau]
    if args.json:
        print(json.dumps(finite_json({"fixed_points": rows, "plateaus": plateaus, "start_note": model.start_note}),
                         indent=2, allow_nan=False))
    else:
        if model.start_note:
            print(f"note: {model.start_note}")
        for i, d in enumerate(rows):
            head = "learned fixed point (from the file's energies)" if i == 0 else f"stationary point {i}"
            print(f"{head}: {d['kind']}{'' if d['converged'] else ' (NOT converged)'}")
            for n, v in d["theta"].items():
                print(f"  theta_{n:<10s} {v: .6f}")
            print(f"  D(Q||P)          {fmt(d['divergence'], '.6g')} nats")
            print(f"  |grad D|         {fmt_residual(d['gradient_norm'])}")
            print(f"  Hessian eigs     {', '.join(f'{x:.4g}' for x in d['hessian_eigenvalues'])}")
            print(f"  rates eps*eig    {', '.join(f'{x:.4g}' for x in d['rates'])}")
            print(f"  truncation mass  {d['truncation_mass']:.3g}")
        for d in plateaus:
            at = ", ".join(f"theta_{n} = {v:.4g}" for n, v in d["theta"].items())
            print(f"plateau at infinity, not a stationary point (at {at}): {d['note']}")
    if not rows[0]["converged"]:
        print(f"crnfb fit: no converged fixed point: {rows[0]['note']} (exit 1)", file=sys.stderr)
    return EXIT_OK if rows[0]["converged"] else EXIT_FAIL


def finite_json(obj):
    """``obj`` with every non-finite float replaced by None (strict JSON, docs/cli.md)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


# -- the others live in their own modules ----------------------------------------------------
def cmd_report(args) -> int:
    from crnfb.analysis.cli.report import run_report_command
    return run_report_command(args)


def cmd_simulate(args) -> int:
    from crnfb.analysis.cli.simulate import run_simulate_command
    return run_simulate_command(args)


def cmd_sweep(args) -> int:
    from crnfb.analysis.cli.sweep import run_sweep_command
    return run_sweep_command(args)


def cmd_export(args) -> int:
    from crnfb.analysis.cli.sbml_commands import run_export_command
    return run_export_command(args)


def cmd_convert(args) -> int:
    from crnfb.analysis.cli.sbml_commands import run_convert_command
    return run_convert_command(args)


def _report_parser(sub) -> argparse.ArgumentParser:
    from crnfb.analysis.cli.model_input import add_model_options

    r = sub.add_parser("report", help="the full stability report (JSON, Markdown, HTML, figures)")
    add_model_options(r)
    r.add_argument("-o", "--output", required=True, help="output directory")
    r.add_argument("--no-validate", action="store_true", help="skip the nonlinear-simulation checks")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--noise-budget", type=float, default=None, metavar="SECONDS",
                   help="CPU seconds the parameter-noise check's SSA runs may take (default 60); "
                        "the check is made when its estimated cost fits")
    r.add_argument("--global-budget", type=float, default=None, metavar="SECONDS",
                   help="wall seconds the global searches (safe factor of eps, region of attraction) may "
                        "take together (default 120); a search it stops reports the bracket it reached")
    r.set_defaults(func=cmd_report)
    return r


def _sweep_parser(sub) -> argparse.ArgumentParser:
    """``crnfb sweep``'s options (docs/cli.md)."""
    from crnfb.analysis.cli.model_input import add_model_options

    w = sub.add_parser("sweep", help="parameter sweeps of the report's scalar results")
    add_model_options(w)
    w.add_argument("--param", action="append", required=True,
                   help="NAME=START:STOP:N[:log10|lin], e.g. eps=0.01:1:20:log10 (repeatable)")
    w.add_argument("-o", "--output", required=True)
    w.add_argument("--workers", type=int, default=None)
    w.add_argument("--scheduler", default=None, help="Dask scheduler address (optional)")
    w.add_argument("--max-points", type=int, default=None,
                   help="run grids larger than 10000 points (the default limit) up to this many")
    w.add_argument("--safe-factor", action="store_true",
                   help="also search the safe factor of eps at every point (columns safe_factor, "
                        "safe_factor_reason; nonlinear runs, docs/global.md)")
    w.add_argument("--global-budget", type=float, default=None, metavar="SECONDS",
                   help="wall seconds the --safe-factor search may take per point (default 120); a search it "
                        "stops reports the bracket's converging end, with the reason")
    w.set_defaults(func=cmd_sweep)
    return w


def build_parser() -> argparse.ArgumentParser:
    from crnfb.analysis.cli.model_input import add_model_options, add_unit_options

    p = argparse.ArgumentParser(prog="crnfb", description="Control-theory analysis of learning chemical "
                                "reaction networks (the learning CRN as an integral feedback loop).",
                                epilog="exit codes: 0 done, 1 verdict (unstable, learning does not converge, "
                                "failed check, no converged fixed point), 2 bad input, 3 internal error, 130/143 interrupted")
    p.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="parse, verify detailed balance, print the network summary")
    add_model_options(c)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fit", help="the quasi-static learning problem: learned fixed point(s)")
    add_model_options(f)
    f.add_argument("--starts", type=int, default=0, help="random starts for the search of stationary points")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fit)

    r = _report_parser(sub)

    s = sub.add_parser("simulate", help="a trajectory of the learning network (CSV)")
    add_model_options(s)
    s.add_argument("--level", choices=("ode", "ssa"), default="ode")
    s.add_argument("--t-end", type=float, required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--points", type=int, default=501, help="output time points")
    s.add_argument("--environment", default="constant",
                   help="constant | step:A[,T0] (T0 defaults to t_end/2) | sine:A0,A1,OMEGA | telegraph:RATE "
                        "(mixing weight a(t) of [environment.change])")
    s.add_argument("--rtol", type=float, default=None,
                   help="ODE relative tolerance (default 1e-7, as every ODE run)")
    s.add_argument("--atol", type=float, default=None,
                   help="ODE absolute tolerance on probabilities and theta (default 1e-10 and 1e-9)")
    s.set_defaults(func=cmd_simulate)

    w = _sweep_parser(sub)

    e = sub.add_parser("export", help="SBML of the model network or the learning network")
    add_model_options(e)
    e.add_argument("--sbml", required=True, help="output SBML file")
    e.add_argument("--learning", action="store_true", help="the whole learning network (ensemble level)")
    e.add_argument("--copies", action="store_true",
                   help="copy counts of [ensembles] with copy-conserving resets (exact stochastic semantics)")
    e.add_argument("--speedup", type=float, default=None,
                   help="equilibrium clamping: export dynamic clamping with the clamped hidden reactions this many "
                        "times faster, and print the deviation of fixed point and eps_crit")
    e.add_argument("--prune", type=float, default=0.0,
                   help="leave out copy states with start probability below this (dropped mass printed)")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("convert", help="an SBML or Antimony model into a model file (environment as a template)")
    v.add_argument("model", help="SBML (.xml) or Antimony (.ant) file")
    v.add_argument("-o", "--output", required=True, help="the model file to write (.toml)")
    v.add_argument("--visible", required=True, help="visible species, comma-separated: X[,Y]")
    v.add_argument("--learn", default=None, help="learned species, comma-separated (default: all)")
    add_unit_options(v)
    v.set_defaults(func=cmd_convert)
    for sp, what in ((r, "write into an output directory holding files crnfb did not write (they are kept)"),
                     (s, "replace an existing output file"), (w, "start afresh in an output directory that "
                                                             "holds no sweep of this model and grid"),
                     (e, "replace an existing SBML file"), (v, "replace an existing model file")):
        sp.add_argument("--force", action="store_true", help=what + "; never an input of the command")
    for sp in (c, f, r, s, w, e, v):  # accepted after the subcommand too; SUPPRESS keeps a top-level --debug
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an internal error")
    return p


def _on_sigterm(signum, frame):
    raise Terminated()


def _error(args, e: ModelError) -> int:
    from crnfb.analysis.cli.model_input import locate_error
    e = locate_error(args, e)
    if not e.file and not isinstance(e, (UsageError, OutputError)) and getattr(args, "model", None):
        e = e.located(args.model)  # errors raised after loading still name the file
    print(f"crnfb {args.command}: error: {e}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args) -> int:
    """Run one parsed command and map every outcome to an exit code."""
    try:
        seed = getattr(args, "seed", 0)
        if seed is not None and not 0 <= seed < 2**63:
            raise UsageError(f"--seed must be a whole number in [0, 2**63), got {seed}")
        with warnings.catch_warnings():
            # numpy/scipy RuntimeWarnings are conditions the library handles or reports in its notes
            warnings.simplefilter("ignore", RuntimeWarning)
            return int(args.func(args))
    except ModelError as e:
        return _error(args, e)
    except NoFixedPoint as e:
        print(f"crnfb {args.command}: no converged fixed point from the file's energies: {e} (exit 1)",
              file=sys.stderr)
        return EXIT_FAIL
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        print(f"crnfb {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"crnfb {args.command}: interrupted (SIGINT); temporary files removed", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print(f"crnfb {args.command}: terminated (SIGTERM); temporary files removed", file=sys.stderr)
        return EXIT_SIGTERM
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing more to say
        return EXIT_OK
    except (RecursionError, MemoryError) as e:
        # e.g. thousands of nested TOML arrays: the input is the problem, not the code
        print(f"crnfb {args.command}: error: input too deeply nested or too large ({type(e).__name__})",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the one place that turns a bug into exit 3
        if getattr(args, "debug", False):
            traceback.print_exc()
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"crnfb {args.command}: internal error: {type(e).__name__}: {first[:300]} "
              "(exit 3; rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


#: Variables by which a user chooses the BLAS/OpenMP thread count (any of them set: the command leaves it).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


@contextlib.contextmanager
def blas_threads():
    """One BLAS thread while a command runs, unless the user set a thread count (:data:`THREAD_VARIABLES`).

    The loop's dense algebra is on matrices of tens to hundreds of rows, and the parallel parts run as
    processes: threaded BLAS only oversubscribes the cores. On the 2-core host with load 9, a
    203 x 203 ``numpy.linalg.solve`` took 0.42 s with OpenBLAS's 2 threads against 1.7 ms with one,
    and the fixed point of a 205-parameter network 135 s (docs/decisions.md, "One BLAS thread").
    The variables are set too (and restored after), so worker processes start with one thread.
    """
    if any(v in os.environ for v in THREAD_VARIABLES):
        yield
        return
    os.environ.update({v: "1" for v in THREAD_VARIABLES})
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        for v in THREAD_VARIABLES:
            os.environ.pop(v, None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage already
        return int(e.code or 0)
    with blas_threads():
        return _run_with_handlers(args)


def _run_with_handlers(args) -> int:
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an embedding application): leave its handlers alone
        return run(args)
    try:
        return run(args)
    except KeyboardInterrupt:   # a second signal while the first was being reported: no traceback
        return EXIT_SIGINT
    except Terminated:
        return EXIT_SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
