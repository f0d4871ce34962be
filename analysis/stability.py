"""Closed-loop eigenvalues, stability and convergence (docs/theory.md §5).

Eigenvalues are those of the reduced Jacobian (structural zero modes of
normalisation and neutral directions removed, :mod:`crnfb.analysis.linearise`).
Small loops use dense ``eig``; large ones shift-invert Arnoldi at zero on the
reduced loop (:mod:`crnfb.analysis.slowmodes`) for the slowest modes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, eigs

from crnfb.analysis.linearise import LinearLoop
from crnfb.feedback.model import Model

#: Dense ``eig`` up to this many reduced states; above, the slowest modes by sparse Arnoldi.
DENSE_LIMIT = 400
FLAT_TOL = 1e-9


def closed_loop_eigenvalues(loop: LinearLoop, count: int | None = None) -> np.ndarray:
    """Eigenvalues of the reduced loop, slowest (largest real part) first.

    Parameters
    ----------
    loop : LinearLoop
    count : int or None
        How many of the slowest to return; ``None`` = all (dense; only for
        loops up to :data:`DENSE_LIMIT` reduced states, else the slowest 20).

    Notes
    -----
    Above :data:`DENSE_LIMIT` the reduced Jacobian has a few dense rows (the
    eliminated pivots), which ruin sparse LU. The slowest modes are instead
    found by shift-invert Arnoldi at exactly zero on the reduced loop, with
    ``Jr^{-1}`` applied by block elimination (:mod:`crnfb.analysis.slowmodes`:
    one sparse LU of each ensemble generator and the small Schur complement
    on the identifiable theta directions); structural modes never enter.
    Arnoldi returns the ``count + 6`` eigenvalues nearest zero, sorted here
    by real part: a slow but strongly oscillating mode (``|s|`` beyond the
    farthest found) would be missed. Only pairs with residual
    ``|Jr v - s v| <= 1e-6 |s| + 1e-12 max|J_ii|`` are kept. Repeated
    eigenvalues (the clamped ensemble's ``-gamma`` modes) may appear with
    less than their multiplicity on this path; the slowest rate and the
    stability verdict are what it is for. If the quasi-static Schur
    complement is singular (flat directions), the previous method is used:
    shift-invert Arnoldi on the full Jacobian near ``sigma`` just right of
    0, one copy of each structural eigenvalue (:func:`structural_eigenvalues`)
    dropped by value.

    Raises
    ------
    RuntimeError
        If Arnoldi converges on no eigenvalue (never an empty "unstable" answer).
    """
    n = loop.n_reduced
    key = ("closed_loop_eigenvalues", None if n <= DENSE_LIMIT else (count or 20))
    ev = loop.memo.get(key)
    if ev is None:
        ev = np.linalg.eigvals(loop.Jr.toarray()) if n <= DENSE_LIMIT else _slowest_sparse(loop, count or 20)
        ev = loop.memo[key] = ev[np.lexsort((np.abs(ev.imag), -ev.real))]
    return ev.copy() if count is None else ev[:count].copy()


def structural_eigenvalues(loop: LinearLoop) -> np.ndarray:
    """The eigenvalues of the full Jacobian that the reduction removes.

    ``0`` for the free ensemble's normalisation and for each neutral
    direction; ``-gamma`` for the clamped ensemble's normalisation (resets
    pull its total back to one: ``d(1^T p_c)/dt = gamma (1 - 1^T p_c)``).
    """
    zeros = loop.removed.get("neutral", 0) + 1
    vals = [0.0] * zeros
    if loop.net.dynamic and loop.net.n_c:
        vals.append(-loop.net.gamma)
    return np.array(vals, dtype=complex)


def _slowest_sparse(loop: LinearLoop, count: int) -> np.ndarray:
    """The ``count + 6`` eigenvalues of ``Jr`` nearest zero by shift-invert at exactly zero on the reduced loop.

    :mod:`crnfb.analysis.slowmodes` applies ``Jr^{-1}`` by block elimination
    (one sparse LU per ensemble generator, the small Schur complement on the
    identifiable theta directions), so no structural eigenvalue is ever in
    the Krylov space and the slow learning modes are separated by size.
    Loops whose quasi-static Schur complement is singular (flat directions)
    fall back to :func:`_slowest_full_arpack`.
    """
    from crnfb.analysis.slowmodes import reduced_inverse

    r = loop.n_reduced
    k = min(count + 6, r - 2)
    try:
        ri = reduced_inverse(loop)
    except RuntimeError:            # singular ensemble generator (splu): not an irreducible class
        return _slowest_full_arpack(loop, count)
    if not np.isfinite(ri.schur_cond) or ri.schur_cond > 1e12:
        return _slowest_full_arpack(loop, count)
    v0 = ri.start(count)
    try:
        vals, vecs = eigs(ri.jr, k=k, sigma=0.0, OPinv=ri.op, which="LM", tol=1e-12, v0=v0,
                          maxiter=max(5000, 20 * k))
    except ArpackNoConvergence as e:
        vals, vecs = e.eigenvalues, e.eigenvectors
    scale = float(np.max(np.abs(loop.J.diagonal()))) or 1.0
    if vals.size:
        # keep only accurate pairs (residual in the reduced Jacobian itself, relative to |s|)
        res = np.linalg.norm(loop.Jr @ vecs - vecs * vals, axis=0) / np.maximum(np.linalg.norm(vecs, axis=0), 1e-300)
        vals = vals[res <= 1e-6 * np.abs(vals) + 1e-12 * scale]
    if vals.size == 0:
        raise RuntimeError(f"sparse eigenvalue search (shift-invert Arnoldi at 0, {r} reduced states) converged "
                           "on no eigenvalue; the stability verdict is unavailable")
    loop.memo[("slowest_radius", count)] = float(np.max(np.abs(vals)))
    if ri.gamma_copies:   # exact, with multiplicity (the Krylov space excludes them)
        g = loop.net.gamma
        vals = np.concatenate([vals[np.abs(vals + g) > 1e-9 * g], np.full(ri.gamma_copies, -g, dtype=complex)])
    return vals


def _slowest_full_arpack(loop: LinearLoop, count: int) -> np.ndarray:
    """Shift-invert Arnoldi on the full Jacobian just right of its structural zeros (the fallback)."""
    J = loop.J.tocsc()
    removed = structural_eigenvalues(loop)
    k = min(count + removed.size + 6, J.shape[0] - 2)
    scale = float(np.max(np.abs(J.diagonal()))) or 1.0
    sigma = 1e-4 * scale  # off the structural zeros (a Jordan block in E2): keeps the solves well conditioned
    try:
        vals, vecs = eigs(J, k=k, sigma=sigma, which="LM", tol=1e-10, maxiter=max(5000, 20 * k))
    except ArpackNoConvergence as e:
        vals, vecs = e.eigenvalues, e.eigenvectors
    if vals.size:
        # keep only accurate pairs: far from sigma, shift-invert Ritz values of a
        # non-normal generator can be off by O(1) (E1 at n_max 2000: -5.4+0.34j for -5)
        res = np.linalg.norm(J @ vecs - vecs * vals, axis=0) / np.maximum(np.linalg.norm(vecs, axis=0), 1e-300)
        vals = vals[res <= 1e-6 * scale]
    if vals.size == 0:
        raise RuntimeError(f"sparse eigenvalue search (shift-invert Arnoldi, {J.shape[0]} states) converged on "
                           "no eigenvalue; the stability verdict is unavailable")
    # drop one copy of each structural eigenvalue (by value: a degenerate -gamma
    # eigenspace mixes structural and genuine vectors, so eigenvectors cannot tell them apart)
    vals = list(vals)
    tol = 1e-6 * scale
    for r in removed:
        if not vals:
            break
        i = int(np.argmin([abs(v - r) for v in vals]))
        if abs(vals[i] - r) <= tol:
            vals.pop(i)
    return np.array(vals)


def damping_ratios(ev: np.ndarray) -> np.ndarray:
    """``-Re(s)/|s|`` (a real eigenvalue counts as 1, docs/cli.md)."""
    mag = np.abs(ev)
    out = np.where(mag > 0, -ev.real / np.where(mag > 0, mag, 1.0), 1.0)
    return np.where(np.abs(ev.imag) <= 1e-12 * np.maximum(mag, 1e-300), 1.0, out)


@dataclass(frozen=True)
class Stability:
    """Stability of the learning loop at its fixed point.

    Attributes
    ----------
    eigenvalues : ndarray (complex)   identifiable, structural zeros removed, slowest first
    stable : bool                     all real parts < 0
    slowest_rate : float              ``-max Re``
    time_constants : ndarray          ``1/|Re|`` of each eigenvalue
    damping : ndarray                 damping ratio of each eigenvalue
    damping_ratio_min : float
    flat_modes : ndarray              near-zero eigenvalues removed as flat directions
    removed : dict                    structural zero modes removed (normalisation, neutral)
    quasi_static_rates : ndarray      ``eig(E H)`` at the optimum, identifiable subspace, ascending
    structural_modes : ndarray        the removed structural eigenvalues (0 per free normalisation
                                      and neutral direction, ``-gamma`` for the clamped normalisation)
    """

    eigenvalues: np.ndarray
    stable: bool
    slowest_rate: float
    time_constants: np.ndarray
    damping: np.ndarray
    damping_ratio_min: float
    flat_modes: np.ndarray
    removed: dict
    quasi_static_rates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    structural_modes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=complex))

    def to_dict(self) -> dict:
        return {
            "eigenvalues": [[float(z.real), float(z.imag)] for z in self.eigenvalues],
            "stable": bool(self.stable),
            "slowest_rate": float(self.slowest_rate),
            "time_constants": [float(t) for t in self.time_constants],
            "damping_ratio_min": float(self.damping_ratio_min),
            "flat_modes": [[float(z.real), float(z.imag)] for z in self.flat_modes],
            "removed_modes": dict(self.removed),
            "quasi_static_rates": [float(r) for r in self.quasi_static_rates],
            "structural_modes": [[float(z.real), float(z.imag)] for z in self.structural_modes],
        }


def stability(loop: LinearLoop, count: int | None = None) -> Stability:
    """Eigenvalues, stability verdict, slowest rate and damping of the reduced loop.

    Flat directions (zero Hessian eigenvalues that are not neutral, docs/theory.md
    section 2) give closed-loop eigenvalues at zero; as many eigenvalues as
    there are flat directions, within ``FLAT_TOL`` of zero (relative to the
    spectral scale), are removed and reported as flat, not as instability.
    """
    from crnfb.analysis.fixedpoints import classify, quasi_static_rates

    model = loop.net.model
    ev = closed_loop_eigenvalues(loop, count)
    opt = loop.fixed_point.optimum
    n_flat = classify(model, opt.theta).flat.size
    flat = np.zeros(0, dtype=complex)
    if n_flat:
        scale = max(np.max(np.abs(ev)), 1e-300)
        near = np.nonzero(np.abs(ev) <= FLAT_TOL * scale)[0][:n_flat]
        flat = ev[near]
        ev = np.delete(ev, near)
    re = ev.real
    slowest = float(-np.max(re)) if ev.size else float("inf")
    zeta = damping_ratios(ev)
    tc = np.divide(1.0, np.abs(re), out=np.full(re.shape, np.inf), where=re != 0)
    qs = quasi_static_rates(model, opt.theta, loop.fixed_point.a)  # at the true optimum
    return Stability(ev, bool(ev.size and np.all(re < 0)), slowest, tc, zeta,
                     float(np.min(zeta)) if zeta.size else 1.0, flat, dict(loop.removed, flat=int(flat.size)), qs,
                     structural_eigenvalues(loop))


def episode_time(model: Model, stab: Stability, factor: float = 1.15, loop: bool = True) -> float:
    """Time for the slowest mode to shrink by 1e-3 (docs/theory.md §4), a little beyond.

    ``loop=True``: the closed loop's slowest rate when it is stable (the
    ensemble-level ODE); else, or with ``loop=False``, the slowest
    quasi-static rate (the gradient flow).
    """
    if loop and stab.eigenvalues.size and stab.stable and stab.slowest_rate > 0:
        r = stab.slowest_rate
    else:
        rates = [r for r in np.asarray(stab.quasi_static_rates, float) if r > 0]
        r = min(rates) if rates else 1.0
    return float(factor * np.log(1e3) / r)


__all__ = ["closed_loop_eigenvalues", "damping_ratios", "episode_time", "Stability", "stability",
           "structural_eigenvalues"]
