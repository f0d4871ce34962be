"""One learning episode of the closed-loop ODE: our integrators, SUNDIALS CVODE and libRoadRunner.

    python benchmarks/bench_ode.py                       # ~100, 650, 2500, 1e4 copy states
    python benchmarks/bench_ode.py --cases tv4,t40       # a subset (names below)
    python benchmarks/bench_ode.py --methods reuse,sundae --time-limit 300
    python benchmarks/bench_ode.py --cases tv23 --methods reuse,sundae --append   # add rows to ode.csv
    python benchmarks/bench_ode.py --series small       # start-up included, 56 to 1001 copy states
    python benchmarks/bench_ode.py --series large --rr-max-states 1001 --append   # 2535, 10,080 (ours only)

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
``reuse``    :class:`crnfb.feedback.dynamics.bdf.ReuseBDF`, the default of
             :func:`crnfb.feedback.dynamics.integrate.integrate`: the same BDF reusing its
             Newton matrix while ``c = h / alpha`` stays within 30 %, and a
             bordered LU (sparse ensemble block + Schur complement on theta).
``sundae``   SUNDIALS CVODE (BDF) through scikit-sundae with its sparse direct
             solver (SuperLU_MT, one thread) and our analytic Jacobian; the
             episode end by CVODE's root finding. Needs ``pip install
             scikit-sundae`` (not a dependency of the package; without it the
             row says why and the method is skipped).
``cvpre``    SUNDIALS CVODE (scikit-sundae) with GMRES preconditioned by our
             bordered LU of ``I - gamma J`` (:class:`crnfb.feedback.numerics.sparselu.BorderedLU`,
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

``--series``: ours (ReuseBDF, the default) against libRoadRunner with
*start-up included* on both sides, on the two-visible scaffold ``tv<T>_<K>``
(any ``--cases`` of that form, or the series' sizes: 56, 95, 144, 203, 549,
1001 copy states; ``large``: 2535 and 10,080), a model file, or
``corpus:<name>`` (``tests/corpus.py``; files and corpus networks run with
dynamic clamping, the SBML export's). Every run is a fresh process
(libRoadRunner caches compiled models by their SBML text within a process;
the loop fixed point that defines the episode's end is computed by the
parent, so our side starts cold), best (least CPU) of ``--repeat``. Ours:
``LearningNetwork``, the episode's start and the integration. libRoadRunner: ``RoadRunner(sbml)`` (parse and
LLVM compilation, after LLVM's one-time set-up spent on a small other model)
and ``simulate`` to our episode's end, LLJIT backend; its simulate-only time is a column of
its own. Columns ``ours/rr`` (CPU, wall: start-up included) and ``vs sim``
(ours start-up included / libRoadRunner's simulate alone). libRoadRunner is
run once at a case where it takes more than ``--rr-limit`` seconds and not
at larger ones. ``--from-file``: both sides also timed from the model file
(``load_model``, enumeration; libRoadRunner: and the export). Writes
``benchmarks/results/ode-series.csv``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crnfb.analysis.linear.fixedpoints import loop_fixed_point  # noqa: E402
from crnfb.feedback.dynamics.ensembles import LearningNetwork  # noqa: E402
from crnfb.feedback.io.modelfile import load_model  # noqa: E402
from crnfb.feedback.dynamics.ensembles import LoopField  # noqa: E402
from crnfb.feedback.dynamics.integrate import ATOL_P, ATOL_THETA, RTOL, simulate, state_atol  # noqa: E402

CASES = {"e1": None, "tv4": (4, 2), "t40": "scaffold_T40_K20.toml", "tv14": (14, 7), "tv23": "two_visible.toml"}
DEFAULT_CASES = ["tv4", "t40", "tv14", "tv23"]
METHODS = ["bdf", "reuse", "sundae", "cvpre", "rr"]
T_MAX = 1e10            # the episode-end event stops every run long before
#: ``--series``: the two-visible scaffold of examples/research_scale.py, ``tv<T>_<K>``, from 56 to 10,080 copy states
SERIES = {"small": ["tv3_2", "tv4_2", "tv5_2", "tv6_2", "tv8_4", "tv10_5"], "large": ["tv14_7", "tv23_11"]}
SERIES["all"] = SERIES["small"] + SERIES["large"]
#: libRoadRunner factorises a dense Jacobian: the t40 episode (1325 unknowns) took 44 CPU s; 5089 unknowns ~50x that
RR_MAX_STATES = 1000


def _case_spec(case: str):
    """``CASES[case]``, ``(T, K)`` for ``tv<T>_<K>`` (the two-visible scaffold at any size), a model file, or
    ``corpus:<shape>-<kind>-<seed>`` (tests/corpus.py; both model files and these run with dynamic clamping)."""
    if case in CASES:
        return CASES[case]
    if case.endswith(".toml"):
        return Path(case)
    if case.startswith("corpus:"):
        return case
    if case.startswith("tv") and "_" in case:
        T, K = case[2:].split("_")
        return int(T), int(K)
    raise KeyError(case)


def _model(case: str, tmp: Path):
    spec = _case_spec(case)
    if spec is None:
        return load_model(ROOT / "examples" / "birth_death.toml").replace(n_max=50).with_learning(clamping="dynamic")
    if isinstance(spec, str) and spec.startswith("corpus:"):     # tests/corpus.py's network of that name
        sys.path.insert(0, str(ROOT / "tests"))
        from corpus import make
        shape, kind, seed = spec[len("corpus:"):].rsplit("-", 2)
        spec = tmp / f"{spec[len('corpus:'):]}.toml"
        spec.write_text(make(shape, int(seed), kind).text, encoding="utf-8")
    if isinstance(spec, Path):       # a model file; the SBML export has no equilibrium clamping: dynamic
        model = load_model(spec)
        return model if model.learning.clamping == "dynamic" else model.with_learning(clamping="dynamic")
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
    from crnfb.feedback.dynamics.integrate import _episode_end_event

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
    from crnfb.feedback.numerics.sparselu import BorderedLU
    from crnfb.feedback.dynamics.integrate import _episode_end_event

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
    from crnfb.feedback.io.sbml import learning_sbml

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


# ---------------------------------------------------------------------------------------------
# --series: start-up included, each run in a fresh process

def _child(kind: str, case: str, t_episode: float, from_file: bool = False, theta_star=None) -> dict:
    """One timed run in this (fresh) process: ``ours`` or ``rr``, start-up included.

    ``ours``: from the loaded model (state space enumerated, as the exporter
    needs it too) to the episode's end: ``LearningNetwork`` (edges, exponents,
    the clamped ensemble), the episode's start state (stationary laws) and the
    integration. ``rr``: ``roadrunner.RoadRunner(sbml)`` (parse, LLVM
    compilation; the first load of this SBML in the process, since
    libRoadRunner caches compiled models by their text) and ``simulate`` to
    ``t_episode``, with the LLJIT backend (the fastest load: tv4 2.5 CPU s
    against MCJIT's 6.5). Not timed: imports, ``load_model``, the SBML export
    (rr; timed apart) and libRoadRunner's first load in the process (LLVM's
    one-time set-up: a small other model is loaded first).

    ``from_file``: both sides timed from the model file instead (``load_model``
    and the enumeration; ``rr`` also the export). ``theta_star`` (the loop
    fixed point) comes from the parent process, so that nothing of ours is
    warm here.
    """
    tmp = tempfile.TemporaryDirectory()

    def load():
        model = _model(case, Path(tmp.name))
        model.space                                # noqa: B018 - the enumeration
        return model
    model, load_wall, load_cpu = _timed(load)
    if not from_file:
        load_wall = load_cpu = 0.0
    if kind == "ours":
        theta_star = np.asarray(theta_star, float)     # computed by the parent: this process is cold

        def run():
            net = LearningNetwork(model)
            return net, simulate(model, T_MAX, points=201, until_episode_end=True, theta_star=theta_star,
                                 net=net, progress=False)
        (net, tr), wall, cpu = _timed(run)
        return {"states": net.n_f, "n": net.n_states, "wall_s": load_wall + wall, "cpu_s": load_cpu + cpu,
                "integrate_wall_s": tr.metadata["wall_time"], "steps": tr.metadata["steps"],
                "t_episode": float(tr.t[-1]), "theta_end": tr.theta[-1].tolist()}
    import roadrunner
    from crnfb.feedback.io.sbml import learning_sbml
    text, export_wall, export_cpu = _timed(lambda: learning_sbml(model))
    opt = roadrunner.LoadSBMLOptions()
    opt.setLLVMBackend(roadrunner.LoadSBMLOptions.LLJIT)     # loads 2.6x faster than the default MCJIT (tv4)
    # warm: LLVM's one-time set-up in the process is spent on a small other model, not timed
    roadrunner.RoadRunner(learning_sbml(load_model(ROOT / "examples" / "isomerisation.toml")), opt)
    rr, rr_wall, rr_cpu = _timed(lambda: roadrunner.RoadRunner(text, opt))
    if from_file:        # the model file's loading and the export count as libRoadRunner's load
        rr_wall, rr_cpu = rr_wall + load_wall + export_wall, rr_cpu + load_cpu + export_cpu

    def run():
        integ = rr.getIntegrator()
        integ.setValue("relative_tolerance", RTOL)
        integ.setValue("absolute_tolerance", ATOL_P)
        integ.setValue("maximum_num_steps", 1_000_000)
        names = [f"Lambda_{s}" for s in model.learned_names]
        return rr.simulate(0.0, float(t_episode), 201, ["time", *names])
    res, sim_wall, sim_cpu = _timed(run)
    return {"wall_s": rr_wall + sim_wall, "cpu_s": rr_cpu + sim_cpu, "load_wall_s": rr_wall,
            "load_cpu_s": rr_cpu, "sim_wall_s": sim_wall, "sim_cpu_s": sim_cpu, "export_wall_s": export_wall,
            "theta_end": np.log(np.asarray(res)[-1, 1:]).tolist()}


def _spawn(kind: str, case: str, t_episode: float, timeout: float, from_file: bool = False,
           theta_star=None) -> dict:
    """:func:`_child` in a fresh interpreter (one BLAS thread); ``{"error": ...}`` on failure or timeout."""
    import subprocess
    cmd = [sys.executable, __file__, "--child", kind, "--cases", case, "--t-episode", repr(t_episode),
           *(["--from-file"] if from_file else []),
           *(["--theta-star", json.dumps(list(map(float, theta_star)))] if theta_star is not None else [])]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {timeout:.0f} s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not lines:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(lines[-1])


def _best(kind: str, case: str, t_episode: float, repeat: int, limit: float, timeout: float,
          from_file: bool = False, theta_star=None) -> tuple[dict, int]:
    """Best (least CPU) of ``repeat`` fresh-process runs; one run only once a run exceeds ``limit`` s."""
    best, runs = None, 0
    for _ in range(repeat):
        out = _spawn(kind, case, t_episode, timeout, from_file, theta_star)
        runs += 1
        if "error" in out:
            return out, runs
        if best is None or out["cpu_s"] < best["cpu_s"]:
            best = out
        if out["wall_s"] > limit:
            break
    return best, runs


def run_series(cases: list[str], repeat: int, rr_limit: float, timeout: float, out: Path,
               rr_max: float = math.inf, old: list[dict] = (), from_file: bool = False) -> list[dict]:
    """Ours against libRoadRunner, start-up included, per case; prints and writes the table."""
    print(f"{'case':>8s} {'states':>6s} {'n':>6s} | {'ours cpu':>8s} {'wall':>6s} {'integ':>6s} | "
          f"{'rr load':>7s} {'sim':>6s} {'total':>7s} {'wall':>7s} {'export':>6s} | {'ours/rr':>7s} {'wall':>6s} "
          f"{'vs sim':>7s} {'|dth|':>8s} note", flush=True)
    rows, rr_skip = [], ""
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            model = _model(case, Path(tmp))
            try:     # defines the episode's end; computed here, so that the timed processes start cold
                theta_star = loop_fixed_point(model, LearningNetwork(model)).theta
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"{case}: loop fixed point failed: {type(e).__name__}: {e}", flush=True)
                continue
        ours, _ = _best("ours", case, T_MAX, repeat, math.inf, timeout, from_file, theta_star)
        if "error" in ours:
            print(f"{case} ours failed: {ours['error']}", flush=True)
            continue
        label = Path(case).stem if case.endswith(".toml") else case.removeprefix("corpus:")
        row = {"case": label, "states": ours["states"], "n": ours["n"], "ours_cpu_s": ours["cpu_s"],
               "ours_wall_s": ours["wall_s"], "ours_integrate_wall_s": ours["integrate_wall_s"],
               "steps": ours["steps"], "t_episode": ours["t_episode"], "note": rr_skip}
        if ours["states"] > rr_max and not rr_skip:
            row["note"] = f"libRoadRunner not run above {rr_max} copy states (--rr-max-states)"
        elif not rr_skip:
            rr, runs = _best("rr", case, ours["t_episode"], repeat, rr_limit, timeout, from_file)
            if "error" in rr:
                row["note"] = rr_skip = f"libRoadRunner: {rr['error']}"
            else:
                row.update({f"rr_{k}": rr[k] for k in ("load_cpu_s", "load_wall_s", "sim_cpu_s", "sim_wall_s",
                                                        "cpu_s", "wall_s", "export_wall_s")})
                row.update(ratio_cpu=ours["cpu_s"] / rr["cpu_s"], ratio_wall=ours["wall_s"] / rr["wall_s"],
                           ratio_sim_cpu=ours["cpu_s"] / rr["sim_cpu_s"],
                           theta_diff=float(np.max(np.abs(np.subtract(rr["theta_end"], ours["theta_end"])))))
                if runs < repeat:
                    row["note"] = f"libRoadRunner: 1 run (> {rr_limit:.0f} s)"
                if rr["wall_s"] > rr_limit:
                    rr_skip = f"libRoadRunner skipped: {case} took {rr['wall_s']:.0f} s > {rr_limit:.0f} s"
        rows.append(row)
        g = row.get
        print(f"{label:>8s} {row['states']:6d} {row['n']:6d} | {row['ours_cpu_s']:8.3f} {row['ours_wall_s']:6.2f} "
              f"{row['ours_integrate_wall_s']:6.2f} | {_fmt(g('rr_load_cpu_s', ''), '7.2f')} "
              f"{_fmt(g('rr_sim_cpu_s', ''), '6.2f')} {_fmt(g('rr_cpu_s', ''), '7.2f')} {_fmt(g('rr_wall_s', ''), '7.2f')} "
              f"{_fmt(g('rr_export_wall_s', ''), '6.2f')} | {_fmt(g('ratio_cpu', ''), '7.3f')} "
              f"{_fmt(g('ratio_wall', ''), '6.3f')} {_fmt(g('ratio_sim_cpu', ''), '7.2f')} "
              f"{_fmt(g('theta_diff', ''), '8.1e')} {row['note']}", flush=True)
        _write(out, list(old) + rows)
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
    p.add_argument("--rr-max-states", type=int, default=None,
                   help=f"libRoadRunner only up to this many copy states (its dense CVODE: O(n^3) per "
                        f"factorisation; default {RR_MAX_STATES}, with --series no limit but --rr-limit)")
    p.add_argument("--series", choices=sorted(SERIES),
                   help="start-up included, fresh process per run: the two-visible scaffold from 56 copy states "
                        "(small: up to 1001; large: 2535, 10,080; all); writes ode-series.csv")
    p.add_argument("--repeat", type=int, default=3, help="--series: best (least CPU) of this many runs")
    p.add_argument("--rr-limit", type=float, default=60.0,
                   help="--series: one libRoadRunner run at a case where it takes longer, none at larger cases")
    p.add_argument("--timeout", type=float, default=900.0, help="--series: a run killed after this many seconds")
    p.add_argument("--from-file", action="store_true",
                   help="--series: time both sides from the model file (load_model and enumeration; rr: and export)")
    p.add_argument("--child", choices=["ours", "rr"], help=argparse.SUPPRESS)
    p.add_argument("--theta-star", type=json.loads, default=None, help=argparse.SUPPRESS)
    p.add_argument("--t-episode", type=float, default=T_MAX, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            print(json.dumps(_child(args.child, args.cases, args.t_episode, args.from_file, args.theta_star)))
        return 0
    if args.series:
        cases = [c for c in args.cases.split(",") if c] if args.cases != ",".join(DEFAULT_CASES) else SERIES[args.series]
        out = ROOT / "benchmarks" / "results" / (args.out if args.out != "ode.csv" else "ode-series.csv")
        out.parent.mkdir(parents=True, exist_ok=True)
        old = list(csv.DictReader(open(out))) if args.append and out.exists() else []
        run_series(cases, args.repeat, args.rr_limit, args.timeout, out,
                   math.inf if args.rr_max_states is None else args.rr_max_states, old, args.from_file)
        print(f"wrote {out}")
        return 0
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
            rows += bench_case(case, methods, skip, args.time_limit, Path(tmp),
                               RR_MAX_STATES if args.rr_max_states is None else args.rr_max_states)
            _write(out, old + rows)              # after every case: a long run keeps what it has
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
