"""Research-scale examples (examples/research_scale.py writes them; docs/theory.md §8).

The two-visible example earns its hidden scaffold: in a detailed-balanced
network without hidden species the law on a class that contains the target's
support (the box ``[0, T]^2``) is a product law, and for every product law
``P1 x P2``::

    D(Q || P1 x P2) = I_Q(x1; x2) + D(Q1 || P1) + D(Q2 || P2) >= I_Q(x1; x2),

so the target's mutual information (computed here straight from its table)
bounds every such network from below. The best fits of two such networks are
derived independently (moment matching of truncated Poissons, of binomials)
and compared with the package's fit.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import gammaln

from crnfb.feedback.io.modelfile import load_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
T2V = 23  # the totals of examples/two_visible.toml


def _target(model) -> np.ndarray:
    """The target as a (T+1, T+1) table indexed by (x1, x2)."""
    pts = np.asarray(model.space.visible_states)
    Q = np.zeros((pts[:, 0].max() + 1, pts[:, 1].max() + 1))
    Q[pts[:, 0], pts[:, 1]] = model.q
    return Q


def _kl(q: np.ndarray, p: np.ndarray) -> float:
    m = q > 0
    return float(np.sum(q[m] * np.log(q[m] / p[m])))


def _mutual_information(Q: np.ndarray) -> float:
    return _kl(Q, np.outer(Q.sum(1), Q.sum(0)))


def _environment_text() -> str:
    text = (EXAMPLES / "two_visible.toml").read_text()
    return text[text.index("[environment]"):text.index("[learning]")]


def _product_model(tmp_path, species: str, reactions: str, extra: str = "") -> object:
    path = tmp_path / "m.toml"
    path.write_text(species + reactions + extra + _environment_text()
                    + '[learning]\neps = 0.05\nclamping = "equilibrium"\n')
    return load_model(path)


@pytest.fixture(scope="module")
def two_visible():
    return load_model(EXAMPLES / "two_visible.toml")


def test_research_examples_are_what_the_generator_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("research_scale", EXAMPLES / "research_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (EXAMPLES / "scaffold_T40_K20.toml").read_text() == mod.scaffold(40, 20)
    assert (EXAMPLES / "two_visible.toml").read_text() == mod.two_visible(23, 11, "two-visible")
    assert (EXAMPLES / "two_visible_1e5.toml").read_text() == mod.two_visible(56, 18, "two-visible-1e5")


def test_two_visible_class_size_and_correlated_target(two_visible):
    # (T+1) [(T+1)(2K+1) - K(K+1)] copy states: scaffold S0, A1..AK, B1..BK
    assert two_visible.space.size == 24 * (24 * 23 - 11 * 12) == 10080
    Q = _target(two_visible)
    x = np.arange(Q.shape[0])
    m1, m2 = Q.sum(1) @ x, Q.sum(0) @ x
    cov = x @ Q @ x - m1 * m2
    assert cov < -5.0                       # the two modes pull x1 and x2 apart
    assert _mutual_information(Q) > 0.15    # nats; the bound every product law obeys


def test_best_fits_without_the_scaffold_stay_above_the_mutual_information(two_visible, tmp_path):
    Q = _target(two_visible)
    info = _mutual_information(Q)
    q1, q2 = Q.sum(1), Q.sum(0)
    x = np.arange(Q.shape[0])

    # open X1, X2 in the box [0, T]^2: truncated Poissons; the best one matches each mean
    open_ = _product_model(tmp_path, '[species.X1]\nvisible = true\n[species.X2]\nvisible = true\n',
                           '[[reactions]]\neq = "0 <-> X1"\n[[reactions]]\neq = "0 <-> X2"\n',
                           f"[truncation]\nn_max = {T2V}\ntol = 1.0\n")
    from crnfb.analysis.linear.fixedpoints import learned_fixed_point

    d_open = learned_fixed_point(open_).divergence

    def trunc_poisson(lam):
        logp = x * np.log(lam) - gammaln(x + 1)
        p = np.exp(logp - logp.max())
        return p / p.sum()

    def best(qm):
        lam = optimize.brentq(lambda l: trunc_poisson(l) @ x - qm @ x, 1e-3, 1e3)
        return trunc_poisson(lam)

    d_open_direct = _kl(Q, np.outer(best(q1), best(q2)))
    assert d_open == pytest.approx(d_open_direct, rel=1e-6)

    # X1 <-> Y1, X2 <-> Y2 with totals T (hidden species but no scaffold): binomials
    iso = _product_model(tmp_path, "[species.X1]\nvisible = true\n[species.X2]\nvisible = true\n"
                         "[species.Y1]\n[species.Y2]\n",
                         '[[reactions]]\neq = "X1 <-> Y1"\n[[reactions]]\neq = "X2 <-> Y2"\n',
                         f"[initial]\nX1 = {T2V}\nX2 = {T2V}\n")
    d_iso = learned_fixed_point(iso).divergence
    b1 = stats.binom.pmf(x, T2V, (q1 @ x) / T2V)
    b2 = stats.binom.pmf(x, T2V, (q2 @ x) / T2V)
    assert d_iso == pytest.approx(_kl(Q, np.outer(b1, b2)), rel=1e-6)

    for d in (d_open, d_iso):
        assert d >= info - 1e-12


@pytest.mark.slow
def test_two_visible_learns_the_target_that_product_laws_cannot(two_visible):
    """The scaffold's learned law, rebuilt from its closed form, fits Q; every product law is >= I(Q) away."""
    from crnfb.analysis.linear.fixedpoints import learned_fixed_point

    model = two_visible
    opt = learned_fixed_point(model)
    th = dict(zip(model.network.names, model.full_theta(opt.theta)))
    K = 11
    # closed form (docs/theory.md §1 product form summed over the hidden states of a class):
    # scaffold state s with kA, kB bound: w_s binomial(T - kA, p1) x binomial(T - kB, p2)
    lam = {n: np.exp(v) for n, v in th.items()}
    L1, L2 = lam["X1"] + lam["Y1"], lam["X2"] + lam["Y2"]
    x = np.arange(T2V + 1)
    P = np.zeros((T2V + 1, T2V + 1))
    states = [("S0", 0, 0)] + [(f"A{k}", k, 0) for k in range(1, K + 1)] + [(f"B{k}", 0, k) for k in range(1, K + 1)]
    for name, ka, kb in states:
        logw = (th[name] + (T2V - ka) * np.log(L1) - gammaln(T2V - ka + 1)
                + (T2V - kb) * np.log(L2) - gammaln(T2V - kb + 1))
        P += np.exp(logw) * np.outer(stats.binom.pmf(x, T2V - ka, lam["X1"] / L1),
                                     stats.binom.pmf(x, T2V - kb, lam["X2"] / L2))
    P /= P.sum()
    Q = _target(model)
    d_direct = _kl(Q, P)
    assert d_direct == pytest.approx(opt.divergence, abs=1e-9)
    assert d_direct < 1e-6
    assert _mutual_information(Q) - d_direct > 0.15   # the clear margin over every scaffold-free network


