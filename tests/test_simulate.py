"""ODE simulation of the learning loop, environment signals and ``crnfb simulate``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from crnfb.analysis.cli.entry import main
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.signals import Constant, Sine, Step, Telegraph, parse_signal
from crnfb.feedback.dynamics.ensembles import LoopField
from crnfb.feedback.dynamics.integrate import Trajectory, simulate

from conftest import EXAMPLES


# -- signals -----------------------------------------------------------------------------------
def test_signals_values_and_breakpoints():
    assert Constant(0.3)(5.0) == 0.3
    s = Step(0.0, 0.5, 2.0)
    assert s(1.999) == 0.0 and s(2.0) == 0.5
    assert s.breakpoints(0, 10) == (2.0,) and s.breakpoints(3, 10) == ()
    w = Sine(0.5, 0.2, 2.0)
    assert w(np.pi / 4) == pytest.approx(0.7)
    assert w.max_step() < np.pi
    tg = Telegraph(1.0, seed=3, t_end=50.0)
    assert tg == Telegraph(1.0, seed=3, t_end=50.0)
    assert tg.switches == Telegraph(1.0, seed=3, t_end=50.0).switches      # reproducible
    assert tg.switches != Telegraph(1.0, seed=4, t_end=50.0).switches
    assert 20 < len(tg.switches) < 85
    t = np.linspace(0, 50, 1001)
    assert set(np.unique(tg(t))) <= {0.0, 1.0} and tg(0.0) == 0.0
    sw = tg.switches
    assert tg(0.5 * (sw[0] + sw[1])) == 1.0 and tg(0.5 * (sw[1] + sw[2])) == 0.0


def test_parse_signal():
    assert parse_signal("constant") == Constant(0.0)
    assert parse_signal("constant:0.4") == Constant(0.4)
    assert parse_signal("step:0.5", t_end=100) == Step(0.0, 0.5, 50.0)
    assert parse_signal("step:0.5,10") == Step(0.0, 0.5, 10.0)
    assert parse_signal(" sine:0.5,0.1,2 ") == Sine(0.5, 0.1, 2.0)
    assert parse_signal("telegraph:0.1", t_end=20, seed=1) == Telegraph(0.1, 1, 20.0)


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("ramp:1", "unknown"), ("step:x", "not a number"), ("step:1.5,2", "outside [0, 1]"),
    ("sine:0.5,0.1", "expected sine"), ("sine:0.5,0.8,1", "outside [0, 1]"), ("sine:0.5,0.1,-1", "OMEGA"),
    ("telegraph:0", "RATE"), ("telegraph:nan", "not finite"), ("constant:2", "outside"),
])
def test_parse_signal_errors(text, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        parse_signal(text, t_end=10.0)


# -- the vector field ---------------------------------------------------------------------------------
def _master_equation(net: LearningNetwork, x: np.ndarray, a: float) -> np.ndarray:
    """The closed loop written out from the assembled generators, independently of LoopField."""
    p_f, p_c, theta = net.split(x)
    L = net.learned
    out = [net.free_generator(theta) @ p_f]
    m_f = net.S_f[:, L].T @ p_f
    if net.dynamic:
        out.append(net.hidden_generator(theta) @ p_c + net.gamma * (net.reset_target(a) - p_c))
        m_c = net.S_c[:, L].T @ p_c
    else:
        m_c = net.model.landscape.moments(net.theta_full(theta), net.model.q_at(a)).mean_clamped[L]
    out.append(net.eps * (m_c - m_f))
    return np.concatenate(out)


@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "dimer", "chain"])
@pytest.mark.parametrize("clamping", ["dynamic", "equilibrium"])
def test_field_matches_the_master_equation(name, clamping, request):
    """LoopField (normalised, the integrators'; plain, ``LearningNetwork.rhs``) against the loop written
    out from the sparse generators: off the normalisation leaf the plain one still agrees, the normalised
    one agrees after dividing the means by ``sum p``."""
    from conftest import example
    model = example(name)
    net = LearningNetwork(model, clamping)
    f = LoopField(net)
    rng = np.random.default_rng(1)
    x = net.initial_state(model.theta0 + rng.normal(0, 0.4, net.k), 0.2)
    x[:net.n_f] += 1e-3 * rng.random(net.n_f)
    off = x.copy()                            # sum p_f = 1 + O(1e-3): only the normalised means see it
    x[:net.n_f] /= x[:net.n_f].sum()          # a physical state
    for a in (0.0, 0.4, 1.0):
        ref = _master_equation(net, x, a)
        scale = max(1.0, np.max(np.abs(ref)))
        assert np.max(np.abs(f(x, a) - ref)) <= 1e-12 * scale
        assert np.max(np.abs(net.rhs(off, a) - _master_equation(net, off, a))) <= 1e-12 * scale
        s = off[:net.n_f].sum()
        scaled = off.copy()
        scaled[:net.n_f] /= s                 # the free mean of the normalised field, same flows times s
        want = _master_equation(net, scaled, a)
        want[:net.n_f] *= s
        assert np.max(np.abs(f(off, a) - want)) <= 1e-12 * scale


@pytest.mark.parametrize("name", ["isomerisation", "dimer"])
@pytest.mark.parametrize("clamping", ["dynamic", "equilibrium"])
def test_fast_field_jacobian_matches_finite_differences(name, clamping):
    from conftest import example
    model = example(name)
    net = LearningNetwork(model, clamping)
    f = LoopField(net)
    rng = np.random.default_rng(2)
    x = net.initial_state(model.theta0 + rng.normal(0, 0.3, net.k), 0.3)
    x[:net.n_f] *= 1.01                       # off the normalisation leaf too
    J = f.jacobian(x, 0.3).toarray()
    h = 1e-7
    Jn = np.column_stack([(f(x + h * e, 0.3) - f(x - h * e, 0.3)) / (2 * h) for e in np.eye(x.size)])
    assert np.max(np.abs(J - Jn)) <= 1e-6 * np.max(np.abs(J))


def test_long_run_keeps_the_neutral_invariant(e3):
    """E3 over 2e6 time units (its slowest mode has a time constant of 1.4e5)."""
    tr = simulate(e3, 2e6, points=11, keep_states=True, progress=False)
    inv = (tr.theta / e3.eps) @ e3.neutral
    assert np.max(np.abs(inv - inv[0])) < 1e-8
    net = LearningNetwork(e3)
    assert np.max(np.abs(tr.x[:, :net.n_f].sum(axis=1) - 1)) < 1e-7


# -- trajectories ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["isomerisation", "dimer", "hidden_scaffold"])
def test_ode_conserves_normalisation_and_neutral_invariant(name):
    from conftest import example
    model = example(name)
    tr = simulate(model, 200.0, Step(0.0, 1.0, 50.0), points=41, keep_states=True, progress=False)
    net = LearningNetwork(model)
    pf, pc, th = tr.x[:, :net.n_f], tr.x[:, net.n_f:net.n_f + net.n_c], tr.theta
    assert np.max(np.abs(pf.sum(axis=1) - 1)) < 1e-8
    assert np.max(np.abs(pc.sum(axis=1) - 1)) < 1e-8
    N = model.neutral
    assert N.shape[1] >= 1
    inv = (th / model.eps) @ N
    assert np.max(np.abs(inv - inv[0])) < 1e-6 * max(1.0, np.max(np.abs(inv[0])))


@pytest.mark.parametrize("name", ["birth_death", "isomerisation"])
def test_ode_converges_to_loop_fixed_point(name):
    from conftest import example
    model = example(name)
    fp = loop_fixed_point(model)
    tr = simulate(model, 400.0, points=5, progress=False)
    assert np.allclose(tr.theta[-1], fp.theta, atol=1e-6)
    assert np.allclose(tr.e[-1], 0.0, atol=1e-6)                 # integral action: zero error
    # and the episode end (identifiable |theta - theta*| down to 1e-3 of its start) is found
    ep = simulate(model, 400.0, points=401, progress=False, until_episode_end=True, theta_star=fp.theta)
    U = model.identifiable
    t_stop = ep.metadata["t_stop"]
    assert t_stop is not None and ep.t[-1] == pytest.approx(t_stop)
    ratio = np.linalg.norm(U.T @ (ep.theta[-1] - fp.theta)) / np.linalg.norm(U.T @ (ep.theta[0] - fp.theta))
    assert ratio == pytest.approx(1e-3, rel=1e-3)


def test_divergence_decreases_in_the_quasi_static_regime(e1):
    """Small eps: the loop follows the gradient flow, D is a Lyapunov function (docs/theory.md §3)."""
    model = e1.with_learning(eps=0.005)
    tr = simulate(model, 600.0, points=301, progress=False)
    slow = tr.t > 10.0            # after the free ensemble's fast relaxation (rates >= 1)
    dD = np.diff(tr.D[slow])
    assert np.all(dD <= 1e-12 * tr.D[0])
    assert tr.D[-1] < 0.01 * tr.D[0]


def test_step_signal_is_followed(e1):
    tr = simulate(e1, 400.0, Step(0.0, 1.0, 200.0), points=9, progress=False)
    assert tr.a[0] == 0.0 and tr.a[-1] == 1.0
    assert tr.metadata["pieces"] == 2
    # learns Poisson(5) then adapts to Poisson(8): theta -> ln 8 (perfect adaptation)
    assert tr.theta[4] == pytest.approx(np.log(5.0), abs=1e-4)
    assert tr.theta[-1] == pytest.approx(np.log(8.0), abs=1e-4)


def test_telegraph_run_is_reproducible(e1):
    a = simulate(e1, 60.0, Telegraph(0.2, 7, 60.0), points=31, progress=False)
    b = simulate(e1, 60.0, Telegraph(0.2, 7, 60.0), points=31, progress=False)
    assert np.array_equal(a.theta, b.theta)
    assert a.metadata["pieces"] == len(Telegraph(0.2, 7, 60.0).switches) + 1


def test_simulate_rejects_bad_arguments(e1):
    with pytest.raises(ValueError, match="t_end"):
        simulate(e1, 0.0)
    with pytest.raises(ValueError, match="points"):
        simulate(e1, 1.0, points=1)
    with pytest.raises(ValueError, match="theta_star"):
        simulate(e1, 1.0, until_episode_end=True)


def test_csv_columns_and_atomic_write(tmp_path, e2):
    tr = simulate(e2, 5.0, points=6, progress=False)
    assert isinstance(tr, Trajectory)
    p = tr.to_csv(tmp_path / "run.csv")
    rows = list(csv.reader(open(p)))
    assert rows[0] == ["time", "theta_X", "theta_Y", "m_f_X", "m_f_Y", "m_c_X", "m_c_Y", "D", "a"]
    assert len(rows) == 7
    assert float(rows[-1][0]) == 5.0
    assert [f.name for f in tmp_path.iterdir()] == ["run.csv"]          # no temporary left behind
    with pytest.raises(ModelError, match="does not exist"):
        tr.to_csv(tmp_path / "missing" / "run.csv")


# -- command line ------------------------------------------------------------------------------------------
def test_cli_simulate_writes_csv(tmp_path):
    out = tmp_path / "traj.csv"
    rc = main(["simulate", str(EXAMPLES / "birth_death.toml"), "--level", "ode", "--t-end", "50",
               "-o", str(out), "--points", "11", "--environment", "step:0.5"])
    assert rc == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["time", "theta_X", "m_f_X", "m_c_X", "D", "a"]
    assert len(rows) == 12
    assert float(rows[1][5]) == 0.0 and float(rows[-1][5]) == 0.5


@pytest.mark.parametrize("extra", [
    ["--t-end", "-1"], ["--t-end", "nan"], ["--t-end", "10", "--points", "1"],
    ["--t-end", "10", "--environment", "sine:0.5,0.9,1"], ["--t-end", "10", "--environment", "wobble"],
    ["--t-end", "10", "--rtol", "0"], ["--t-end", "10", "--rtol", "1e-16"], ["--t-end", "10", "--rtol", "nan"],
    ["--t-end", "10", "--atol", "-1e-9"], ["--t-end", "10", "--atol", "inf"],
    ["--t-end", "10", "--level", "ssa", "--rtol", "1e-9"],
])
def test_cli_simulate_bad_input_exits_2_and_writes_nothing(tmp_path, extra, capsys):
    out = tmp_path / "traj.csv"
    rc = main(["simulate", str(EXAMPLES / "birth_death.toml"), "-o", str(out)] + extra)
    assert rc == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "error" in capsys.readouterr().err


def _theta_column(path) -> np.ndarray:
    rows = list(csv.reader(open(path)))
    return np.array([float(r[rows[0].index("theta_X")]) for r in rows[1:]])


def test_cli_simulate_tolerances_reach_the_solver(tmp_path, capsys):
    """--rtol/--atol are the solver's: a loose run differs from a tight one by more than two tight runs
    differ from each other (the tight answer converges; the loose one is visibly off)."""
    runs = {}
    for name, tol in (("loose", ["--rtol", "1e-3", "--atol", "1e-4"]), ("tight", ["--rtol", "1e-10", "--atol", "1e-13"]),
                      ("tighter", ["--rtol", "1e-11", "--atol", "1e-14"]), ("default", [])):
        out = tmp_path / f"{name}.csv"
        assert main(["simulate", str(EXAMPLES / "birth_death.toml"), "--t-end", "40", "--points", "41",
                     "-o", str(out)] + tol) == 0
        runs[name] = _theta_column(out)
    assert "warning" not in capsys.readouterr().err          # E1 is stable for every eps: no warning
    ref = runs["tighter"]
    tight = np.abs(runs["tight"] - ref).max()
    default = np.abs(runs["default"] - ref).max()
    loose = np.abs(runs["loose"] - ref).max()
    assert tight < 1e-7 and loose > 10 * max(tight, default) and loose > 1e-6


def test_cli_simulate_warns_when_the_loop_is_unstable(tmp_path, capsys):
    """chain.toml above its eps_crit (about 0.186, docs/gallery.md): the ODE run still writes its CSV
    (exit 0) and says on stderr, in one line, that the result depends on the tolerances."""
    text = (EXAMPLES / "chain.toml").read_text(encoding="utf-8").replace("eps = 0.05", "eps = 0.5")
    model = tmp_path / "chain_fast.toml"
    model.write_text(text, encoding="utf-8")
    out = tmp_path / "t.csv"
    assert main(["simulate", str(model), "--t-end", "5", "--points", "6", "-o", str(out), "--rtol", "1e-9"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert out.exists() and len(err) == 2
    assert "UNSTABLE" in err[0] and "rtol 1e-09" in err[0] and "--rtol/--atol" in err[0]
    assert err[1].startswith("wrote 6 rows")


def test_cli_simulate_missing_folder_exits_2(tmp_path):
    rc = main(["simulate", str(EXAMPLES / "birth_death.toml"), "--t-end", "1", "-o",
               str(tmp_path / "nope" / "x.csv")])
    assert rc == 2


def test_cli_simulate_ssa_rejects_smooth_signal(tmp_path):
    out = tmp_path / "ssa.csv"
    rc = main(["simulate", str(EXAMPLES / "birth_death.toml"), "--level", "ssa", "--t-end", "2", "-o", str(out),
               "--environment", "sine:0.5,0.1,1"])
    assert rc == 2 and not out.exists()


@pytest.mark.slow
def test_cli_simulate_ssa_writes_same_columns(tmp_path):
    out = tmp_path / "ssa.csv"
    rc = main(["simulate", str(EXAMPLES / "birth_death.toml"), "--level", "ssa", "--t-end", "2", "-o", str(out),
               "--points", "5", "--seed", "3", "--environment", "step:0.5,1"])
    assert rc == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["time", "theta_X", "m_f_X", "m_c_X", "D", "a"] and len(rows) == 6


def test_singular_newton_matrix_is_a_simulation_error(monkeypatch):
    """SuperLU's "Factor is exactly singular" inside a step becomes a SimulationError that names the cause."""
    from scipy import sparse

    import crnfb.feedback.dynamics.bdf as bdf
    from crnfb.feedback.dynamics.integrate import SimulationError, integrate

    def singular(*args, **kwargs):
        raise RuntimeError("Factor is exactly singular")

    monkeypatch.setattr(bdf, "BorderedLU", singular)
    J = sparse.csr_matrix(-np.eye(3))
    with pytest.raises(SimulationError, match="Newton matrix I - c J is singular in double precision"):
        integrate(lambda lo, hi: ((lambda t, y: J @ y), (lambda t, y: J)), np.ones(3), np.linspace(0, 1, 5),
                  progress=False)


def test_other_runtime_errors_in_a_step_are_not_renamed(monkeypatch):
    """Only SuperLU's singular factor is turned into the Newton-matrix SimulationError."""
    from scipy import sparse

    import crnfb.feedback.dynamics.bdf as bdf
    from crnfb.feedback.dynamics.integrate import SimulationError, integrate

    def broken(*args, **kwargs):
        raise RuntimeError("a bug somewhere else")

    monkeypatch.setattr(bdf, "BorderedLU", broken)
    J = sparse.csr_matrix(-np.eye(3))
    with pytest.raises(RuntimeError, match="a bug somewhere else") as info:
        integrate(lambda lo, hi: ((lambda t, y: J @ y), (lambda t, y: J)), np.ones(3), np.linspace(0, 1, 5),
                  progress=False)
    assert not isinstance(info.value, SimulationError)
