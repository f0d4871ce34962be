"""Events per CPU-second: our SSA (feedback/ssa.py) against GillesPy2 on the same network.

    python benchmarks/bench_ssa.py            # full table (n_max 20, 50, 100; M = 1000)
    python benchmarks/bench_ssa.py --quick    # n_max 20 only, short runs (results/ssa-quick.csv)

The network is E1 (birth-death ``0 <-> X``, docs/theory.md §8) as a finite
learning network (section 6) with dynamic clamping: ``M_f = M_c = 1000``
copies, ``Omega = 1000``, ``eps = 0.05``, ``gamma = 1``, ``kappa = 1``; the
environment is Poisson(5) restricted to its points of mass >= 1e-6
(17 points, renormalised) so the reset reactions stay countable. Written
for GillesPy2 as one mass-action CRN with copy-state-count species
``free_s`` (s = 0..n_max), ``clamped_c`` (c in the support) and ``L_X``:

    free_s + L_X -> free_{s+1} + L_X     kappa / Omega        (lambda = L/Omega)
    free_s -> free_{s-1}                 kappa * s
    clamped_c + L_X -> clamped_c + 2 L_X eps * c / M_c        (learning, production)
    free_s + L_X -> free_s               eps * s / M_f        (learning, degradation)
    clamped_c -> clamped_c'              gamma * Q(c')        (resets; c' = c included)

so ``2 n_max + 2 (n_max + 1) + |supp Q|^2`` reactions (``dynamic`` rows). The
``equilibrium`` rows are the same network with the idealised clamped
ensemble (docs/theory.md §4): no clamped copies and no resets, production
``L_X -> 2 L_X`` at rate ``eps * E_Q[x]``: ``3 n_max + 1`` reactions, the
case closest to GillesPy2's strengths. Both simulators start
from the same sample of the initial copy states. GillesPy2 does not report
how many events it fired; its count is the expected count of the same
process over the same time span, taken from our SSA (mean of 2 replicates;
relative spread < 1e-3). CPU seconds: ``time.process_time`` of the event
loop for ours (one replicate, one thread); for GillesPy2's C++ SSA the
``getrusage(RUSAGE_CHILDREN)`` CPU time of its solver process (build
excluded, reported separately; the package compiles it with -O0 as
shipped); for its NumPy SSA the process CPU time. ``OPENBLAS_NUM_THREADS=1``
is set so that BLAS threads do not distort timings on a shared machine.

Writes ``benchmarks/results/ssa.csv``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crnfb.feedback import Ensembles, Learning, Model, Network, Table  # noqa: E402
from crnfb.feedback.ssa import simulate_ssa  # noqa: E402

M = 1000
OMEGA = 1000.0
EPS = 0.05
GAMMA = 1.0
MU = 5.0


def bench_model(n_max: int, clamping: str = "dynamic") -> Model:
    xs = np.arange(0, 60)
    pmf = stats.poisson.pmf(xs, MU)
    keep = pmf >= 1e-6
    probs = pmf[keep] / pmf[keep].sum()
    env = Table(tuple((int(x),) for x in xs[keep]), tuple(float(p) for p in probs))
    net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"], name="bench-birth-death")
    return Model(net, initial={"X": 0}, n_max=n_max, environment=env,
                 learning=Learning((EPS,), clamping, GAMMA), ensembles=Ensembles(M, M, OMEGA))


def initial_counts(model: Model, seed: int):
    """The start our SSA uses for replicate 0 (same SeedSequence child, same draws)."""
    from crnfb.feedback.ensembles import LearningNetwork
    net = LearningNetwork(model)
    th = model.theta0
    pf = net.free_stationary(th)
    g = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    Nf = g.multinomial(M, pf / pf.sum())
    if not net.dynamic:
        return Nf, np.zeros(0, int), np.zeros(0, int), np.zeros(0), int(round(OMEGA * np.exp(th[0])))
    pc = net.clamped_stationary(th)
    Nc = g.multinomial(M, pc / pc.sum())
    states_c = model.space.states[net.clamped_states, 0]
    return Nf, Nc, states_c, net.reset_target(0.0), int(round(OMEGA * np.exp(th[0])))


def gillespy_model(model: Model, seed: int, t_end: float, n_out: int = 11):
    import gillespy2 as gp
    Nf, Nc, cstates, r, L0 = initial_counts(model, seed)
    n_max = int(model.space.bounds[0])
    gm = gp.Model(name=f"bench{n_max}")
    sp = [gp.Species(name=f"free_{s}", initial_value=int(Nf[s]), mode="discrete") for s in range(n_max + 1)]
    cs = [gp.Species(name=f"clamped_{c}", initial_value=int(n), mode="discrete") for c, n in zip(cstates, Nc)]
    L = gp.Species(name="L_X", initial_value=L0, mode="discrete")
    gm.add_species(sp + cs + [L])
    params = {}

    def par(value):
        key = f"k{len(params)}"
        params[key] = gp.Parameter(name=key, expression=repr(float(value)))
        return params[key]

    rx = []
    for s in range(n_max + 1):
        if s < n_max:
            rx.append(gp.Reaction(name=f"birth_{s}", reactants={sp[s]: 1, L: 1}, products={sp[s + 1]: 1, L: 1},
                                  rate=par(1.0 / OMEGA)))
        if s > 0:
            rx.append(gp.Reaction(name=f"death_{s}", reactants={sp[s]: 1}, products={sp[s - 1]: 1}, rate=par(s)))
            rx.append(gp.Reaction(name=f"degr_{s}", reactants={sp[s]: 1, L: 1}, products={sp[s]: 1},
                                  rate=par(EPS * s / M)))
    for i, c in enumerate(cstates):
        if c > 0:
            rx.append(gp.Reaction(name=f"prod_{c}", reactants={cs[i]: 1, L: 1}, products={cs[i]: 1, L: 2},
                                  rate=par(EPS * c / M)))
        for j in range(len(cstates)):
            rx.append(gp.Reaction(name=f"reset_{i}_{j}", reactants={cs[i]: 1}, products={cs[j]: 1},
                                  rate=par(GAMMA * r[j])))
    if model.learning.clamping == "equilibrium":
        m_c = float(model.q @ model.space.visible_states[:, 0])
        rx.append(gp.Reaction(name="prod", reactants={L: 1}, products={L: 2}, rate=par(EPS * m_c)))
    gm.add_parameter(list(params.values()))
    gm.add_reaction(rx)
    gm.timespan(np.linspace(0.0, t_end, n_out))
    return gm, len(rx)


def run_ours(model, t_end, seed):
    tr = simulate_ssa(model, t_end, 11, seed, replicates=1, progress=False, threads=1)
    return int(tr.events[0]), tr.cpu_seconds


def expected_events(model, t_end, seed):
    tr = simulate_ssa(model, t_end, 11, seed, replicates=2, progress=False)
    return float(tr.events.mean())


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_gillespy_cpp(model, t_end, seed):
    from gillespy2 import SSACSolver
    gm, nr = gillespy_model(model, seed, t_end)
    t0 = time.perf_counter()
    solver = SSACSolver(model=gm)
    build = time.perf_counter() - t0
    c0 = children_cpu()
    solver.run(t=t_end, seed=seed + 1, number_of_trajectories=1)
    return children_cpu() - c0, build, nr


def run_gillespy_numpy(model, t_end, seed):
    from gillespy2 import NumPySSASolver
    gm, nr = gillespy_model(model, seed, t_end)
    solver = NumPySSASolver(model=gm)
    c0 = time.process_time()
    solver.run(t=t_end, seed=seed + 1, number_of_trajectories=1)
    return time.process_time() - c0, nr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n_max 20 only, short runs")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-numpy", action="store_true", help="skip GillesPy2's NumPy SSA (slow)")
    ap.add_argument("--clamping", choices=("dynamic", "equilibrium", "both"), default="both")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([20] if args.quick else [20, 50, 100])
    t_ours = 100.0 if args.quick else 1000.0        # ~1.2e6 / 1.2e7 events
    t_cpp = 20.0 if args.quick else 200.0
    t_np = 1.0 if args.quick else 5.0
    # GillesPy2's C++ solvers build with SCons from the running interpreter's environment
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    rows = []
    print(f"E1 learning network, M_f = M_c = {M}, Omega = {OMEGA:g}, eps = {EPS}, gamma = {GAMMA}; "
          "events per CPU-second (millions)")
    print(f"{'clamping':>11} {'n_max':>5} {'reactions':>9} {'ours':>8} {'gp2 C++':>8} {'gp2 NumPy':>9} "
          f"{'ours/C++':>8} {'C++ build s':>11}")
    clampings = ("dynamic", "equilibrium") if args.clamping == "both" else (args.clamping,)
    for clamping, n in [(c, n) for c in clampings for n in sizes]:
        model = bench_model(n, clamping)
        run_ours(model, 1.0, args.seed)   # compile / load the numba cache outside the timing
        ev, cpu = run_ours(model, t_ours, args.seed)
        cpp_cpu, build, nr = run_gillespy_cpp(model, t_cpp, args.seed)
        ev_cpp = expected_events(model, t_cpp, args.seed)
        base = {"clamping": clamping, "n_max": n, "M": M, "reactions": nr}
        new = [dict(base, solver="ours (numba, 1 thread)", t_end=t_ours, events=ev, cpu_s=cpu),
               dict(base, solver="gillespy2 SSACSolver (C++)", t_end=t_cpp, events=ev_cpp, cpu_s=cpp_cpu,
                    build_s=build)]
        if not args.no_numpy:
            np_cpu, _ = run_gillespy_numpy(model, t_np, args.seed)
            new.append(dict(base, solver="gillespy2 NumPySSASolver", t_end=t_np,
                            events=expected_events(model, t_np, args.seed), cpu_s=np_cpu))
        for r in new:
            r["events_per_cpu_s"] = r["events"] / r["cpu_s"]
        rows.extend(new)
        ours, cpp = new[0]["events_per_cpu_s"], new[1]["events_per_cpu_s"]
        npy = new[2]["events_per_cpu_s"] if len(new) > 2 else float("nan")
        print(f"{clamping:>11} {n:5d} {nr:9d} {ours / 1e6:8.2f} {cpp / 1e6:8.3f} {npy / 1e6:9.4f} "
              f"{ours / cpp:8.1f} {build:11.1f}", flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / ("ssa-quick.csv" if args.quick else "ssa.csv")
    keys = ["clamping", "n_max", "M", "solver", "reactions", "t_end", "events", "cpu_s", "events_per_cpu_s", "build_s"]
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})
    print(f"wrote {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
