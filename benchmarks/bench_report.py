"""Benchmark: per-stage times of the full report as the copy-state count grows (issue 12).

Run::

    python benchmarks/bench_report.py                 # reports 1e2 .. 1e4 states, core to 1e5
    python benchmarks/bench_report.py --quick         # reports 1e2 .. 2.5e3, core to 1e4
    python benchmarks/bench_report.py --no-validate   # reports without the validation checks
    python benchmarks/bench_report.py --report-only --max-states 3000   # reports only, core.csv kept

Sets ``OPENBLAS_NUM_THREADS=1`` before NumPy is imported (stable timings on a
shared 2-core machine). Two series, both on the two-visible hidden-scaffold
family of ``examples/research_scale.py`` (``T``, ``K`` growing; the shipped
``two_visible.toml`` is ``T = 23, K = 11``, 10,080 states):

- ``report``: :func:`crnfb.analysis.reporting.pipeline.analyse` (figures' data included,
  validation unless ``--no-validate``), each stage's wall time from
  ``Results.timings``; the fitted exponent of total time vs states.
- ``core``: ``fit`` (learned fixed point) + loop fixed point + linearisation
  + the 10 slowest closed-loop modes (:func:`crnfb.analysis.linear.stability.stability`),
  with the peak resident memory of a fresh process per size.

Writes ``benchmarks/results/report.csv`` and ``benchmarks/results/core.csv``.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: (T, K) of the two-visible family and their copy-state counts (T+1)[(T+1)(2K+1) - K(K+1)]
REPORT_SIZES = [(4, 2), (8, 4), (14, 7), (23, 11)]
CORE_SIZES = [(8, 4), (14, 7), (23, 11), (56, 18)]


def _generator():
    spec = importlib.util.spec_from_file_location("research_scale", ROOT / "examples" / "research_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _model_file(T: int, K: int, tmp: Path) -> Path:
    path = tmp / f"two_visible_T{T}_K{K}.toml"
    path.write_text(_generator().two_visible(T, K, f"two-visible-T{T}-K{K}"))
    return path


def _core_child(path: str) -> None:
    """Run in a fresh process: fit + linearisation + 10 slowest modes; print JSON."""
    from crnfb.analysis.linear.fixedpoints import learned_fixed_point
    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    from crnfb.analysis.linear.stability import stability
    from crnfb.feedback.io.modelfile import load_model

    c0 = time.process_time()
    t0 = time.perf_counter()
    model = load_model(path)
    t1 = time.perf_counter()
    opt = learned_fixed_point(model)
    t2 = time.perf_counter()
    fp = loop_fixed_point(model, optimum=opt)
    t2b = time.perf_counter()
    loop = linearise(model, fixed_point=fp)
    t3 = time.perf_counter()
    st = stability(loop, count=10)
    t4 = time.perf_counter()
    c4 = time.process_time()
    print(json.dumps({"cpu_s": c4 - c0, "states": int(model.space.size), "reduced_states": int(loop.n_reduced),
                      "load_s": t1 - t0, "fit_s": t2 - t1, "loop_fixed_point_s": t2b - t2,
                      "linearise_s": t3 - t2b, "slowest_modes_s": t4 - t3,
                      "core_s": t4 - t1, "slowest_rate": float(st.slowest_rate),
                      "peak_rss_mib": _peak_rss_mib()}))


def _peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` (Linux) starts afresh at ``exec``; ``ru_maxrss``
    keeps the parent's peak across fork and exec (it read 1626 MiB for 549 states after a 10^4 report)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _write(path: Path, rows: list[dict]) -> None:
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("t_"), k))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _fit_exponent(rows, key):
    x = np.log([r["states"] for r in rows])
    y = np.log([r[key] for r in rows])
    return float(np.polyfit(x, y, 1)[0]) if len(rows) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-validate", action="store_true")
    ap.add_argument("--core-only", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="skip the core series (keeps core.csv)")
    ap.add_argument("--max-states", type=int, default=0, help="skip sizes above this many copy states")
    ap.add_argument("--core-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.core_child:
        _core_child(args.core_child)
        return

    report_sizes = REPORT_SIZES[:3] if args.quick else REPORT_SIZES
    core_sizes = CORE_SIZES[:2] if args.quick else CORE_SIZES
    if args.max_states:
        def n(T, K):
            return (T + 1) * ((T + 1) * (2 * K + 1) - K * (K + 1))
        report_sizes = [s for s in report_sizes if n(*s) <= args.max_states]
        core_sizes = [s for s in core_sizes if n(*s) <= args.max_states]
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"bench_report: OPENBLAS_NUM_THREADS=1; load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.core_only:
            from crnfb.analysis.reporting.pipeline import analyse
            from crnfb.feedback.io.modelfile import load_model
            from crnfb.feedback.numerics.parallel import available_workers

            rows = []
            for T, K in report_sizes:
                model = load_model(_model_file(T, K, tmp))
                t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
                res = analyse(model, validate=not args.no_validate, figures=True)
                # CPU of this process and of the validation's forked workers (crnfb.feedback.numerics.parallel)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0 + _children_cpu() - k0
                failed = [c.quantity for c in (res.validation or []) if c.passed is False]
                not_made = [c.quantity for c in (res.validation or []) if c.passed is None]
                row = {"T": T, "K": K, "states": int(model.space.size), "reduced_states": int(res.loop.n_reduced),
                       "seconds": wall, "cpu_seconds": cpu, "validated": not args.no_validate,
                       "failed_checks": len(failed), "checks_not_made": len(not_made), "reasons": len(res.reasons),
                       "workers": available_workers(),
                       "plant_model": (res.margins.plant_model or {}).get("method") if res.margins else None,
                       "plant_model_order": (res.margins.plant_model or {}).get("order") if res.margins else None}
                row.update({f"t_{k.replace(' ', '_')}": v for k, v in res.timings.items()})
                rows.append(row)
                print(f"states {row['states']:>6}  wall {wall:8.2f} s  cpu {cpu:8.2f} s  "
                      + "  ".join(f"{k} {v:.2f}" for k, v in res.timings.items()), flush=True)
                _write(RESULTS / "report.csv", rows)    # after every size: a long run keeps what it measured
            print(f"report-time exponent (wall vs states): {_fit_exponent(rows, 'seconds'):.2f}; "
                  f"(cpu): {_fit_exponent(rows, 'cpu_seconds'):.2f}")
        core = []
        for T, K in ([] if args.report_only else core_sizes):
            out = subprocess.run([sys.executable, __file__, "--core-child", str(_model_file(T, K, tmp))],
                                 capture_output=True, text=True, check=True)
            row = {"T": T, "K": K, **json.loads(out.stdout.strip().splitlines()[-1])}
            core.append(row)
            _write(RESULTS / "core.csv", core)
            print(f"core  states {row['states']:>6}  fit {row['fit_s']:.2f}  loop fp {row['loop_fixed_point_s']:.2f}  "
                  f"linearise {row['linearise_s']:.2f}  "
                  f"slowest {row['slowest_modes_s']:.2f}  total {row['core_s']:.2f} s (process CPU {row['cpu_s']:.2f} s, load_model included)  "
                  f"peak {row['peak_rss_mib']:.0f} MiB", flush=True)
    print(f"wrote {RESULTS / 'report.csv'} and/or {RESULTS / 'core.csv'}; "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
