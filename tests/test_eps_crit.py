"""One ``eps_crit`` (issue 19, deliverable 2): every learning rate times the critical factor ``g_c``
(:func:`crnfb.analysis.analyses.margins.critical_rates`), the same in margins, the fluctuation section and the
SBML export check, per species when the learning rates differ.

Independent numbers: the chain's closed form ``k = (12 - 3 sqrt 6)/25`` (Routh-Hurwitz, derived in
tests/test_margins.py::test_chain_eps_crit_closed_form) for equal rates, and, for different rates,
the dense eigenvalues of the loop Jacobian of the model whose learning rates are set to ``eps_crit``
in the model file (``Model.with_learning``, not the margins' scaled Jacobian).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy import linalg

from crnfb.analysis.analyses.fluctuation import fluctuation
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.margins import CriticalRates, critical_rates, margins, rates_value
from crnfb.analysis.cli.sbml_commands import export_deviation
from crnfb.feedback.io.modelfile import load_model, parse_model

EX = Path(__file__).resolve().parents[1] / "examples"
#: chain.toml's eps_crit in closed form (equilibrium clamping, eps = 0.05).
K_CHAIN = (12 - 3 * np.sqrt(6)) / 25
#: Different learning rates for the two learned species of the chain-telegraph variant.
RATES = {"A": 0.3, "B": 0.1}


def _two_rates_model():
    """chain_telegraph.toml with B learned too, at different learning rates (A 0.3, B 0.1)."""
    d = tomllib.loads((EX / "chain_telegraph.toml").read_text())
    d["species"]["B"]["learn"] = True
    d["learning"]["eps"] = dict(RATES)
    return parse_model(d, "chain_telegraph_two_rates.toml")


def _chain_with_still_environment():
    """chain.toml with a random environment whose two levels differ by 1e-9: the loop at ``abar`` is
    chain.toml's loop to ~1e-10, so its eps_crit is the closed form."""
    d = tomllib.loads((EX / "chain.toml").read_text())
    d["environment"]["change"] = {"family": "binomial", "n": 10, "p": 0.3}
    d["environment"]["fluctuation"] = {"levels": [0.0, 1e-9], "k_01": 0.05, "k_10": 0.05}
    return parse_model(d, "chain_still.toml")


@pytest.fixture(scope="module")
def two_rates():
    m = _two_rates_model()
    r = fluctuation(m, factors=np.array([0.5, 2.0]), refine=False)
    return m, r


def test_rates_value_is_a_number_for_equal_rates_and_per_species_otherwise():
    assert rates_value(["A", "B"], [0.1, 0.1], [0.3, 0.3]) == 0.3
    assert rates_value(["A", "B"], [0.1, 0.2], [0.3, 0.6]) == {"A": 0.3, "B": 0.6}
    assert rates_value(["A"], [0.1], None) is None
    c = CriticalRates(learned=("A", "B"), eps=np.array([0.3, 0.1]), factor=None, reason="none")
    assert c.eps_crit is None and c.value is None


def test_fluctuation_eps_crit_is_the_margins_vector_for_different_rates(two_rates):
    m, r = two_rates
    assert not r.uniform and r.eps.tolist() == [0.3, 0.1]
    M = margins(linearise(m, a=r.environment.mean), per_loop=False)
    assert M.eps_crit is not None and r.g_crit is not None
    assert r.g_crit == pytest.approx(M.gain_margin, rel=1e-8)
    assert isinstance(r.eps_crit, dict) and set(r.eps_crit) == {"A", "B"}
    for name, value in M.eps_crit_value.items():
        assert r.eps_crit[name] == pytest.approx(value, rel=1e-8)
        assert r.eps_crit[name] == pytest.approx(RATES[name] * r.g_crit, rel=1e-12)   # every rate, one factor
    d = r.to_dict()
    assert d["eps_crit"] == r.eps_crit and d["g_crit"] == r.g_crit and d["nominal_eps"] == RATES
    assert d["points"][1]["factor"] == 2.0 and d["points"][1]["eps"] == pytest.approx({"A": 0.6, "B": 0.2})
    assert r.axis.tolist() == [0.5, 2.0] and "factor" in r.axis_label
    assert "eps_crit = {A: " in " ".join(str(r.summary()).split())     # the verdict line may wrap


def test_every_rate_at_g_crit_puts_an_eigenvalue_on_the_imaginary_axis(two_rates):
    """Dense eigenvalues of the loop Jacobian of ``with_learning(eps = f * eps_crit)``: the rightmost
    mode that is not the zero mode crosses at ``f = 1`` (sign change over ``f = 1 -+ 1e-4``), and at
    ``f = 1`` its real part is zero within ``1e-6`` of that change plus its conditioning bound."""
    m, r = two_rates
    crit = np.array([r.eps_crit[n] for n in m.learned_names])

    def rightmost(f):
        J = linearise(m.with_learning(eps=tuple(f * crit)), a=r.environment.mean).J.toarray()
        w, vl, vr = linalg.eig(J, left=True, right=True)
        rest = np.abs(w) > 1e-9 * np.linalg.norm(J, 2)      # the one zero mode of the flat direction
        i = np.flatnonzero(rest)[np.argmax(w[rest].real)]
        cond = np.linalg.norm(vl[:, i]) * np.linalg.norm(vr[:, i]) / abs(np.vdot(vl[:, i], vr[:, i]))
        return w[i], cond * np.finfo(float).eps * np.linalg.norm(J, 2)

    below, _ = rightmost(1 - 1e-4)
    at, bound = rightmost(1.0)
    above, _ = rightmost(1 + 1e-4)
    assert below.real < 0 < above.real
    assert abs(at.imag) > 0.1                                    # a Hopf crossing, not the zero mode
    assert abs(at.real) <= 1e-6 * (above.real - below.real) / 2 + bound


def test_equal_rates_margins_sbml_and_fluctuation_give_the_closed_form():
    """The former call sites with equal rates: the chain's eps_crit is the Routh-Hurwitz root."""
    chain = load_model(EX / "chain.toml")
    loop = linearise(chain)
    M = margins(loop, per_loop=False)
    assert M.eps_crit_value == pytest.approx(K_CHAIN, rel=1e-8)
    c = critical_rates(loop)
    assert c.value == pytest.approx(K_CHAIN, rel=1e-8) and c.eps_crit.shape == (1,)
    assert export_deviation(chain, 1.0).eps_crit_report[0] == pytest.approx(K_CHAIN, rel=1e-8)
    r = fluctuation(_chain_with_still_environment(), factors=np.array([0.5, 2.0]), refine=False)
    assert r.uniform and isinstance(r.eps_crit, float)
    assert r.eps_crit == pytest.approx(K_CHAIN, rel=1e-8)
    d = r.to_dict()
    assert d["eps_crit"] == r.eps_crit and d["nominal_eps"] == 0.05
    assert [p["eps"] for p in d["points"]] == pytest.approx([0.025, 0.1])
    assert r.axis.tolist() == pytest.approx([0.025, 0.1]) and r.axis_label.startswith("learning rate")
