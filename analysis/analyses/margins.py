"""Stability margins of the learning loop (docs/theory.md §5, docs/cli.md ``margins.*``).

Definitions as implemented (docs/margins.md has the derivations and numbers):

- ``eps_crit``: every learning rate scaled by one factor ``g``; the smallest
  ``g`` at which an eigenvalue of the reduced loop Jacobian (structural and
  flat zero modes removed) crosses into the right half plane, times ``eps``.
  The reduced Jacobian is affine in ``g`` (only the theta rows scale), so
  ``max Re eig(Jr(g))`` is bracketed on a log grid of ``g`` (``1e-3 .. 1e4``,
  ``g = 1`` included) and the sign change refined with ``brentq``. Null with
  a reason when there is none up to ``1e4``. ``gain_margin`` = that ``g``
  (``< 1`` when the loop is already unstable at the given ``eps``).
  :func:`critical_rates` is the one place ``eps_crit = g_c * eps`` is formed
  (a vector: one entry per learned species); the fluctuation section, the
  SBML export check and the bifurcation use it.
- ``critical_frequency``: ``|Im lambda|`` of the eigenvalue that crosses at
  ``eps_crit`` (the frequency the loop starts to oscillate at on the
  stability boundary); ``critical_frequency_frequency_domain`` the same
  read from the Nyquist crossing. ``crossover_frequency`` is the gain
  crossover ``|L_id(jw_c)| = 1`` where the phase margin is read.
- ``eps_crit`` in ``report.json``: one number when every learned species has
  the same learning rate, else ``{species: value}``
  (:attr:`Margins.eps_crit_value`); the object keeps the vector.
- Frequency-domain cross-check: ``g = -1/lambda`` where an eigenvalue
  ``lambda`` of ``L_id(jw)`` (:mod:`crnfb.analysis.linear.frequency`) crosses the negative
  real axis (characteristic loci; for one direction the classical gain
  margin ``1/|L(jw_180)|``), smallest over all crossings.
- ``phase_margin_deg`` (one identifiable direction only): ``180 + arg
  L_id(jw_c)`` at the gain crossover ``|L_id(jw_c)| = 1``, from frequency
  response data, the smallest over crossovers.
- Several learned species: per-loop ``eps_crit`` (one species' rate scaled
  at a time, the others at their values; eigenvalue crossing on a coarse
  grid of factors, with brackets tightened around the loop-at-a-time
  frequency-domain candidates ``-1/T_i(jw)``, :func:`loop_at_a_time`), the balanced disk margin
  ``alpha = 1/max_w sigma_max(S - I/2) = 2/max_w sigma_max(S - T)`` with its
  gain (``(1 + alpha/2)/(1 - alpha/2)``) and phase (``2 atan(alpha/2)``)
  margins, and the singular-value margin ``min_w sigma_min(I + L_id)``.
  Disk and singular-value margins are computed for any number of directions
  (for one direction they are the SISO disk margins).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.optimize import brentq, linear_sum_assignment, minimize_scalar

from crnfb.analysis.linear.frequency import BrokenLoop, LoopResponse, analysis_grid, broken_loop
from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.feedback.numerics import sizes
from crnfb.feedback.numerics.sparselu import BorderedLU

G_MIN = 1e-3
G_MAX = 1e4
GRID_PER_DECADE = 4
PER_LOOP_PER_DECADE = 1


# ---------------------------------------------------------------------------------------------
# the reduced Jacobian with scaled learning rates
# ---------------------------------------------------------------------------------------------
def theta_positions(loop: LinearLoop) -> np.ndarray:
    """The positions of the learned parameters theta among the reduced coordinates ``loop.rest``."""
    n_p = loop.net.n_f + loop.net.n_c
    return np.nonzero(loop.rest >= n_p)[0]


def scaled_jacobian(loop: LinearLoop, gains) -> sparse.csr_matrix:
    """Reduced Jacobian with learning rates ``gains * eps`` at the same fixed point.

    ``gains`` is a scalar (only the theta rows scale) or one factor per
    learned species; then the neutral invariant ``N^T (G E)^{-1} theta``
    changes and the theta block of the embedding ``V`` is rebuilt with the
    loop's own pivots (equivalent to ``linearise(model.with_learning(eps=...),
    fixed_point=loop.fixed_point)``, without rebuilding the network).
    """
    net = loop.net
    n_p = net.n_f + net.n_c
    k = net.k
    g = np.broadcast_to(np.asarray(gains, float), (k,))
    D = sparse.diags(np.concatenate([np.ones(n_p), g]))
    J = (D @ loop.J).tocsr()
    V = loop.V
    N = net.model.neutral
    if N.shape[1] and not np.allclose(g, g[0]):
        n = net.n_states
        piv = np.setdiff1d(np.arange(n), loop.rest)
        tpiv = piv[piv >= n_p]
        tpos = np.nonzero(loop.rest >= n_p)[0]
        tcols = loop.rest[tpos]
        Wt = (N / (net.eps * g)[:, None]).T
        dep = -np.linalg.solve(Wt[:, tpiv - n_p], Wt[:, tcols - n_p])
        V = V.tolil()
        for a, row in enumerate(tpiv):
            V[row, :] = 0.0
            V[row, tpos] = dep[a]
        V = V.tocsr()
    return (J[loop.rest] @ V).tocsr()


def _spectrum(Jr, n_flat: int) -> np.ndarray:
    """Eigenvalues (dense) or the slowest few (sparse), minus the flat modes (:func:`jacobian_modes`)."""
    return jacobian_modes(Jr, n_flat).rest


def jacobian_modes(Jr, n_flat: int):
    """:func:`crnfb.analysis.linear.stability.classify_modes` of ``Jr``'s eigenvalues (dense) or slowest few
    (sparse, ``tol = 1e-10``: below the zero tolerance), with the one zero tolerance of its scale."""
    from crnfb.analysis.linear.stability import classify_modes, dense_eig, error_bounds, spectral_scale, zero_tolerance

    n = Jr.shape[0]
    if n <= sizes.MARGINS_MODES_DENSE_LIMIT:
        A = Jr.toarray() if sparse.issparse(Jr) else Jr
        ev = np.linalg.eigvals(A)
    else:
        ev = _rightmost_sparse(Jr, n_flat)
    scale = spectral_scale(Jr)
    tol = zero_tolerance(ev, scale)
    split = classify_modes(ev, n_flat, tol)
    if n <= sizes.MARGINS_MODES_DENSE_LIMIT and split.rest.size and abs(split.rest[0].real) <= tol:
        # only when the slowest is within the tolerance: its conditioning decides (stability.error_bounds)
        ev, kappa = dense_eig(A)
        split = classify_modes(ev, n_flat, tol, error_bounds(ev, kappa, scale, tol))
    return split


def _rightmost_sparse(Jr, n_flat: int) -> np.ndarray:
    """The rightmost eigenvalues by Arnoldi; dense when ARPACK fails (export --speedup gave ArpackError, exit 3).

    A partial result of a non-converged search is kept when it holds enough
    values; otherwise the dense spectrum up to :data:`crnfb.feedback.numerics.sizes.DENSE_FALLBACK` states,
    beyond that a RuntimeError with the reason (a stated limitation, not a crash).
    """
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigs

    n = Jr.shape[0]
    k = min(n - 2, n_flat + 8)
    try:
        return eigs(sparse.csc_matrix(Jr), k=k, which="LR", return_eigenvectors=False, tol=1e-10,
                    maxiter=max(5000, 20 * n))
    except ArpackNoConvergence as e:
        if e.eigenvalues.size > n_flat:
            return e.eigenvalues
        reason = f"ARPACK did not converge ({e.eigenvalues.size} of {k} eigenvalues)"
    except ArpackError as e:
        reason = f"ARPACK failed ({str(e).splitlines()[0][:120]})"
    if n <= sizes.DENSE_FALLBACK:
        return np.linalg.eigvals(Jr.toarray() if sparse.issparse(Jr) else np.asarray(Jr))
    raise RuntimeError(f"the rightmost eigenvalues of the {n}-state loop are not available: {reason}, and the "
                       f"dense fallback is limited to {sizes.DENSE_FALLBACK} states")


def _scaled_family(loop: LinearLoop, direction):
    """``g -> Jr(g)``: all learning rates scaled (``direction=None``), one species (int), or ``1 + (g-1) d``."""
    k = loop.net.k
    if direction is None:
        pos = theta_positions(loop)
        J0 = loop.Jr.toarray() if loop.n_reduced <= sizes.DENSE_SCAN_LIMIT else loop.Jr
        if sparse.issparse(J0):
            rowscale = np.ones(loop.n_reduced)

            def jac(g):
                rowscale[pos] = g
                return (sparse.diags(rowscale) @ J0).tocsr()
        else:
            def jac(g):
                Jg = J0.copy()
                Jg[pos] *= g
                return Jg
        return jac
    d = np.zeros(k)
    if isinstance(direction, (int, float, np.integer, np.floating)) and float(direction).is_integer():
        d[int(direction)] = 1.0
    else:
        d = np.asarray(direction, float)

    def scaled(g):
        return scaled_jacobian(loop, 1.0 + (g - 1.0) * d)
    return scaled


def _eig_near_full(loop: LinearLoop, gains, w: float, iters: int = 30) -> complex:
    """The eigenvalue of the loop with learning rates ``gains * eps`` nearest ``j w`` (``w > 0``)
    (:func:`eigenvalue_near` at the shift ``j w``).

    Inverse iteration on one sparse LU of ``J - jw I``: near a crossing that
    eigenvalue is far closer to ``j w`` than any other, so a few iterations
    converge (Rayleigh quotient; iterated until the residual ``|J x - lambda
    x|`` stops falling or is below ``1e-14`` of ``max |J_ii|``). ARPACK's
    shift-invert mode was measured to stall on the T = 40 scaffold (clustered
    clamped-ensemble modes).

    It runs on the full Jacobian with its theta rows scaled: its spectrum is
    the reduced loop's plus the structural zeros, which stay ``w`` away from
    ``j w``, and its ensembles' block is banded, so ``J - jw I`` is factorised
    as that sparse block and a ``k x k`` Schur complement over the theta
    border (:class:`crnfb.feedback.numerics.sparselu.BorderedLU`), not as the reduced
    Jacobian with the pivots' dense rows (6.6x faster at 2535 copy states,
    same eigenvalue to 3e-15). The start vector lies in the reduced loop's
    subspace (``V x_r``).
    """
    return eigenvalue_near(loop, 1j * w, gains, iters)


def eigenvalue_near(loop: LinearLoop, shift: complex, gains=1.0, iters: int = 30) -> complex:
    """The eigenvalue of the loop (learning rates ``gains * eps``) nearest ``shift`` (not a structural zero):
    inverse iteration on the full Jacobian's bordered LU (see :func:`_eig_near_full`)."""
    return NearShift(loop, shift)(gains, iters)


