"""Benchmark: enumeration of a state class (breadth-first search) against its size.

Run::

    python benchmarks/bench_statespace.py            # 0 <-> X, n_max 2000 .. 32000
    python benchmarks/bench_statespace.py --quick    # n_max 2000 .. 8000

Best of 2 wall-clock times of :class:`crnfb.feedback.statespace.StateSpace`
for the one-species chain ``0 <-> X``; prints a table, writes
``benchmarks/results/statespace.csv`` and the scaling exponent (slope of log
time vs log states; 1 for the linear search, 2 for the quadratic one that
took 30 s for 20001 states before it was fixed). This was a timed test in
tests/test_network.py; timings belong here (issue 11).
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
RESULTS = ROOT / "benchmarks" / "results" / "statespace.csv"


def best_time(net, n: int, repeats: int = 2) -> float:
    from crnfb.feedback.statespace import StateSpace

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sp = StateSpace(net, [0], n_max=n)
        times.append(time.perf_counter() - t)
        assert sp.size == n + 1
    return min(times)


def main() -> None:
    from crnfb.feedback.network import Network

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    sizes = [2000, 4000, 8000] if args.quick else [2000, 4000, 8000, 16000, 32000]
    rows = []
    print(f"{'n_max':>6} {'states':>7} {'seconds':>9}")
    for n in sizes:
        s = best_time(net, n)
        rows.append({"n_max": n, "states": n + 1, "seconds": s})
        print(f"{n:>6} {n + 1:>7} {s:>9.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    slope = np.polyfit(np.log([r["states"] for r in rows]), np.log([r["seconds"] for r in rows]), 1)[0]
    print(f"scaling exponent (time vs states): {slope:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
