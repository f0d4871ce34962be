"""The region of attraction along the environment's change (issue 20 d3; docs/theory.md §4b, docs/global.md).

Independent reference: the plain ODE run of :func:`crnfb.feedback.dynamics.integrate.simulate` (its own output
grid, no stop events, no settling logic) from the loop's fixed point at ``a = 0`` with the
environment held at the stepped ``a``, compared with the fixed point there.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from crnfb import load_model
from crnfb.analysis.analyses.globalbehaviour import global_report
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.reporting.pipeline import region_section
from crnfb.analysis.analyses.region import RegionOfAttraction, region_of_attraction, region_report
from crnfb.analysis.reporting.summary import _global_table
from crnfb.feedback.numerics.parallel import run_all
from crnfb.feedback.model.signals import Constant
from crnfb.feedback.dynamics.integrate import simulate
from crnfb.feedback.numerics import sizes

ROOT = Path(__file__).resolve().parent.parent
CHAIN30 = ROOT / "examples" / "chain30.toml"
SCAFFOLD = ROOT / "tests" / "data" / "scaffold_small_dynamic.toml"


def _model(path: Path, factor: float = 1.0):
    m = load_model(path)
    return m.with_learning(eps=m.eps * factor)


def _distance(model, x0: np.ndarray, a: float, t_end: float) -> np.ndarray:
    """Plain ODE from ``x0`` with the environment at ``a``: ``|theta - theta*(a)| / |theta(0) - theta*(a)|``."""
    tr = simulate(model, t_end, signal=Constant(a), x0=x0, points=2001, progress=False)
    star = loop_fixed_point(model, a=a).theta
    d = np.linalg.norm(np.asarray(tr.theta) - star, axis=1)
    return d / d[0]


@pytest.mark.slow
def test_region_chain30_at_063_inside_returns_outside_does_not():
    """eps = 0.63 (0.8 eps_crit): the step a: 0 -> 1 does not return; the bracket [lo, hi] by the search
    (loose, 25 %; solver rtol 1e-6: the same outcomes as 1e-8 at the bracket ends, twice as fast), then
    plain ODE runs at 0.98 lo (settles) and 1.02 hi (escapes: relaxation oscillation)."""
    m = _model(CHAIN30, 2.1)
    fp = loop_fixed_point(m)
    roa = region_of_attraction(m, fp, rtol=0.25, ode_rtol=1e-6)
    lo, hi = roa.bracket
    assert roa.step == lo and not roa.every_step_returns and 0.5 <= lo < hi <= 0.7 and hi / lo - 1 <= 0.25
    assert roa.runs[0][0] == 1.0 and not roa.runs[0][1]
    assert 2 <= roa.ode_runs <= 5
    inside, outside = run_all([partial(_distance, m, fp.x, 0.98 * lo, 250.0),
                               partial(_distance, m, fp.x, 1.02 * hi, 150.0)])
    assert inside[-1] < 2e-2 and inside[-500:].max() < 5e-2          # returns (t > 187: within 5 %)
    assert outside[-500:].max() > 10.0                                # far from the new fixed point


def test_region_full_step_returns_chain30_and_scaffold():
    """At the files' own eps every step returns (one run at a = 1), checked by the plain ODE: the chain
    (equilibrium clamping) and the small E3-type scaffold with dynamic clamping."""
    for path, t_end in ((CHAIN30, 60.0), (SCAFFOLD, 150.0)):
        m = _model(path)
        fp = loop_fixed_point(m)
        roa = region_of_attraction(m, fp)
        assert roa.step == 1.0 and roa.every_step_returns and roa.bracket == (1.0, None), path
        assert roa.ode_runs == 1 and roa.runs[0][2] == "converged"
        d = _distance(m, fp.x, 1.0, t_end)
        assert d[-1] < 1e-3 and d[-200:].max() < 2e-3, (path, d[-1])


def test_region_report_keys_and_summary():
    roa = RegionOfAttraction(step=0.5864, bracket=(0.5864, 0.5926), tolerance=0.02,
                             runs=((1.0, False, "", "linear: unstable"), (0.5, True, "converged", "ODE"),
                              (0.5926, False, "relaxation_oscillation", "ODE")))
    lin = {"measured": 0.08, "quadratic_estimate": 0.07, "reached": True}
    g = global_report(None, None, "off", {"A": 0.63}, 0.79, 1.25, region=region_report(roa, None, lin))
    json.dumps(g, allow_nan=False)
    assert g["region_of_attraction"] == 0.5864 and g["region_of_attraction_bracket"] == [0.5864, 0.5926]
    assert g["region_of_attraction_ode_runs"] == 2 and g["linear_range"] == 0.08
    assert abs(g["region_of_attraction_quadratic_estimate"] - 0.7) < 1e-12
    assert g["bifurcation_reason"] == "not computed (no linearised loop given)"
    rows = {r[0]: r for r in _global_table(g).rows}
    assert "not at 0.5926 (2 ODE runs)" in rows["region of attraction (step of a)"][2]
    full = region_report(RegionOfAttraction(step=1.0, bracket=(1.0, None), tolerance=0.02,
                                            runs=((1.0, True, "converged", "ODE"),)), None, None)
    assert full["region_of_attraction_bracket"] == [1.0, None] and full["region_of_attraction_every_step_returns"]
    row = _global_table(global_report(None, None, "off", {}, None, None, region=full)).rows
    assert any("every step in [0,1] returns" in r[2] for r in row)


def test_region_not_computed_reasons():
    m = _model(CHAIN30)
    fp = loop_fixed_point(m)
    off = region_section(m, fp, False, None, None, {"validation": "not run (validate=False / --no-validate)"})
    assert off["region_of_attraction"] is None and off["region_of_attraction_reason"].startswith("not computed")
    assert off["linear_range"] is None and "validation not run" in off["linear_range_reason"]
    big = replace(fp, x=np.zeros(sizes.ROA_MAX_STATES + 1))
    why = region_section(m, big, True, [], None, {})["region_of_attraction_reason"]
    assert why == f"not computed: loop too large ({sizes.ROA_MAX_STATES + 1} states > {sizes.ROA_MAX_STATES})"


def test_region_solver_limit_is_a_limitation_not_a_verdict(monkeypatch):
    """A run that hits the solver's work limit stops the search: 'not computed: limitation', no bracket
    (the small scaffold at 26 x its eps did so at every step down to 1/64)."""
    import crnfb.analysis.analyses.region as region
    from crnfb.feedback.dynamics.integrate import SimulationError

    def fails(model, x0, a, rtol=1e-8, atol=1e-12):
        if a == 1.0:
            return 1.0, False, "", "linear: the fixed point at a = 1 is unstable"
        raise SimulationError(f"the run stepped to a = {a:.4g} hit the solver's work limit")

    monkeypatch.setattr(region, "run_at_step", fails)
    m = _model(CHAIN30)
    out = region_section(m, loop_fixed_point(m), True, [], None, {})
    assert out["region_of_attraction"] is None and out["region_of_attraction_bracket"] is None
    assert out["region_of_attraction_reason"].startswith("not computed: limitation: the run stepped to a = 0.5")


def test_linear_range_entry_from_checks_and_dicts():
    from crnfb.analysis.analyses.region import linear_range_entry
    from crnfb.analysis.analyses.validation import Check, not_made

    c = Check(quantity="linear range: step size a with 10% linear error", predicted=0.0844, simulated=0.0791,
              rel_error=0.063, tolerance=1.0, passed=True, details={"reached": True})
    want = {"measured": 0.0791, "quadratic_estimate": 0.0844, "reached": True}
    assert linear_range_entry([c]) == want and linear_range_entry([c.to_dict()]) == want
    assert linear_range_entry([not_made("linear range", "quick")]) is None and linear_range_entry(None) is None