class NearShift:
    """Eigenvalues of the loop nearest one ``shift`` as the learning rates change (:func:`eigenvalue_near`).

    The learning rates scale only the theta rows of ``J``, the border of its bordered LU
    (:class:`crnfb.feedback.numerics.sparselu.BorderedLU`): the ensembles' sparse block ``J_pp - shift I`` is
    factorised once per shift and each factor ``g`` refactorises only the ``k x k`` Schur complement
    (:meth:`~crnfb.feedback.numerics.sparselu.BorderedLU.with_border_rows`), so a root search over ``g`` costs one
    sparse LU, not one per step.
    """

    def __init__(self, loop: LinearLoop, shift: complex):
        self.loop, self.shift = loop, complex(shift)
        self._base: BorderedLU | None = None

    def __call__(self, gains=1.0, iters: int = 30) -> complex:
        loop = self.loop
        net = loop.net
        n_p = net.n_f + net.n_c
        g = np.broadcast_to(np.asarray(gains, float), (net.k,))
        J = (sparse.diags(np.concatenate([np.ones(n_p), g])) @ loop.J).astype(complex).tocsc()
        n = J.shape[0]
        M = J - self.shift * sparse.identity(n, dtype=complex, format="csc")
        lu = None
        if self._base is not None:
            try:
                lu = self._base.with_border_rows(M)
            except ValueError:       # another pattern (a factor of exactly 0 drops entries): factorise anew
                lu = None
        if lu is None:
            lu = BorderedLU(M, border=np.arange(n_p, n), layout=loop.shifted_layout)
            if lu.border.size:
                self._base = lu
        x = loop.V @ np.random.default_rng(0).standard_normal(loop.n_reduced) + 0j
        return _inverse_iteration(J, lu.solve, x, self.shift, iters)


