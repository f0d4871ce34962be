"""Fill-reducing orders and unpivoted sparse LU for generator blocks.

Shared by the ODE integrator's Newton matrices (:mod:`crnfb.feedback.bdf`),
the slow-mode solver and the frequency responses of large plants. A
master-equation generator has non-negative rates off the diagonal and
columns summing to zero, so ``c I - A`` (``c > 0``, or ``c = jw`` with ``w != 0``)
is column diagonally dominant and Gaussian elimination needs no row
pivoting; the column order can then be fixed once per sparsity pattern.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from .signals_guard import python_signals

__all__ = ["column_dominant", "lu_without_pivoting", "nested_dissection", "PermutedLU"]


def nested_dissection(M: sparse.spmatrix) -> np.ndarray:
    """METIS nested-dissection order (pymetis) of the pattern of ``|M| + |M^T|``.

    METIS re-installs the ``SIGTERM``/``SIGABRT`` handlers with ``SA_RESTART``, after which
    ``SIGTERM`` no longer interrupts a blocking wait: the call runs inside
    :func:`crnfb.feedback.signals_guard.python_signals`, which restores Python's handlers.
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
