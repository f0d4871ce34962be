"""Closed-loop eigenvalues, stability and convergence (docs/theory.md §5).

Eigenvalues are those of the reduced Jacobian (structural zero modes of
normalisation and neutral directions removed, :mod:`crnfb.analysis.linear.linearise`).
Small loops use dense ``eig``; large ones shift-invert Arnoldi at zero on the
reduced loop (:mod:`crnfb.analysis.linear.slowmodes`) for the slowest modes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import ArpackNoConvergence, eigs

from crnfb.analysis.linear.fixedpoints import classify, quasi_static_rates
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics import sizes
from crnfb.feedback.numerics.sparselu import inverse_operator

if TYPE_CHECKING:      # the loop holds its spectrum (LinearLoop.spectrum): linearise imports this module
    from crnfb.analysis.linear.linearise import LinearLoop

#: ``sqrt(machine epsilon)``: relative accuracy of a computed eigenvalue at a zero that may be
#: ill-conditioned or (nearly) defective (docs/theory.md §5, "Zero modes and the one tolerance").
ZERO_TOL_FACTOR = float(np.sqrt(np.finfo(float).eps))


def spectral_scale(matrix) -> float:
    """``max |A_ii|`` of a generator-like matrix (``||A||_1 <= 2 max |A_ii|`` for each ensemble block)."""
    d = matrix.diagonal() if hasattr(matrix, "diagonal") else np.diag(matrix)
    return float(np.max(np.abs(d))) if np.size(d) else 0.0


def zero_tolerance(eigenvalues: np.ndarray, scale: float, residual: float = 0.0) -> float:
    """The one tolerance below which ``|Re lambda|`` is round-off: zero (docs/theory.md §5).

    ``tol = sqrt(eps_mach) * max(scale, max |lambda|) + residual``. A backward-stable
    eigensolver returns the exact eigenvalues of ``J + E`` with ``|E| ~ eps_mach |J|``;
    a zero eigenvalue of condition number ``kappa`` moves by ``kappa eps_mach |J|``
    and a defective one (Jordan block of size 2) by ``sqrt(eps_mach |J|)``, so
    ``sqrt(eps_mach) |J|`` bounds both for ``kappa <= 1/sqrt(eps_mach)``.
    ``residual`` adds the largest residual ``|J v - lambda v| / |v|`` of an
    iteratively computed (sparse Arnoldi) near-zero pair, its own error bound.

    Parameters
    ----------
    eigenvalues : ndarray
        The computed spectrum (or its slowest part).
    scale : float
        ``max |J_ii|`` of the matrix (:func:`spectral_scale`).
    residual : float
        Error bound of an iterative method (0 for dense ``eig``).
    """
    ev = np.asarray(eigenvalues)
    top = float(np.max(np.abs(ev))) if ev.size else 0.0
    return float(ZERO_TOL_FACTOR * max(scale, top, 1e-300) + residual)


@dataclass(frozen=True, kw_only=True)
class ModeSplit:
    """A spectrum split by :func:`classify_modes`.

    Attributes
    ----------
    rest : ndarray (complex)   the eigenvalues that decide stability, slowest first
    flat : ndarray (complex)   near-zero eigenvalues explained by flat directions of ``D(Q||P)``
    tolerance : float          :func:`zero_tolerance`
    stable : bool              every eigenvalue of ``rest`` has ``Re < -tolerance``
    marginal : bool            the slowest of ``rest`` is within its bound of zero (an unexplained zero)
    band : float               that bound for the slowest of ``rest`` (at most ``tolerance``)
    """

    rest: np.ndarray
    flat: np.ndarray
    tolerance: float
    stable: bool
    marginal: bool
    band: float = 0.0

    @property
    def abscissa(self) -> float:
        """``max Re`` of :attr:`rest`, 0 when it is within its round-off bound (``-inf`` if empty)."""
        if not self.rest.size:
            return float("-inf")
        top = float(self.rest[0].real)
        return 0.0 if abs(top) <= self.band else top


def classify_modes(eigenvalues: np.ndarray, n_flat: int, tolerance: float,
                   bounds: np.ndarray | None = None) -> ModeSplit:
    """Remove the zero modes the landscape explains; decide stability with one tolerance.

    Up to ``n_flat`` eigenvalues with ``|lambda| <= tolerance`` (nearest zero
    first) are flat modes: each flat direction of ``D(Q||P)`` (a null vector
    of the Hessian in the identifiable subspace, docs/theory.md §2) is a line
    of fixed points of the loop, so ``J`` has a zero there. The others decide:
    stable when every ``Re lambda < -tolerance``; an unexplained eigenvalue
    with ``|Re lambda| <= tolerance`` is a zero (marginal, not stable); one
    above ``+tolerance`` is instability. ``bounds`` (:func:`error_bounds`, at
    most ``tolerance``) narrows that band for the eigenvalues that decide to
    each one's own round-off bound when its conditioning is known.
    """
    ev = np.asarray(eigenvalues, dtype=complex)
    b = np.full(ev.shape, float(tolerance)) if bounds is None else np.asarray(bounds, float)
    near = np.argsort(np.abs(ev))[:max(int(n_flat), 0)]
    near = near[np.abs(ev[near]) <= tolerance]
    flat, rest, b = ev[near], np.delete(ev, near), np.delete(b, near)
    if rest.size:
        order = np.lexsort((np.abs(rest.imag), -rest.real))
        rest, b = rest[order], b[order]
    top = float(rest[0].real) if rest.size else float("-inf")
    band = float(b[0]) if rest.size else float(tolerance)
    return ModeSplit(rest=rest, flat=flat, tolerance=float(tolerance),
                     stable=bool(rest.size and np.all(rest.real < -b)), marginal=bool(rest.size and abs(top) <= band),
                     band=band)


#: Slowest eigenvalues the sparse search looks for when no count is asked (the loop's own spectrum).
SPARSE_COUNT = 20


@dataclass(frozen=True, kw_only=True)
class Spectrum:
    """The reduced loop's eigenvalues as one computation found them (:func:`loop_spectrum`).

    Attributes
    ----------
    eigenvalues : ndarray (complex)   slowest (largest real part) first
    condition : ndarray or None       each eigenvalue's condition number (dense ``eig``), else None
    residual : float                  largest residual of a near-zero Arnoldi pair (0 for dense ``eig``):
                                      it adds to :func:`zero_tolerance`
    search_radius : float or None     sparse search on the reduced loop: the largest ``|s|`` it found
                                      (modes beyond it are not seen); None when every mode was computed
                                      or the fallback search on the full Jacobian was used
    method : str                      ``"dense"``, ``"shift-invert reduced"`` or ``"shift-invert full"``
    count : int or None               how many of the slowest were asked for (None: every mode)
    """

    eigenvalues: np.ndarray
    condition: np.ndarray | None
    residual: float
    search_radius: float | None
    method: str
    count: int | None

    @property
    def complete(self) -> bool:
        """Every eigenvalue of the reduced loop is here (dense ``eig``)."""
        return self.method == "dense"

    def first(self, count: int | None) -> "Spectrum":
        """The ``count`` slowest (all for None)."""
        if count is None:
            return self
        cond = None if self.condition is None else self.condition[:count]
        return Spectrum(eigenvalues=self.eigenvalues[:count], condition=cond, residual=self.residual,
                        search_radius=self.search_radius, method=self.method, count=count)


def loop_spectrum(loop: LinearLoop, count: int | None = None) -> Spectrum:
    """Eigenvalues of the reduced loop, computed now (no reuse; :attr:`LinearLoop.spectrum` keeps the loop's own).

    Dense ``eig`` with condition numbers up to
    :data:`crnfb.feedback.numerics.sizes.STABILITY_DENSE_LIMIT` reduced states (every mode, whatever ``count``);
    above, the slowest ``count`` (default :data:`SPARSE_COUNT`) by :func:`_slowest_sparse`.
    """
    if loop.n_reduced <= sizes.STABILITY_DENSE_LIMIT:
        ev, kappa = dense_eig(loop.Jr.toarray())
        residual, radius, method = 0.0, None, "dense"
        asked = None
    else:
        asked = count or SPARSE_COUNT
        ev, residual, radius, method = _slowest_sparse(loop, asked)
        kappa = None
    order = np.lexsort((np.abs(ev.imag), -ev.real))
    return Spectrum(eigenvalues=ev[order], condition=None if kappa is None else kappa[order], residual=residual,
                    search_radius=radius, method=method, count=asked)


def spectrum_of(loop: LinearLoop, count: int | None = None) -> Spectrum:
    """The ``count`` slowest eigenvalues: from the loop's own spectrum when it holds them
    (:attr:`LinearLoop.spectrum`, computed once), else from a new search for ``count``.

    The loop's own is used only if it came from the method the size switch picks now (a test that
    moves :data:`crnfb.feedback.numerics.sizes.STABILITY_DENSE_LIMIT` gets the other method, not the kept answer).
    """
    own = loop.spectrum
    same_method = own.complete == (loop.n_reduced <= sizes.STABILITY_DENSE_LIMIT)
    if same_method and (count is None or own.complete or count == own.count):
        return own.first(count)
    return loop_spectrum(loop, count).first(count)


def mode_split(loop: LinearLoop, spectrum: Spectrum) -> ModeSplit:
    """:func:`classify_modes` of a spectrum of the loop: the split every stability decision uses.

    The flat count is that of the Hessian at the quasi-static optimum
    (:attr:`LinearLoop.flat_count`); the tolerance is :func:`zero_tolerance`
    of the full Jacobian's scale plus the sparse path's residual bound.
    """
    ev = spectrum.eigenvalues
    scale = spectral_scale(loop.J)
    tol = zero_tolerance(ev, scale, spectrum.residual)
    return classify_modes(ev, loop.flat_count, tol, error_bounds(ev, spectrum.condition, scale, tol))


def loop_modes(loop: LinearLoop, count: int | None = None) -> ModeSplit:
    """The mode split of the loop's ``count`` slowest eigenvalues (:func:`mode_split` of :func:`spectrum_of`);
    for ``count=None`` the loop's own (:attr:`LinearLoop.modes`, computed once)."""
    return _split(loop, spectrum_of(loop, count))


