"""Validation of the linear analysis against the nonlinear ODE (crnfb.analysis.analyses.validation)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.validation import TOL, Check, validate
from crnfb.feedback.numerics import sizes

from conftest import example

KINDS = ("convergence rate", "step response", "frequency response", "quasi-static rate", "linear range")


def _by_kind(checks):
    out = {}
    for c in checks:
        if c.passed is None:   # not made (listed with a reason, see _assert_all_pass)
            continue
        for k in KINDS:
            if c.quantity.startswith(k):
                out.setdefault(k, []).append(c)
    return out


def _assert_all_pass(checks):
    # a check not made (passed None) must say why; none may fail
    bad = [c.to_dict() for c in checks if c.passed is False or (c.passed is None and not c.details.get("reason"))]
    assert not bad, json.dumps(bad, indent=1)


@pytest.mark.parametrize("name", ["birth_death", "chain"])
def test_validation_passes(name):
    checks = validate(example(name), noise=False)
    kinds = _by_kind(checks)
    assert set(kinds) == set(KINDS)
    assert all(c.passed for k in KINDS for c in kinds[k])   # every kind is made on these examples
    assert len(kinds["frequency response"]) >= 5
    noise = [c for c in checks if c.quantity.startswith("parameter noise")]
    assert len(noise) == 1 and noise[0].passed is None and "noise=False" in noise[0].details["reason"]
    _assert_all_pass(checks)


def test_validation_passes_on_hidden_scaffold_dynamic_clamping():
    model = example("hidden_scaffold")
    assert model.learning.clamping == "dynamic"
    checks = validate(model, noise=False)
    _assert_all_pass(checks)
    rate = _by_kind(checks)["convergence rate"][0]
    # regression pin, not a derivation: closed_loop.slowest_rate = 6.952e-6 of the report written at
    # commit 8af9041 (tests/data/reference_reports/hidden_scaffold.json); what this test proves is
    # that the nonlinear loop decays at the predicted rate (the check above passed)
    assert rate.predicted == pytest.approx(6.95e-6, rel=1e-2)      # very slow mode, integrated over ~1e6


def test_e1_convergence_rate_matches_theory():
    """E1 at equilibrium clamping: s^2 + kappa s + kappa eps mu (double root -1/2 here)."""
    checks = validate(example("birth_death"), quick=True)
    rate = _by_kind(checks)["convergence rate"][0]
    assert rate.predicted == pytest.approx(0.5, rel=1e-6)
    assert rate.simulated == pytest.approx(0.5, rel=TOL["convergence rate"])
    assert rate.details["projection"].startswith("eigenvector")       # Jordan block handled


def test_linear_range_is_reported(e1):
    checks = validate(e1, noise=False)
    lr = _by_kind(checks)["linear range"][0]
    errs = lr.details["errors"]
    assert errs[0] < 0.1 and (errs[-1] > 0.1 or lr.details["amplitudes"][-1] == 1.0)
    assert np.all(np.diff(errs) > 0)                                   # the error grows with the step
    # second order: doubling the step roughly doubles the plain error
    assert errs[1] / errs[0] == pytest.approx(2.0, rel=0.2)
    assert 0.01 < lr.simulated <= 1.0


def test_check_to_dict_is_plain_json():
    c = Check(quantity="x", predicted=1.0, simulated=1.01, rel_error=0.01, tolerance=0.02, passed=True,
              details={"a": np.float64(1.0), "b": [np.int64(2), math.nan]})
    d = c.to_dict()
    assert d["quantity"] == "x" and d["passed"] is True and d["tolerance"] == 0.02
    assert d["details"] == {"a": 1.0, "b": [2, None]}
    json.dumps(d, allow_nan=False)


def test_quick_mode_and_given_loop(e2):
    loop = linearise(e2)
    checks = validate(e2, loop=loop, quick=True)
    kinds = _by_kind(checks)
    assert set(kinds) == {"convergence rate", "step response", "frequency response"}
    assert len(kinds["frequency response"]) == 3
    _assert_all_pass(checks)
    for c in checks:
        json.dumps(c.to_dict(), allow_nan=False)


def test_no_disturbance_leaves_out_input_checks(e1):
    model = e1.replace(change=None)
    checks = validate(model, quick=True)
    assert [c.quantity for c in checks if c.passed is not None] == ["convergence rate"]
    assert checks[0].passed
    skipped = {c.quantity: c.details["reason"] for c in checks if c.passed is None}
    assert "environment.change" in skipped["step response"] and "quick" in skipped["linear range"]


def test_a_wrong_linear_model_is_caught(e1):
    """The checks are not tautological: a loop with a perturbed Jacobian fails them."""
    import dataclasses
    loop = linearise(e1)
    J = loop.J.copy()
    base = loop.net.n_f + loop.net.n_c
    J[base:, :] *= 1.1           # controller gain off by 10 %
    bad = dataclasses.replace(loop, J=J.tocsr())
    checks = validate(e1, loop=bad, quick=True)
    assert not all(c.passed for c in checks)


def test_unstable_loop_growth_rate_is_checked(chain):
    """Past eps_crit the rate check fits the unstable mode's growth; input checks are left out."""
    model = chain.with_learning(eps=1.0)
    checks = validate(model, noise=False)
    kinds = _by_kind(checks)
    assert set(kinds) == {"convergence rate", "quasi-static rate"}
    rate = kinds["convergence rate"][0]
    assert rate.predicted < 0                      # growth
    _assert_all_pass(checks)