def _inverse_iteration(J, solve, x, lam: complex, iters: int) -> complex:
    """Rayleigh quotients of inverse iteration from ``x`` until the residual stops falling (see :func:`_eig_near_full`)."""
    scale = float(np.max(np.abs(J.diagonal()))) or 1.0
    best = np.inf
    for _ in range(iters):
        x = solve(x)
        x /= np.linalg.norm(x)
        Jx = J @ x
        mu = complex(np.vdot(x, Jx))
        res = float(np.linalg.norm(Jx - mu * x))
        if res >= best:            # round-off floor reached
            break
        lam, best = mu, res
        if res <= 1e-14 * scale:
            break
    return lam


def _nominal_abscissa(loop: LinearLoop) -> tuple[float, bool]:
    """``max Re`` of the reduced loop's spectrum without flat modes, and the stability verdict
    (:func:`crnfb.analysis.linear.stability.loop_modes`, the one zero tolerance)."""
    from crnfb.analysis.linear.stability import loop_modes

    split = loop_modes(loop)
    return float(np.max(split.rest.real)), split.stable


def _gains_of(loop: LinearLoop, direction):
    """``g -> `` the learning-rate factors of :func:`critical_gain`'s ``direction`` (one per learned species)."""
    k = loop.net.k
    if direction is None:
        return lambda g: np.full(k, float(g))
    d = np.zeros(k)
    if isinstance(direction, (int, float, np.integer, np.floating)) and float(direction).is_integer():
        d[int(direction)] = 1.0
    else:
        d = np.asarray(direction, float)
    return lambda g: 1.0 + (g - 1.0) * d


def slow_learning_unstable(loop: LinearLoop) -> bool:
    """Whether the loop is unstable as every learning rate goes to zero: an eigenvalue of
    ``M(0) = W^T P(0) W`` (the quasi-static loop's matrix) in the closed left half plane, beyond the
    one zero tolerance. The same for every direction of :func:`critical_gain`: computed once by
    :func:`margins` for all of them (a ``k x k`` eigenvalue problem: with 205 learned parameters
    it was 60 of the per-loop margins' 200 s when each direction computed it)."""
    from crnfb.analysis.linear.stability import classify_modes, zero_tolerance

    blocks = broken_loop(loop)
    mu = np.linalg.eigvals(blocks.W.T @ blocks.open_loop([0.0])[0][0] @ blocks.W)
    tol = zero_tolerance(mu, float(np.max(np.abs(mu))) if mu.size else 0.0)
    mu = classify_modes(mu, loop.flat_count, tol).rest
    return bool(np.any(mu.real <= tol))


def _critical_gain_sparse(loop, gains_of, g_min, g_max, crossings, refine, xtol,
                          slow_unstable: bool | None = None) -> "CriticalGain | None":
    """Critical factor from frequency-domain crossings, verified (and refined) by sparse eigenvalues.

    The reduced Jacobian has an eigenvalue ``j w`` at factor ``g`` exactly when
    ``L(jw)`` has the eigenvalue ``-1/g`` (``w != 0``; at ``w = 0`` the
    determinant does not depend on ``g``). The loop is stable as ``g -> 0``
    when the plant is and ``eig(M(0))`` lies in the right half plane, so the
    first crossing met as ``g`` grows is where stability is lost. Returns
    None when a crossing fails to verify (the caller then scans).
    """
    abscissa, stable = _nominal_abscissa(loop)
    if slow_unstable is None:
        slow_unstable = slow_learning_unstable(loop)
    if slow_unstable:
        return CriticalGain(gain=None, eigenvalue=None, stable_at_nominal=stable, abscissa_nominal=abscissa,
                            reason=f"the loop is unstable for every factor down to {g_min:g} "
                            "(the fixed point is not stable under slow learning)")
    for w, gc in sorted(crossings, key=lambda c: c[1]):
        if not g_min < gc < g_max:
            continue
        lo, hi = gc * (1 - 1e-3), gc * (1 + 1e-3)
        near = NearShift(loop, 1j * w)      # one sparse LU at this frequency for every factor below

        def f(g, near=near):
            return near(gains_of(g)).real

        f_lo, f_hi = f(lo), f(hi)
        if not f_lo < 0 < f_hi:
            return None
        if refine:
            gc = brentq(f, lo, hi, xtol=xtol * lo, rtol=1e-12)
        return CriticalGain(gain=float(gc), eigenvalue=near(gains_of(gc)), stable_at_nominal=stable,
                            abscissa_nominal=abscissa)
    return CriticalGain(gain=None, eigenvalue=None, stable_at_nominal=stable, abscissa_nominal=abscissa,
                        reason=f"no eigenvalue of L(jw) crosses the negative real axis at -1/g for g up to {g_max:g}")


