"""Benchmark: enumeration of a state class against its size, from 1 to 1,000 species.

Run::

    python benchmarks/bench_statespace.py            # every series below
    python benchmarks/bench_statespace.py --quick    # the smaller half of each series

Two families, timed as :class:`crnfb.feedback.model.statespace.StateSpace` (the
class enumerated, sorted and indexed) and then :attr:`StateSpace.edges` (every
jump of every state, which the generators are built from):

- ``chain``: the one-species chain ``0 <-> X`` with ``n_max`` 2000..32000
  (one breadth-first level per state; the box is enumerated whole).
- ``tokens``: tokens walking on reaction graphs (``examples/token_walk.py``)
  with 40, 100 and 1,000 species and classes of 40 to about 10^5 states. Their
  boxes have ``3^40`` to ``2^1000`` points: before issue 21 the state space
  refused every box above ``2^62``, i.e. all of these but none of the chains.

Wall time is the best of ``--repeats`` runs (default 2); peak memory is
``tracemalloc``'s peak over one run (NumPy's allocations included), next to the
size of the ``states`` array itself (states x species x 8 bytes). Prints a
table, writes ``benchmarks/results/statespace.csv`` and the scaling exponents
of each series with the same number of species (least-squares slope of log
time, and of log peak memory, against log states, over rows with at least 500
states).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "statespace.csv"

CHAINS = [2000, 4000, 8000, 16000, 32000]
# (label, groups): groups of (species, tokens) as in examples/token_walk.py
TOKENS = [
    ("40x1", [(40, 1)]), ("40x2", [(40, 2)]), ("40x3", [(40, 3)]), ("40x4", [(40, 4)]),
    ("100x1", [(100, 1)]), ("100x2", [(100, 2)]), ("100x3", [(100, 3)]),
    ("1000x1", [(1000, 1)]), ("1000:10+990", [(10, 1), (990, 1)]),
    ("1000:30+970", [(30, 1), (970, 1)]), ("1000:113+887", [(113, 1), (887, 1)]),
]
QUICK_TOKENS = {"40x1", "40x2", "40x3", "100x1", "100x2", "1000x1", "1000:10+990"}


def _token_walk():
    spec = importlib.util.spec_from_file_location("token_walk", ROOT / "examples" / "token_walk.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(build, expected: int, repeats: int) -> dict:
    """Best wall time of the enumeration and of the edges, and tracemalloc's peak over one run."""
    t_enum, t_edges = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        sp = build()
        t_enum.append(time.perf_counter() - t)
        t = time.perf_counter()
        n_edges = sum(e.src.size for e in sp.edges)
        t_edges.append(time.perf_counter() - t)
        assert sp.size == expected, (sp.size, expected)
        states_mb = sp.states.nbytes / 2**20
        del sp
    tracemalloc.start()
    sp = build()
    _ = sp.edges
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"seconds": min(t_enum), "edges_seconds": min(t_edges), "jumps": n_edges,
            "peak_mib": peak, "states_mib": states_mb, "key_words": sp.keys.n_words}


def rows_for(args) -> list[dict]:
    from crnfb.feedback.model.network import Network
    from crnfb.feedback.model.statespace import StateSpace

    tw = _token_walk()
    out = []
    chain = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    for n in (CHAINS[:3] if args.quick else CHAINS):
        r = measure(lambda: StateSpace(chain, [0], n_max=n), n + 1, args.repeats)
        out.append({"family": "chain", "case": f"n_max {n}", "species": 1, "states": n + 1,
                    "box_log2": float(np.log2(n + 1)), **r})
        _print(out[-1])
    for label, groups in TOKENS:
        if args.quick and label not in QUICK_TOKENS:
            continue
        species, eqs, initial = tw.token_walk(groups)
        net = Network.from_equations(species, eqs)
        n0 = np.array([initial.get(s, 0) for s in net.names])
        r = measure(lambda: StateSpace(net, n0), tw.class_size(groups), args.repeats)
        box = sum(n * np.log2(k + 1) for n, k in groups)
        out.append({"family": "tokens", "case": label, "species": net.n_species,
                    "states": tw.class_size(groups), "box_log2": float(box), **r})
        _print(out[-1])
    return out


def _print(r: dict) -> None:
    if r is None:
        print(f"{'family':>6} {'case':>13} {'species':>7} {'states':>7} {'box':>8} {'words':>5} "
              f"{'enum s':>8} {'edges s':>8} {'peak MiB':>9} {'states MiB':>10}")
        return
    print(f"{r['family']:>6} {r['case']:>13} {r['species']:>7} {r['states']:>7} "
          f"{'2^%.0f' % r['box_log2']:>8} {r['key_words']:>5} {r['seconds']:>8.3f} "
          f"{r['edges_seconds']:>8.3f} {r['peak_mib']:>9.1f} {r['states_mib']:>10.1f}", flush=True)


def _series(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows with at least 500 states by family and species count (a series needs two rows)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r["states"] >= 500:
            out.setdefault(f"{r['family']} {r['species']} species", []).append(r)
    return {k: v for k, v in out.items() if len(v) >= 2}


def slope(rows: list[dict], col: str) -> float:
    """Least-squares slope of log ``col`` against log states."""
    return float(np.polyfit(np.log([r["states"] for r in rows]), np.log([r[col] for r in rows]), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    _print(None)
    rows = rows_for(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for key, sel in _series(rows).items():
        print(f"{key}: scaling exponent (log-log slope vs states, {len(sel)} rows from "
              f"{sel[0]['states']} states): " + ", ".join(
                  f"{what} {slope(sel, col):.2f}" for what, col in
                  (("enumeration", "seconds"), ("edges", "edges_seconds"), ("peak memory", "peak_mib"))))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
