"""COPASI (through basico) as an independent check of the exported learning networks (docs/sbml.md).

COPASI reads the SBML we write and computes, with its own integrator,
finite-difference Jacobian and linear noise approximation:

* the steady state reached from the exported episode start, against the
  report's fixed point ``exp(theta*)``;
* the eigenvalues of its Jacobian there, against ours, the structural
  eigenvalues of the exported network identified (0 for the free
  normalisation and for each neutral direction, ``-gamma`` for the clamped
  total under the linear in/out resets);
* the sign of its rightmost eigenvalue at 0.9 and 1.1 times our ``eps_crit``;
* the LNA variance of theta of the copy-count export (copy-conserving resets,
  theta learning) against :func:`crnfb.analysis.analyses.noise.parameter_noise`.

Skipped with a reason where basico (copasi-basico, in the ``peers`` extra)
does not install.
"""

from __future__ import annotations

import locale
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.analyses.noise import parameter_noise
from crnfb.analysis.cli.sbml_commands import export_deviation
from crnfb.feedback.io import sbml
from crnfb.feedback.io.modelfile import load_model

# COPASI resets the process locale to "C" on import (and may again later), which turns Python's
# default text encoding into ASCII for every later test in the session; put the locale back each time
_LOCALE = locale.setlocale(locale.LC_ALL)
basico = pytest.importorskip("basico", reason="copasi-basico is not installed (pip install copasi-basico)")
locale.setlocale(locale.LC_ALL, _LOCALE)
pytestmark = pytest.mark.peers


@pytest.fixture(autouse=True)
def _restore_locale():
    yield
    locale.setlocale(locale.LC_ALL, _LOCALE)
EX = Path(__file__).resolve().parents[1] / "examples"
# COPASI's Jacobian is a finite difference with a relative step; 1e-6 balances truncation against
# round-off for amounts of order 1 (its default 1e-12 step leaves structural zeros at +-6e-3)
DERIVATION_FACTOR = 1e-6


def copasi(text: str, *, particles: bool = False):
    dm = basico.load_model_from_string(text)
    if particles:  # amounts are copy / molecule counts
        basico.set_model_unit(substance_unit="#", model=dm)
    # Newton from the start finds the trivial root Lambda = 0; integrate to the steady state instead,
    # with the rate criterion (the default distance criterion does not converge here)
    basico.set_task_settings(basico.T.STEADY_STATE, {"method": {
        "Use Newton": False, "Use Integration": True, "Use Back Integration": False, "Resolution": 1e-10,
        "Target Criterion": "Rate", "Maximum duration for forward integration": 1e9}}, model=dm)
    return dm


def copasi_eigenvalues(dm, at_start: bool = False) -> np.ndarray:
    J = basico.get_jacobian_matrix(apply_initial_values=at_start, derivation_factor=DERIVATION_FACTOR, model=dm)
    return np.linalg.eigvals(np.asarray(J, float))


def lambdas(dm, names) -> np.ndarray:
    sp = basico.get_species(model=dm)
    return np.array([sp.loc[f"Lambda_{n}", "concentration"] for n in names])


def test_isomerisation_steady_state_and_eigenvalues():
    m = load_model(EX / "isomerisation.toml")
    lin = linearise(m)
    dm = copasi(sbml.learning_sbml(m))
    assert basico.run_steadystate(model=dm) == 1
    np.testing.assert_allclose(lambdas(dm, m.learned_names), np.exp(lin.fixed_point.theta), rtol=1e-6)
    ev = copasi_eigenvalues(dm)
    ours = np.linalg.eigvals(lin.Jr.toarray())
    # structural eigenvalues of the exported network that the reduced loop removes
    structural = np.array([0.0] * (1 + lin.removed["neutral"]) + [-m.learning.gamma] * (lin.net.n_c > 0))
    assert ev.size == ours.size + structural.size
    want = np.concatenate([ours, structural])
    cost = np.abs(ev[:, None] - want[None, :])
    r, c = linear_sum_assignment(cost)
    # finite differences: the structural zeros come out at about 6e-6, the others agree to ~1e-8
    assert cost[r, c].max() < 1e-4
    slow = np.argsort(-ours.real)[:5]
    for j in slow:
        assert np.min(np.abs(ev - ours[j])) < 1e-6 * max(1.0, abs(ours[j]))


def _rightmost(ev: np.ndarray) -> complex:
    """Rightmost eigenvalue, the free normalisation's structural zero (smallest modulus) left out."""
    ev = np.delete(ev, np.argmin(np.abs(ev)))
    return ev[np.argmax(ev.real)]


def test_chain_eps_crit_flips_the_sign_in_copasi():
    """The exported chain (speed-up 1e4) loses stability between 0.9 and 1.1 x eps_crit, in COPASI too."""
    m = load_model(EX / "chain.toml")
    speedup = 1e4
    dev = export_deviation(m, speedup)
    assert dev.eps_crit_deviation < 1e-3                    # and it is the report's eps_crit
    net = sbml.exported_network(m, speedup)
    fp = loop_fixed_point(m, net)                           # the fixed point does not depend on eps
    dm = copasi(sbml.learning_sbml(m, speedup=speedup, state=fp.x))
    ec = float(dev.eps_crit_export[0])
    signs = []
    for f in (0.9, 1.1):
        basico.set_parameters("eps_A", initial_value=f * ec, model=dm)
        signs.append(_rightmost(copasi_eigenvalues(dm, at_start=True)).real)
    assert signs[0] < 0 < signs[1]


CHAIN4 = """name = "chain4"
[species.A]
visible = false
[species.B]
learn = false
[species.X]
visible = true
learn = false
[[reactions]]
eq = "A <-> B"
kappa = 0.2
[[reactions]]
eq = "B <-> X"
kappa = 0.2
[initial]
A = 4
[environment]
family = "binomial"
n = 4
p = 0.25
[learning]
eps = 0.05
clamping = "dynamic"
gamma = 1.0
[ensembles]
free = 200
clamped = 100
omega = 500.0
"""


def test_copy_count_export_lna_matches_ours(tmp_path):
    """Finite ensembles with hidden species and theta learning: COPASI's LNA var(theta) equals ours.

    Copy-conserving resets make the exported network the finite-ensemble
    process of docs/theory.md §6; resets as independent in- and out-flows
    would make the clamped copy total Poisson and change var(theta).
    """
    path = tmp_path / "chain4.toml"
    path.write_text(CHAIN4, encoding="utf-8")
    m = load_model(path)
    lin = linearise(m)
    pred = parameter_noise(m, loop=lin)
    assert m.neutral.shape[1] == 0                          # a stationary covariance exists
    dm = copasi(sbml.learning_sbml(m, copies=True, state=lin.fixed_point.x), particles=True)
    basico.run_lna(model=dm)
    assert "Steady State found" in basico.get_lna_status(model=dm)
    C = basico.get_lna_covariance_matrix(model=dm)
    L = basico.get_species(model=dm).loc["Lambda_A", "particle_number"]
    assert L == pytest.approx(500.0 * np.exp(lin.fixed_point.theta[0]), rel=1e-8)
    var_theta = C.loc["Lambda_A", "Lambda_A"] / L ** 2      # theta = ln(L / Omega), to first order
    assert var_theta == pytest.approx(pred.covariance[0, 0], rel=1e-5)
    assert pred.parts["clamped"][0, 0] > 0.05 * pred.covariance[0, 0]   # the reset noise matters here