def test_slow_mode_search_is_checked_against_the_reduced_plant_loop(monkeypatch, e3):
    """E3 through the large-loop paths (sparse slowest modes, reduced plant model): the check passes; a
    search that reports a slowest rate 3x too fast within a small radius is caught, because the
    reduced-plant loop has the true slowest mode beyond that radius (confirmed by inverse iteration)."""
    from dataclasses import replace

    from crnfb.analysis.analyses.validation import _Setup, check_slow_modes

    monkeypatch.setattr(sizes, "STABILITY_DENSE_LIMIT", 5)
    monkeypatch.setattr(sizes, "ROM_PLANT", 5)
    monkeypatch.setattr(sizes, "ROM_BASIS_PERCENT", 10**9)     # E3's plant is smaller than a model's basis
    loop = linearise(e3)
    setup = _Setup(loop)
    ok = check_slow_modes(setup)
    assert ok.passed is True and ok.predicted == pytest.approx(setup.stability.slowest_rate)
    assert ok.simulated >= ok.predicted
    true_rate = setup.stability.slowest_rate
    assert setup.stability.search_radius is not None and setup.stability.search_radius > true_rate
    # a search that saw almost nothing (radius half the true slowest rate) and reported a rate 3x too fast
    setup.__dict__["stability"] = replace(setup.stability, slowest_rate=3 * true_rate, search_radius=0.5 * true_rate)
    bad = check_slow_modes(setup)
    assert bad.passed is False
    assert bad.simulated == pytest.approx(true_rate, rel=1e-6)
    assert bad.details["suspects_checked"] >= 1


def test_small_loops_make_no_slow_mode_check(e1):
    """Dense eigenvalues give every mode: the check is not listed for small loops."""
    from crnfb.analysis.analyses.validation import SLOW_MODES

    assert SLOW_MODES not in [c.quantity for c in validate(e1, noise=False)]


@pytest.mark.parametrize("c3", [1e-3, 10.0])
def test_frequency_amplitude_measures_its_own_third_order_residual(c3):
    """Responses per unit a, ``h(A) = G + c2 A + c3 A^2`` (second and third order of a Volterra series):
    the residual of ``R(A) = 2 h(A) - h(2A)`` is ``2 |c3| A^2 / |G|``; a small one keeps ``A``, a large one
    gives the amplitude whose residual is a quarter of the tolerance (so that a resonance cannot fail a
    right prediction)."""
    from crnfb.analysis.analyses.validation import AMPLITUDE_SAFETY, _frequency_amplitude

    G, c2, A = 0.4 - 0.1j, 3.0 + 1.0j, 0.01
    h = {k: G + c2 * k * A + c3 * (k * A) ** 2 for k in (1, 2, 4)}
    Ai, choice = _frequency_amplitude(h[1], h[2], h[4], A, G)
    resid = 2 * c3 * A ** 2 / abs(G)
    target = AMPLITUDE_SAFETY * TOL["frequency response"]
    if resid <= target:
        assert Ai == A and choice["residual_estimate"] == pytest.approx(resid, rel=1e-9)
    else:
        assert Ai < A and choice["residual_estimate"] == pytest.approx(target, rel=1e-9)
        assert 2 * c3 * Ai ** 2 / abs(G) == pytest.approx(target, rel=1e-9)