def _split(loop: LinearLoop, spectrum: Spectrum) -> ModeSplit:
    """:attr:`LinearLoop.modes` for the loop's own spectrum (computed once), else :func:`mode_split`."""
    return loop.modes if spectrum is loop.spectrum else mode_split(loop, spectrum)


def flat_count(loop: LinearLoop) -> int:
    """Number of flat directions of ``D(Q||P)`` at the loop's quasi-static optimum."""
    fp = loop.fixed_point
    return int(classify(loop.net.model, fp.optimum.theta, fp.a).flat.size)


def closed_loop_eigenvalues(loop: LinearLoop, count: int | None = None) -> np.ndarray:
    """Eigenvalues of the reduced loop, slowest (largest real part) first.

    Parameters
    ----------
    loop : LinearLoop
    count : int or None
        How many of the slowest to return; ``None`` = all (dense; only for
        loops up to :data:`crnfb.feedback.numerics.sizes.STABILITY_DENSE_LIMIT` reduced states, else the slowest
        :data:`SPARSE_COUNT`).

    Notes
    -----
    Above :data:`crnfb.feedback.numerics.sizes.STABILITY_DENSE_LIMIT` the reduced Jacobian has a few dense rows (the
    eliminated pivots), which ruin sparse LU. The slowest modes are instead
    found by shift-invert Arnoldi at exactly zero on the reduced loop, with
    ``Jr^{-1}`` applied by block elimination (:mod:`crnfb.analysis.linear.slowmodes`:
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
    return spectrum_of(loop, count).eigenvalues.copy()


def dense_eig(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and their condition numbers ``|w| |v| / |w^H v|`` (left and right vectors, LAPACK)."""
    from scipy.linalg import eig

    ev, w, v = eig(A, left=True, right=True)
    dots = np.abs(np.sum(np.conj(w) * v, axis=0))
    kappa = np.linalg.norm(w, axis=0) * np.linalg.norm(v, axis=0) / np.maximum(dots, 1e-300)
    return ev, kappa


