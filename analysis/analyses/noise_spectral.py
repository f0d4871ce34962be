"""Stationary LNA covariance of theta by a frequency integral with sparse solves (docs/theory.md §6).

For large loops the dense Lyapunov equation of :func:`crnfb.analysis.analyses.noise.parameter_noise`
(O(n^3) time, O(n^2) memory) is replaced by the exact spectral form of the
same covariance, restricted to the learned parameters. In the broken-loop
coordinates of :class:`crnfb.analysis.linear.frequency.BrokenLoop` (ensemble plant
``A``, identifiable coordinates ``x = U^T E^{-1/2} theta``, ``W = E^{1/2} U``)
the fluctuations obey, with copy noise ``xi_p`` and learning noise ``xi_th``::

    x(s) = K(s) [W^T H(s) xi_p + U^T E^{-1/2} xi_th],   K = (sI + W^T P(s) W)^{-1},
    H(s) = C_e (sI - A)^{-1}

so ``Sigma_x = (1/pi) int_0^inf Re[K (W^T H D_p H^H W + U^T E^{-1/2} D_th E^{-1/2} U) K^H] dw``
and ``Sigma_theta = W Sigma_x W^T``. Each frequency costs one sparse LU of
``jw I - A`` with ``k`` forward solves (``P``) and ``k`` adjoint solves
(``H^H``); the free, clamped and learning parts come from the same solves.

The integral is taken in ``u = ln w`` by the trapezoidal rule, whose error
falls exponentially with the step for an integrand analytic in a strip
(the poles of the resolvent sit at ``Im u = arg`` of the eigenvalues, i.e.
about the damping angle); the step is halved (reusing every node) until two
successive sums agree to ``rtol``, which is the reported error estimate.
Beyond ``[w_lo, w_hi]`` (1e-3 of the slowest and 1e3 times the fastest
rate) the integrand ``w F(w)`` decays like ``w^{+1}`` and ``w^{-1}``; those
tails are added as geometric series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from crnfb.analysis.linear.frequency import BrokenLoop, broken_loop, plant_rate_range
from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.feedback.numerics import sizes

#: Decades below the slowest and above the fastest rate before the integral's tails are summed in closed form.
TAIL_DECADES = 3.0
TOP_DECADES = 2.0
#: Frequencies below this fraction of the plant's slowest rate use the plant's Taylor series at 0.
TAYLOR_FRACTION = 0.01
#: Coarsest and finest steps of the trapezoidal rule in ``ln w`` (nodes a decade).
START_PER_DECADE = 4
MAX_PER_DECADE = 128


@dataclass(frozen=True)
class SparseDiffusion:
    """One noise source's diffusion matrix ``S + sum_i c_i (u_i v_i^T + v_i u_i^T)`` in full loop coordinates.

    ``S`` is sparse (n, n); the low-rank terms hold the resets' ``-p_c r^T - r p_c^T``.
    """

    S: sparse.csr_matrix
    low_rank: tuple = ()

    def quadratic(self, Y: np.ndarray) -> np.ndarray:
        """``Y^H D Y`` for ``Y`` (n, m) without forming ``D``."""
        out = Y.conj().T @ (self.S @ Y)
        for c, u, v in self.low_rank:
            a, b = Y.conj().T @ u, Y.conj().T @ v
            out = out + c * (np.outer(a, b.conj()) + np.outer(b, a.conj()))
        return out

    def dense(self) -> np.ndarray:
        D = self.S.toarray()
        for c, u, v in self.low_rank:
            D += c * (np.outer(u, v) + np.outer(v, u))
        return D


@dataclass(frozen=True, kw_only=True)
class SpectralCovariance:
    """``Sigma_theta`` per noise source, the quadrature's error estimate and its nodes."""

    parts: dict
    error: float
    nodes: int
    omega_range: tuple


def _rate_bounds(blocks: BrokenLoop, M0: np.ndarray, slowest: float) -> tuple[float, float]:
    """Slowest and fastest rates the integrand can vary on (loop, plant and controller)."""
    ev = np.abs(np.linalg.eigvals(M0)) if M0.size else np.array([])
    lo = [slowest] if np.isfinite(slowest) and slowest > 0 else []
    hi = [float(ev.max())] if ev.size else []
    lo += [float(ev[ev > 0].min())] if np.any(ev > 0) else []
    if blocks.n_p:
        # Gershgorin on the generator's columns: |eig| <= 2 max |A_jj|
        A = blocks.full[0] if blocks.full is not None else blocks.A
        hi.append(2.0 * float(np.max(np.abs(A.diagonal()))))
        rng = plant_rate_range(blocks)
        if rng is not None:
            lo.append(rng[0])
    return min(lo), max(hi + [min(lo)])


