"""Measure the LNA prediction of the parameter noise against the SSA (docs/stochastic.md tables).

Run::

    python benchmarks/noise_check.py examples/birth_death.toml --seed 0

Prints JSON (the LNA prediction and its checks); exit 1 when a check fails.
Formerly ``python -m crnfb.analysis.analyses.noise`` (issue 11: no command lines in library modules).
"""

from __future__ import annotations

from crnfb.analysis.analyses.noise import parameter_noise, validate_noise


def main(argv=None) -> int:
    """``python benchmarks/noise_check.py MODEL [...]``: LNA prediction and its SSA check (JSON on stdout).

    Exit 0 when every check passed, 1 otherwise, 2 on bad input.
    """
    import argparse
    import json
    import sys

    from crnfb.feedback.errors import ModelError
    from crnfb.feedback.model.model import Ensembles
    from crnfb.feedback.io.modelfile import load_model

    p = argparse.ArgumentParser(prog="python benchmarks/noise_check.py", description=main.__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--replicates", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clamping", choices=("dynamic", "equilibrium"), default=None)
    p.add_argument("--free", type=int, default=None, help="M_f (default: the file's [ensembles])")
    p.add_argument("--clamped", type=int, default=None, help="M_c")
    p.add_argument("--omega", type=float, default=None, help="Omega")
    p.add_argument("--eps", type=float, default=None, help="one learning rate for every learned species")
    p.add_argument("--budget", type=float, default=60.0, help="CPU seconds the SSA runs may take")
    args = p.parse_args(argv)
    try:
        model = load_model(args.model)
        ens = model.ensembles
        model = model.replace(ensembles=Ensembles(args.free or ens.free, args.clamped or ens.clamped,
                                                  args.omega or ens.omega))
        if args.eps is not None:
            model = model.with_learning(eps=args.eps)
    except (ModelError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pred = parameter_noise(model, args.clamping)
    checks = validate_noise(model, args.replicates, args.seed, clamping=args.clamping, budget=args.budget,
                            prediction=pred)
    print(json.dumps({"lna": pred.to_dict(model.learned_names), "validation": checks}, indent=2))
    return 0 if checks and all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
