"""Benchmark: scaling of a full report (no figures) with the state count.

Run::

    python benchmarks/bench_report.py            # E1, dynamic clamping, n_max 25 .. 400
    python benchmarks/bench_report.py --quick    # n_max 25 .. 100

Sets ``OPENBLAS_NUM_THREADS=1`` before NumPy is imported (stable timings on a
shared 2-core machine). Times :func:`crnfb.analysis.pipeline.analyse` without
validation and without figures (fixed point, linearisation, stability,
margins, disturbance, thermodynamics) on E1 (``examples/birth_death.toml``)
with dynamic clamping as the truncation grows, prints a table, writes
``benchmarks/results/report.csv`` and the scaling exponent (least-squares
slope of log time vs log loop states).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "report.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from crnfb.analysis import analyse
    from crnfb.feedback.modelfile import load_model

    base = load_model(ROOT / "examples" / "birth_death.toml").with_learning(clamping="dynamic")
    sizes = [25, 50, 100] if args.quick else [25, 50, 100, 200, 400]
    rows = []
    print("bench_report: OPENBLAS_NUM_THREADS=1; analyse(validate=False, figures=False), E1 dynamic clamping")
    print(f"{'n_max':>6} {'states':>7} {'seconds':>8} {'cpu s':>8}")
    for n in sizes:
        model = base.replace(n_max=n)
        t0, c0 = time.perf_counter(), time.process_time()
        res = analyse(model, validate=False, figures=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        states = res.to_dict()["closed_loop"].get("reduced_states")
        rows.append({"n_max": n, "states": states, "seconds": wall, "cpu_seconds": cpu})
        print(f"{n:>6} {states:>7} {wall:>8.2f} {cpu:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    big = [r for r in rows if r["states"] >= 200] or rows  # the first, smallest run pays import/JIT warm-up
    x = np.log([r["states"] for r in big])
    y = np.log([r["cpu_seconds"] for r in big])
    slope = np.polyfit(x, y, 1)[0] if len(big) > 1 else float("nan")
    print(f"scaling exponent (CPU time vs loop states, rows with >= 200 states): {slope:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