def test_two_visible_generator_keeps_the_structure_at_small_size(tmp_path):
    """A small instance (T = 6, K = 3) of the same generator: learned exactly, D far below I(Q)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("research_scale", EXAMPLES / "research_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = tmp_path / "small.toml"
    path.write_text(mod.two_visible(6, 3, "small"))
    model = load_model(path)
    assert model.space.size == 7 * (7 * 7 - 12)
    from crnfb.analysis.linear.fixedpoints import learned_fixed_point

    opt = learned_fixed_point(model)
    Q = _target(model)
    assert opt.divergence < 1e-8
    assert _mutual_information(Q) > 0.05


@pytest.mark.slow
def test_scaffold_t40_report_complete_and_validated():
    """Issue 12: the T = 40, K = 20 scaffold's full report has every section and passes validation.

    Stability and eps_crit are checked against the loop's own eigenvalues
    (the margins' crossing eigenvalue lies on the imaginary axis; the loop is
    stable at the file's eps, unstable past eps_crit).
    """
    from crnfb.analysis.reporting.pipeline import analyse

    model = load_model(EXAMPLES / "scaffold_T40_K20.toml")
    # the global searches are tested on chain30 and the small scaffold (test_global, test_region); here a
    # zero budget keeps the report to what this test checks, and they say why they were not run
    res = analyse(model, validate=True, figures=True, noise_budget=0, global_budget=0)
    d = res.to_dict()
    failed = {k: v for k, v in res.reasons.items() if str(v).startswith("failed")}
    assert not failed, failed
    assert d["closed_loop"]["stable"]
    for key in ("bandwidth", "hinf_norm", "step", "lag_cost"):
        assert d["disturbance"][key] is not None, key
    gm = d["margins"]["gain_margin"]
    assert gm is not None and gm > 1.0
    assert d["margins"]["gain_margin_frequency_domain"] == pytest.approx(gm, rel=1e-6)
    made = [c for c in res.validation or [] if c.passed is not None]
    assert made and all(c.passed for c in made), [(c.quantity, c.rel_error, c.tolerance) for c in made
                                                  if not c.passed]
    # the one check not made is the SSA of parameter noise: its correlation time 1/2.3e-5 needs far
    # more events than a report can afford, and the entry says so (issue 10: honest gaps)
    not_made = {c.quantity: c.details.get("reason") for c in res.validation if c.passed is None}
    assert set(not_made) <= {"parameter noise (LNA vs SSA)"} and all(not_made.values()), not_made
    for kind in ("convergence rate", "step response", "frequency response", "linear range"):
        assert any(c.quantity.startswith(kind) for c in made), (kind, [c.quantity for c in made])
    g = d["global"]
    assert g["safe_factor"] is None and "time budget of 0 s" in g["safe_factor_reason"]


@pytest.mark.slow
def test_two_visible_full_report_complete_and_validated(two_visible):
    """The 10^4-state example's full report (issue 12): every section filled, every check made passes
    (the reduced plant model verified, the slow-mode search checked against it), and only the SSA
    noise check is not made, with its reason. About 2.5 min on two cores."""
    from crnfb.analysis.reporting.pipeline import analyse
    from crnfb.analysis.analyses.validation import SLOW_MODES

    res = analyse(two_visible, validate=True, figures=True, noise_budget=0)   # SSA: see not_made below
    d = res.to_dict()
    failed = {k: v for k, v in res.reasons.items() if str(v).startswith("failed")}
    assert not failed, failed
    assert d["closed_loop"]["stable"] and d["fixed_point"]["optimum"]["converged"]
    pm = d["margins"]["plant_model"]
    assert pm["method"] == "reduced model" and pm["verified"] and pm["relative_error"] <= pm["tolerance"]
    assert d["margins"]["gain_margin"] is not None and d["margins"]["gain_margin"] > 1.0
    for key in ("bandwidth", "hinf_norm", "step", "lag_cost"):
        assert d["disturbance"][key] is not None, key
    made = [c for c in res.validation if c.passed is not None]
    assert made and all(c.passed for c in made), [(c.quantity, c.rel_error, c.tolerance) for c in made
                                                  if not c.passed]
    not_made = {c.quantity: c.details.get("reason") for c in res.validation if c.passed is None}
    assert set(not_made) <= {"parameter noise (LNA vs SSA)"} and all(not_made.values()), not_made
    for kind in ("convergence rate", "step response", "frequency response", "quasi-static rate", "linear range",
                 SLOW_MODES):
        assert any(c.quantity.startswith(kind) for c in made), (kind, [c.quantity for c in made])