@dataclass(frozen=True, kw_only=True)
class CriticalGain:
    """Smallest factor ``g`` at which the loop loses stability.

    Attributes
    ----------
    gain : float or None
    eigenvalue : complex or None     the crossing eigenvalue at ``gain`` (``Re ~ 0``)
    stable_at_nominal : bool         stable at ``g = 1``
    abscissa_nominal : float         ``max Re eig`` at ``g = 1``
    reason : str or None             why ``gain`` is null
    """

    gain: float | None
    eigenvalue: complex | None
    stable_at_nominal: bool
    abscissa_nominal: float
    reason: str | None = None

    @property
    def frequency(self) -> float | None:
        return None if self.eigenvalue is None else float(abs(self.eigenvalue.imag))


def rates_value(learned, eps, rates) -> float | dict[str, float] | None:
    """Learning rates as ``report.json`` gives them: one number when every learned species has the same
    nominal rate (``eps``), else ``{species: value}``; None stays None."""
    if rates is None:
        return None
    eps = np.asarray(eps, float)
    r = np.asarray(rates, float)
    if np.all(eps == eps[0]):
        return float(r[0])
    return {n: float(v) for n, v in zip(learned, r)}


@dataclass(frozen=True, kw_only=True)
class CriticalRates:
    """``eps_crit``, the one definition: every learning rate ``eps`` scaled by the critical factor ``g_c``.

    Attributes
    ----------
    learned : tuple of str       the learned species
    eps : ndarray (k,)           their learning rates
    factor : float or None       ``g_c`` (the gain margin), None with ``reason``
    reason : str or None         why there is no ``g_c``
    """

    learned: tuple
    eps: np.ndarray
    factor: float | None
    reason: str | None = None

    @property
    def eps_crit(self) -> np.ndarray | None:
        """``g_c * eps`` (a vector the length of the learned parameters), None when there is no ``g_c``."""
        return None if self.factor is None else np.asarray(self.eps, float) * float(self.factor)

    @property
    def value(self) -> float | dict[str, float] | None:
        """``eps_crit`` as ``report.json`` gives it (:func:`rates_value`)."""
        return rates_value(self.learned, self.eps, self.eps_crit)


def critical_rates(loop: LinearLoop, cg: "CriticalGain | None" = None) -> CriticalRates:
    """``eps_crit`` of a linearised loop: every learning rate times :func:`critical_gain`'s factor
    (``cg``: that result when already computed, e.g. with the frequency-domain crossings)."""
    cg = critical_gain(loop) if cg is None else cg
    return CriticalRates(learned=tuple(loop.net.model.learned_names), eps=loop.net.eps.astype(float),
                         factor=cg.gain, reason=cg.reason)