def error_bounds(eigenvalues: np.ndarray, kappa: np.ndarray | None, scale: float, tolerance: float) -> np.ndarray:
    """Each eigenvalue's own round-off bound ``min(tol, n eps_mach S kappa_i)`` (``tol`` without ``kappa``).

    Dense ``eig`` is backward stable (backward error below ``n eps_mach |J|``), so
    a simple eigenvalue of condition number ``kappa_i`` is off by at most
    ``n eps_mach |J| kappa_i`` to first order; for a nearly defective pair that
    product is of the size of the pair's split. A well-conditioned slow
    mode (E3's ``-7e-6`` beside ``max |J_ii| = 375``) is thereby never mistaken
    for a zero, which ``sqrt(eps_mach) |J|`` alone would nearly do.
    """
    ev = np.asarray(eigenvalues)
    if kappa is None:
        return np.full(ev.shape, float(tolerance))
    top = float(np.max(np.abs(ev))) if ev.size else 0.0
    return np.minimum(float(tolerance), ev.size * np.finfo(float).eps * max(scale, top) * np.asarray(kappa))


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


def _slowest_sparse(loop: LinearLoop, count: int) -> tuple[np.ndarray, float, float | None, str]:
    """The ``count + 6`` eigenvalues of ``Jr`` nearest zero by shift-invert at exactly zero on the reduced loop,
    with the residual bound of the near-zero pairs, the search radius and the method (:class:`Spectrum`).

    :mod:`crnfb.analysis.linear.slowmodes` applies ``Jr^{-1}`` by block elimination
    (one sparse LU per ensemble generator, the small Schur complement on the
    identifiable theta directions), so no structural eigenvalue is ever in
    the Krylov space and the slow learning modes are separated by size.
    Loops whose quasi-static Schur complement is singular (flat directions)
    fall back to :func:`_slowest_full_arpack`.
    """
    r = loop.n_reduced
    k = min(count + 6, r - 2)
    try:
        ri = loop.reduced_inverse
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
        ok = res <= 1e-6 * np.abs(vals) + 1e-12 * scale
        vals, res = vals[ok], res[ok]
    if vals.size == 0:
        raise RuntimeError(f"sparse eigenvalue search (shift-invert Arnoldi at 0, {r} reduced states) converged "
                           "on no eigenvalue; the stability verdict is unavailable")
    radius = float(np.max(np.abs(vals)))
    residual = _near_zero_residual(vals, res, scale)
    if ri.gamma_copies:   # exact, with multiplicity (the Krylov space excludes them)
        g = loop.net.gamma
        vals = np.concatenate([vals[np.abs(vals + g) > 1e-9 * g], np.full(ri.gamma_copies, -g, dtype=complex)])
    return vals, residual, radius, "shift-invert reduced"


