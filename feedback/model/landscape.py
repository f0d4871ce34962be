"""Exact distributions and the divergence landscape (docs/theory.md §2).

All functions take the *full* ``theta`` (one entry per species); callers
that learn a subset embed their parameters first (see
:meth:`crnfb.feedback.model.model.Model.full_theta`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.linalg import null_space, orth
from scipy.special import logsumexp

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
        # states grouped by visible part (every v of the class has at least one state):
        # per-group maxima by reduceat and sums by a sparse indicator, not ufunc.at
        self._by_v = np.argsort(self._vi, kind="stable")
        self._v_start = np.searchsorted(self._vi[self._by_v], np.arange(self._nv))
        self._ind = sparse.csr_matrix((np.ones(self._vi.size), (self._vi, np.arange(self._vi.size))),
                                      shape=(self._nv, self._vi.size))

    def marginal(self, pi: np.ndarray) -> np.ndarray:
        """Visible marginal of a law on the class."""
        return np.bincount(self._vi, weights=pi, minlength=self._nv)

    def log_marginal(self, theta: np.ndarray) -> np.ndarray:
        """``ln P_theta(v)`` computed in logs (no underflow far in the tails of large boxes)."""
        return self._log_marginal_of(self.log_law(theta))

    def log_law(self, theta: np.ndarray) -> np.ndarray:
        """``ln pi_theta(n)`` on the class, normalised with log-sum-exp."""
        lw = self.space.log_weights(theta)
        return lw - logsumexp(lw)

    def _log_marginal_of(self, lpi: np.ndarray) -> np.ndarray:
        top = np.maximum.reduceat(lpi[self._by_v], self._v_start) if lpi.size else np.full(self._nv, -np.inf)
        safe = np.where(np.isfinite(top), top, 0.0)
        sums = np.bincount(self._vi, weights=np.exp(lpi - safe[self._vi]), minlength=self._nv)
        with np.errstate(divide="ignore"):
            return safe + np.log(sums)

    def conditional(self, pi: np.ndarray | None = None, log_pi: np.ndarray | None = None) -> np.ndarray:
        """``pi(h|v)`` per state of the class.

        From ``log_pi`` it is computed as ``exp(ln pi - ln P(v))``, which stays
        exact when whole visible slices underflow in ``pi`` (energies far from
        the environment, issue: starting energies 30 kT away).
        """
        if log_pi is not None:
            logP = self._log_marginal_of(log_pi)
            ok = np.isfinite(logP)[self._vi]
            return np.where(ok, np.exp(log_pi - np.where(np.isfinite(logP), logP, 0.0)[self._vi]), 0.0)
        if pi is None:
            raise TypeError("conditional() needs pi or log_pi")
        P = self.marginal(pi)
        return pi * np.divide(1.0, P, out=np.zeros_like(P), where=P > 0)[self._vi]

    def clamped_law(self, pi: np.ndarray | None, q: np.ndarray | None = None,
                    log_pi: np.ndarray | None = None) -> np.ndarray:
        """``Qt(v,h) = Q(v) pi(h|v)`` on the class (give ``log_pi`` to avoid underflow)."""
        q = self.q if q is None else q
        return self.conditional(pi, log_pi) * q[self._vi]

    def moments(self, theta: np.ndarray, q: np.ndarray | None = None) -> Moments:
        lpi = self.log_law(theta)
        pi = np.exp(lpi)
        P = self.marginal(pi)
        qt = self.clamped_law(pi, q, log_pi=lpi)
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

    def conditional_covariance(self, pi: np.ndarray | None, q: np.ndarray | None = None,
                               log_pi: np.ndarray | None = None) -> np.ndarray:
        """``E_Q[ Cov_{pi(.|v)}(n) ]``: the clamped plant's quasi-static gain."""
        qq = self.q if q is None else q
        cond = self.conditional(pi, log_pi)
        S = self._S
        qt = cond * qq[self._vi]
        # conditional means E[n|v] per visible state; the covariance from centred counts (no
        # cancellation of E[n n^T] - mu mu^T: a species fixed by v gets exactly 0, not +-1e-16,
        # whose sign decides whether the loop's flat mode is a round-off instability)
        mu = np.asarray(self._ind @ (S * cond[:, None]))
        dev = S - mu[self._vi]
        return (dev * qt[:, None]).T @ dev

    def clamped_mean_derivative(self, log_pi: np.ndarray, directions: list[np.ndarray],
                                q: np.ndarray | None = None) -> np.ndarray:
        """``D^k m_c[d_1, ..., d_k]`` of ``m_c(theta) = E_Q[E[n|v]]`` (k = 2 or 3; all species).

        ``d/dtheta E[f|v] = Cov(f, n|v)``, so the k-th derivative is the
        conditional cumulant of order k + 1 of ``(n, d_1.n, ..., d_k.n)``,
        averaged over Q (docs/theory.md §4c). Directions are full-theta
        vectors (complex allowed).
        """
        qq = self.q if q is None else q
        cond = self.conditional(None, log_pi)
        S = self._S
        mu = np.asarray(self._ind @ (S * cond[:, None]))
        c = S - mu[self._vi]                 # centred counts per slice
        qt = cond * qq[self._vi]
        a = [c @ d for d in directions]
        if len(a) == 2:
            return c.T @ (qt * a[0] * a[1])
        if len(a) != 3:
            raise ValueError(f"clamped_mean_derivative takes 2 or 3 directions, got {len(a)}")
        top = c.T @ (qt * a[0] * a[1] * a[2])
        for i, j, k in ((0, 1, 2), (1, 0, 2), (2, 0, 1)):
            e_ca = self._ind @ (c * (cond * a[i])[:, None])          # E[c a_i | v]  (nv, species)
            e_aa = self._ind @ (cond * a[j] * a[k])                  # E[a_j a_k | v] (nv,)
            top = top - np.asarray(e_ca).T @ (qq * e_aa)
        return top

    def covariance(self, pi: np.ndarray) -> np.ndarray:
        """``Cov_pi(n)``: the free plant's quasi-static gain."""
        S = self._S
        m = S.T @ pi
        return (S * pi[:, None]).T @ S - np.outer(m, m)

    def hessian(self, theta: np.ndarray, q: np.ndarray | None = None) -> np.ndarray:
        """``Cov_pi(n) - E_Q[Cov_{pi(.|v)}(n)]`` (all species)."""
        lpi = self.log_law(theta)
        return self.covariance(np.exp(lpi)) - self.conditional_covariance(None, q, log_pi=lpi)


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


