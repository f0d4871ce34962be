"""The analysis pipeline (crnfb.analysis.reporting.pipeline): each section alone, and the one try/except per section."""

from __future__ import annotations

import numpy as np
import pytest

from crnfb.analysis.reporting import pipeline as P
from crnfb.analysis.linear.fixedpoints import learned_fixed_point
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.reporting.results import Unavailable
from crnfb.analysis.linear.stability import stability
from crnfb.feedback.errors import ModelError


@pytest.fixture(scope="module")
def core(e1):
    opt = learned_fixed_point(e1)
    fp = loop_fixed_point(e1, optimum=opt)
    loop = linearise(e1, fixed_point=fp)
    return e1, opt, fp, loop, stability(loop)


def test_frequency_section_alone_is_the_loop_response(core):
    """Without a disturbance section the figure data is the loop's response on the docs/cli.md grid;
    E1: L(s) = eps mu / (s (s + 1)) with eps mu = 0.25."""
    model, opt, fp, loop, st = core
    fr = P.frequency_section(loop, None, None)
    s = 1j * fr.omega
    assert fr.siso
    assert fr.L[:, 0, 0] == pytest.approx(0.25 / (s * (s + 1)), rel=1e-6)


def test_frequency_section_draws_the_margins_own_response(core):
    """Without a disturbance response the figures draw the margins' response: the same object, so the
    Nyquist figure's loci are the ones the crossings were read from (computed once), on a grid that
    covers the docs/cli.md one."""
    from crnfb.analysis.linear.frequency import spec_grid

    model, opt, fp, loop, st = core
    from crnfb.analysis.analyses.margins import margins

    mg = margins(loop)
    fr = P.frequency_section(loop, None, mg)
    assert fr is mg.response
    grid = spec_grid(loop.broken)
    assert fr.omega.min() <= grid.min() and fr.omega.max() >= grid.max()
    assert np.array_equal(fr.loci, np.linalg.eigvals(fr.L))