def _slowest_full_arpack(loop: LinearLoop, count: int) -> tuple[np.ndarray, float, None, str]:
    """Shift-invert Arnoldi on the full Jacobian just right of its structural zeros (the fallback; no
    search radius: the shift is not at zero)."""
    J = loop.J.tocsc()
    removed = structural_eigenvalues(loop)
    k = min(count + removed.size + 6, J.shape[0] - 2)
    scale = float(np.max(np.abs(J.diagonal()))) or 1.0
    sigma = 1e-4 * scale  # off the structural zeros (a Jordan block in E2): keeps the solves well conditioned
    try:
        vals, vecs = eigs(J, k=k, sigma=sigma, which="LM", tol=1e-10, maxiter=max(5000, 20 * k),
                          OPinv=inverse_operator(J - sigma * sparse.identity(J.shape[0], format="csc")))
    except ArpackNoConvergence as e:
        vals, vecs = e.eigenvalues, e.eigenvectors
    if vals.size:
        # keep only accurate pairs: far from sigma, shift-invert Ritz values of a
        # non-normal generator can be off by O(1) (E1 at n_max 2000: -5.4+0.34j for -5)
        res = np.linalg.norm(J @ vecs - vecs * vals, axis=0) / np.maximum(np.linalg.norm(vecs, axis=0), 1e-300)
        ok = res <= 1e-6 * scale
        vals, res = vals[ok], res[ok]
    if vals.size == 0:
        raise RuntimeError(f"sparse eigenvalue search (shift-invert Arnoldi, {J.shape[0]} states) converged on "
                           "no eigenvalue; the stability verdict is unavailable")
    # drop one copy of each structural eigenvalue (by value: a degenerate -gamma
    # eigenspace mixes structural and genuine vectors, so eigenvectors cannot tell them apart)
    residual = _near_zero_residual(vals, res, scale)
    vals = list(vals)
    tol = 1e-6 * scale
    for r in removed:
        if not vals:
            break
        i = int(np.argmin([abs(v - r) for v in vals]))
        if abs(vals[i] - r) <= tol:
            vals.pop(i)
    return np.array(vals), residual, None, "shift-invert full"


