"""SciPy's BDF with the loop's structure exploited in its linear algebra (docs/benchmarks.md (a)).

Two changes to :class:`scipy.integrate.BDF`, both confined to its Newton
matrix ``M = I - c J`` (``c = h / alpha_order``); the step-size and order
control, error test and dense output are SciPy's own:

1. **Bordered factorisation** (:class:`BorderedLU`). The loop's Jacobian is
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

import numpy as np
import scipy.linalg
from scipy import sparse
from scipy.integrate import BDF
from scipy.linalg.lapack import dgetrs, zgetrs
from scipy.sparse.linalg import splu

from .sparselu import PermutedLU, column_dominant, lu_without_pivoting, nested_dissection
from . import sizes

#: Relative change of ``c = h / alpha`` up to which a factorisation is reused (CVODE's ``dgmax`` is 0.3).
REUSE_BAND = 0.3
#: A row or column with more stored entries than this (and than ``BORDER_SQRT * sqrt(n)``) goes to the border.
BORDER_MIN_NNZ = 64
BORDER_SQRT = 2.0
#: Above this share of the size a border is not worth it: plain sparse LU.
BORDER_MAX_SHARE = 0.2


def ordering(n: int) -> str:
    """SuperLU column ordering for a sparse block of ``n`` unknowns (see ``crnfb.feedback.sizes.MMD_ABOVE``)."""
    return "MMD_AT_PLUS_A" if n > sizes.MMD_ABOVE else "COLAMD"


def border_indices(M: sparse.spmatrix) -> np.ndarray:
    """Indices whose row or column of ``M`` is dense (more than ``max(64, 2 sqrt(n))`` entries)."""
    M = sparse.csc_matrix(M)
    n = M.shape[0]
    col = np.diff(M.indptr)
    row = np.bincount(M.indices, minlength=n)
    limit = max(BORDER_MIN_NNZ, BORDER_SQRT * np.sqrt(n))
    return np.flatnonzero((col > limit) | (row > limit))


class BorderLayout:
    """Where each stored entry of a sparse pattern goes in the blocks ``A, B, C, D`` of :class:`BorderedLU`.

    Built once per sparsity pattern (SciPy's ``I - c J`` keeps the pattern of
    ``J`` from step to step), so that each factorisation only gathers
    ``M.data`` instead of slicing sparse matrices (measured: slicing cost 4x
    the sparse LU of ``A`` itself at 1300 states).
    """

    def __init__(self, M: sparse.csc_matrix, border: np.ndarray):
        n = M.shape[0]
        self.indptr, self.indices = M.indptr.copy(), M.indices.copy()
        s = np.asarray(border, int)
        r = np.setdiff1d(np.arange(n), s)
        self.border, self.rest = s, r
        tag = sparse.csc_matrix((np.arange(1, M.nnz + 1, dtype=float), M.indices, M.indptr), shape=M.shape)
        A = tag[r][:, r].tocsc()
        A.sort_indices()
        self.A_src = A.data.astype(np.int64) - 1
        self.A_indices, self.A_indptr = A.indices, A.indptr
        self.B_src = tag[r][:, s].toarray().astype(np.int64) - 1      # -1: structural zero
        self.D_src = tag[s][:, s].toarray().astype(np.int64) - 1
        self.C_src = tag[s][:, r].toarray().astype(np.int64) - 1
        self.n_rest = r.size
        self.perm = None
        if r.size >= sizes.ND_ABOVE:
            # the sparse block in a nested-dissection order, as a gather from M.data (no slicing later)
            self.perm = nested_dissection(A)
            Ap = A[self.perm][:, self.perm].tocsc()
            Ap.sort_indices()
            self.Ap_src = Ap.data.astype(np.int64) - 1
            self.Ap_indices, self.Ap_indptr = Ap.indices, Ap.indptr

    def matches(self, M: sparse.csc_matrix) -> bool:
        """Whether ``M`` has the pattern this layout was built for."""
        return (M.indptr.shape == self.indptr.shape and M.indices.shape == self.indices.shape
                and np.array_equal(M.indptr, self.indptr) and np.array_equal(M.indices, self.indices))

    @staticmethod
    def _gather(data: np.ndarray, src: np.ndarray) -> np.ndarray:
        out = np.zeros(src.shape, dtype=data.dtype)
        hit = src >= 0
        out[hit] = data[src[hit]]
        return out

    def permuted(self, M: sparse.csc_matrix) -> sparse.csc_matrix:
        """The sparse block of ``M`` in the nested-dissection order ``perm`` (rows and columns)."""
        m = self.n_rest
        return sparse.csc_matrix((M.data[self.Ap_src], self.Ap_indices, self.Ap_indptr), shape=(m, m))

    def blocks(self, M: sparse.csc_matrix):
        """``A`` (csc), and ``B``, ``C``, ``D`` (dense: the border is a few dense lines) of ``M``."""
        data = M.data
        m = self.n_rest
        A = sparse.csc_matrix((data[self.A_src], self.A_indices, self.A_indptr), shape=(m, m))
        return A, self._gather(data, self.B_src), self._gather(data, self.C_src), self._gather(data, self.D_src)


class BorderedLU:
    """LU of a sparse matrix with a dense border, by the Schur complement of its sparse block.

    With ``r`` the sparse indices and ``s`` the border (:func:`border_indices`),
    ``M = [[A, B], [C, D]]`` in ``(r, s)`` order: ``A`` is factorised by
    SuperLU, ``Z = A^{-1} B`` and ``S = D - C Z`` (dense ``s x s``) by LAPACK.
    :meth:`solve` then costs one sparse solve per right-hand side.

    Parameters
    ----------
    M : sparse matrix (n, n)
    border : index array or None
        Border indices (None: :func:`border_indices`). Empty, or larger than
        ``BORDER_MAX_SHARE * n``: plain ``splu`` of ``M``.
    permc_spec : str or None
        SuperLU column ordering of the sparse block (None: :func:`ordering` by its size).
    layout : BorderLayout or None
        A layout of ``M``'s pattern from an earlier factorisation (reused if it matches).
    """

    def __init__(self, M, border: np.ndarray | None = None, permc_spec: str | None = None,
                 layout: BorderLayout | None = None):
        M = sparse.csc_matrix(M)
        n = M.shape[0]
        self.n = n
        self.shape = M.shape
        if layout is None or not layout.matches(M):
            s = border_indices(M) if border is None else np.asarray(border, int)
            if s.size == 0 or s.size > BORDER_MAX_SHARE * n:
                self.border, self.layout = np.zeros(0, int), None
                self._lu = splu(M, permc_spec=permc_spec or ordering(n))
                return
            layout = BorderLayout(M, s)
        self.layout = layout
        self.border, self.rest = layout.border, layout.rest
        A, B, self._C, D = layout.blocks(M)
        if layout.perm is not None and permc_spec is None and column_dominant(A):
            self._lu = PermutedLU(lu_without_pivoting(layout.permuted(M)), layout.perm)
        else:
            self._lu = splu(A, permc_spec=permc_spec or ordering(A.shape[0]))
        self._Z = self._lu.solve(B)
        self._S = scipy.linalg.lu_factor(D - self._C @ self._Z, check_finite=False)
        self._getrs = zgetrs if np.iscomplexobj(self._S[0]) else dgetrs

    @property
    def fill(self) -> int:
        """Stored entries of the sparse factors (plus the dense border blocks)."""
        f = self._lu.L.nnz + self._lu.U.nnz
        if self.border.size:
            f += self._Z.size + self._S[0].size
        return int(f)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``M^{-1} b`` (``b`` a vector or an (n, m) array)."""
        b = np.asarray(b)
        if not self.border.size:
            return self._lu.solve(b)
        r, s = self.rest, self.border
        y = self._lu.solve(np.ascontiguousarray(b[r]))
        x2, _ = self._getrs(*self._S, b[s] - self._C @ y)   # LAPACK directly: scipy's wrapper costs more than the solve
        x = np.empty(b.shape, dtype=np.result_type(b, y))
        x[s] = x2
        x[r] = y - self._Z @ x2
        return x


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

    def __init__(self, fun, t0, y0, t_bound, **kw):
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


__all__ = ["BorderedLU", "BorderLayout", "border_indices", "ordering", "ReuseBDF", "REUSE_BAND"]
