"""The ``crnfb`` command line (docs/cli.md).

Exit codes: 0 success; 1 the analysis found the loop unstable or a
validation check failed (outputs still written); 2 bad input (message on
stderr, nothing written). Each subcommand lives in the module that does its
work; this file only parses arguments and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import json
import sys

from crnfb.feedback.errors import ModelError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(ModelError):
    """Bad command-line arguments (exit 2)."""


def _load(path: str):
    from crnfb.feedback.modelfile import load_model
    return load_model(path)


# -- check / fit ---------------------------------------------------------------------------
def cmd_check(args) -> int:
    model = _load(args.model)
    info = model.summary()
    if args.json:
        keys = ("species", "visible", "hidden", "conservation_laws", "state_count", "truncation_mass",
                "detailed_balance")
        out = {k: info[k] for k in keys}
        out.update({k: v for k, v in info.items() if k not in keys})
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"model            {info['name']}  ({args.model})")
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
    print(f"truncation mass  {info['truncation_mass']:.3g} (at the initial energies)")
    print(f"environment tail {info['environment_tail_mass']:.3g}")
    print(f"detailed balance holds (residual {info['detailed_balance_residual']:.2g} kT)")
    bad = model.space.hidden_disconnected()
    if bad and model.learning.clamping == "dynamic":
        print(f"warning: hidden-only reactions do not connect the hidden states for v = {bad[:5]}; "
              "dynamic clamping cannot reach pi(h|v) there", file=sys.stderr)
    return EXIT_OK


def cmd_fit(args) -> int:
    from crnfb.analysis.fixedpoints import quasi_static_rates, stationary_points, learned_fixed_point
    model = _load(args.model)
    if args.starts < 0:
        raise UsageError("--starts must be >= 0")
    pts = stationary_points(model, starts=args.starts) if args.starts else [learned_fixed_point(model)]
    # docs/theory.md §1: dropped mass above the tolerance is an error, at the learned point too
    model.space.check_truncation(model.full_theta(pts[0].theta), model.truncation_tol,
                                 "at the learned fixed point ")
    names = model.learned_names
    rows = []
    for p in pts:
        d = p.to_dict(names)
        d["rates"] = [float(x) for x in quasi_static_rates(model, p.theta)]
        d["truncation_mass"] = float(model.space.truncation_mass(model.full_theta(p.theta)))
        rows.append(d)
    if args.json:
        print(json.dumps({"fixed_points": rows}, indent=2))
    else:
        for i, d in enumerate(rows):
            head = "learned fixed point (from the file's energies)" if i == 0 else f"stationary point {i}"
            print(f"{head}: {d['kind']}{'' if d['converged'] else ' (NOT converged)'}")
            for n, v in d["theta"].items():
                print(f"  theta_{n:<10s} {v: .6f}")
            print(f"  D(Q||P)          {d['divergence']:.6g} nats")
            print(f"  |grad D|         {d['gradient_norm']:.3g}")
            print(f"  Hessian eigs     {', '.join(f'{x:.4g}' for x in d['hessian_eigenvalues'])}")
            print(f"  rates eps*eig    {', '.join(f'{x:.4g}' for x in d['rates'])}")
            print(f"  truncation mass  {d['truncation_mass']:.3g}")
    return EXIT_OK if rows[0]["converged"] else EXIT_FAIL


# -- the others live in their own modules ----------------------------------------------------
def cmd_report(args) -> int:
    from crnfb.analysis.report import run_report_command
    return run_report_command(args)


def cmd_simulate(args) -> int:
    from crnfb.analysis.simulate import run_simulate_command
    return run_simulate_command(args)


def cmd_sweep(args) -> int:
    from crnfb.analysis.sweep import run_sweep_command
    return run_sweep_command(args)


def cmd_export(args) -> int:
    from crnfb.analysis.sbml_commands import run_export_command
    return run_export_command(args)


def cmd_convert(args) -> int:
    from crnfb.analysis.sbml_commands import run_convert_command
    return run_convert_command(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crnfb", description="Control-theory analysis of learning chemical "
                                "reaction networks (the learning CRN as an integral feedback loop).")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="parse, verify detailed balance, print the network summary")
    c.add_argument("model")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fit", help="the quasi-static learning problem: learned fixed point(s)")
    f.add_argument("model")
    f.add_argument("--starts", type=int, default=0, help="random starts for the search of stationary points")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fit)

    r = sub.add_parser("report", help="the full stability report (JSON, Markdown, HTML, figures)")
    r.add_argument("model")
    r.add_argument("-o", "--output", required=True, help="output directory")
    r.add_argument("--no-validate", action="store_true", help="skip the nonlinear-simulation checks")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_report)

    s = sub.add_parser("simulate", help="a trajectory of the learning network (CSV)")
    s.add_argument("model")
    s.add_argument("--level", choices=("ode", "ssa"), default="ode")
    s.add_argument("--t-end", type=float, required=True)
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--points", type=int, default=501, help="output time points")
    s.add_argument("--environment", default="constant",
                   help="constant | step:A[,T0] (T0 defaults to t_end/2) | sine:A0,A1,OMEGA | telegraph:RATE "
                        "(mixing weight a(t) of [environment.change])")
    s.set_defaults(func=cmd_simulate)

    w = sub.add_parser("sweep", help="parameter sweeps of the report's scalar results")
    w.add_argument("model")
    w.add_argument("--param", action="append", required=True,
                   help="NAME=START:STOP:N[:log10|lin], e.g. eps=0.01:1:20:log10 (repeatable)")
    w.add_argument("-o", "--output", required=True)
    w.add_argument("--workers", type=int, default=None)
    w.add_argument("--scheduler", default=None, help="Dask scheduler address (optional)")
    w.set_defaults(func=cmd_sweep)

    e = sub.add_parser("export", help="SBML of the model network or the learning network")
    e.add_argument("model")
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
    v.set_defaults(func=cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage already
        return int(e.code or 0)
    try:
        return int(args.func(args))
    except ModelError as e:
        if not e.file and not isinstance(e, UsageError) and getattr(args, "model", None):
            e = e.located(args.model)  # errors raised after loading still name the file
        print(f"crnfb {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as e:
        print(f"crnfb {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
