"""Benchmark: analytic linearisation of the learning loop vs python-control's finite differences.

Run::

    python benchmarks/bench_linearise.py            # full table (several minutes)
    python benchmarks/bench_linearise.py --quick    # small sizes only

Sets ``OPENBLAS_NUM_THREADS=1`` (and the OpenMP/MKL equivalents) before
NumPy is imported: on a shared 2-core machine multi-threaded BLAS timings
were unstable by 40-400x (docs: shared/notes/python-control-0.10.md).

For growing state counts it times

* analytic: the loop fixed point (:func:`crnfb.analysis.linear.fixedpoints.loop_fixed_point`),
  the analytic sparse Jacobian and its reduction (:func:`crnfb.analysis.linear.linearise.linearise`,
  including ``Jr``), and the slowest 10 closed-loop eigenvalues
  (:func:`crnfb.analysis.linear.stability.closed_loop_eigenvalues` with ``count=10``:
  dense ``eig`` up to ``STABILITY_DENSE_LIMIT`` reduced states, shift-invert Arnoldi on the full Jacobian above);
* python-control: :func:`control.linearize` of the interconnected nonlinear
  loop (:func:`crnfb.feedback.dynamics.loop.nonlinear_loop`; forward differences, n+2
  evaluations of the vector field) at the same fixed point, plus dense
  ``numpy.linalg.eigvals`` of the resulting full matrix.

Analytic steps shorter than 0.5 s are timed best of three. The
python-control route is timed once and skipped ('-') where its time, extrapolated from
the sizes measured so far (``c n^2`` for ``linearize``, ``c n^3`` for
``eig``), exceeds ``--max-seconds`` (default 60); the estimate is printed in
the ``ctrl_est`` column. ``eig_err`` is the largest distance from a returned
slowest eigenvalue to the nearest eigenvalue of the dense ``eig(Jr)``
(untimed; where the python-control route ran), i.e. the accuracy of the
slowest-10 path; ``fd_err`` is ``max|A_linearize - J| / max|J|``.
Results go to ``benchmarks/results/linearise.csv``; the
scaling exponents are least-squares slopes of log time vs log reduced states.

Series:

* ``E1``: examples/birth_death.toml with dynamic clamping, ``n_max`` 50 .. 5000
  (the clamped ensemble stops at the environment's support, ~290 states);
* ``open2``: a two-species open network ``0 <-> X, X <-> Y, 0 <-> Y``
  (X visible and learned, Y hidden), dynamic clamping, box ``n_max`` 14 .. 70
  per species (both ensembles ~``(n_max+1)^2`` states).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import control  # noqa: E402

from crnfb.analysis.linear.linearise import linearise  # noqa: E402
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.linear.stability import closed_loop_eigenvalues  # noqa: E402
from crnfb.feedback.numerics.sizes import STABILITY_DENSE_LIMIT  # noqa: E402
from crnfb.feedback import Learning, Model, Network, Poisson, parse_model  # noqa: E402
from crnfb.feedback.dynamics.ensembles import LearningNetwork  # noqa: E402
from crnfb.feedback.dynamics.loop import nonlinear_loop  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "linearise.csv"


def e1_model(n_max: int) -> Model:
    data = tomllib.loads((ROOT / "examples" / "birth_death.toml").read_text())
    data["truncation"]["n_max"] = int(n_max)
    data["learning"]["clamping"] = "dynamic"
    return parse_model(data)


def open2_model(n_max: int) -> Model:
    net = Network.from_equations({"X": dict(visible=True), "Y": dict(learn=False)},
                                 ["0 <-> X", "X <-> Y", "0 <-> Y"], name="open2")
    return Model(net, initial={"X": 0, "Y": 0}, n_max=int(n_max), environment=Poisson(2.0),
                 change=Poisson(2.5), learning=Learning((0.05,), "dynamic", 1.0))


SERIES = {
    "E1": (e1_model, [50, 100, 200, 500, 1000, 2000, 5000]),
    "open2": (open2_model, [14, 20, 30, 45, 70]),
}
QUICK = {"E1": [50, 100, 200, 500], "open2": [14, 20, 30]}


def timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t


def timed_best(f, *a, **k):
    """Best of three when one run takes under half a second (timer and load noise), else one run."""
    out, t = timed(f, *a, **k)
    if t < 0.5:
        t = min([t] + [timed(f, *a, **k)[1] for _ in range(2)])
    return out, t


def nearest_error(ev: np.ndarray, dense: np.ndarray) -> float:
    return float(max(np.min(np.abs(dense - z)) for z in ev)) if ev.size else float("nan")


def run_series(name, make, sizes, max_seconds, rows):
    fit_lin, fit_eig = [], []          # (n, seconds) measured for the python-control route
    for p in sizes:
        model = make(p)
        net = LearningNetwork(model)
        fp, t_fp = timed_best(loop_fixed_point, model, net)

        def lin():
            lp = linearise(model, fixed_point=fp)
            _ = lp.Jr
            return lp

        lp, t_lin = timed_best(lin)
        ev, t_eig = timed_best(closed_loop_eigenvalues, lp, count=10)
        t_an = t_fp + t_lin + t_eig
        n = net.n_states
        row = dict(series=name, param=p, states=n, reduced=lp.n_reduced, t_fixed_point=t_fp,
                   t_linearise=t_lin, t_eig10=t_eig, eig_method="dense" if lp.n_reduced <= STABILITY_DENSE_LIMIT else "arnoldi",
                   t_analytic=t_an, t_ctrl_linearize=None, t_dense_eig=None, t_control=None, ctrl_est=None,
                   ratio=None, eig_err=None, fd_err=None, slowest_re=float(ev[0].real) if ev.size else float("nan"))
        est_lin = _extrapolate(fit_lin, n, 2)
        est_eig = _extrapolate(fit_eig, n, 3)
        est = (est_lin or 0.0) + (est_eig or 0.0)
        if est <= max_seconds:
            sys_nl = nonlinear_loop(net)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                A, t_cl = timed(lambda: control.linearize(sys_nl, fp.x, [0.0]).A)
            dense, t_de = timed(np.linalg.eigvals, A)
            fit_lin.append((n, t_cl))
            fit_eig.append((n, t_de))
            J = lp.J.toarray()
            ref = np.linalg.eigvals(lp.Jr.toarray())       # untimed: accuracy of the slowest-10 path
            row.update(t_ctrl_linearize=t_cl, t_dense_eig=t_de, t_control=t_cl + t_de,
                       ratio=(t_cl + t_de) / t_an, eig_err=nearest_error(ev, ref),
                       fd_err=float(np.abs(A - J).max() / np.abs(J).max()))
        else:
            row.update(ctrl_est=est)
        rows.append(row)
        _print_row(row)


def _extrapolate(fit, n, power):
    if not fit:
        return None
    n0, t0 = fit[-1]
    return t0 * (n / n0) ** power


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


HEADER = (f"{'series':7s} {'param':>6s} {'states':>7s} {'reduced':>7s} | {'fixed pt':>8s} {'lin+Jr':>7s} "
          f"{'eig10':>7s} {'method':>7s} {'analytic':>8s} | {'ctrl.lin':>8s} {'eig':>8s} {'control':>8s} "
          f"{'ctrl_est':>8s} {'ratio':>7s} {'eig_err':>8s} {'fd_err':>8s}")


def _print_row(r):
    print(f"{r['series']:7s} {r['param']:>6d} {r['states']:>7d} {r['reduced']:>7d} | "
          f"{r['t_fixed_point']:8.3f} {r['t_linearise']:7.3f} {r['t_eig10']:7.3f} {r['eig_method']:>7s} "
          f"{r['t_analytic']:8.3f} | {_fmt(r['t_ctrl_linearize'], '8.3f'):>8s} {_fmt(r['t_dense_eig'], '8.3f'):>8s} "
          f"{_fmt(r['t_control'], '8.3f'):>8s} {_fmt(r['ctrl_est'], '8.0f'):>8s} {_fmt(r['ratio'], '7.1f'):>7s} "
          f"{_fmt(r['eig_err'], '8.1e'):>8s} {_fmt(r['fd_err'], '8.1e'):>8s}", flush=True)


def slope(xs, ys):
    xs, ys = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(xs, ys, 1)[0]) if xs.size >= 2 else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="skip the python-control route when its extrapolated time exceeds this")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    print("bench_linearise: OPENBLAS_NUM_THREADS=1 (single-threaded BLAS, set by this script)")
    print(f"python-control {control.__version__}, numpy {np.__version__}, "
          f"dense eig up to STABILITY_DENSE_LIMIT={STABILITY_DENSE_LIMIT} reduced states, sparse Arnoldi above; "
          f"cpus={os.cpu_count()}")
    print("times in seconds; analytic = fixed point + analytic Jacobian/reduction + slowest 10 eigenvalues;")
    print("control = control.linearize (forward differences) + dense eig of the full matrix; "
          "ratio = control / analytic\n")
    print(HEADER)
    rows: list[dict] = []
    for name, (make, sizes) in SERIES.items():
        run_series(name, make, QUICK[name] if args.quick else sizes, args.max_seconds, rows)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")

    print("\nscaling exponents (least-squares slope of log time vs log reduced states, rows with >= 200 states):")
    for name in SERIES:
        sel = [r for r in rows if r["series"] == name and r["reduced"] >= 200]
        if len(sel) < 2:
            continue
        n = [r["reduced"] for r in sel]
        msg = [f"analytic total {slope(n, [r['t_analytic'] for r in sel]):.2f}",
               f"linearise {slope(n, [r['t_linearise'] for r in sel]):.2f}"]
        ctl = [r for r in sel if r["t_control"] is not None]
        if len(ctl) >= 2:
            nc = [r["reduced"] for r in ctl]
            msg += [f"control.linearize {slope(nc, [r['t_ctrl_linearize'] for r in ctl]):.2f}",
                    f"dense eig {slope(nc, [r['t_dense_eig'] for r in ctl]):.2f}"]
        print(f"  {name:6s} " + ", ".join(msg))
    skipped = [r for r in rows if r["t_control"] is None]
    if skipped:
        print("\n'-': python-control route skipped; ctrl_est is its extrapolated time "
              "(c n^2 for linearize, c n^3 for dense eig, from the largest measured size).")


if __name__ == "__main__":
    main()
