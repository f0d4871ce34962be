"""Sparse LU for the loop's matrices: fill-reducing orders, unpivoted LU of generator blocks, and the
bordered LU of a sparse block with a few dense rows and columns (:class:`BorderedLU`).

Shared by the ODE integrator's Newton matrices (:mod:`crnfb.feedback.dynamics.bdf`),
the slow-mode solver and the frequency responses of large plants. A
master-equation generator has non-negative rates off the diagonal and
columns summing to zero, so ``c I - A`` (``c > 0``, or ``c = jw`` with ``w != 0``)
is column diagonally dominant and Gaussian elimination needs no row
pivoting; the column order can then be fixed once per sparsity pattern.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy import sparse
from scipy.linalg.lapack import dgetrs, zgetrs
from scipy.sparse.linalg import splu

from . import sizes
from .signals_guard import python_signals

__all__ = ["BorderedLU", "BorderLayout", "border_indices", "column_dominant", "inverse_operator", "lu_in_order",
           "lu_without_pivoting", "nested_dissection", "PermutedLU", "sparse_lu"]


def nested_dissection(M: sparse.spmatrix) -> np.ndarray:
    """METIS nested-dissection order (pymetis) of the pattern of ``|M| + |M^T|``.

    METIS re-installs the ``SIGTERM``/``SIGABRT`` handlers with ``SA_RESTART``, after which
    ``SIGTERM`` no longer interrupts a blocking wait: the call runs inside
    :func:`crnfb.feedback.numerics.signals_guard.python_signals`, which restores Python's handlers.
    """
    import pymetis  # only large systems need it

    G = (abs(M) + abs(M.T)).tocsr()
    G.setdiag(0)
    G.eliminate_zeros()
    adjacency = pymetis.CSRAdjacency(adj_starts=G.indptr, adjacent=G.indices)
    with python_signals():
        order = pymetis.nested_dissection(adjacency)[0]
    return np.asarray(order)


def lu_without_pivoting(M: sparse.spmatrix):
    """SuperLU of ``M`` in its given order, no row pivoting: for column diagonally dominant
    generator blocks (non-negative off-diagonal rates, columns summing to at most zero), which
    elimination keeps so, also with ``jw`` added on the diagonal."""
    return splu(sparse.csc_matrix(M), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                options=dict(SymmetricMode=True))


def lu_in_order(M: sparse.spmatrix, dominant: bool):
    """SuperLU of ``M`` in its given (fill-reducing) order: without row pivoting when ``M`` is column
    diagonally dominant (:func:`lu_without_pivoting`), else with threshold pivoting that prefers the
    diagonal (a shift past a generator's eigenvalue, a loop Jacobian with its theta rows), so the
    order still sets the fill."""
    if dominant:
        return lu_without_pivoting(M)
    return splu(sparse.csc_matrix(M), permc_spec="NATURAL", diag_pivot_thresh=0.1,
                options=dict(SymmetricMode=True))


def sparse_lu(M: sparse.spmatrix, permc_spec: str | None = None):
    """Sparse LU of ``M`` (an object with ``solve``, ``L`` and ``U``): in a METIS nested-dissection
    order from ``crnfb.feedback.numerics.sizes.ND_ABOVE`` unknowns (:func:`lu_in_order`), else SuperLU in COLAMD
    order (or in ``permc_spec``'s, which also forces SuperLU at any size).

    SuperLU's own orders cost what the lattice's dimension makes them: on a five-species open chain
    (16,807 states, a 5-D lattice) minimum degree took 200 s and 12.9 M of fill where the METIS order
    took 2 s and 6.9 M (docs/decisions.md, "One sparse LU for every loop-sized matrix").
    """
    M = sparse.csc_matrix(M)
    n = M.shape[0]
    if permc_spec is None and n >= sizes.ND_ABOVE:
        perm = nested_dissection(M)
        return PermutedLU(lu_in_order(M[perm][:, perm], column_dominant(M)), perm)
    return splu(M, permc_spec=permc_spec or "COLAMD")


def inverse_operator(M: sparse.spmatrix):
    """``M^{-1}`` as a SciPy ``LinearOperator`` by one :class:`BorderedLU` (for ARPACK's ``OPinv``:
    its own ``splu`` takes COLAMD whatever the size)."""
    from scipy.sparse.linalg import LinearOperator

    lu = BorderedLU(M)
    return LinearOperator(M.shape, matvec=lu.solve, matmat=lu.solve, dtype=M.dtype)


def column_dominant(M: sparse.spmatrix) -> bool:
    """Whether every column's diagonal entry outweighs the rest of the column (weakly)."""
    M = sparse.csc_matrix(M)
    d = np.abs(M.diagonal())
    off = np.asarray(abs(M).sum(axis=0)).ravel() - d
    return bool(np.all(d > 0) and np.all(d >= off * (1 - 1e-12)))


class PermutedLU:
    """An LU of ``M[p][:, p]`` that solves with ``M`` (``L``, ``U`` are the permuted factors)."""

    def __init__(self, lu, perm: np.ndarray):
        self.lu, self.perm = lu, perm
        self.L, self.U = lu.L, lu.U

    def solve(self, R: np.ndarray) -> np.ndarray:
        out = np.empty(R.shape, dtype=np.result_type(R, self.lu.L.dtype))
        out[self.perm] = self.lu.solve(np.ascontiguousarray(R[self.perm]))
        return out


# -- a sparse block bordered by a few dense rows and columns ---------------------------------------
#: A row or column with more stored entries than this (and than ``BORDER_SQRT * sqrt(n)``) goes to the border.
BORDER_MIN_NNZ = 64
BORDER_SQRT = 2.0
#: Above this share of the size a border is not worth it: plain sparse LU.
BORDER_MAX_SHARE = 0.2


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
        ``BORDER_MAX_SHARE * n``: no border, :func:`sparse_lu` of ``M`` (from ``sizes.ND_ABOVE``
        unknowns in a METIS order kept in the layout, once per pattern).
    permc_spec : str or None
        SuperLU column ordering of the sparse block (None: by its size, :func:`sparse_lu`).
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
            if s.size > BORDER_MAX_SHARE * n:
                s = np.zeros(0, int)
            if s.size == 0 and (permc_spec is not None or n < sizes.ND_ABOVE):
                self.border, self.layout = np.zeros(0, int), None
                self._lu = sparse_lu(M, permc_spec)
                return
            layout = BorderLayout(M, s)
        self.layout = layout
        self.border, self.rest = layout.border, layout.rest
        if not self.border.size:
            # no dense line: the whole matrix in the layout's METIS order, computed once per pattern (a
            # loop whose theta columns are sparse, e.g. 205 learned species each in 1/200 of the states:
            # METIS on every Newton matrix of the episode had cost 19 s of a 25 s integration)
            self._lu = (PermutedLU(lu_in_order(layout.permuted(M), column_dominant(M)), layout.perm)
                        if layout.perm is not None else sparse_lu(M, permc_spec))
            return
        A, B, self._C, D = layout.blocks(M)
        if layout.perm is not None and permc_spec is None:
            self._lu = PermutedLU(lu_in_order(layout.permuted(M), column_dominant(A)), layout.perm)
        else:
            self._lu = sparse_lu(A, permc_spec)
        self._A_data, self._B = A.data, B      # fresh gathers of M.data (no copy): what with_border_rows must find unchanged
        self._Z = self._lu.solve(B)
        self._schur(D)

    def _schur(self, D: np.ndarray) -> None:
        self._S = scipy.linalg.lu_factor(D - self._C @ self._Z, check_finite=False)
        self._getrs = zgetrs if np.iscomplexobj(self._S[0]) else dgetrs

    def with_border_rows(self, M) -> "BorderedLU":
        """The factorisation of ``M``, a matrix that differs from this one in its border rows only
        (e.g. the loop's theta rows scaled by a learning-rate factor): the sparse block's LU and
        ``Z = A^{-1} B`` are reused, only the ``s x s`` Schur complement is refactorised.

        Raises
        ------
        ValueError
            If ``M`` has another pattern or another sparse block.
        """
        M = sparse.csc_matrix(M)
        if not self.border.size or self.layout is None or not self.layout.matches(M):
            raise ValueError("with_border_rows needs a bordered factorisation and a matrix of the same pattern")
        A, B, C, D = self.layout.blocks(M)
        if not np.array_equal(A.data, self._A_data) or not np.array_equal(B, self._B):
            raise ValueError("with_border_rows: the sparse block differs (only the border rows may change)")
        new = object.__new__(BorderedLU)
        new.__dict__.update(self.__dict__)
        new._C = C
        new._schur(D)
        return new

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