def curved_directions(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and orthonormal eigenvectors of the curved part of a Hessian ``H`` of ``D``.

    Curved: eigenvalue above ``sqrt(eps_mach)`` times the largest modulus
    (docs/theory.md §4a). The rest are flat (a line of fixed points) or
    neutral: there ``theta`` is not pinned by ``D``, so a distance or a
    response measured along them is set by round-off and history, not by
    the landscape. Returns ``(w, Q)`` with ``Q`` of shape ``(k, m)``.
    """
    w, V = np.linalg.eigh(0.5 * (H + H.T))
    keep = w > np.sqrt(np.finfo(float).eps) * max(float(np.max(np.abs(w))) if w.size else 0.0, 1e-300)
    return w[keep], V[:, keep]


#: Energies beyond this many kT overflow ``exp`` in rates and propensities.
EXP_LIMIT = 700.0
#: Below this variance (learned species, at theta) the law sits on one state: the flow would
#: start on an underflow plateau where gradient and Hessian carry no information.
FROZEN_VARIANCE = 1e-8


def start_problem(space: StateSpace, theta_full: np.ndarray, learned: np.ndarray, tol: float) -> str | None:
    """Why the law at ``theta_full`` is a poor start for the gradient flow (None when it is fine).

    Reasons: energies beyond ``EXP_LIMIT`` kT, stationary mass dropped by the
    truncation box above ``tol``, or a law frozen on a single state
    (variance of the learned species below ``FROZEN_VARIANCE``).
    """
    theta_full = np.asarray(theta_full, float)
    if not np.all(np.isfinite(theta_full)) or np.max(np.abs(theta_full[learned])) > EXP_LIMIT:
        return f"learned energies beyond {EXP_LIMIT:g} kT in magnitude"
    lw = space.log_weights(theta_full)
    if not np.all(np.isfinite(lw) | (lw == -np.inf)):
        return "the stationary law overflows at these energies"
    m = space.truncation_mass(theta_full)
    if not m <= tol:
        return f"the truncation box drops stationary mass {m:.3g} > {tol:g}"
    pi = np.exp(lw - logsumexp(lw))
    S = space.states[:, learned].astype(float)
    mean = S.T @ pi
    var = (S * S).T @ pi - mean * mean
    if np.max(var, initial=0.0) < FROZEN_VARIANCE:
        return (f"the law sits on a single state (variance of the learned species "
                f"{np.max(var, initial=0.0):.2g}), so P_theta has no mass to learn from")
    return None


def neutral_anchor(theta: np.ndarray, neutral: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """The point of ``span(N)`` on the flow's leaf through ``theta`` (learned coordinates).

    The flow ``dtheta/dt = -E grad D`` keeps ``N^T E^{-1} theta`` fixed
    (docs/theory.md §3); the anchor ``N y`` with ``N^T E^{-1} N y = N^T E^{-1} theta``
    is on the same leaf, has no identifiable component, and is computed without
    cancellation (``0`` exactly when there is no neutral direction), so it
    stays sane for any magnitude of ``theta``.
    """
    theta = np.asarray(theta, float)
    if neutral.shape[1] == 0:
        return np.zeros_like(theta)
    W = neutral / np.asarray(eps, float)[:, None]
    # scale first so that theta near the float limit does not overflow the products
    s = max(np.max(np.abs(theta)), 1.0)
    y = np.linalg.solve(neutral.T @ W, W.T @ (theta / s))
    return s * (neutral @ y)


__all__ = ["curved_directions", "identifiable_basis", "Landscape", "Moments", "neutral_directions", "EXP_LIMIT", "FROZEN_VARIANCE",
           "start_problem", "neutral_anchor"]
