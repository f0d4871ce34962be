"""Events per CPU-second: our SSA (feedback/dynamics/ssa.py) against GillesPy2 and bioscrape on the same network.

    python benchmarks/bench_ssa.py            # full table (n_max 20, 50, 100; M = 1000)
    python benchmarks/bench_ssa.py --quick    # n_max 20 only, short runs (results/ssa-quick.csv)

bioscrape (a compiled SSA, ``pip install bioscrape`` or the ``peers``
extra) runs beside GillesPy2 when it is importable; without it its columns
are ``-`` and one line says why.

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
shipped); for its NumPy SSA the process CPU time. bioscrape gets the same
network as mass-action reactions built through its Python API
(``bioscrape.types.Model(species, reactions, parameters, ...)``) and is
timed by ``time.process_time`` around ``py_simulate_model(...,
stochastic=True)``; its event count is taken the same way as GillesPy2's.

Statistics at the fixed point (second table; ``--no-stats`` skips it): for
the first size of each clamping, ``R`` replicates of every simulator start
from the same copies at ``theta = 0`` and run ``t_burn + t_stat``; ``theta
= ln(L_X / Omega)`` is sampled every 0.5 time units after ``t_burn``. The
mean is the grand mean over replicates and samples, the variance the mean
squared deviation from it; their 95% confidence intervals come from batch
means (25 time units, about 6 correlation times of theta; Student t with
batches - 1 degrees of freedom). ``z`` is the difference from ours over the
combined standard error; the rows agree when ``|z| < 1.96`` for both. ``OPENBLAS_NUM_THREADS=1``
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
from crnfb.feedback.dynamics.ssa import simulate_ssa  # noqa: E402

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
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
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


def bioscrape_model(model: Model, seed: int):
    """The same network as :func:`gillespy_model`, built through bioscrape's Python API."""
    from bioscrape.types import Model as BModel
    Nf, Nc, cstates, r, L0 = initial_counts(model, seed)
    n_max = int(model.space.bounds[0])
    species = [f"free_{s}" for s in range(n_max + 1)] + [f"clamped_{c}" for c in cstates] + ["L_X"]
    params: dict[str, float] = {}

    def par(value):
        key = f"k{len(params)}"
        params[key] = float(value)
        return {"k": key}

    rx = []
    for s in range(n_max + 1):
        if s < n_max:
            rx.append(([f"free_{s}", "L_X"], [f"free_{s + 1}", "L_X"], "massaction", par(1.0 / OMEGA)))
        if s > 0:
            rx.append(([f"free_{s}"], [f"free_{s - 1}"], "massaction", par(s)))
            rx.append(([f"free_{s}", "L_X"], [f"free_{s}"], "massaction", par(EPS * s / M)))
    for i, c in enumerate(cstates):
        if c > 0:
            rx.append(([f"clamped_{c}", "L_X"], [f"clamped_{c}", "L_X", "L_X"], "massaction", par(EPS * c / M)))
        for j, c2 in enumerate(cstates):
            rx.append(([f"clamped_{c}"], [f"clamped_{c2}"], "massaction", par(GAMMA * r[j])))
    if model.learning.clamping == "equilibrium":
        m_c = float(model.q @ model.space.visible_states[:, 0])
        rx.append((["L_X"], ["L_X", "L_X"], "massaction", par(EPS * m_c)))
    ic = {f"free_{s}": int(Nf[s]) for s in range(n_max + 1)}
    ic.update({f"clamped_{c}": int(n) for c, n in zip(cstates, Nc)})
    ic["L_X"] = int(L0)
    return BModel(species=species, reactions=rx, parameters=params, initial_condition_dict=ic), len(rx)


def bioscrape_missing() -> str | None:
    """None when bioscrape imports, else the reason (one line)."""
    try:
        import bioscrape.simulator  # noqa: F401
        import bioscrape.types  # noqa: F401
    except Exception as exc:  # ImportError, or a compiled module that does not load
        return f"bioscrape not run: {type(exc).__name__}: {exc} (pip install bioscrape, or the peers extra)"
    return None


def run_bioscrape(model, t_end, seed, n_out: int = 11):
    """CPU seconds of one bioscrape SSA trajectory, the reaction count and the theta samples."""
    from bioscrape.random import py_seed_random
    from bioscrape.simulator import py_simulate_model
    bm, nr = bioscrape_model(model, seed)
    py_seed_random(seed + 1)
    times = np.linspace(0.0, t_end, n_out)
    c0 = time.process_time()
    res = py_simulate_model(times, Model=bm, stochastic=True, return_dataframe=False)
    cpu = time.process_time() - c0
    L = res.py_get_result()[:, bm.get_species2index()["L_X"]]
    return cpu, nr, np.log(L / OMEGA)


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


