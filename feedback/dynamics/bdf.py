"""SciPy's BDF with the loop's structure exploited in its linear algebra (docs/benchmarks.md (a)).

Two changes to :class:`scipy.integrate.BDF`, both confined to its Newton
matrix ``M = I - c J`` (``c = h / alpha_order``); the step-size and order
control, error test and dense output are SciPy's own:

1. **Bordered factorisation** (:class:`crnfb.feedback.numerics.sparselu.BorderedLU`). The loop's Jacobian is
   a large sparse block (the ensembles' generators: a few entries per
   column) bordered by a few dense rows and columns (the ``L`` learned
   parameters: ``dtheta/dt`` reads every probability, every flux depends on
   theta; in reduced coordinates also the rows next to the eliminated
   pivots). A fill-reducing sparse LU of the whole matrix fills in along
   those dense lines; here only the sparse block ``A`` is factorised and the
   border is handled by the ``s x s`` Schur complement
   ``S = D - C A^{-1} B`` (``s`` = border size, dense).
2. **Newton-matrix reuse** (:class:`ReuseBDF`). SciPy refactorises whenever
   the step size or order changes (measured on the T = 40 scaffold: one
   factorisation per 2.9 steps). As CVODE does, the factorisation is kept
   while the Jacobian is unchanged and ``c / c0`` stays within
   ``[1 - REUSE_BAND, 1 + REUSE_BAND]`` of the factorised ``c0``; the Newton
   update from the stale matrix is scaled by ``2 / (1 + c / c0)`` (CVODE's
   correction: exact for the stiff components when ``c = c0`` and between
   the stiff and non-stiff limits otherwise). A Newton failure makes SciPy
   re-evaluate the Jacobian, which forces a fresh factorisation.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.linalg
from scipy import sparse
from scipy.integrate import BDF

from ..numerics.sparselu import BorderedLU, BorderLayout

#: Relative change of ``c = h / alpha`` up to which a factorisation is reused (CVODE's ``dgmax`` is 0.3).
REUSE_BAND = 0.3
class _Factor:
    """A factorisation of ``I - c0 J`` handed to SciPy's Newton iteration, used at ``c``."""

    __slots__ = ("lu", "c0", "scale")

    def __init__(self, lu, c0: float, scale: float = 1.0):
        self.lu, self.c0, self.scale = lu, c0, scale


class ReuseBDF(BDF):
    """:class:`scipy.integrate.BDF` with Newton-matrix reuse and a bordered sparse LU.

    Same arguments as SciPy's BDF. ``nlu`` counts the factorisations actually
    made; ``nlu_requests`` the ones SciPy asked for (each a step-size or
    Jacobian change). For a dense Jacobian LAPACK's LU is used (reuse still
    applies).
    """

    jac: Callable | None        # SciPy's Jacobian callable (None for a constant Jacobian matrix)

    def __init__(self, fun, t0, y0, t_bound, **kw) -> None:
        super().__init__(fun, t0, y0, t_bound, **kw)
        self.nlu_requests = 0
        self._jac_version = 0
        self._J_diag = self._diag(self.J)
        self._last: _Factor | None = None
        self._layout: BorderLayout | None = None
        self._last_version = -1
        if self.jac is not None:
            jac = self.jac

            def jac_tracked(t, y):
                J = jac(t, y)
                self._jac_version += 1
                self._J_diag = self._diag(J)
                return J
            self.jac = jac_tracked
        self.lu = self._lu
        self.solve_lu = self._solve

    @staticmethod
    def _diag(J) -> np.ndarray:
        return J.diagonal() if sparse.issparse(J) else np.diag(J).copy()

    def _c_of(self, A) -> float | None:
        """``c`` of ``A = I - c J`` from the largest diagonal entry of ``J`` (None if ``J`` has none)."""
        d = self._J_diag
        i = int(np.argmax(np.abs(d)))
        if d[i] == 0:
            return None
        if sparse.issparse(A):
            lo, hi = A.indptr[i], A.indptr[i + 1]
            k = np.flatnonzero(A.indices[lo:hi] == i)       # a column of A: a few entries
            a_ii = float(A.data[lo + k].sum())
        else:
            a_ii = float(A[i, i])
        return (1.0 - a_ii) / d[i]

    def _reuse(self, c: float | None) -> _Factor | None:
        last = self._last
        if last is None or c is None or self._last_version != self._jac_version:
            return None
        ratio = c / last.c0
        if abs(ratio - 1.0) > REUSE_BAND:
            return None
        return _Factor(last.lu, last.c0, 2.0 / (1.0 + ratio))

    def _lu(self, A):
        """SciPy's ``lu`` hook: the cached factorisation if it may serve ``A``, else a new one."""
        self.nlu_requests += 1
        c = self._c_of(A)
        hit = self._reuse(c)
        if hit is not None:
            return hit
        self.nlu += 1
        if sparse.issparse(A):
            lu = BorderedLU(A, layout=self._layout)
            self._layout = lu.layout
        else:
            lu = _DenseLU(scipy.linalg.lu_factor(A))
        self._last = _Factor(lu, c if c is not None else np.nan)
        self._last_version = self._jac_version
        return self._last

    @staticmethod
    def _solve(factor: _Factor, b):
        x = factor.lu.solve(b)
        if factor.scale != 1.0:
            x *= factor.scale
        return x


class _DenseLU:
    __slots__ = ("lu",)

    def __init__(self, lu):
        self.lu = lu

    def solve(self, b):
        return scipy.linalg.lu_solve(self.lu, b, check_finite=False)


__all__ = ["ReuseBDF", "REUSE_BAND"]
