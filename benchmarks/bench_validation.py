"""Benchmark: the validation checks of each model, with their wall-clock seconds (docs/validation.md).

Run::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_validation.py examples/birth_death.toml [--quick]

Prints the checks' table and the seconds each took; exit 1 when a check fails.
Formerly ``python -m crnfb.analysis.analyses.validation`` (issue 11: no command lines in library modules).
"""

from __future__ import annotations

import time

from crnfb.analysis.analyses.validation import table, validate


def main(argv=None) -> int:
    import argparse

    from crnfb.feedback.io.modelfile import load_model
    p = argparse.ArgumentParser(description="validate the linear analysis against the nonlinear ODE")
    p.add_argument("models", nargs="+")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    bad = 0
    for path in args.models:
        t0 = time.perf_counter()
        checks = validate(load_model(path), quick=args.quick)
        print(f"== {path}  ({time.perf_counter() - t0:.1f} s)")
        print(table(checks))
        print("seconds: " + ", ".join(f"{c.quantity.split(':')[0][:24]} {c.details.get('seconds', 0):.1f}"
                                     for c in checks))
        bad += sum(not c.passed for c in checks)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