def theta_samples(solver: str, model: Model, R: int, t_burn: float, t_stat: float, seed: int):
    """(R, samples) theta = ln(L_X / Omega) at t_burn, t_burn + 0.5, ..., t_burn + t_stat; and CPU seconds."""
    dt = 0.5
    n_out = int(round((t_burn + t_stat) / dt)) + 1
    times = np.linspace(0.0, t_burn + t_stat, n_out)
    keep = times >= t_burn - 1e-9
    if solver == "ours":
        tr = simulate_ssa(model, t_burn + t_stat, n_out, seed, replicates=R, progress=False, threads=1)
        return tr.theta[:, keep, 0], tr.cpu_seconds
    if solver == "gillespy2":
        from gillespy2 import SSACSolver
        gm, _ = gillespy_model(model, seed, t_burn + t_stat, n_out)
        solver_ = SSACSolver(model=gm)
        c0 = children_cpu()
        res = solver_.run(t=t_burn + t_stat, seed=seed + 1, number_of_trajectories=R)
        cpu = children_cpu() - c0
        th = np.array([np.log(np.asarray(res[r]["L_X"], float) / OMEGA) for r in range(R)])
        return th[:, keep], cpu
    if solver == "bioscrape":
        out, cpu = [], 0.0
        for r in range(R):
            c, _, th = run_bioscrape(model, t_burn + t_stat, seed + 100 * r, n_out)
            out.append(th)
            cpu += c
        return np.array(out)[:, keep], cpu
    raise ValueError(solver)


BATCH = 25.0   # time units per batch: ~6 correlation times of theta (1 / (eps E_Q[x]) = 4)


