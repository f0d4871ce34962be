"""The loop's slowest modes by exact shift-invert at zero on the reduced loop (docs/theory.md §5, "Slow modes").

The full Jacobian has the block form ``J = [[A, B], [C, D]]``: ``A`` the two
ensembles' generators (block diagonal, large, sparse), ``D`` the ``k x k``
theta block, ``B`` (n x k) and ``C`` (k x n) the coupling. The reduced
Jacobian ``Jr`` is ``J`` on its invariant subspace ``ker W`` (structural
modes removed, :mod:`crnfb.analysis.linear.linearise`). ``Jr^{-1}`` is applied by
block elimination with one sparse LU of each ensemble generator and the
``r x r`` Schur complement on the identifiable theta directions:

* ``A_f`` is singular (``1^T A_f = 0``) but ``ker W`` asks ``1^T y_f = 0``, and
  every right-hand side there has zero total: its pivot row is replaced by
  ``e_piv^T`` and the solution shifted along ``pi_f`` back to zero total;
* the Schur complement ``S_0 = D - C A^{-1} B`` (the quasi-static loop) is
  singular on the neutral directions; on ``ker W`` theta lies in
  ``range(E U)`` (``U`` the identifiable directions) and so does every
  right-hand side, so it is solved as ``(E U)^+ S_0 E U``.

Arnoldi on ``Jr^{-1}`` (shift zero, exactly on the reduced loop) separates the
slow learning modes by their size (``1/s`` spans orders of magnitude), while
the old shift ``sigma`` just right of the structural zeros mapped the whole
cluster ``|s| << sigma`` onto ``~ -1/sigma``. Krylov starts from the
quasi-static slow subspace ``[-A^{-1} B w; w]`` (eigenvectors ``w`` of ``S_0``).

Under dynamic clamping ``-gamma`` is an eigenvalue of ``J`` once per connected
component of the hidden-jump graph on the clamped states: the component's
indicator ``u`` (on ``p_c``) is a left eigenvector (``u^T A_c = -gamma u^T``,
and ``u^T B_c = 0`` because ``u^T A_c(theta) = -gamma u^T`` for every theta).
The complement ``{x: u^T x_c = 0 for all components}`` is invariant, the
Krylov start lies in it, and the ``-gamma`` copies (one fewer in ``Jr``: the
clamped normalisation is structural) are added exactly, with their multiplicity.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator, splu

from crnfb.feedback.numerics.sparselu import BorderedLU, sparse_lu
from crnfb.feedback.numerics import sizes

__all__ = ["ReducedInverse", "reduced_solve", "ShiftedReduced"]


class ReducedInverse:
    """``Jr`` and ``Jr^{-1}`` of a :class:`~crnfb.analysis.linear.linearise.LinearLoop` as matrix-free operators.

    Attributes
    ----------
    op : LinearOperator     ``x_r -> Jr^{-1} x_r`` (reduced coordinates, ``loop.rest`` order)
    jr : LinearOperator     ``x_r -> Jr x_r``
    seed : ndarray          reduced coordinates of the quasi-static slow modes (r, q), slowest first
    schur_cond : float      condition number of the reduced Schur complement
    """

    def __init__(self, loop):
        net = loop.net
        nf, nc = net.n_f, net.n_c
        self.m = m = nf + nc
        self.loop = loop
        J = loop.J.tocsr()
        self.J = J
        self._solve_A = _ensemble_solver(J, loop.fixed_point.x[:nf], nf, nc)
        self.B = J[:m, m:].toarray()
        self.C = J[m:, :m].tocsr()
        D = J[m:, m:].toarray()
        self.K0 = self._solve_A(self.B)                 # A^{-1} B  (n_ens, k)
        model = net.model
        self.EU = model.eps[:, None] * model.identifiable
        self.EUp = np.linalg.pinv(self.EU)
        S0 = D - self.C @ self.K0                       # the quasi-static loop (Schur complement)
        Sr = self.EUp @ S0 @ self.EU
        self.schur_cond = float(np.linalg.cond(Sr)) if Sr.size else 1.0
        try:
            self._Sr_lu = np.linalg.inv(Sr) if Sr.size else Sr
        except np.linalg.LinAlgError:
            # exactly singular (a flat quasi-static direction): no inverse to offer; callers read schur_cond
            # and take the shift-invert fallback (numpy >= 2.4 raises here where older ones returned inf)
            self.schur_cond = math.inf
            self._Sr_lu = np.full_like(Sr, np.nan)
        self.V = loop.V.tocsr()
        self.rest = loop.rest
        r = self.rest.size
        self.op = LinearOperator((r, r), matvec=self._inv, dtype=float)
        self.jr = LinearOperator((r, r), matvec=lambda x: (J @ (self.V @ x))[self.rest], dtype=float)
        vals, W = np.linalg.eig(Sr)
        order = np.lexsort((np.abs(vals.imag), -vals.real))
        Wt = self.EU @ W[:, order]
        self.seed = np.vstack([-self.K0 @ Wt, Wt])[self.rest]
        self.quasi_static = vals[order]
        self.components = _hidden_components(net, loop.fixed_point.theta)

    def start(self, seed_count: int) -> np.ndarray:
        """Krylov start: the ``seed_count`` slowest quasi-static modes plus a fixed random part, off the ``-gamma`` modes."""
        net = self.loop.net
        nf, nc = net.n_f, net.n_c
        x = np.random.default_rng(0).standard_normal(self.J.shape[0])
        x[:nf] -= x[:nf].mean()
        if nc:
            lab = self.components
            xc = x[nf:nf + nc]
            xc -= (np.bincount(lab, weights=xc) / np.bincount(lab))[lab]
        x[self.m:] = self.EU @ (self.EUp @ x[self.m:])
        v0 = x[self.rest] / np.linalg.norm(x[self.rest])
        seed = self.seed[:, :min(seed_count, self.seed.shape[1])].real.sum(axis=1)
        return v0 + seed / np.linalg.norm(seed) if np.linalg.norm(seed) > 0 else v0

    @property
    def gamma_copies(self) -> int:
        """Multiplicity of ``-gamma`` in ``Jr`` (hidden-jump components minus the structural one)."""
        return int(self.components.max()) if self.components.size else 0

    def _inv(self, x_r: np.ndarray) -> np.ndarray:
        x = self.V @ np.ravel(x_r)                      # in ker W: zero totals, no neutral component
        m = self.m
        u = self._solve_A(x[:m, None])[:, 0]            # A^{-1} x1
        rhs = x[m:] - self.C @ u
        z = self.EU @ (self._Sr_lu @ (self.EUp @ rhs))
        y = np.concatenate([u - self.K0 @ z, z])
        return y[self.rest]


def _ensemble_solver(J: sparse.csr_matrix, pf: np.ndarray, nf: int, nc: int):
    """``R -> A^{-1} R`` for right-hand sides with zero free total (the result keeps it zero)."""
    piv = int(np.argmax(pf))
    Af = J[:nf, :nf].tocsr()
    # 1^T A_f = 0: the pivot row's equation follows from the others when 1^T R_f = 0,
    # so it is replaced by e_piv^T (a principal sub-generator: non-singular, as sparse as A_f)
    keep = np.ones(nf)
    keep[piv] = 0.0
    Afm = (sparse.diags(keep) @ Af + sparse.csr_matrix(([1.0], ([piv], [piv])), shape=(nf, nf))).tocsc()
    lu_f = sparse_lu(Afm)
    pi = pf / pf.sum()
    lu_c = sparse_lu(J[nf:nf + nc, nf:nf + nc]) if nc else None

    def solve(R: np.ndarray) -> np.ndarray:
        Rf = np.array(R[:nf], dtype=float)
        Rf[piv] = 0.0
        xf = lu_f.solve(Rf)
        xf -= np.outer(pi, xf.sum(axis=0))   # A_f pi = 0: back onto 1^T x = 0
        if lu_c is None:        # no clamped block (nc = 0)
            return xf
        return np.vstack([xf, lu_c.solve(np.ascontiguousarray(R[nf:nf + nc], dtype=float))])

    return solve


def _hidden_components(net, theta: np.ndarray) -> np.ndarray:
    """Connected-component label of each clamped state in the hidden-jump graph (empty without p_c)."""
    if not (net.dynamic and net.n_c):
        return np.zeros(0, dtype=np.int64)
    _, lab = connected_components(net.hidden_generator(theta), directed=False)
    return lab.astype(np.int64)


#: Iterative refinement of :class:`ShiftedReduced` solves: relative residual target and most steps.
REFINE_TOL = 1e-13
REFINE_STEPS = 3


class ShiftedReduced:
    """``(Jr - s I)^{-1}`` and its transpose (``s`` real or complex, not an eigenvalue of ``Jr``).

    The reduction eliminates one pivot per conservation law and leaves the
    pivot's column entries in every row it touched: a few dense rows, besides
    the theta rows and columns. SuperLU of ``Jr`` as a whole fills along them
    (at 10^4 states: 26 s and 54 M entries of fill); the bordered LU
    (:class:`crnfb.feedback.numerics.sparselu.BorderedLU`) puts every dense line in a small
    Schur complement and factorises the sparse rest (0.4-0.9 s, 2-3 M).
    It factorises ``Jr`` itself: the full Jacobian would add the structural
    zeros, ``|s|`` from the shift, and for the slow shifts of the validation
    (``|s| ~ 4e-9``) rounding along them grew without bound. Each solve is
    refined on its residual (at most ``REFINE_STEPS`` times, to ``REFINE_TOL``).
    """

    def __init__(self, loop, s: complex):

        Jr = loop.Jr.tocsc()
        n = Jr.shape[0]
        dtype = complex if np.iscomplexobj(s) and complex(s).imag != 0 else float
        self.s = s if dtype is complex else float(np.real(s))
        self.M = (Jr.astype(dtype) - self.s * sparse.identity(n, dtype=dtype, format="csc")).tocsc()
        self._lu = BorderedLU(self.M)
        self._luT: BorderedLU | None = None

    @staticmethod
    def _refined(M, once, b: np.ndarray) -> np.ndarray:
        x = once(b)
        nb = np.linalg.norm(b)
        for _ in range(REFINE_STEPS):
            r = b - M @ x
            if np.linalg.norm(r) <= REFINE_TOL * nb:
                break
            x = x + once(r)
        return x

    def solve(self, y_r: np.ndarray) -> np.ndarray:
        """``(Jr - s I)^{-1} y_r`` (vector or columns)."""
        return self._refined(self.M, self._lu.solve, np.asarray(y_r))

    def solve_T(self, z: np.ndarray) -> np.ndarray:
        """``(Jr - s I)^{-T} z`` (vector or columns)."""

        if self._luT is None:
            self._luT = BorderedLU(self.M.T.tocsc())
        return self._refined(self.M.T, self._luT.solve, np.asarray(z))


def reduced_solve(loop, b: np.ndarray) -> np.ndarray:
    """``Jr^{-1} b`` (reduced coordinates): block elimination (:attr:`LinearLoop.reduced_inverse`, built once per loop) on
    large loops, else the bordered LU of ``Jr`` (:class:`ShiftedReduced` at 0) when the quasi-static Schur
    complement is singular; SuperLU of ``Jr`` on small loops."""
    b = np.asarray(b, float)
    if loop.n_reduced > sizes.STABILITY_DENSE_LIMIT:
        try:
            ri = loop.reduced_inverse
        except RuntimeError:
            ri = None
        if ri is not None and np.isfinite(ri.schur_cond) and ri.schur_cond <= 1e12:
            if b.ndim == 1:
                return ri.op.matvec(b)
            return np.column_stack([ri.op.matvec(b[:, j]) for j in range(b.shape[1])])
        return ShiftedReduced(loop, 0.0).solve(b)      # SuperLU of the whole Jr fills along its dense rows
    return splu(loop.Jr.tocsc()).solve(b)
