"""Zero modes are never instability (issue 22, deliverable 3; docs/theory.md §5, "Zero modes").

Three shapes built for this (tests/data/zeromodes/): an open chain ``0 <-> A <-> B``
with a truncation box (hidden ``A`` learned but unidentifiable: one flat
direction), and two token walks on reaction graphs (one token on 6 and on 8
species, every energy learned, one visible species: a Bernoulli marginal, so
the Hessian of ``D(Q||P)`` has ``k - 2`` flat directions). Each reports
without a failed section and exits 0; the one tolerance is checked against a
brute-force dense eigen-decomposition of the same full Jacobian; a property
test on random detailed-balanced networks perturbs the reduced Jacobian by a
tenth of the tolerance and requires that no decision flips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crnfb.analysis.cli.entry import main
from crnfb.analysis.linear.fixedpoints import classify
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.noise import NoStationaryCovariance, _flat_complement, lyapunov, parameter_noise
from crnfb.analysis.linear.stability import (ZERO_TOL_FACTOR, classify_modes, flat_count, loop_modes, spectral_scale,
                                             stability, zero_tolerance)
from crnfb.feedback import load_model, parse_model

DATA = Path(__file__).resolve().parent / "data" / "zeromodes"
SHAPES = ("open_chain", "token_walk_6", "token_walk_8")
#: Flat directions of D(Q||P) from the structure alone: open chain, A unidentifiable (1);
#: token walks, k learned energies, one neutral sum and a one-number marginal (k - 2).
HESSIAN_FLAT = {"open_chain": 1, "token_walk_6": 4, "token_walk_8": 6}

_LOOPS: dict = {}


def loop_of(name: str):
    if name not in _LOOPS:
        _LOOPS[name] = linearise(load_model(DATA / f"{name}.toml"))
    return _LOOPS[name]


@pytest.mark.parametrize("name", SHAPES)
def test_flat_count_is_the_structural_one(name):
    loop = loop_of(name)
    fp = loop.fixed_point
    assert classify(loop.net.model, fp.optimum.theta, fp.a).flat.size == HESSIAN_FLAT[name]
    assert flat_count(loop) == HESSIAN_FLAT[name]


@pytest.mark.parametrize("name", SHAPES)
def test_tolerance_against_dense_eigenvalues_of_the_full_jacobian(name):
    """Brute force: every eigenvalue of the full Jacobian (dense LAPACK) within the tolerance of zero
    is a structural zero or a flat mode the report removed; every other one decays beyond it; the
    slowest of those is the report's slowest rate."""
    loop = loop_of(name)
    st_ = stability(loop)
    ev = np.linalg.eigvals(loop.J.toarray())
    tol = st_.zero_tolerance
    assert tol >= ZERO_TOL_FACTOR * spectral_scale(loop.J)
    zero = np.abs(ev) <= tol
    assert int(zero.sum()) == st_.neutral_modes + st_.flat_modes.size
    assert np.all(ev[~zero].real < -tol)
    assert st_.stable and not st_.marginal
    slow = -np.max(ev[~zero].real)
    assert abs(slow - st_.slowest_rate) <= tol + 1e-9 * slow
    # the round-off near zero is inside a tenth of the tolerance. It is not eps_mach-sized: the open
    # chain's free normalisation and flat zero form a nearly defective pair, split to +-5e-8
    # ~ sqrt(eps_mach |J|), which is why the tolerance scales with sqrt(eps_mach)
    assert np.max(np.abs(ev[zero]), initial=0.0) <= 0.1 * tol


def test_noise_on_a_large_loop_with_a_flat_mode_is_a_stated_limitation():
    """The open chain (962 reduced states: the frequency-integral path) does not project flat modes:
    a NoStationaryCovariance with the reason (the report's ``passed: null``), never "not stable"."""
    with pytest.raises(NoStationaryCovariance, match="1 flat mode"):
        parameter_noise(loop_of("open_chain"))


@pytest.mark.parametrize("name", ["token_walk_6", "token_walk_8"])
def test_noise_prediction_exists_with_neutral_and_flat_modes(name):
    """No "not stable (max Re eig = 3e-13)": the covariance transverse to the lines of fixed points."""
    pred = parameter_noise(loop_of(name))
    cov = pred.covariance
    assert np.all(np.isfinite(cov)) and np.allclose(cov, cov.T)
    assert np.min(np.linalg.eigvalsh(0.5 * (cov + cov.T))) >= -1e-9 * np.max(np.abs(cov))