class _Integrand:
    """``Re[K (...) K^H]`` per noise source at one frequency (r x r each)."""

    def __init__(self, loop: LinearLoop, diffusion: dict[str, SparseDiffusion], D_theta: np.ndarray):
        self.b = b = broken_loop(loop)
        net = loop.net
        self.n_pf = net.n_f + net.n_c
        self.n_f = net.n_f
        self.pos_p = np.nonzero(loop.rest < self.n_pf)[0]
        self.rest_p = loop.rest[self.pos_p]
        k = b.k
        self.rhs = b.inputs[:, :k]
        self.Ce_T = np.asarray(b.C_e.T.toarray(), complex)
        self.copy = {name: _restrict(d, self.n_pf) for name, d in diffusion.items() if name != "learning"}
        Ut = b.U.T / np.sqrt(b.eps)[None, :]
        self.learning = Ut @ np.diag(D_theta) @ Ut.T
        self.big = b.n_p > sizes.LARGE_PLANT and b.full is not None
        if self.big and b.full is not None:
            _, rhs_f, Cf, Cc = b.full
            self.rhs_f = rhs_f[:, :k]
            self.Ce_T_f = np.asarray((Cc - Cf).T.toarray(), complex)
        self.w_full = 0.0

    def plant(self, w: float) -> tuple[np.ndarray, np.ndarray]:
        """``(P(jw), Y)`` with ``Y = (jw - A)^{-H} C_e^T`` in full copy coordinates (n_p_full, k)."""
        b = self.b
        k = b.k
        if b.n_p == 0:
            return -b.D_mc, np.zeros((self.n_pf, k), complex)
        if self.big and b.full is not None and w >= self.w_full:
            # full generators are banded (the reduced A has the pivots' dense rows); the
            # adjoint's component along each ensemble's 1 (the free generator's left null
            # vector, large near w = 0) is annihilated by every copy-noise matrix: removed
            lu = b.shifted_lu(w, full=True)
            X = lu.solve(self.rhs_f)
            _, _, Cf, Cc = b.full
            P = Cf @ X - Cc @ X - b.D_mc
            Y = lu.solve(self.Ce_T_f, trans="H")
            Y[:self.n_f] -= Y[:self.n_f].mean(axis=0)
            return P, Y
        lu = b.shifted_lu(w)
        X = lu.solve(self.rhs)
        P = b.C_mf @ X - b.C_mc @ X - b.D_mc
        Y = np.zeros((self.n_pf, k), complex)
        Y[self.rest_p] = lu.solve(self.Ce_T, trans="H")
        return P, Y

    def taylor(self, w_max: float, plant_lo: float, rtol: float = 1e-13) -> None:
        """Below ``w_max`` (well under the plant's slowest rate ``plant_lo``) take the plant from its
        Taylor series at 0, ``(sI - A)^{-1} = sum_m (-s)^m (-A)^{-(m+1)}``, truncated where
        ``(w_max/plant_lo)^(m+1) <= rtol``: one factorisation and ``2 k`` solves per order."""
        b = self.b
        if b.n_p == 0 or not 0 < w_max < plant_lo:
            return
        order = int(np.ceil(np.log(rtol) / np.log(w_max / plant_lo)))
        lu = b.shifted_lu(0.0)
        X, Z = [self.rhs], [self.Ce_T]
        for _ in range(order):
            X.append(lu.solve(X[-1]))
            Z.append(lu.solve(Z[-1], trans="H"))
        # the LU is of -A: with R = (-A)^{-1}, (sI - A)^{-1} = sum_m (-s)^m R^(m+1)
        Ce = b.C_mf - b.C_mc
        self.P_mom = [Ce @ x for x in X[1:]]
        Zf = []
        for z in Z[1:]:
            full = np.zeros((self.n_pf, b.k), complex)
            full[self.rest_p] = z
            Zf.append(full)
        self.Q_mom = {n: [[za.conj().T @ (d.S @ zb) + _low(d, za, zb) for zb in Zf] for za in Zf]
                      for n, d in self.copy.items()}
        self.w_taylor = w_max

    def copy_terms(self, w: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``P(jw)`` and ``H D H^H`` of each copy-noise source (k x k), exact or from the Taylor series."""
        if w < getattr(self, "w_taylor", 0.0):
            z = -1j * w                                  # -s; Y = sum (-s)^* ... so Y^H D Y = sum z^a conj(z)^c G_ac
            P = sum(z ** m * pm for m, pm in enumerate(self.P_mom)) - self.b.D_mc
            Q = {n: sum(z ** a * np.conj(z) ** c * q[a][c] for a in range(len(q)) for c in range(len(q)))
                 for n, q in self.Q_mom.items()}
            return P, Q
        P, Y = self.plant(w)
        return P, {n: d.quadratic(Y) for n, d in self.copy.items()}

    def __call__(self, w: float) -> dict[str, np.ndarray]:
        b = self.b
        P, Q = self.copy_terms(w)
        W = b.W
        K = np.linalg.inv(1j * w * np.eye(b.r) + W.T @ P @ W)
        out = {n: (K @ (W.T @ q @ W) @ K.conj().T).real for n, q in Q.items()}
        out["learning"] = (K @ self.learning @ K.conj().T).real
        return out


def _low(d: SparseDiffusion, Ya: np.ndarray, Yb: np.ndarray) -> np.ndarray:
    """The low-rank part of ``Ya^H D Yb``."""
    out = np.zeros((Ya.shape[1], Yb.shape[1]), complex)
    for c, u, v in d.low_rank:
        out += c * (np.outer(Ya.conj().T @ u, v @ Yb) + np.outer(Ya.conj().T @ v, u @ Yb))
    return out


def _restrict(d: SparseDiffusion, n: int) -> SparseDiffusion:
    """The copy-state block (first ``n`` coordinates) of a diffusion matrix."""
    return SparseDiffusion(d.S[:n][:, :n].tocsr(), tuple((c, u[:n], v[:n]) for c, u, v in d.low_rank))


def spectral_covariance(loop: LinearLoop, diffusion: dict[str, SparseDiffusion], D_theta: np.ndarray,
                        slowest_rate: float, rtol: float = 1e-7) -> SpectralCovariance:
    """``Sigma_theta`` of each noise source by the frequency integral (module docstring).

    Parameters
    ----------
    loop : LinearLoop
    diffusion : dict
        ``free``, ``clamped`` (copy noise) as :class:`SparseDiffusion` in full loop coordinates.
    D_theta : ndarray (k,)
        Learning-noise diffusion of each theta (before the neutral projection).
    slowest_rate : float
        The loop's slowest decay rate (sizes the low-frequency end).
    rtol : float
        Stop halving the step when two successive trapezoidal sums agree to ``rtol``
        (relative to ``sqrt(Sigma_ii Sigma_jj)``).
    """
    f = _Integrand(loop, diffusion, D_theta)
    b = f.b
    P0, _ = f.plant(0.0)
    lo, hi = _rate_bounds(b, b.W.T @ P0 @ b.W, slowest_rate)
    rng = plant_rate_range(b)
    if rng is not None:
        # the plant varies only on its own rates: far below them its Taylor series at 0 is exact
        # to rtol, so the loop's slow band costs no factorisation
        f.taylor(TAYLOR_FRACTION * rng[0], rng[0])
    if f.big:
        # below this the full generator's near-zero eigenvalue (jw) costs accuracy: reduced LU there
        f.w_full = 1e-3 * (rng[0] if rng else lo)
    u_lo, u_hi = np.log(lo) - TAIL_DECADES * np.log(10), np.log(hi) + TOP_DECADES * np.log(10)
    names = list(f.copy) + ["learning"]
    cache: dict[float, dict] = {}

    def g(u: float) -> dict:
        if u not in cache:
            w = float(np.exp(u))
            cache[u] = {n: w * v for n, v in f(w).items()}
        return cache[u]

    def total(h: float) -> dict:
        m = int(round((u_hi - u_lo) / h))
        us = u_lo + h * np.arange(m + 1)
        q = np.exp(-h) / (1.0 - np.exp(-h))      # geometric tails: w F ~ w below, ~ 1/w above
        out = {}
        for n in names:
            s = sum(g(float(u))[n] for u in us)
            out[n] = h * (s + q * (g(float(us[0]))[n] + g(float(us[-1]))[n])) / np.pi
        return out

    per = START_PER_DECADE
    span = (u_hi - u_lo) / np.log(10)
    n_dec = max(int(np.ceil(span)), 1)
    u_hi = u_lo + n_dec * np.log(10)              # whole decades: halving the step reuses every node
    prev = total(np.log(10) / per)
    err = np.inf
    while per < MAX_PER_DECADE:
        per *= 2
        cur = total(np.log(10) / per)
        tot = sum(cur.values())
        scale = np.sqrt(np.outer(np.abs(np.diag(tot)), np.abs(np.diag(tot)))) + 1e-300
        err = float(max(np.max(np.abs(cur[n] - prev[n]) / scale) for n in names))
        prev = cur
        if err <= rtol:
            break
    W = b.W
    parts = {n: W @ (0.5 * (v + v.T)) @ W.T for n, v in prev.items()}
    return SpectralCovariance(parts=parts, error=err, nodes=len(cache),
                              omega_range=(float(np.exp(u_lo)), float(np.exp(u_hi))))


__all__ = ["SparseDiffusion", "SpectralCovariance", "spectral_covariance"]
