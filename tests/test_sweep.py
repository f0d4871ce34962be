"""``crnfb sweep``: parameter specs, grids, parallel evaluation, resumability, agreement with analyse."""

from __future__ import annotations

import csv
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from crnfb.analysis.cli.entry import main
from crnfb.analysis.reporting.pipeline import analyse
from crnfb.analysis.reporting.results import SCALAR_KEYS
from crnfb.analysis.cli.sweep import apply_params, build_grid, parse_param, read_csv, run_sweep
from crnfb.feedback.errors import ModelError

ROOT = Path(__file__).resolve().parent.parent
E1 = ROOT / "examples" / "birth_death.toml"


# -- specs ---------------------------------------------------------------------------------------
def test_parse_param_forms():
    p = parse_param("eps=0.01:1:20:log10")
    assert p.name == "eps" and p.scale == "log10" and len(p.values) == 20
    assert p.values[0] == pytest.approx(0.01) and p.values[-1] == pytest.approx(1.0)
    assert np.allclose(np.diff(np.log10(p.values)), 2 / 19)
    p = parse_param("gamma=0.5:2:4")
    assert p.scale == "lin" and p.values == pytest.approx((0.5, 1.0, 1.5, 2.0))
    assert len(parse_param("eps=0.01:1:log10").values) == 10      # docs/cli.md's own example
    assert parse_param("dmu=5,10,20").values == (5.0, 10.0, 20.0)
    assert parse_param("kappa=2").values == (2.0,)
    m = parse_param("M=10:1000:5:log10")
    assert all(v == int(v) for v in m.values)
    assert parse_param("M_f=100").name == "free"


@pytest.mark.parametrize("spec,msg", [
    ("eps", "expected NAME="), ("foo=1:2:3", "unknown parameter"), ("eps=0:1:5:log10", "log10 grid"),
    ("eps=a:1:5", "not a number"), ("eps=0.1:1:2.5", "whole number"), ("gamma=-1:1:3", "> 0"),
    ("free=0.2", "ensemble sizes"), ("eps=1:2:3:4:5", "expected START"), ("eps=", "no values"),
    ("eps=nan", "finite"), ("gamma.X=1", "only eps"),
])
def test_parse_param_errors(spec, msg):
    with pytest.raises(ModelError, match=msg):
        parse_param(spec)


def test_grid_and_apply(e1):
    g = build_grid([parse_param("eps=0.1,0.2"), parse_param("kappa=1,3")])
    assert g == [{"eps": 0.1, "kappa": 1.0}, {"eps": 0.1, "kappa": 3.0}, {"eps": 0.2, "kappa": 1.0},
                 {"eps": 0.2, "kappa": 3.0}]
    m = apply_params(e1, {"eps": 0.2, "kappa": 3.0, "gamma": 2.0, "M": 50, "omega": 7.0, "dmu": 3.0})
    assert m.eps.tolist() == [0.2] and m.network.kappa.tolist() == [3.0]
    assert (m.learning.gamma, m.learning.dmu) == (2.0, 3.0)
    assert (m.ensembles.free, m.ensembles.clamped, m.ensembles.omega) == (50, 50, 7.0)
    assert e1.network.kappa.tolist() == [1.0] and e1.eps.tolist() == [0.05]     # original untouched
    with pytest.raises(ModelError, match="twice"):
        build_grid([parse_param("eps=1"), parse_param("eps=2")])