def critical_gain(loop: LinearLoop, direction=None, g_min: float = G_MIN, g_max: float = G_MAX,
                  per_decade: int = GRID_PER_DECADE, xtol: float = 1e-10, candidates=(),
                  crossings: list | None = None, refine: bool = True,
                  slow_unstable: bool | None = None) -> CriticalGain:
    """Smallest ``g`` in ``[g_min, g_max]`` with an eigenvalue of ``Jr(g)`` in the right half plane.

    ``max Re eig`` is evaluated on a log grid (``per_decade`` points a decade,
    ``g = 1`` included, plus ``g_c (1 -+ 1e-3)`` for every frequency-domain
    ``candidates`` value ``g_c``), stopping at the first positive value; the
    sign change is refined with ``brentq``.

    Parameters
    ----------
    direction : None or int or array
        ``None``: all learning rates scaled by ``g``; an int ``i``: only
        learned species ``i``; an array: gains ``1 + (g - 1) * direction``.
    candidates : iterable of float
        Critical factors predicted elsewhere (e.g. :func:`nyquist_crossings`);
        they only tighten the brackets, the answer is the eigenvalue crossing.
    crossings : list of (omega, g) or None
        Frequency-domain crossings (:func:`nyquist_crossings`). Loops with more
        than :data:`crnfb.feedback.numerics.sizes.DENSE_SCAN_LIMIT` reduced states then skip the eigenvalue
        scan (:func:`_critical_gain_sparse`): the smallest crossing whose
        eigenvalue near ``j omega`` (sparse shift-invert) changes sign across
        ``g (1 -+ 1e-3)`` is the answer, refined with ``brentq`` on that
        eigenvalue when ``refine``. If none verifies, the scan runs.
    slow_unstable : bool or None
        :func:`slow_learning_unstable` when the caller has it (the same for every
        direction); None: computed here when needed.
    """
    n_flat = loop.flat_count
    jac = _scaled_family(loop, direction)
    if loop.n_reduced > sizes.DENSE_SCAN_LIMIT and crossings is not None:
        out = _critical_gain_sparse(loop, _gains_of(loop, direction), g_min, g_max, crossings, refine, xtol,
                                    slow_unstable)
        if out is not None:
            return out
        candidates = [g for _, g in crossings]    # a crossing did not verify: the eigenvalue scan decides

    def crit(g):
        ev = _spectrum(jac(g), n_flat)
        return ev[np.argmax(ev.real)]

    def f(g):
        return float(crit(g).real)

    def unstable(g) -> bool:           # beyond the one zero tolerance (round-off is not instability)
        split = jacobian_modes(jac(g), n_flat)
        return bool(split.rest.size) and split.abscissa > 0

    n = int(round((np.log10(g_max) - np.log10(g_min)) * per_decade)) + 1
    cand = np.array([c * f for c in candidates if g_min < c < g_max for f in (1 - 1e-3, 1 + 1e-3)])
    grid = np.unique(np.concatenate([np.logspace(np.log10(g_min), np.log10(g_max), n), [1.0], cand]))
    nominal = crit(1.0)
    stable = jacobian_modes(jac(1.0), n_flat).stable
    for i, g in enumerate(grid):
        if unstable(g):
            if i == 0:
                return CriticalGain(gain=None, eigenvalue=None, stable_at_nominal=stable,
                                    abscissa_nominal=float(nominal.real),
                                    reason=f"the loop is unstable for every factor down to {g_min:g} "
                                           "(the fixed point is not stable under slow learning)")
            lo = grid[i - 1]     # decided stable: Re < 0 there or within the tolerance of zero
            gc = lo if f(lo) >= 0 else brentq(f, lo, g, xtol=xtol * lo, rtol=1e-12)
            return CriticalGain(gain=float(gc), eigenvalue=complex(crit(gc)), stable_at_nominal=stable,
                                abscissa_nominal=float(nominal.real))
    return CriticalGain(gain=None, eigenvalue=None, stable_at_nominal=stable, abscissa_nominal=float(nominal.real),
                        reason=f"no eigenvalue crosses into the right half plane for factors up to {g_max:g}")


# ---------------------------------------------------------------------------------------------
# frequency-domain quantities
# ---------------------------------------------------------------------------------------------
def _track(lam: np.ndarray) -> np.ndarray:
    """Order eigenvalue columns (nw, r) into continuous branches."""
    out = lam.copy()
    for i in range(1, lam.shape[0]):
        cost = np.abs(out[i - 1][:, None] - lam[i][None, :])
        _, col = linear_sum_assignment(cost)
        out[i] = lam[i][col]
    return out


#: A bracketed crossing is refined only when its estimate on the grid is below this multiple of ``g_max``
#: and of the smallest crossing refined before it (the estimate interpolates the branch linearly across
#: one grid interval; a factor 10 leaves room for its error, which is second order in the interval).
REFINE_BEYOND = 10.0


def nyquist_crossings(blocks: BrokenLoop, response: LoopResponse, g_max: float | None = None,
                      g_min: float = G_MIN) -> list[tuple[float, float]]:
    """``(omega, g)`` where an eigenvalue of ``L_id(jw)`` crosses the negative real axis at ``-1/g``.

    Sorted by ``g``. Crossings are bracketed on the response grid and refined
    with ``brentq`` on the imaginary part of the tracked eigenvalue, in the order
    of their grid estimates. With ``g_max``, a crossing is refined only while
    its grid estimate is below ``REFINE_BEYOND`` times both ``g_max`` and the
    smallest refined crossing above ``g_min`` so far: the first crossing is the gain margin and
    the one :func:`critical_gain` verifies, and the later ones are not reported
    (with 200 learned parameters, the near-flat directions' loci give hundreds of
    crossings, each refinement a dozen full responses of the plant).
    """
    omega = response.omega
    lam = response.loci
    if lam.shape[1] > 1:
        lam = _track(lam)
    brackets = [(_grid_estimate(lam[i, j], lam[i + 1, j]), i, j)
                for j in range(lam.shape[1]) for i in _negative_axis_brackets(lam[:, j])]
    out: list[tuple[float, float]] = []
    for est, i, j in sorted(brackets):
        if g_max is not None and est > REFINE_BEYOND * min([g_max] + [g for _, g in out if g >= g_min]):
            break                     # sorted: every later estimate is larger still
        pick = _eigenvalue_branch(blocks, omega[i], omega[i + 1], lam[i, j], lam[i + 1, j])
        out.extend(_siso_crossings(omega[i:i + 2], lam[i:i + 2, j], pick))
    return sorted(out, key=lambda t: t[1])


def _grid_estimate(a: complex, b: complex) -> float:
    """The factor ``g = -1/Re`` where the segment from ``a`` to ``b`` crosses the real axis (inf right of 0)."""
    t = a.imag / (a.imag - b.imag)
    re = a.real + t * (b.real - a.real)
    return -1.0 / re if re < 0 else np.inf


def _eigenvalue_branch(blocks: BrokenLoop, w0: float, w1: float, a: complex, b: complex):
    """``w -> `` the eigenvalue of ``L(jw)`` nearest the branch's log-linear interpolation on ``[w0, w1]``."""
    la, lb = np.log(w0), np.log(w1)

    def pick(w):
        ev = np.linalg.eigvals(blocks.loop_transfer([w])[0])
        t = (np.log(w) - la) / (lb - la)
        return ev[np.argmin(np.abs(ev - (a + t * (b - a))))]

    return pick


