"""Exact distributions and the divergence landscape (docs/theory.md §2).

All functions take the *full* ``theta`` (one entry per species); callers
that learn a subset embed their parameters first (see
:meth:`crnfb.feedback.model.Model.full_theta`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import null_space, orth

from .statespace import StateSpace


@dataclass(frozen=True)
class Moments:
    """Exact moments at one ``theta``.

    Attributes
    ----------
    pi : ndarray            stationary law on the class
    P : ndarray             visible marginal ``P_theta(v)``
    qt : ndarray            clamped law ``Qt(v, h) = Q(v) pi(h|v)`` on the class
    mean_free : ndarray     ``<n>_pi``
    mean_clamped : ndarray  ``<n>_Qt``
    """

    pi: np.ndarray
    P: np.ndarray
    qt: np.ndarray
    mean_free: np.ndarray
    mean_clamped: np.ndarray


class Landscape:
    """``D(Q || P_theta)``, its gradient and Hessian on an enumerated class.

    Parameters
    ----------
    space : StateSpace
    q : ndarray
        Environment tabulated on ``space.visible_states`` (sums to one).
    """

    def __init__(self, space: StateSpace, q: np.ndarray):
        self.space = space
        self.q = np.asarray(q, float)
        self._S = space.states.astype(float)
        self._vi = space.visible_index
        self._nv = space.visible_states.shape[0]

    def marginal(self, pi: np.ndarray) -> np.ndarray:
        """Visible marginal of a law on the class."""
        return np.bincount(self._vi, weights=pi, minlength=self._nv)

    def log_marginal(self, theta: np.ndarray) -> np.ndarray:
        """``ln P_theta(v)`` computed in logs (no underflow far in the tails of large boxes)."""
        from scipy.special import logsumexp
        lw = self.space.log_weights(theta)
        lw = lw - logsumexp(lw)
        top = np.full(self._nv, -np.inf)
        np.maximum.at(top, self._vi, lw)
        sums = np.bincount(self._vi, weights=np.exp(lw - top[self._vi]), minlength=self._nv)
        with np.errstate(divide="ignore"):
            return top + np.log(sums)

    def clamped_law(self, pi: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        """``Qt(v,h) = Q(v) pi(h|v)`` on the class."""
        q = self.q if q is None else q
        P = self.marginal(pi)
        ratio = np.divide(q, P, out=np.zeros_like(P), where=P > 0)
        return pi * ratio[self._vi]

    def moments(self, theta: np.ndarray, q: np.ndarray | None = None) -> Moments:
        pi = self.space.stationary(theta)
        P = self.marginal(pi)
        qt = self.clamped_law(pi, q)
        return Moments(pi, P, qt, self._S.T @ pi, self._S.T @ qt)

    def divergence(self, theta: np.ndarray, q: np.ndarray | None = None) -> float:
        """``D(Q||P_theta)`` in nats (finite: Q is tabulated on reachable states)."""
        q = self.q if q is None else q
        logP = self.log_marginal(theta)
        m = q > 0
        d = float(np.sum(q[m] * (np.log(q[m]) - logP[m])))
        # D >= 0 exactly; a rounding-sized negative is reported as 0, anything larger is a bug
        if d < 0:
            if d < -1e-10:
                raise ArithmeticError(f"D(Q||P) came out negative ({d:.3g}); the laws are not normalised")
            return 0.0
        return d

    def gradient(self, theta: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        """``dD/dtheta = <n>_pi - <n>_Qt`` (all species)."""
        mo = self.moments(theta, q)
        return mo.mean_free - mo.mean_clamped

    def conditional_covariance(self, pi: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        """``E_Q[ Cov_{pi(.|v)}(n) ]``: the clamped plant's quasi-static gain."""
        qt = self.clamped_law(pi, q)
        S = self._S
        second = (S * qt[:, None]).T @ S
        P = self.marginal(pi)
        # conditional means E[n|v] per visible state
        sums = np.zeros((self._nv, S.shape[1]))
        np.add.at(sums, self._vi, S * pi[:, None])
        mu = np.divide(sums, P[:, None], out=np.zeros_like(sums), where=P[:, None] > 0)
        qq = self.q if q is None else q
        return second - (mu * qq[:, None]).T @ mu

    def covariance(self, pi: np.ndarray) -> np.ndarray:
        """``Cov_pi(n)``: the free plant's quasi-static gain."""
        S = self._S
        m = S.T @ pi
        return (S * pi[:, None]).T @ S - np.outer(m, m)

    def hessian(self, theta: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        """``Cov_pi(n) - E_Q[Cov_{pi(.|v)}(n)]`` (all species)."""
        pi = self.space.stationary(theta)
        return self.covariance(pi) - self.conditional_covariance(pi, q)


def neutral_directions(L: np.ndarray, learned: np.ndarray, n_species: int) -> np.ndarray:
    """Orthonormal basis (columns, learned coordinates) of non-identifiable directions.

    They are the vectors ``L^T c`` of the row space of the conservation laws
    that vanish on every species that is not learned (docs/theory.md §2).
    """
    learned = np.asarray(learned)
    k = len(learned)
    if L.shape[0] == 0 or k == 0:
        return np.zeros((k, 0))
    fixed = np.setdiff1d(np.arange(n_species), learned)
    Lf = L[:, fixed].astype(float)
    C = null_space(Lf.T) if fixed.size else np.eye(L.shape[0])
    if C.shape[1] == 0:
        return np.zeros((k, 0))
    vecs = L[:, learned].T.astype(float) @ C
    return orth(vecs) if np.linalg.norm(vecs) > 0 else np.zeros((k, 0))


def identifiable_basis(neutral: np.ndarray, k: int, eps: np.ndarray | None = None) -> np.ndarray:
    """Orthonormal basis of the complement of ``E^{-1/2} N`` (E^{1/2}-scaled coordinates).

    With ``eps`` None (or scalar-like) this is the Euclidean complement of
    the neutral directions ``N``.
    """
    if neutral.shape[1] == 0:
        return np.eye(k)
    N = neutral if eps is None else neutral / np.sqrt(np.asarray(eps, float))[:, None]
    return null_space(N.T)


__all__ = ["identifiable_basis", "Landscape", "Moments", "neutral_directions"]