def test_flat_complement_lyapunov_against_the_eigenbasis_closed_form():
    """``A = S diag(0, 0, l_3..l_n) S^{-1}``: the covariance of the OU process projected along the
    zero modes is ``S Z S^T`` with ``Z_ij = (S^{-1} P D P^T S^{-T})_ij / -(l_i + l_j)`` off the zeros."""
    rng = np.random.default_rng(3)
    n, m = 7, 2
    lam = np.concatenate([np.zeros(m), -rng.uniform(0.5, 3.0, n - m)])
    S = rng.standard_normal((n, n)) + 3 * np.eye(n)
    Si = np.linalg.inv(S)
    A = S @ np.diag(lam) @ Si
    C = rng.standard_normal((n, n))
    D = C @ C.T
    B, P = _flat_complement(A, m)
    X = B @ lyapunov(B.T @ A @ B, B.T @ P @ D @ P.T @ B) @ B.T
    Dt = Si @ P @ D @ P.T @ Si.T
    Z = np.zeros((n, n))
    live = np.arange(m, n)
    Z[np.ix_(live, live)] = Dt[np.ix_(live, live)] / -(lam[live][:, None] + lam[live][None, :])
    assert np.allclose(X, S @ Z @ S.T, rtol=1e-8, atol=1e-10 * np.max(np.abs(X)))
    assert np.allclose(Dt[:m], 0.0, atol=1e-6 * np.max(np.abs(D)))   # P removes the zero modes' noise (to the null vectors' accuracy)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHAPES)
def test_report_of_each_shape_has_no_failed_section(capsys, tmp_path, name):
    rc = main(["report", str(DATA / f"{name}.toml"), "-o", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Traceback" not in err and "not stable" not in out
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    cl = rep["closed_loop"]
    assert cl["stable"] and not cl["marginal"] and cl["zero_tolerance"] > 0
    assert not any(c["passed"] is False for c in rep["validation"])
    assert not any("failed" in str(c.get("details", {}).get("reason", "")) for c in rep["validation"])
    assert rep.get("validation_reason") is None
    assert "STABLE (with" in out                      # the neutral/flat modes are stated, not hidden


# -- property test: round-off of size tol/10 never flips a decision ---------------------------------------
@st.composite
def token_walks(draw):
    """One token on a random connected graph of 3-5 species (detailed balance by construction:
    rates from energies), a random learned set containing the visible species."""
    n = draw(st.integers(3, 5))
    names = [f"S{i + 1}" for i in range(n)]
    edges = [(i, i + 1) for i in range(n - 1)]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3))
    edges += [(i, j) for i, j in extra if i < j and (i, j) not in edges]
    learn = [True] + [draw(st.booleans()) for _ in range(n - 1)]
    species = {nm: {"energy": draw(st.floats(-1.5, 1.5)), "visible": i == 0, "learn": learn[i]}
               for i, nm in enumerate(names)}
    reactions = [{"eq": f"{names[i]} <-> {names[j]}", "kappa": draw(st.floats(0.2, 3.0))} for i, j in edges]
    p = draw(st.floats(0.15, 0.85))
    clamping = draw(st.sampled_from(["equilibrium", "dynamic"]))
    return {"name": "random-walk", "species": species, "reactions": reactions, "initial": {names[0]: 1},
            "environment": {"family": "binomial", "n": 1, "p": p},
            "learning": {"eps": draw(st.floats(0.02, 0.5)), "clamping": clamping, "gamma": 1.0}}


def roundoff(Jr: np.ndarray, size: float, seed: int, worst: bool) -> np.ndarray:
    """A perturbation of 2-norm ``size``: random, or (``worst``) the rank-one ``y x^T`` along the
    left/right null vectors of the nearest-zero mode, which moves that eigenvalue by ``size * kappa``."""
    if worst:
        u, _, vt = np.linalg.svd(Jr)
        return size * np.outer(u[:, -1], vt[-1])
    E = np.random.default_rng(seed).standard_normal(Jr.shape)
    return E * size / np.linalg.norm(E, 2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=token_walks(), seed=st.integers(0, 2**31 - 1), worst=st.booleans())
def test_no_decision_flips_under_roundoff_of_a_tenth_of_the_tolerance(data, seed, worst):
    loop = linearise(parse_model(data))
    split = loop_modes(loop)
    Jr = loop.Jr.toarray()
    E = roundoff(Jr, split.tolerance / 10, seed, worst)
    ev = np.linalg.eigvals(Jr + E)
    again = classify_modes(ev, flat_count(loop), zero_tolerance(ev, spectral_scale(loop.J)))
    assert (again.stable, again.marginal, again.flat.size) == (split.stable, split.marginal, split.flat.size)
    assert split.stable                      # a detailed-balanced learning loop at its minimum