def _negative_axis_brackets(values: np.ndarray) -> np.ndarray:
    """Grid intervals ``[i, i+1]`` where ``values`` change the sign of their imaginary part left of 0."""
    im, re = values.imag, values.real
    return np.nonzero((np.sign(im[:-1]) * np.sign(im[1:]) < 0) & ((re[:-1] < 0) | (re[1:] < 0)))[0]


def loop_at_a_time(P: np.ndarray, eps: np.ndarray, omega: np.ndarray, i: int) -> np.ndarray:
    """Loop ``i`` broken, the others closed: ``T_i(jw)`` (nw,).

    ``T_i = eps_i (P_ii - P_io (sI + E_o P_oo)^{-1} E_o P_oi) / s``, so that
    ``det(sI + G E P) = s det(sI + E_o P_oo) (1 + g T_i)`` when only species
    ``i``'s rate is scaled by ``g``: a crossing of the negative real axis at
    ``-1/g`` is a candidate per-loop critical factor.
    """
    k = P.shape[1]
    o = np.delete(np.arange(k), i)
    s = 1j * np.asarray(omega, float)
    Pii = P[:, i, i]
    if o.size:
        Eo = eps[o]
        Moo = s[:, None, None] * np.eye(o.size)[None] + Eo[None, :, None] * P[:, o][:, :, o]
        x = np.linalg.solve(Moo, (Eo[None, :] * P[:, o, i])[..., None])[..., 0]
        Pii = Pii - np.einsum("wj,wj->w", P[:, i, o], x)
    return eps[i] * Pii / s


