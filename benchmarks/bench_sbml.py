"""Benchmark: export the learning CRN as SBML and run it in libRoadRunner.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_sbml.py [--t-end 10] [--cases E1-50,E1-200,E1-1000,E3]
                                                            [--backend lljit|mcjit] [--json FILE]

For each case: size of the learning network (species, reactions, file
size), time to build it (``learning_network``), to write the SBML
(libsbml), libRoadRunner's load (parse + JIT compile) and a time course of
``--t-end`` time units (101 points, CVODE rtol 1e-8 / atol 1e-12), and the
same time course with our own mass-action right-hand side and exact sparse
Jacobian (``MassActionNetwork.rhs/jacobian`` through scipy's BDF), with the
relative difference of ``Lambda_X`` at the end. Wall and process CPU times
are both printed: on a loaded machine the CPU times are the stable figure.

E1 is examples/birth_death.toml with dynamic clamping and the given n_max
(``E1-1000``: 1001 free copy states); E3 is examples/hidden_scaffold.toml.
BLAS threads are pinned to one (set before numpy is imported) because the
machines this runs on are shared and multi-threaded BLAS timings there are
unstable. libRoadRunner's per-id Python attributes are disabled
(``ROADRUNNER_DISABLE_PYTHON_DYNAMIC_PROPERTIES``): with thousands of ids
they cost as much as the compile.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crnfb.feedback.io import sbml  # noqa: E402
from crnfb.feedback.io.modelfile import load_model  # noqa: E402


def case_model(name: str):
    if name.startswith("E1-"):
        n = int(name.split("-")[1])
        return load_model(ROOT / "examples" / "birth_death.toml").with_learning(clamping="dynamic").replace(n_max=n)
    if name == "E3":
        return load_model(ROOT / "examples" / "hidden_scaffold.toml")
    if name == "E2":
        return load_model(ROOT / "examples" / "isomerisation.toml")
    raise SystemExit(f"unknown case {name!r}; use E1-<n_max>, E2 or E3")


def run_case(name: str, t_end: float, backend: str) -> dict:
    import roadrunner
    from roadrunner import Config, LoadSBMLOptions

    Config.setValue(Config.ROADRUNNER_DISABLE_PYTHON_DYNAMIC_PROPERTIES, True)
    m = case_model(name)
    out: dict = {"case": name, "copy_states": int(m.space.size)}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sbml.SBMLExportWarning)
        net = sbml.learning_network(m)
    out["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    text = sbml.network_to_sbml(net)
    out["write_s"] = time.perf_counter() - t0
    out["species"] = len(net.species)
    out["reactions"] = len(net.reactions)
    out["file_MB"] = len(text.encode()) / 1e6

    opt = LoadSBMLOptions()
    opt.setLLVMBackend(LoadSBMLOptions.LLJIT if backend == "lljit" else LoadSBMLOptions.MCJIT)
    t0, c0 = time.perf_counter(), time.process_time()
    rr = roadrunner.RoadRunner(text, opt)
    out["rr_load_s"] = time.perf_counter() - t0
    out["rr_load_cpu_s"] = time.process_time() - c0
    rr.integrator.relative_tolerance = 1e-8
    rr.integrator.absolute_tolerance = 1e-12
    lam = f"Lambda_{m.network.names[m.learned[0]]}"
    t0, c0 = time.perf_counter(), time.process_time()
    res = rr.simulate(0, t_end, 101, ["time", lam])
    out["rr_sim_s"] = time.perf_counter() - t0
    out["rr_sim_cpu_s"] = time.process_time() - c0
    lam_rr = float(res[-1, 1])

    t0, c0 = time.perf_counter(), time.process_time()
    sol = solve_ivp(lambda t, x: net.rhs(x), (0, t_end), net.initial, method="BDF",
                    jac=lambda t, x: net.jacobian(x), t_eval=np.linspace(0, t_end, 101), rtol=1e-8, atol=1e-12)
    out["ours_sim_s"] = time.perf_counter() - t0
    out["ours_sim_cpu_s"] = time.process_time() - c0
    lam_ours = float(sol.y[net.species_ids.index(lam), -1])
    out["lambda_end"] = lam_ours
    out["rel_diff"] = abs(lam_rr - lam_ours) / abs(lam_ours)
    return out


COLUMNS = [("case", "case", "{}"), ("copy_states", "copy states", "{}"), ("species", "species", "{}"),
           ("reactions", "reactions", "{}"), ("file_MB", "SBML MB", "{:.2f}"), ("build_s", "build s", "{:.2f}"),
           ("write_s", "write s", "{:.2f}"), ("rr_load_s", "RR load s", "{:.2f}"),
           ("rr_load_cpu_s", "(cpu)", "{:.2f}"), ("rr_sim_s", "RR sim s", "{:.2f}"),
           ("rr_sim_cpu_s", "(cpu)", "{:.2f}"), ("ours_sim_s", "ours sim s", "{:.2f}"),
           ("ours_sim_cpu_s", "(cpu)", "{:.2f}"), ("rel_diff", "|dLambda|/Lambda", "{:.1e}")]


def table(rows: list[dict]) -> str:
    cells = [[fmt.format(r[k]) for k, _, fmt in COLUMNS] for r in rows]
    heads = [h for _, h, _ in COLUMNS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda vals: "| " + " | ".join(v.rjust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(heads), sep, *(line(c) for c in cells)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="E1-50,E1-200,E1-1000,E3")
    p.add_argument("--t-end", type=float, default=10.0)
    p.add_argument("--backend", choices=("lljit", "mcjit"), default="lljit")
    p.add_argument("--json", help="also write the rows as JSON")
    a = p.parse_args(argv)
    try:
        import roadrunner  # noqa: F401
    except ImportError:
        print("libroadrunner is not installed (pip install libroadrunner)", file=sys.stderr)
        return 2
    rows = []
    for name in a.cases.split(","):
        rows.append(run_case(name.strip(), a.t_end, a.backend))
        print(f"done {name}: load {rows[-1]['rr_load_s']:.2f} s", file=sys.stderr, flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"t_end = {a.t_end:g}, backend = {a.backend}, OPENBLAS_NUM_THREADS = {os.environ['OPENBLAS_NUM_THREADS']}, "
          f"cpus = {os.cpu_count()}, load average = {load:.1f} (wall times; (cpu) = process CPU time)")
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