def test_bad_spec_exit_2_nothing_created(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", str(E1), "--param", "eps=0:1:5:log10", "-o", str(out)]) == 2
    assert "log10" in capsys.readouterr().err
    assert not out.exists()
    assert main(["sweep", str(E1), "--param", "bogus=1", "-o", str(out)]) == 2
    assert main(["sweep", str(E1), "--param", "eps=0.1", "-o", str(out), "--workers", "0"]) == 2
    assert not out.exists()


def test_scheduler_without_dask_is_a_clear_error(tmp_path, capsys, monkeypatch):
    # CI installs Dask; a None entry in sys.modules makes its import fail as on a machine without it
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    out = tmp_path / "sw"
    assert main(["sweep", str(E1), "--param", "eps=0.1", "-o", str(out), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "dask" in capsys.readouterr().err.lower()
    assert not out.exists()


# -- the real thing: 10 eps values on E1, two processes, interrupted and resumed -----------------
# (10 points, not 20: each costs ~1.5 s of CPU; 10 still put 4 rows below and 6 above eps mu = 1/4, where E1's
# closed loop turns from real to complex poles, so both branches of the closed form below are checked)
@pytest.mark.slow
def test_sweep_parallel_resumable_and_agrees_with_analyse(tmp_path, e1, capsys):
    out = tmp_path / "sweep-e1"
    spec = "eps=0.01:1:10:log10"
    first = run_sweep(E1, [spec], out, workers=2, limit=4)        # "interrupted" after 4 points
    assert (first.total, first.skipped, first.evaluated) == (10, 0, 4)
    header, rows = read_csv(out / "sweep.csv", ["eps"])
    assert len(rows) == 4
    # an interruption in the middle of writing a row: the cut row is dropped and redone
    text = (out / "sweep.csv").read_text()
    (out / "sweep.csv").write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])
    assert main(["sweep", str(E1), "--param", spec, "-o", str(out), "--workers", "2"]) == 0
    msg = capsys.readouterr().out
    assert "10 grid points, 3 already in" in msg and "evaluated 7" in msg
    header, rows = read_csv(out / "sweep.csv", ["eps"])
    assert len(rows) == 10
    eps = sorted(r["eps"] for r in rows)
    assert np.allclose(eps, np.logspace(-2, 0, 10), rtol=1e-12)
    assert all(r["status"] == "ok" for r in rows)
    for k in SCALAR_KEYS:
        assert k in header
    # a third run has nothing left to do
    again = run_sweep(E1, [spec], out, workers=2)
    assert (again.skipped, again.evaluated) == (10, 0)
    # the CSV agrees with single runs of analyse at two grid points
    by_eps = {r["eps"]: r for r in rows}
    for e in (eps[0], eps[6]):
        ref = analyse(apply_params(e1, {"eps": e}), validate=False, figures=False, quick=True).scalars()
        row = by_eps[e]
        for k, v in ref.items():
            got = row[k]
            if v is None:
                assert got is None, k
            elif isinstance(v, bool):
                assert got == (1.0 if v else 0.0), k
            else:
                assert got == pytest.approx(v, rel=1e-6, abs=1e-12), k
    # E1: quasi-static rate eps * mu, closed loop from s^2 + s + eps mu
    for r in rows:
        assert r["quasi_static.slowest_rate"] == pytest.approx(5.0 * r["eps"], rel=1e-6)
        disc = 1 - 4 * 5.0 * r["eps"]
        expect = (1 - math.sqrt(disc)) / 2 if disc > 0 else 0.5
        assert r["closed_loop.slowest_rate"] == pytest.approx(expect, rel=1e-4, abs=1e-6)
    png = out / "sweep.png"
    assert png.exists() and png.stat().st_size > 20_000
    with open(out / "sweep.csv", newline="") as fh:
        assert len(list(csv.reader(fh))) == 11


@pytest.mark.slow
def test_sweep_survives_a_killed_worker_on_a_two_process_cluster(tmp_path):
    """A real cluster: two worker processes; one is SIGKILLed while it holds a task; every row comes once."""
    distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    out = tmp_path / "sw"
    eps = [round(0.01 * k, 2) for k in range(1, 9)]             # 8 points, ~2 s of CPU each on E1
    outcome: dict = {}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as watcher:
        watcher.wait_for_workers(2, timeout=120)
        sweep = threading.Thread(target=lambda: outcome.setdefault("code", main(
            ["sweep", str(E1), "--param", "eps=" + ",".join(map(str, eps)), "-o", str(out),
             "--scheduler", cluster.scheduler_address])))
        sweep.start()
        victim, deadline = None, time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:   # under way: a row written, a task held
            busy = {w for w, keys in watcher.processing().items() if keys}
            done = len(read_csv(out / "sweep.csv", ["eps"])[1]) if (out / "sweep.csv").exists() else 0
            victim = next((n for n in cluster.workers.values() if n.worker_address in busy), None) \
                if done >= 1 else None
            time.sleep(0.02)
        assert victim is not None, "the sweep never got under way on the cluster"
        old_pid = victim.pid
        os.kill(old_pid, signal.SIGKILL)
        rows_at_kill = len(read_csv(out / "sweep.csv", ["eps"])[1])
        sweep.join(timeout=300)
        assert not sweep.is_alive()
        restarted = victim.pid
    assert rows_at_kill < len(eps), "the worker was killed after the sweep had finished"
    assert restarted != old_pid                    # the process really died (its nanny started a new one)
    assert outcome["code"] == 0
    header, rows = read_csv(out / "sweep.csv", ["eps"])
    assert sorted(r["eps"] for r in rows) == eps    # every grid point, each exactly once
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:                                 # and right: E1's quasi-static rate is eps * mu, mu = 5
        assert r["quasi_static.slowest_rate"] == pytest.approx(5.0 * r["eps"], rel=1e-6)


# -- the safe factor as a sweep metric (--safe-factor) -------------------------------------------------
CHAIN10 = ROOT / "tests" / "data" / "chain10_fast.toml"


def test_sweep_safe_factor_over_kappa_checked_by_ode_runs(tmp_path, capsys):
    """Each row's safe factor: an ODE run just inside converges, one just outside (beyond the 2 % bracket)
    does not, by a nonlinear failure below the gain margin. Scaling every kappa by k is the same loop on
    a clock k times faster when eps scales too, so the safe eps is proportional to kappa."""
    from crnfb import load_model
    from crnfb.analysis.analyses.globalbehaviour import SAFE_RTOL, run_at_factor
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point

    out = tmp_path / "s"
    run_sweep(CHAIN10, ["kappa=0.5,2"], out, workers=1, metrics=False, safe_budget=600.0)
    header, rows = read_csv(out / "sweep.csv", ["kappa"])
    assert {"safe_factor", "safe_factor_reason"} <= set(header) and len(rows) == 2
    base = load_model(CHAIN10)
    sf = {}
    for r in rows:
        assert r["status"] == "ok" and r["safe_factor_reason"] is None     # empty: the bracket was reached
        m = apply_params(base, {"kappa": r["kappa"]})
        fp = loop_fixed_point(m)
        lo = sf[r["kappa"]] = r["safe_factor"]
        assert lo < r["margins.gain_margin"] / 1.2
        inside = run_at_factor(m, fp.theta, 0.98 * lo, fixed_point=fp)
        outside = run_at_factor(m, fp.theta, (1 + SAFE_RTOL) * 1.03 * lo, fixed_point=fp)
        assert inside[1] and inside[3] == "ODE"
        assert not outside[1] and outside[3] == "ODE" and outside[2] != "divergence"   # a nonlinear failure
    assert sf[0.5] < 1.0 < sf[2.0]                 # both directions of the initial bracket
    assert sf[2.0] / sf[0.5] == pytest.approx(4.0, rel=2.5 * SAFE_RTOL)
    assert (out / "sweep.png").stat().st_size > 20_000
    # --global-budget belongs to --safe-factor; a resume with another budget is refused
    assert main(["sweep", str(CHAIN10), "--param", "kappa=1", "-o", str(tmp_path / "t"), "--global-budget", "5"]) == 2
    assert "--safe-factor" in capsys.readouterr().err
    assert main(["sweep", str(CHAIN10), "--param", "kappa=0.5,2", "-o", str(out), "--safe-factor",
                 "--global-budget", "5"]) == 2
    assert "--safe-factor and its --global-budget" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("front_end", ["crnfb sweep", "tradeoffs.sweep"])
def test_a_sweep_point_finds_the_fixed_point_and_linearises_once(monkeypatch, tmp_path, front_end):
    """A sweep of 20 points performs one learned-optimum search, one loop fixed-point search and one
    linearisation per point, through either front end of the one sweep engine (``grids.sweep_grid``):
    ``crnfb sweep`` (report scalars and trade-off metrics per point, in this process) and
    ``tradeoffs.sweep`` (trade-off metrics). Every section of a point reuses the point's loop (counted by
    wrapping the two searches wherever the package binds them, and LinearLoop)."""
    from crnfb.analysis.analyses import tradeoffs
    from crnfb.analysis.linear import fixedpoints, linearise as lin
    from crnfb.feedback.io.modelfile import load_model

    counts = {"learned_fixed_point": 0, "loop_fixed_point": 0, "LinearLoop": 0}

    def counting(key, f):
        def wrapped(*a, **k):
            counts[key] += 1
            return f(*a, **k)
        return wrapped

    for key, home in (("learned_fixed_point", fixedpoints), ("loop_fixed_point", fixedpoints)):
        orig = getattr(home, key)
        w = counting(key, orig)
        bound = [m for m in list(sys.modules.values())
                 if getattr(m, "__name__", "").startswith("crnfb.") and getattr(m, key, None) is orig]
        assert home in bound
        for m in bound:
            monkeypatch.setattr(m, key, w)
    monkeypatch.setattr(lin.LinearLoop, "__init__", counting("LinearLoop", lin.LinearLoop.__init__))
    eps = np.logspace(np.log10(0.02), np.log10(0.6), 20)
    if front_end == "crnfb sweep":
        done = run_sweep(E1, ["eps=0.02:0.6:20:log10"], tmp_path / "sw", workers=1)
        assert (done.evaluated, done.errors) == (20, 0)
        rows = read_csv(tmp_path / "sw" / "sweep.csv", ["eps"])[1]
        assert all(r["metrics.slowest_rate"] == pytest.approx(r["closed_loop.slowest_rate"], rel=1e-12)
                   for r in rows)
    else:
        res = tradeoffs.sweep(load_model(E1), eps=eps)
        rows = res.rows
        assert res.column("eps") == pytest.approx(eps, rel=1e-12)
    assert len(rows) == 20
    assert counts == {"learned_fixed_point": 20, "loop_fixed_point": 20, "LinearLoop": 20}