def loops_at_a_time(P: np.ndarray, eps: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Every :func:`loop_at_a_time` at once (nw, k), from one inverse of ``M = sI + E P`` a frequency.

    The Schur complement of ``M_oo`` in ``M`` is ``s + s T_i`` (:func:`loop_at_a_time`) and it is
    ``1 / (M^{-1})_ii``, so ``T_i = 1 / (s (M^{-1})_ii) - 1``: ``O(k^3)`` a frequency for all ``k`` loops
    instead of ``O(k^4)``. For the grid scan; crossings are refined with :func:`loop_at_a_time` (the
    subtraction loses relative accuracy where ``|T_i|`` is far below 1, i.e. factors far beyond any grid).
    """
    s = 1j * np.asarray(omega, float)
    k = P.shape[1]
    M = s[:, None, None] * np.eye(k)[None] + np.asarray(eps, float)[None, :, None] * P
    d = np.diagonal(np.linalg.inv(M), axis1=1, axis2=2)
    return (1.0 / (s[:, None] * d) - 1.0)


def _siso_crossings(omega: np.ndarray, values: np.ndarray, fun, g_max: float | None = None,
                    g_min: float = G_MIN) -> list[tuple[float, float]]:
    """``(omega, g)`` where ``values`` (= ``fun`` on the grid) crosses the negative real axis at ``-1/g``,
    sorted by ``g``. With ``g_max``, crossings are refined in the order of their grid estimates while the
    estimate is below ``REFINE_BEYOND`` times ``g_max`` and the smallest refined one above ``g_min``
    (:func:`nyquist_crossings`)."""
    out: list[tuple[float, float]] = []
    brackets = sorted((_grid_estimate(values[i], values[i + 1]), i) for i in _negative_axis_brackets(values))
    for est, i in brackets:
        if g_max is not None and est > REFINE_BEYOND * min([g_max] + [g for _, g in out if g >= g_min]):
            break
        # brentq starts from the bracket's ends, whose values the grid has: each further evaluation is a
        # full response of the plant (and the root is usually one of the points it evaluated)
        seen = {float(omega[i]): values[i], float(omega[i + 1]): values[i + 1]}

        def imag(w, seen=seen):
            if w not in seen:
                seen[w] = fun(w)
            return seen[w].imag

        try:
            wc = brentq(imag, float(omega[i]), float(omega[i + 1]), xtol=1e-13 * omega[i], rtol=1e-12)
        except ValueError:
            continue
        v = seen[wc] if wc in seen else fun(wc)
        if v.real < 0:
            out.append((float(wc), float(-1.0 / v.real)))
    return sorted(out, key=lambda t: t[1])


def refine_extremum(fun, omega: np.ndarray, values: np.ndarray, maximise: bool) -> tuple[float, float]:
    """Refine the grid extremum of ``fun(w)`` with a bounded scalar search in ``log w``."""
    i = int(np.argmax(values) if maximise else np.argmin(values))
    lo, hi = omega[max(i - 1, 0)], omega[min(i + 1, omega.size - 1)]
    best_w, best_v = omega[i], values[i]
    if hi > lo:
        sign = -1.0 if maximise else 1.0
        res = minimize_scalar(lambda u: sign * fun(np.exp(u)), bounds=(np.log(lo), np.log(hi)), method="bounded",
                              options={"xatol": 1e-10})
        v = sign * res.fun
        if (v > best_v) if maximise else (v < best_v):
            best_w, best_v = float(np.exp(res.x)), float(v)
    return float(best_w), float(best_v)


def phase_margin(blocks: BrokenLoop, response: LoopResponse) -> tuple[float | None, float | None, str | None]:
    """``(pm_deg, w_c, reason)`` of the one-direction loop ``L_id`` from frequency-response data."""
    if blocks.r != 1:
        return None, None, (f"the loop has {blocks.r} identifiable directions; the phase margin is defined "
                            "for one (see disk_phase_margin_deg)")
    omega = response.omega
    Lw = response.L[:, 0, 0]
    mag = np.abs(Lw)
    ph = np.unwrap(np.angle(Lw))
    idx = np.nonzero((mag[:-1] - 1.0) * (mag[1:] - 1.0) < 0)[0]
    if idx.size == 0:
        return None, None, f"|L(jw)| does not cross 1 on [{omega[0]:.3g}, {omega[-1]:.3g}] rad per time unit"

    def logmag(u):
        return np.log(np.abs(blocks.response([np.exp(u)]).L[0, 0, 0]))

    found = []                       # (pm, w_c) at each crossing; idx is not empty
    for i in idx:
        u = brentq(logmag, np.log(omega[i]), np.log(omega[i + 1]), xtol=1e-13)
        wc = float(np.exp(u))
        phc = np.angle(blocks.response([wc]).L[0, 0, 0])
        ref = ph[i] + (ph[i + 1] - ph[i]) * (u - np.log(omega[i])) / (np.log(omega[i + 1]) - np.log(omega[i]))
        phc += 2 * np.pi * np.round((ref - phc) / (2 * np.pi))
        pm = (np.degrees(phc) + 180.0 + 180.0) % 360.0 - 180.0
        found.append((float(pm), wc))
    pm_min, w_c = min(found)         # the smallest margin (the lowest crossing on a tie)
    return pm_min, w_c, None


def _sigma(fun_matrix, w_list):
    return np.array([np.linalg.svd(fun_matrix(w), compute_uv=False) for w in w_list])


# ---------------------------------------------------------------------------------------------
# result
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Margins:
    """Gain, phase, disk and singular-value margins and ``eps_crit`` (see module docstring).

    Every ``None`` has a ``*_reason`` string beside it. ``response`` holds the
    frequency-response data used (``response.frd("L")`` etc.) for plots.
    """

    learned: list
    eps: np.ndarray
    identifiable_directions: int
    stable_at_nominal: bool
    abscissa_nominal: float
    eps_crit: np.ndarray | None
    gain_margin: float | None
    critical_frequency: float | None
    eps_crit_reason: str | None
    gain_margin_freq: float | None
    critical_frequency_freq: float | None
    gain_margin_freq_reason: str | None
    phase_margin_deg: float | None
    crossover_frequency: float | None
    phase_margin_reason: str | None
    disk_margin: float | None
    disk_gain_margin: float | None
    disk_phase_margin_deg: float | None
    disk_margin_frequency: float | None
    singular_value_margin: float | None
    singular_value_frequency: float | None
    robust_reason: str | None
    per_loop: list = field(default_factory=list)
    response: LoopResponse | None = field(default=None, repr=False, compare=False)
    plant_model: dict | None = None

    @property
    def eps_crit_value(self) -> float | dict[str, float] | None:
        """``eps_crit`` as ``report.json`` gives it: one number when every learned species has the
        same learning rate (the model's ``eps`` is a scalar), else ``{species: value}``."""
        return rates_value(self.learned, self.eps, self.eps_crit)

    @property
    def gain_margin_agreement(self) -> float | None:
        """Relative difference of the eigenvalue and frequency-domain critical gains."""
        if self.gain_margin is None or self.gain_margin_freq is None:
            return None
        return abs(self.gain_margin_freq - self.gain_margin) / self.gain_margin

    def to_dict(self) -> dict:
        def f(x):
            return None if x is None else float(x)

        dgm = self.disk_gain_margin
        out = {
            "eps": {n: float(v) for n, v in zip(self.learned, self.eps)},
            "identifiable_directions": int(self.identifiable_directions),
            "stable_at_nominal": bool(self.stable_at_nominal),
            "eps_crit": self.eps_crit_value,
            "eps_crit_reason": self.eps_crit_reason,
            "gain_margin": f(self.gain_margin),
            "gain_margin_reason": self.eps_crit_reason,
            "critical_frequency": f(self.critical_frequency),
            "gain_margin_frequency_domain": f(self.gain_margin_freq),
            "critical_frequency_frequency_domain": f(self.critical_frequency_freq),
            "gain_margin_frequency_domain_reason": self.gain_margin_freq_reason,
            "gain_margin_agreement": f(self.gain_margin_agreement),
            "phase_margin_deg": f(self.phase_margin_deg),
            "phase_margin_reason": self.phase_margin_reason,
            "crossover_frequency": f(self.crossover_frequency),
            "disk_margin": f(self.disk_margin),
            "disk_gain_margin": None if dgm is None or not np.isfinite(dgm) else float(dgm),
            "disk_gain_margin_db": None if dgm is None or not np.isfinite(dgm) else float(20 * np.log10(dgm)),
            "disk_phase_margin_deg": f(self.disk_phase_margin_deg),
            "disk_margin_frequency": f(self.disk_margin_frequency),
            "singular_value_margin": f(self.singular_value_margin),
            "singular_value_frequency": f(self.singular_value_frequency),
            "robust_margins_reason": (self.robust_reason if self.robust_reason is not None else
                                      ("disk gain margin unbounded (alpha >= 2)"
                                       if dgm is not None and not np.isfinite(dgm) else None)),
            "per_loop": list(self.per_loop),
            "plant_model": self.plant_model,
        }
        if self.phase_margin_deg is None:
            out["phase_margin_deg_reason"] = self.phase_margin_reason
        if self.crossover_frequency is None:
            out["crossover_frequency_reason"] = self.phase_margin_reason
        return out


def margins(loop: LinearLoop, *, g_min: float = G_MIN, g_max: float = G_MAX, omega=None,
            per_loop: bool = True, blocks: BrokenLoop | None = None) -> Margins:
    """All margins of a linearised loop (module docstring).

    Parameters
    ----------
    loop : LinearLoop
    g_min, g_max : float
        Range of the learning-rate factor searched for ``eps_crit``.
    omega : array or None
        Frequency grid (default :func:`crnfb.analysis.linear.frequency.analysis_grid`).
    per_loop : bool
        Per-species ``eps_crit`` when several species are learned.
    """
    blocks = blocks or broken_loop(loop)
    model = loop.net.model
    eps = loop.net.eps.astype(float)
    names = model.learned_names

    omega = analysis_grid(blocks) if omega is None else np.asarray(omega, float)
    resp = blocks.response(omega)

    cross = nyquist_crossings(blocks, resp, g_max, g_min)
    slow = slow_learning_unstable(loop) if loop.n_reduced > sizes.DENSE_SCAN_LIMIT else None
    cg = critical_gain(loop, None, g_min, g_max, candidates=[c[1] for c in cross], crossings=cross,
                       slow_unstable=slow)
    eps_crit = critical_rates(loop, cg).eps_crit

    cross = [c for c in cross if c[1] <= g_max]
    gm_f: float | None = cross[0][1] if cross else None
    w_f: float | None = cross[0][0] if cross else None
    gm_f_reason = None if cross else (f"no eigenvalue of L_id(jw) crosses the negative real axis beyond "
                                      f"-1/{g_max:g} on [{omega[0]:.3g}, {omega[-1]:.3g}]")

    pm, wc, pm_reason = phase_margin(blocks, resp)

    # disk and singular-value margins (meaningful for a stable nominal loop)
    dm = dgm = dpm = dw = svm = svw = None
    robust_reason = None
    if not cg.stable_at_nominal:
        robust_reason = "the loop is unstable at the given eps: disk and singular-value margins are undefined"
    else:
        r = blocks.r
        Ih = 0.5 * np.eye(r)
        smax = np.linalg.svd(resp.S - Ih[None], compute_uv=False)[:, 0]
        dw, top = refine_extremum(
            lambda w: np.linalg.svd(blocks.response([w]).S[0] - Ih, compute_uv=False)[0], omega, smax, True)
        dm = 1.0 / top
        a = dm / 2.0
        dgm = (1 + a) / (1 - a) if a < 1 else float("inf")
        dpm = float(np.degrees(2 * np.arctan(a)))
        I = np.eye(r)
        smin = np.linalg.svd(I[None] + resp.L, compute_uv=False)[:, -1]
        svw, svm = refine_extremum(
            lambda w: np.linalg.svd(I + blocks.response([w]).L[0], compute_uv=False)[-1], omega, smin, False)

    loops = _per_loop(loop, blocks, resp, names, eps, g_min, g_max, slow) if per_loop and len(eps) > 1 else []
    return Margins(learned=names, eps=eps, identifiable_directions=blocks.r,
                   stable_at_nominal=cg.stable_at_nominal, abscissa_nominal=cg.abscissa_nominal,
                   eps_crit=eps_crit, gain_margin=cg.gain, critical_frequency=cg.frequency,
                   eps_crit_reason=cg.reason, gain_margin_freq=gm_f, critical_frequency_freq=w_f,
                   gain_margin_freq_reason=gm_f_reason, phase_margin_deg=pm, crossover_frequency=wc,
                   phase_margin_reason=pm_reason, disk_margin=dm, disk_gain_margin=dgm,
                   disk_phase_margin_deg=dpm, disk_margin_frequency=dw, singular_value_margin=svm,
                   singular_value_frequency=svw, robust_reason=robust_reason, per_loop=loops, response=resp,
                   plant_model=blocks.plant_model)


def _per_loop(loop: LinearLoop, blocks: BrokenLoop, resp: LoopResponse, names, eps, g_min: float,
              g_max: float, slow_unstable: bool | None = None) -> list[dict]:
    """``margins.per_loop``: each learned species' rate scaled alone (loop at a time; module docstring)."""
    omega = resp.omega
    T = loops_at_a_time(resp.P, eps, omega)
    loops = []
    for i, name in enumerate(names):
        cands = _siso_crossings(omega, T[:, i],
                                lambda w, i=i: loop_at_a_time(blocks.open_loop([w])[0], eps, np.array([w]), i)[0],
                                g_max, g_min)
        cands = [c for c in cands if c[1] <= g_max]
        ci = critical_gain(loop, i, g_min, g_max, per_decade=PER_LOOP_PER_DECADE,
                           candidates=[c[1] for c in cands], crossings=cands, refine=False,
                           slow_unstable=slow_unstable)
        loops.append({"species": name, "eps": float(eps[i]),
                      "eps_crit": None if ci.gain is None else float(eps[i] * ci.gain),
                      "gain_margin": None if ci.gain is None else float(ci.gain),
                      "critical_frequency": ci.frequency,
                      "gain_margin_frequency_domain": float(cands[0][1]) if cands else None,
                      "reason": ci.reason})
    return loops


__all__ = ["NearShift", "critical_gain", "slow_learning_unstable", "CriticalGain", "critical_rates", "CriticalRates", "rates_value", "eigenvalue_near",
           "loop_at_a_time", "loops_at_a_time", "Margins", "margins", "nyquist_crossings", "phase_margin",
           "scaled_jacobian", "theta_positions", "jacobian_modes", "refine_extremum"]
