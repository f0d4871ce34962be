"""The frequency-integral LNA covariance (analysis/analyses/noise_spectral.py) against the dense
Lyapunov solution of the same loop (analysis/analyses/noise.py, docs/theory.md §6): an independent
computation (slycot's Bartels-Stewart on the reduced Jacobian vs sparse resolvent solves)."""

from __future__ import annotations

import numpy as np
import pytest

import crnfb.analysis.analyses.noise as noise
from crnfb.analysis.linear.linearise import linearise
from crnfb.feedback.numerics import sizes
from tests.conftest import example


def _both(model, clamping=None, monkeypatch=None):
    loop = linearise(model, clamping)
    monkeypatch.setattr(sizes, "DENSE_LYAPUNOV_LIMIT", 10 ** 9)
    dense = noise.parameter_noise(model, loop=loop)
    monkeypatch.setattr(sizes, "DENSE_LYAPUNOV_LIMIT", 0)
    spec = noise.parameter_noise(model, loop=loop)
    return dense, spec


def _assert_close(dense, spec, rtol):
    assert dense.method == "dense Lyapunov" and spec.method == "frequency integral"
    d = np.sqrt(np.diag(dense.covariance))
    scale = np.outer(d, d)
    for name in dense.parts:
        assert np.max(np.abs(spec.parts[name] - dense.parts[name]) / scale) < rtol, name
    # the integral's own error estimate is held to the agreement asked of it (its target is 1e-7)
    assert spec.quadrature_error is not None and spec.quadrature_error < rtol
    c = dense.identifiable_covariance               # off-diagonal entries relative to sqrt(C_ii C_jj)
    dc = np.sqrt(np.diag(c))
    assert np.max(np.abs(spec.identifiable_covariance - c) / np.outer(dc, dc)) < rtol


@pytest.mark.parametrize("name,clamping", [("birth_death", None), ("birth_death", "dynamic"),
                                           ("isomerisation", None), ("chain", None)])
def test_frequency_integral_matches_dense_lyapunov(name, clamping, monkeypatch):
    """E1 (both clampings: the resets' rank-two noise), E2 (a neutral direction split off), chain."""
    dense, spec = _both(example(name), clamping, monkeypatch)
    _assert_close(dense, spec, 1e-8)


def test_frequency_integral_matches_dense_lyapunov_e3(monkeypatch):
    """E3: hidden units, dynamic clamping, slow modes five decades below the plant's."""
    dense, spec = _both(example("hidden_scaffold"), None, monkeypatch)
    _assert_close(dense, spec, 1e-7)


@pytest.mark.slow
def test_frequency_integral_matches_dense_lyapunov_t40(monkeypatch):
    """The T = 40 scaffold (1321 reduced states): the full-coordinate solves of large plants."""
    dense, spec = _both(example("scaffold_T40_K20"), None, monkeypatch)
    _assert_close(dense, spec, 1e-7)


def test_sparse_diffusion_is_the_dense_one():
    """The sparse parts (with the resets' rank-two term) reproduce the dense diffusion matrix."""
    loop = linearise(example("birth_death"), "dynamic")
    parts = noise.sparse_diffusion(loop)
    D, dense = noise.diffusion_matrix(loop)
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(D.shape[0], 3)) + 1j * rng.normal(size=(D.shape[0], 3))
    for name, d in parts.items():
        np.testing.assert_allclose(d.quadratic(Y), Y.conj().T @ dense[name] @ Y, atol=1e-12)
    assert np.allclose(D[loop.net.n_f:loop.net.n_f + loop.net.n_c].sum(axis=0), 0.0, atol=1e-14)