def test_step_section_needs_the_disturbance_step(core):
    from crnfb.analysis.analyses.disturbance import disturbance

    model, opt, fp, loop, st = core
    with pytest.raises(Unavailable, match="no disturbance section"):
        P.step_section(model, fp, st, None, nonlinear=False)
    dist = disturbance(loop)
    sr = P.step_section(model, fp, st, dist, nonlinear=False)
    assert sr.t_nonlinear is None and sr.y[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.array_equal(sr.t, dist.step.t)          # the series the metrics were read from


def test_distribution_section_e1_learns_q_exactly(core):
    model, opt, fp, loop, st = core
    d = P.distribution_section(model, fp)
    assert d.P == pytest.approx(d.Q, abs=1e-9)        # Poisson(5) is in the family
    assert d.names == ["X"]


def test_run_turns_each_failure_into_a_reason():
    run = P._Run(["a", "b", "c", "d"], progress=False)

    def raise_(exc):
        raise exc
    assert run.section("a", "a", raise_, Unavailable("stated limitation")) is None
    assert run.section("b", "b", raise_, ModelError("bad point")) is None
    with pytest.warns(RuntimeWarning, match="c failed"):
        assert run.section("c", "c", raise_, ZeroDivisionError("bug")) is None
    assert run.section("d", "d", lambda: 42) == 42
    assert run.reasons == {"a": "stated limitation", "b": "limitation: bad point",
                           "c": "failed: ZeroDivisionError: bug"}
    assert set(run.timings) == {"a", "b", "c", "d"}
    with pytest.raises(ModelError):                  # the core is not guarded: bad input stays bad input
        run.core("e", raise_, ModelError("no fixed point"))


def test_learning_rate_beyond_double_precision_is_a_limitation(e1):
    """eps = 1e300 on E1 is beyond double precision: the slowest computed real part (~ -1e-164) is
    inside its own round-off bound (docs/theory.md §5, "Zero modes"), so the loop is marginal in
    floating point, not stable, and no ODE run is attempted (before the one zero tolerance: STABLE with
    a slowest rate of 1e-164 and a validation that failed, later a limitation "ReuseBDF failed at t = 0")."""
    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.stability import stability
    from crnfb.analysis.analyses.validation import validate

    model = e1.with_learning(eps=1e300)
    st = stability(linearise(model))
    assert st.marginal and not st.stable and st.slowest_rate == 0.0
    assert abs(st.eigenvalues[0].real) <= st.slowest_error_bound  # not resolvable from zero
    checks = validate(model)
    assert [c.passed for c in checks] == [None] and "marginal" in checks[0].details["reason"]


def test_log_sampled_adds_shorter_runs_only_when_the_start_is_unresolved(core, monkeypatch):
    model, opt, fp, loop, st = core
    calls = []
    monkeypatch.setenv("CRNFB_WORKERS", "1")       # the fake records its calls in this process

    def fake_simulate(model, t_end, points=501, **kw):
        calls.append(t_end)
        t = np.linspace(0.0, t_end, points)
        return type("Run", (), {"t": t, "theta": np.zeros((points, 1)), "D": np.exp(-t)})()
    monkeypatch.setattr(P, "simulate", fake_simulate)
    rate = float(np.max(st.quasi_static_rates))          # E1: 0.25, so the fast scale is 0.4
    t = np.linspace(0.0, 16.0, 401)                      # first sample 0.04 < 0.4: resolved
    out = P._log_sampled(model, t, np.zeros((401, 1)), np.exp(-t), st)
    assert calls == [] and out[0] is t
    t = np.linspace(0.0, 1e6, 401)                       # first sample 2500: add 1e4, 1e2, 1
    tt, th, D = P._log_sampled(model, t, np.zeros((401, 1)), np.exp(-t), st)
    assert calls == pytest.approx([1e4, 1e2, 1.0]) and 0.1 / rate < 1.0
    assert np.all(np.diff(tt) > 0) and tt.size == th.shape[0] == D.size
    assert tt[1] <= 1.0 / 200 + 1e-12                    # the shortest run's first sample


def test_functions_that_took_a_model_take_the_loop_too(core):
    """One vocabulary: validate, parameter_noise and thermodynamics_report accept the linearised loop in
    the model's place, as margins, disturbance and stability do; same results either way."""
    from crnfb.analysis.analyses.context import model_and_loop
    from crnfb.analysis.analyses.noise import parameter_noise
    from crnfb.analysis.analyses.thermo import thermodynamics_report
    from crnfb.analysis.analyses.validation import validate

    model, opt, fp, loop, st = core
    a = [(c.quantity, c.predicted) for c in validate(loop, noise=False, quick=True) if c.passed is not None]
    b = [(c.quantity, c.predicted) for c in validate(model, loop=loop, noise=False, quick=True)
         if c.passed is not None]
    assert a == b and a
    assert np.allclose(parameter_noise(loop).covariance, parameter_noise(model, loop=loop).covariance)
    t1 = thermodynamics_report(loop, with_episode=False)
    t2 = thermodynamics_report(model, loop=loop, with_episode=False)
    assert t1["fixed_point"] == t2["fixed_point"]
    with pytest.raises(ValueError, match="give the loop once"):
        model_and_loop(loop, linearise(model))
    # the model's Analysis stands in the same way: its own loop, the same numbers
    from crnfb.analysis.analyses.context import Analysis
    an = Analysis(model)
    c = [(c.quantity, c.predicted) for c in validate(an, noise=False, quick=True) if c.passed is not None]
    assert [q for q, _ in c] == [q for q, _ in a]
    assert np.allclose([p for _, p in c], [p for _, p in a], rtol=1e-8)
    assert np.allclose(parameter_noise(an).covariance, parameter_noise(loop).covariance, rtol=1e-8)
    t3 = thermodynamics_report(an, with_episode=False)["fixed_point"]
    assert t3.keys() == t1["fixed_point"].keys()
    for key, v in t1["fixed_point"].items():          # numbers to round-off; None (not computed) as None
        assert t3[key] == (v if v is None or isinstance(v, str) else pytest.approx(v, rel=1e-8)), key
    with pytest.raises(ValueError, match="carries its loop"):
        model_and_loop(an, linearise(model))