def theta_stats(th: np.ndarray, dt: float = 0.5) -> dict:
    """Grand mean and variance of theta with 95% CIs from batch means.

    Each replicate's sampled span is cut into batches of ``BATCH`` time units;
    batch means of theta and of its squared deviation from the grand mean are
    treated as independent (Student t quantile, batches - 1 degrees of freedom).
    """
    R, S = th.shape
    per = max(1, int(round(BATCH / dt)))
    nb = max(1, (S - 1) // per)
    mean = float(th.mean())
    blocks = th[:, 1:1 + nb * per].reshape(R * nb, per)
    b_mean = blocks.mean(axis=1)
    b_var = ((blocks - mean) ** 2).mean(axis=1)
    n = b_mean.size
    return {"replicates": R, "samples": int(th.size), "batches": n, "theta_mean": mean,
            "theta_mean_se": float(b_mean.std(ddof=1) / np.sqrt(n)),
            "theta_var": float(((th - mean) ** 2).mean()), "theta_var_se": float(b_var.std(ddof=1) / np.sqrt(n)),
            "t95": float(stats.t.ppf(0.975, n - 1))}


def stats_table(clampings, n_max: int, R: int, t_burn: float, t_stat: float, seed: int,
                with_bioscrape: bool) -> list[dict]:
    """Print and return the theta statistics at the fixed point, one row per clamping and simulator."""
    stats_rows = []
    print(f"\ntheta = ln(L_X/Omega) at the fixed point: {R} replicates x t = {t_burn:g} + {t_stat:g} "
          f"(burn-in + sampled every 0.5, batches of {BATCH:g}), n_max {n_max}; 95% CIs; "
          "z = difference from ours / combined se")
    print(f"{'clamping':>11} {'simulator':>10} {'mean':>18} {'z':>6} {'variance':>22} {'z':>6} {'CPU s':>7}")
    solvers = ["ours", "gillespy2"] + (["bioscrape"] if with_bioscrape else [])
    for clamping in clampings:
        model = bench_model(n_max, clamping)
        ref = None
        for solver in solvers:
            th, cpu = theta_samples(solver, model, R, t_burn, t_stat, seed)
            st = dict(theta_stats(th), clamping=clamping, n_max=n_max, simulator=solver,
                      t_burn=t_burn, t_stat=t_stat, cpu_s=cpu)
            ref = ref or st
            zm = (st["theta_mean"] - ref["theta_mean"]) / np.hypot(st["theta_mean_se"], ref["theta_mean_se"])
            zv = (st["theta_var"] - ref["theta_var"]) / np.hypot(st["theta_var_se"], ref["theta_var_se"])
            st["z_mean"], st["z_var"] = (float(zm), float(zv)) if st is not ref else (0.0, 0.0)
            stats_rows.append(st)
            print(f"{clamping:>11} {solver:>10} {st['theta_mean']:.5f} +- {st['t95'] * st['theta_mean_se']:.5f} "
                  f"{st['z_mean']:6.2f} {st['theta_var']:.3e} +- {st['t95'] * st['theta_var_se']:.2e} "
                  f"{st['z_var']:6.2f} {cpu:7.1f}", flush=True)
    return stats_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n_max 20 only, short runs")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-numpy", action="store_true", help="skip GillesPy2's NumPy SSA (slow)")
    ap.add_argument("--clamping", choices=("dynamic", "equilibrium", "both"), default="both")
    ap.add_argument("--no-stats", action="store_true", help="skip the theta statistics at the fixed point")
    ap.add_argument("--replicates", type=int, default=None, help="replicates for the statistics (8; quick 4)")
    ap.add_argument("--t-stat", type=float, default=None, help="sampled span after the burn-in (200; quick 50)")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([20] if args.quick else [20, 50, 100])
    t_ours = 100.0 if args.quick else 1000.0        # ~1.2e6 / 1.2e7 events
    t_cpp = 20.0 if args.quick else 200.0
    t_np = 1.0 if args.quick else 5.0
    t_bs = 20.0 if args.quick else 200.0
    R = args.replicates or (4 if args.quick else 8)
    t_burn = 30.0                                    # theta relaxes at eps * E_Q[x] = 0.25 from theta = 0
    t_stat = args.t_stat or (50.0 if args.quick else 200.0)
    bs_missing = bioscrape_missing()
    if bs_missing:
        print(bs_missing)
    # GillesPy2's C++ solvers build with SCons from the running interpreter's environment
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    rows = []
    print(f"E1 learning network, M_f = M_c = {M}, Omega = {OMEGA:g}, eps = {EPS}, gamma = {GAMMA}; "
          "events per CPU-second (millions)")
    print(f"{'clamping':>11} {'n_max':>5} {'reactions':>9} {'ours':>8} {'gp2 C++':>8} {'gp2 NumPy':>9} "
          f"{'bioscrape':>9} {'ours/C++':>8} {'ours/bs':>8} {'C++ build s':>11}")
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
        if not bs_missing:
            bs_cpu, nr_bs, _ = run_bioscrape(model, t_bs, args.seed)
            assert nr_bs == nr, (nr_bs, nr)
            new.append(dict(base, solver="bioscrape SSA (Cython)", t_end=t_bs,
                            events=expected_events(model, t_bs, args.seed), cpu_s=bs_cpu))
        for r in new:
            r["events_per_cpu_s"] = r["events"] / r["cpu_s"]
        rows.extend(new)
        rate = {r["solver"].split()[0] + (" numpy" if "NumPy" in r["solver"] else ""): r["events_per_cpu_s"]
                for r in new}
        ours, cpp = rate["ours"], rate["gillespy2"]
        npy, bs = rate.get("gillespy2 numpy", float("nan")), rate.get("bioscrape", float("nan"))
        npy_s = f"{npy / 1e6:9.4f}" if npy == npy else f"{'-':>9}"
        bs_s = f"{bs / 1e6:9.3f}" if bs == bs else f"{'-':>9}"
        ratio_bs = f"{ours / bs:8.1f}" if bs == bs else f"{'-':>8}"
        print(f"{clamping:>11} {n:5d} {nr:9d} {ours / 1e6:8.2f} {cpp / 1e6:8.3f} {npy_s} {bs_s} "
              f"{ours / cpp:8.1f} {ratio_bs} {build:11.1f}", flush=True)
    stats_rows = [] if args.no_stats else stats_table(clampings, sizes[0], R, t_burn, t_stat, args.seed,
                                                      bs_missing is None)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / ("ssa-quick.csv" if args.quick else "ssa.csv")
    keys = ["clamping", "n_max", "M", "solver", "reactions", "t_end", "events", "cpu_s", "events_per_cpu_s", "build_s"]
    _write_csv(csv_path, keys, rows)
    if stats_rows:
        st_path = out / ("ssa-theta-quick.csv" if args.quick else "ssa-theta.csv")
        keys = ["clamping", "n_max", "simulator", "replicates", "samples", "batches", "t_burn", "t_stat", "theta_mean",
                "theta_mean_se", "theta_var", "theta_var_se", "z_mean", "z_var", "cpu_s"]
        _write_csv(st_path, keys, stats_rows)
    return 0


def _write_csv(path: Path, keys: list[str], rows: list[dict]) -> None:
    """One CSV of ``rows`` (missing keys empty), then the path on stdout."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in keys})
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
