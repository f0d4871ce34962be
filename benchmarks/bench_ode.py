"""One learning episode of the closed-loop ODE: our integrators, SUNDIALS CVODE and libRoadRunner.

    python benchmarks/bench_ode.py                       # ~100, 650, 2500, 1e4 copy states
    python benchmarks/bench_ode.py --cases tv4,t40       # a subset (names below)
    python benchmarks/bench_ode.py --methods reuse,sundae --time-limit 300
    python benchmarks/bench_ode.py --cases tv23 --methods reuse,sundae --append   # add rows to ode.csv

Cases (copy states per ensemble; the ODE has ``2 x states + L`` unknowns with
dynamic clamping): ``tv4`` the two-visible hidden scaffold of
``examples/research_scale.py`` at ``T = 4, K = 2`` (95), ``t40``
``examples/scaffold_T40_K20.toml`` (651), ``tv14`` two-visible ``T = 14,
K = 7`` (2535), ``tv23`` ``examples/two_visible.toml`` (10,080); ``e1`` is
E1 with ``n_max = 50`` (103, ``birth_death.toml``, dynamic clamping).

One *learning episode*: from the episode start (theta from the file, copies
at their stationary laws) until the identifiable part of ``theta - theta*``
has shrunk to 1e-3 of its start (docs/theory.md §4), ``rtol = 1e-7``,
``atol`` 1e-10 on probabilities and 1e-9 on theta. Methods:

``bdf``      SciPy's BDF with the analytic sparse Jacobian (SuperLU, COLAMD;
             refactorises on every change of step size) - the old default.
``reuse``    :class:`crnfb.feedback.bdf.ReuseBDF`, the default of
             :func:`crnfb.feedback.simulate.integrate`: the same BDF reusing its
             Newton matrix while ``c = h / alpha`` stays within 30 %, and a
             bordered LU (sparse ensemble block + Schur complement on theta).
``sundae``   SUNDIALS CVODE (BDF) through scikit-sundae with its sparse direct
             solver (SuperLU_MT, one thread) and our analytic Jacobian; the
             episode end by CVODE's root finding. Needs ``pip install
             scikit-sundae`` (not a dependency of the package; without it the
             row says why and the method is skipped).
``cvpre``    SUNDIALS CVODE (scikit-sundae) with GMRES preconditioned by our
             bordered LU of ``I - gamma J`` (:class:`crnfb.feedback.sparselu.BorderedLU`,
             refactorised when CVODE asks, i.e. on its own reuse rule) and
             ``J v`` from our analytic Jacobian.
``rr``       libRoadRunner's CVODE on our exported SBML (``learning_sbml``;
             libRoadRunner 2.10 factorises a dense Jacobian), run to our
             episode's end time; model load timed apart.

Timed: the integration only (the loop fixed point that defines the episode
end is computed once, outside). Wall and CPU seconds of one run (``--repeat``
for the best of several); a method is skipped for larger cases once one run
exceeds ``--time-limit`` seconds. Agreement with ``reuse``: ``dt_rel``, the
relative difference of the episode's end time (where the event fires; theta
there is fixed by the event for one learned species), and ``|dtheta|``, the
largest difference of theta at the end (``rr``: at ``reuse``'s end time).
``ratio_rr``: this method's time / libRoadRunner's, wall and CPU (< 1: faster).
``OPENBLAS_NUM_THREADS=1``. Writes ``benchmarks/results/ode.csv``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crnfb.analysis.fixedpoints import loop_fixed_point  # noqa: E402
from crnfb.feedback.ensembles import LearningNetwork  # noqa: E402
from crnfb.feedback.modelfile import load_model  # noqa: E402
from crnfb.feedback.simulate import ATOL_P, ATOL_THETA, RTOL, LoopField, simulate, state_atol  # noqa: E402

CASES = {"e1": None, "tv4": (4, 2), "t40": "scaffold_T40_K20.toml", "tv14": (14, 7), "tv23": "two_visible.toml"}
DEFAULT_CASES = ["tv4", "t40", "tv14", "tv23"]
METHODS = ["bdf", "reuse", "sundae", "cvpre", "rr"]
T_MAX = 1e10            # the episode-end event stops every run long before
#: libRoadRunner factorises a dense Jacobian: the t40 episode (1325 unknowns) took 44 CPU s; 5089 unknowns ~50x that
RR_MAX_STATES = 1000


def _model(case: str, tmp: Path):
    spec = CASES[case]
    if spec is None:
        return load_model(ROOT / "examples" / "birth_death.toml").replace(n_max=50).with_learning(clamping="dynamic")
    if isinstance(spec, str):
        return load_model(ROOT / "examples" / spec)
    gen_spec = importlib.util.spec_from_file_location("research_scale", ROOT / "examples" / "research_scale.py")
    gen = importlib.util.module_from_spec(gen_spec)
    gen_spec.loader.exec_module(gen)
    path = tmp / f"two_visible_T{spec[0]}_K{spec[1]}.toml"
    path.write_text(gen.two_visible(spec[0], spec[1], f"two-visible-T{spec[0]}-K{spec[1]}"))
    return load_model(path)


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def run_ours(model, net, theta_star, method: str) -> dict:
    name = {"bdf": "BDF", "reuse": "ReuseBDF"}[method]
    tr, wall, cpu = _timed(lambda: simulate(model, T_MAX, points=201, until_episode_end=True,
                                            theta_star=theta_star, net=net, method=name, progress=False))
    m = tr.metadata
    return {"wall_s": wall, "cpu_s": cpu, "steps": m["steps"], "nlu": m["nlu"], "njev": m["njev"],
            "nfev": m["nfev"], "t_episode": float(tr.t[-1]), "theta_end": tr.theta[-1]}


def run_sundae(model, net, theta_star) -> dict:
    import sksundae
    from crnfb.feedback.simulate import _episode_end_event

    field_ = LoopField(net)
    x0 = net.initial_state()
    n = x0.size
    # CVODE needs the pattern up front: the union of the Jacobian's at two states, plus the diagonal
    P = (abs(field_.jacobian(x0)) + abs(field_.jacobian(0.9 * x0 + 0.1 / n)) + sparse.eye(n)).tocsc()
    P.sort_indices()
    keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(P.indptr)) * n + P.indices
    stop = _episode_end_event(model, net, x0, theta_star)
    count = {"nfev": 0, "njev": 0}

    def rhs(t, y, yp):
        count["nfev"] += 1
        yp[:] = field_(np.asarray(y))

    def jac(t, y, yp, JJ):
        count["njev"] += 1
        Jc = field_.jacobian(np.asarray(y)).tocoo()
        JJ[:] = 0.0
        JJ[np.searchsorted(keys, Jc.col.astype(np.int64) * n + Jc.row)] = Jc.data

    def event(t, y, out):
        out[0] = stop(t, np.asarray(y))
    event.terminal, event.direction = [True], [-1]
    solver = sksundae.cvode.CVODE(rhs, rtol=RTOL, atol=state_atol(net, ATOL_P, ATOL_THETA), linsolver="sparse",
                                  sparsity=P, jacfn=jac, eventsfn=event, num_events=1, max_num_steps=200_000)
    sol, wall, cpu = _timed(lambda: solver.solve(np.linspace(0.0, T_MAX, 201), x0))
    if not sol.success:
        raise RuntimeError(sol.message)
    y_end = sol.y_events[-1] if sol.y_events is not None else sol.y[-1]
    t_end = float(sol.t_events[-1]) if sol.t_events is not None else float(sol.t[-1])
    return {"wall_s": wall, "cpu_s": cpu, "steps": "", "nlu": "", **count, "t_episode": t_end,
            "theta_end": np.asarray(y_end)[net.n_f + net.n_c:]}


def run_cvode_precond(model, net, theta_star) -> dict:
    import sksundae
    from crnfb.feedback.sparselu import BorderedLU
    from crnfb.feedback.simulate import _episode_end_event

    field_ = LoopField(net)
    x0 = net.initial_state()
    stop = _episode_end_event(model, net, x0, theta_star)
    count = {"nfev": 0, "njev": 0, "nlu": 0}
    state = {"J": field_.jacobian(x0).tocsc(), "lu": None, "layout": None}
    eye = sparse.eye(x0.size, format="csc")

    def rhs(t, y, yp):
        count["nfev"] += 1
        yp[:] = field_(np.asarray(y))

    def psetup(t, y, yp, jok, jnew, gamma):
        if not jok:
            count["njev"] += 1
            state["J"] = field_.jacobian(np.asarray(y)).tocsc()
        jnew[0] = 0 if jok else 1
        count["nlu"] += 1
        lu = BorderedLU((eye - gamma * state["J"]).tocsc(), layout=state["layout"])
        state["lu"], state["layout"] = lu, lu.layout

    def psolve(t, y, yp, rvec, zvec, gamma, delta, lr):
        zvec[:] = state["lu"].solve(np.asarray(rvec))

    def jtimes(t, y, yp, v, Jv):
        Jv[:] = state["J"] @ np.asarray(v)

    def event(t, y, out):
        out[0] = stop(t, np.asarray(y))
    event.terminal, event.direction = [True], [-1]
    solver = sksundae.cvode.CVODE(rhs, rtol=RTOL, atol=state_atol(net, ATOL_P, ATOL_THETA), linsolver="gmres",
                                  krylov_dim=5, precond=sksundae.cvode.CVODEPrecond(psetup, psolve),
                                  jactimes=sksundae.cvode.CVODEJacTimes(None, jtimes),
                                  eventsfn=event, num_events=1, max_num_steps=200_000)
    sol, wall, cpu = _timed(lambda: solver.solve(np.linspace(0.0, T_MAX, 201), x0))
    if not sol.success:
        raise RuntimeError(sol.message)
    y_end = sol.y_events[-1] if sol.y_events is not None else sol.y[-1]
    t_end = float(sol.t_events[-1]) if sol.t_events is not None else float(sol.t[-1])
    return {"wall_s": wall, "cpu_s": cpu, "steps": "", **count, "t_episode": t_end,
            "theta_end": np.asarray(y_end)[net.n_f + net.n_c:]}


def run_rr(model, net, t_episode: float) -> dict:
    import roadrunner
    from crnfb.feedback.sbml import learning_sbml

    text, _, t_export = _timed(lambda: learning_sbml(model))
    rr, t_load, _ = _timed(lambda: roadrunner.RoadRunner(text))
    integ = rr.getIntegrator()
    integ.setValue("relative_tolerance", RTOL)
    integ.setValue("absolute_tolerance", ATOL_P)
    integ.setValue("maximum_num_steps", 1_000_000)
    names = [f"Lambda_{s}" for s in model.learned_names]
    res, wall, cpu = _timed(lambda: rr.simulate(0.0, float(t_episode), 201, ["time", *names]))
    lam = np.asarray(res)[-1, 1:]
    return {"wall_s": wall, "cpu_s": cpu, "steps": "", "nlu": "", "nfev": "", "njev": "", "t_episode": t_episode,
            "theta_end": np.log(lam), "rr_export_s": t_export, "rr_load_s": t_load}


def _fmt(v, spec):
    return format(v, spec) if v != "" and v is not None else "-"


def _print_row(r):
    print(f"{r['case']:>5s} {r['states']:7d} {r['n']:7d} {r['method']:>7s} {_fmt(r['wall_s'], '9.2f')} "
          f"{_fmt(r['cpu_s'], '8.2f')} {_fmt(r['steps'], '6')} {_fmt(r['nlu'], '5')} {_fmt(r['njev'], '5')} "
          f"{_fmt(r['nfev'], '6')} {_fmt(r['t_episode'], '10.4g')} {_fmt(r['dt_rel'], '8.1e')} "
          f"{_fmt(r['theta_diff'], '9.1e')} {_fmt(r['ratio_rr'], '7.3f')} {_fmt(r['ratio_rr_cpu'], '7.3f')} "
          f"{r['note']}", flush=True)


def bench_case(case: str, methods: list[str], skip: dict, limit: float, tmp: Path, rr_max: int) -> list[dict]:
    """All methods on one case; ``skip`` (method -> reason) is updated when a run exceeds ``limit``."""
    model = _model(case, tmp)
    net = LearningNetwork(model)
    if net.n_f > rr_max and "rr" not in skip:
        skip["rr"] = f"skipped: dense CVODE above {rr_max} copy states (--rr-max-states)"
    theta_star = loop_fixed_point(model, net).theta        # outside the timing (analysis, not simulation)
    rows, ref = [], None
    for method in methods:
        row = {"case": case, "states": net.n_f, "n": net.n_states, "method": method, "wall_s": "", "cpu_s": "",
               "steps": "", "nlu": "", "njev": "", "nfev": "", "t_episode": "", "dt_rel": "", "theta_diff": "", "ratio_rr": "", "ratio_rr_cpu": "",
               "rr_export_s": "", "rr_load_s": "", "note": skip.get(method, "")}
        if method not in skip:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    if method == "rr":
                        t_ep = ref["t_episode"] if ref else T_MAX
                        out = run_rr(model, net, t_ep)
                    elif method == "sundae":
                        out = run_sundae(model, net, theta_star)
                    elif method == "cvpre":
                        out = run_cvode_precond(model, net, theta_star)
                    else:
                        out = run_ours(model, net, theta_star, method)
                th = out.pop("theta_end")
                row.update(out)
                if method == "reuse":
                    ref = {"t_episode": out["t_episode"], "theta": th}
                elif ref is not None:
                    row["theta_diff"] = float(np.max(np.abs(th - ref["theta"])))
                    row["dt_rel"] = abs(out["t_episode"] / ref["t_episode"] - 1.0)
                if out["wall_s"] > limit:
                    skip[method] = f"skipped: {case} took {out['wall_s']:.0f} s > {limit:.0f} s"
            except Exception as e:  # noqa: BLE001 - report and go on
                row["note"] = f"failed: {type(e).__name__}: {str(e)[:80]}"
                skip[method] = f"skipped after failure at {case}"
        rows.append(row)
    rr = next((r for r in rows if r["method"] == "rr" and r["wall_s"] != ""), None)
    for r in rows:
        if rr and r["wall_s"] != "":
            r["ratio_rr"] = r["wall_s"] / rr["wall_s"]
            r["ratio_rr_cpu"] = r["cpu_s"] / rr["cpu_s"]
        _print_row(r)
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=str, default=",".join(DEFAULT_CASES), help=f"comma-separated of {list(CASES)}")
    p.add_argument("--methods", type=str, default=",".join(METHODS), help=f"comma-separated of {METHODS}")
    p.add_argument("--time-limit", type=float, default=600.0, help="skip a method at larger cases after a run this long")
    p.add_argument("--out", type=str, default="ode.csv", help="CSV name in benchmarks/results/")
    p.add_argument("--append", action="store_true", help="add the rows to an existing CSV")
    p.add_argument("--rr-max-states", type=int, default=RR_MAX_STATES,
                   help="libRoadRunner only up to this many copy states (its dense CVODE: O(n^3) per factorisation)")
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    methods = [m for m in args.methods.split(",") if m]
    bad = [c for c in cases if c not in CASES] + [m for m in methods if m not in METHODS]
    if bad:
        p.error(f"unknown case or method: {bad}")
    if "reuse" in methods:        # the reference run first: rr runs to its episode end
        methods = ["reuse"] + [m for m in methods if m != "reuse"]
    print(f"{'case':>5s} {'states':>7s} {'n':>7s} {'method':>7s} {'wall_s':>9s} {'cpu_s':>8s} {'steps':>6s} "
          f"{'nlu':>5s} {'njev':>5s} {'nfev':>6s} {'T_episode':>10s} {'dt_rel':>8s} {'|dtheta|':>9s} {'rr_wall':>7s} "
          f"{'rr_cpu':>7s} note")
    rows, skip = [], {}
    out = ROOT / "benchmarks" / "results" / args.out
    old = list(csv.DictReader(open(out))) if args.append and out.exists() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            rows += bench_case(case, methods, skip, args.time_limit, Path(tmp), args.rr_max_states)
            _write(out, old + rows)              # after every case: a long run keeps what it has
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