def _near_zero_residual(vals: np.ndarray, res: np.ndarray, scale: float) -> float:
    """The largest residual of a near-zero Arnoldi pair: it adds to :func:`zero_tolerance`
    (a pair with residual ``r`` is exact for ``J + E``, ``|E| = r``)."""
    near = np.abs(vals) <= ZERO_TOL_FACTOR * scale + res
    return float(np.max(res[near])) if np.any(near) else 0.0


def damping_ratios(ev: np.ndarray) -> np.ndarray:
    """``-Re(s)/|s|`` (a real eigenvalue counts as 1, docs/cli.md)."""
    mag = np.abs(ev)
    out = np.where(mag > 0, -ev.real / np.where(mag > 0, mag, 1.0), 1.0)
    return np.where(np.abs(ev.imag) <= 1e-12 * np.maximum(mag, 1e-300), 1.0, out)


@dataclass(frozen=True, kw_only=True)
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
    zero_tolerance : float            :func:`zero_tolerance`: ``|Re lambda|`` below it is zero
    neutral_modes : int               zero modes of conservation laws removed by the reduction
                                      (the free normalisation and each neutral theta direction)
    marginal : bool                   an eigenvalue within the tolerance of zero that no flat or
                                      neutral direction explains (not stable)
    slowest_error_bound : float       round-off bound of the slowest eigenvalue (:func:`error_bounds`,
                                      at most ``zero_tolerance``): the band that decides for it
    search_radius : float or None     the sparse slow-mode search saw the modes with ``|s|`` up to this
                                      (:attr:`Spectrum.search_radius`); None when every mode was computed
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
    zero_tolerance: float = 0.0
    neutral_modes: int = 0
    marginal: bool = False
    slowest_error_bound: float = 0.0
    search_radius: float | None = None

    @property
    def lines_of_fixed_points(self) -> int:
        """Neutral theta directions plus flat modes: each a line of fixed points through this one."""
        return int(self.removed.get("neutral", 0)) + int(self.flat_modes.size)

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
            "zero_tolerance": float(self.zero_tolerance),
            "neutral_modes": int(self.neutral_modes),
            "flat_mode_count": int(self.flat_modes.size),
            "marginal": bool(self.marginal),
            "slowest_error_bound": float(self.slowest_error_bound),
        }


def stability(loop: LinearLoop, count: int | None = None) -> Stability:
    """Eigenvalues, stability verdict, slowest rate and damping of the reduced loop.

    The spectrum is split by :func:`loop_modes` (one tolerance,
    :func:`zero_tolerance`): flat directions (zero Hessian eigenvalues that are
    not neutral, docs/theory.md §2) give closed-loop eigenvalues at zero; as
    many eigenvalues as there are flat directions, within the tolerance of
    zero, are removed and reported as flat, not as instability. The verdict
    is local: a flat or neutral direction is a line of fixed points.
    """
    model = loop.net.model
    sp = spectrum_of(loop, count)
    split = _split(loop, sp)
    ev = split.rest
    re = ev.real
    slowest = -split.abscissa if ev.size else float("inf")
    zeta = damping_ratios(ev)
    tc = np.divide(1.0, np.abs(re), out=np.full(re.shape, np.inf), where=re != 0)
    qs = quasi_static_rates(model, loop.fixed_point.optimum.theta, loop.fixed_point.a)  # at the true optimum
    structural = structural_eigenvalues(loop)
    return Stability(eigenvalues=ev, stable=split.stable, slowest_rate=slowest, time_constants=tc, damping=zeta,
                     damping_ratio_min=float(np.min(zeta)) if zeta.size else 1.0, flat_modes=split.flat,
                     removed=dict(loop.removed, flat=int(split.flat.size)), quasi_static_rates=qs,
                     structural_modes=structural, zero_tolerance=split.tolerance,
                     neutral_modes=int(np.sum(structural == 0)), marginal=split.marginal,
                     slowest_error_bound=split.band, search_radius=sp.search_radius)


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


__all__ = ["classify_modes", "closed_loop_eigenvalues", "damping_ratios", "dense_eig", "episode_time", "error_bounds",
           "flat_count", "loop_modes", "ModeSplit", "spectral_scale", "Stability", "stability", "structural_eigenvalues",
           "zero_tolerance", "ZERO_TOL_FACTOR"]
