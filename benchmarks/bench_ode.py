"""ODE time of a learning episode against the number of states, and libRoadRunner's CVODE.

    python benchmarks/bench_ode.py            # n_max 50, 100, 200, 500, 1000, 2000
    python benchmarks/bench_ode.py --quick    # n_max 50, 200 (results/ode-quick.csv)

The network is E1 (birth-death ``0 <-> X``, examples/birth_death.toml) with
*dynamic* clamping (``gamma = 1``, ``eps = 0.05``) at the ensemble level
(docs/theory.md §4): ``n_max + 1`` free states, one clamped state per
visible state in the support of ``Q_1`` or ``Q_2`` (Poisson 5 / 8; the
support ends where the pmf underflows, at ~x = 180), and ``theta_X``. One
*learning episode* is simulated: from the episode start (theta from the
file, copies at their stationary laws) until the identifiable part of
``theta - theta*`` has shrunk to 1e-3 of its initial size (located by
an event on the dense output), 201 output points.

Ours: :func:`crnfb.feedback.simulate.simulate` (SciPy BDF with the analytic
sparse Jacobian, SuperLU), ``rtol = 1e-7``, ``atol = 1e-10`` on
probabilities and ``1e-9`` on theta. Timed: the integration only
(``wall``), and the whole call including the loop fixed point needed to
detect the episode's end (``total``).

libRoadRunner: the learning network exported by :mod:`crnfb.feedback.sbml`
(``learning_sbml``: copy-state species, ``Lambda_X`` as a species, mass
action) run with its CVODE integrator (BDF; libRoadRunner 2.10 exposes no sparse
linear solver, so CVODE factorises a dense Jacobian) from
0 to our episode's end time with ``relative_tolerance = 1e-7`` and
``absolute_tolerance = 1e-10``; timed: ``simulate`` only (load and
compilation reported separately). Agreement: ``|ln Lambda_X(T) - theta(T)|``.
If :mod:`crnfb.feedback.sbml` or ``roadrunner`` is missing, those columns are
empty and the script says why.

``OPENBLAS_NUM_THREADS=1`` is set (shared 2-core machine; multithreaded BLAS
timings there are erratic). Times are wall-clock seconds, best of
``--repeat`` runs (default 2). Writes ``benchmarks/results/ode.csv``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crnfb.analysis.linearise import loop_fixed_point  # noqa: E402
from crnfb.feedback.ensembles import LearningNetwork  # noqa: E402
from crnfb.feedback.modelfile import load_model  # noqa: E402
from crnfb.feedback.simulate import simulate  # noqa: E402

RR_TIME_LIMIT = 120.0     # skip larger sizes for CVODE once one run takes longer than this


def _roadrunner():
    try:
        from crnfb.feedback.sbml import learning_sbml
    except ImportError as e:
        return None, f"crnfb.feedback.sbml not available ({e})"
    try:
        import roadrunner
    except ImportError as e:
        return None, f"libroadrunner not installed ({e})"
    return (learning_sbml, roadrunner), None


def run_cvode(tools, model, t_end: float, repeat: int):
    learning_sbml, roadrunner = tools
    t0 = time.perf_counter()
    text = learning_sbml(model)
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    rr = roadrunner.RoadRunner(text)
    t_load = time.perf_counter() - t0
    integ = rr.getIntegrator()
    integ.setValue("relative_tolerance", 1e-7)
    integ.setValue("absolute_tolerance", 1e-10)
    integ.setValue("maximum_num_steps", 1_000_000)
    best = np.inf
    lam = np.nan
    for _ in range(repeat):
        rr.resetAll()
        t0 = time.perf_counter()
        res = rr.simulate(0.0, float(t_end), 201, ["time", "Lambda_X"])
        best = min(best, time.perf_counter() - t0)
        lam = float(np.asarray(res)[-1, 1])
    return best, t_export, t_load, float(np.log(lam))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--sizes", type=str, default=None, help="comma-separated n_max values")
    args = p.parse_args(argv)
    sizes = [50, 200] if args.quick else [50, 100, 200, 500, 1000, 2000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    base = load_model(ROOT / "examples" / "birth_death.toml")
    tools, why = _roadrunner()
    if tools is None:
        print(f"libRoadRunner comparison skipped: {why}")
    rows = []
    rr_ok = tools is not None
    head = (f"{'n_max':>6s} {'states':>7s} {'steps':>6s} {'nfev':>6s} {'njev':>5s} {'nlu':>5s} {'T_episode':>10s} "
            f"{'ours_s':>8s} {'total_s':>8s} {'cvode_s':>8s} {'rr_load_s':>9s} {'|dtheta|':>9s}")
    print(head)
    for n in sizes:
        model = base.replace(n_max=n).with_learning(clamping="dynamic")
        net = LearningNetwork(model)
        theta_star = loop_fixed_point(model, net).theta   # outside the timing (analysis, not simulation)
        best = None
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            tr = simulate(model, 1e4, points=201, until_episode_end=True, theta_star=theta_star, net=net,
                          progress=False)
            total = time.perf_counter() - t0
            if best is None or tr.metadata["wall_time"] < best[0].metadata["wall_time"]:
                best = (tr, total)
        tr, total = best
        m = tr.metadata
        t_ep = float(tr.t[-1])
        row = {"n_max": n, "states": net.n_states, "n_free": net.n_f, "n_clamped": net.n_c,
               "steps": m["steps"], "nfev": m["nfev"], "njev": m["njev"], "nlu": m["nlu"],
               "t_episode": t_ep, "ours_seconds": m["wall_time"], "ours_total_seconds": total,
               "theta_end": float(tr.theta[-1, 0]),
               "cvode_seconds": "", "rr_export_seconds": "", "rr_load_seconds": "", "cvode_theta_diff": ""}
        if rr_ok:
            try:
                cv, t_exp, t_load, th = run_cvode(tools, model, t_ep, args.repeat)
                row.update(cvode_seconds=cv, rr_export_seconds=t_exp, rr_load_seconds=t_load,
                           cvode_theta_diff=abs(th - row["theta_end"]))
                if cv > RR_TIME_LIMIT:
                    rr_ok = False
                    print(f"  (CVODE took {cv:.0f} s; larger sizes skipped)")
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"  libRoadRunner failed at n_max={n}: {type(e).__name__}: {e}")
                rr_ok = False
        rows.append(row)

        def f(v, fmt):
            return format(v, fmt) if v != "" else "-"
        print(f"{n:6d} {row['states']:7d} {row['steps']:6d} {row['nfev']:6d} {row['njev']:5d} {row['nlu']:5d} "
              f"{t_ep:10.2f} {row['ours_seconds']:8.3f} {total:8.3f} {f(row['cvode_seconds'], '8.3f')} "
              f"{f(row['rr_load_seconds'], '9.2f')} {f(row['cvode_theta_diff'], '9.1e')}")
    out = ROOT / "benchmarks" / "results" / ("ode-quick.csv" if args.quick else "ode.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
