"""The full learning loop linearised at its fixed point (docs/theory.md §4-5; the fixed point itself is
found by :func:`crnfb.analysis.linear.fixedpoints.loop_fixed_point`).

The loop's Jacobian comes from :meth:`crnfb.feedback.dynamics.ensembles.LearningNetwork.jacobian`
(analytic, sparse). Structural modes are removed by restricting to the
invariant subspace ``ker W``, where ``W`` stacks the rows ``1^T`` of each
ensemble (probability normalisation) and ``n_k^T E^{-1}`` of the neutral
theta directions (``L E^{-1} theta`` is conserved by the loop); ``W J = M W``.
Coordinates are eliminated at pivots, so the reduced Jacobian
``Jr = J[rest] V`` stays sparse and ``J V = V Jr`` holds exactly: the
spectrum of ``Jr`` is that of ``J`` without the eigenvalues of ``M``, which
are zero for the free normalisation and the neutral directions and ``-gamma``
for the clamped normalisation (resets relax ``sum p_c`` to one).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import control
import numpy as np
from scipy import sparse
from scipy.linalg import qr

from crnfb.analysis.linear.fixedpoints import LoopFixedPoint, loop_fixed_point
from crnfb.analysis.linear.frequency import BrokenLoop, split_at_theta
from crnfb.analysis.linear.linblocks import linear_blocks, linear_loop, loop_transfer_blocks
from crnfb.analysis.linear.slowmodes import ReducedInverse
from crnfb.analysis.linear.stability import ModeSplit, Spectrum, flat_count, loop_spectrum, mode_split
from crnfb.feedback.numerics.sparselu import BorderLayout
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.dynamics.loop import LoopBlocks
from crnfb.feedback.model.model import Model


def _elimination(W: np.ndarray, pivots: np.ndarray, n: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Embedding ``V`` (n, n-m) of ``ker W`` eliminating ``pivots``; returns (V, rest)."""
    rest = np.setdiff1d(np.arange(n), pivots)
    Wp = W[:, pivots]
    Wr = W[:, rest]
    dep = -np.linalg.solve(Wp, Wr)   # (m, n-m): x_piv = dep @ x_rest
    V = sparse.lil_matrix((n, rest.size))
    V[rest, np.arange(rest.size)] = 1.0
    V = V.tocsr()
    Vd = sparse.csr_matrix((dep.ravel(), (np.repeat(pivots, rest.size), np.tile(np.arange(rest.size), len(pivots)))),
                           shape=(n, rest.size))
    Vd.eliminate_zeros()
    return (V + Vd).tocsr(), rest


@dataclass(frozen=True, eq=False)
class LinearLoop:
    """The loop linearised at its fixed point, with structural zeros removed.

    Attributes
    ----------
    net : LearningNetwork
    fixed_point : LoopFixedPoint
    J : csr_matrix      full Jacobian (n, n)
    B : ndarray         input vector for the mixing weight ``a`` (n,)
    V : csr_matrix      embedding of the invariant subspace (n, r)
    rest : ndarray      kept coordinates (``Jr = J[rest] V``)
    removed : dict      counts of removed zero modes: ``normalisation``, ``neutral``
    W : ndarray         the constraints (m, n) whose kernel is the invariant subspace
    """

    net: LearningNetwork
    fixed_point: LoopFixedPoint
    J: sparse.csr_matrix
    B: np.ndarray
    V: sparse.csr_matrix
    rest: np.ndarray
    removed: dict
    W: np.ndarray | None = None

    @cached_property
    def Jr(self) -> sparse.csr_matrix:
        """Reduced Jacobian on the invariant subspace (sparse)."""
        return (self.J[self.rest] @ self.V).tocsr()

    # -- what the analyses derive from the loop, each computed once on first use and shared --------
    @cached_property
    def flat_count(self) -> int:
        """Flat directions of ``D(Q||P)`` at the quasi-static optimum (:func:`crnfb.analysis.linear.stability.flat_count`)."""
        return flat_count(self)

    @cached_property
    def spectrum(self) -> Spectrum:
        """The reduced loop's eigenvalues (:func:`crnfb.analysis.linear.stability.loop_spectrum`: every mode when
        dense, else the slowest :data:`~crnfb.analysis.linear.stability.SPARSE_COUNT`)."""
        return loop_spectrum(self)

    @cached_property
    def modes(self) -> ModeSplit:
        """:attr:`spectrum` split into flat modes and the rest with the one zero tolerance
        (:func:`crnfb.analysis.linear.stability.mode_split`)."""
        return mode_split(self, self.spectrum)

    @cached_property
    def reduced_inverse(self) -> ReducedInverse:
        """``Jr^{-1}`` by block elimination (:class:`crnfb.analysis.linear.slowmodes.ReducedInverse`); RuntimeError
        (not kept) when an ensemble generator is singular."""
        return ReducedInverse(self)

    @cached_property
    def shifted_layout(self) -> BorderLayout:
        """Where the entries of ``J - s I`` go in a :class:`~crnfb.feedback.numerics.sparselu.BorderedLU` with the theta
        border: one sparsity pattern for every shift and learning-rate factor, so inverse iterations at
        many shifts (:func:`crnfb.analysis.analyses.margins.eigenvalue_near`) share it."""
        n = self.J.shape[0]
        n_p = self.net.n_f + self.net.n_c
        M = (self.J.astype(complex) - 1j * sparse.identity(n, dtype=complex, format="csc")).tocsc()
        return BorderLayout(M, np.arange(n_p, n))

    @cached_property
    def broken(self) -> BrokenLoop:
        """The loop broken at theta, split into plant and controller
        (:func:`crnfb.analysis.linear.frequency.broken_loop`), built once and shared by the analyses."""
        return split_at_theta(self)

    @cached_property
    def Br(self) -> np.ndarray:
        return self.B[self.rest]

    def output(self, name: str) -> sparse.csr_matrix:
        """Reduced output map for ``m_f``, ``m_c``, ``e`` (= m_c - m_f) or ``theta``.

        Under equilibrium clamping ``m_c`` is a static function of theta and a:
        its map includes ``d m_c/d theta`` on the theta coordinates (the
        feedthrough from ``a`` is :meth:`feedthrough`).
        """
        net = self.net
        C = net.output_matrices()
        if name == "m_c" and not net.dynamic:
            Ct = C["theta"]
            dmc = net.clamped_mean_jacobian(self.fixed_point.theta, self.fixed_point.a)
            full = sparse.csr_matrix(dmc) @ Ct
        elif name == "e":
            return (self.output("m_c") - self.output("m_f")).tocsr()
        else:
            full = C[name]
        return (full @ self.V).tocsr()

    def feedthrough(self, name: str) -> np.ndarray:
        """Direct term from ``a`` to an output (non-zero only for m_c / e at equilibrium clamping)."""
        net = self.net
        if net.dynamic or name not in ("m_c", "e"):
            return np.zeros(net.k)
        return net.clamped_mean_sensitivity(self.fixed_point.theta)

    @property
    def n_reduced(self) -> int:
        return self.rest.size

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``(Jr, Br)`` (for small loops and python-control)."""
        return self.Jr.toarray(), self.Br.copy()

    # -- python-control views (like control.linearize, which returns a StateSpace) -------------
    def blocks(self, reduce_neutral: bool = True) -> LoopBlocks:
        """The four blocks as analytic :class:`control.StateSpace` models (:func:`~crnfb.analysis.linear.linblocks.linear_blocks`)."""
        return linear_blocks(self, reduce_neutral)

    def state_space(self, reduce_neutral: bool = True, name: str = "learning_loop_lin") -> control.StateSpace:
        """The closed loop ``a -> theta, m_f, m_c, e`` (:func:`~crnfb.analysis.linear.linblocks.linear_loop`)."""
        return linear_loop(self, reduce_neutral, name)

    def loop_transfer(self, reduce_neutral: bool = True, name: str = "L") -> control.StateSpace:
        """The loop broken at theta, ``L(s)`` (:func:`~crnfb.analysis.linear.linblocks.loop_transfer_blocks`)."""
        return loop_transfer_blocks(self, reduce_neutral, name)


def linearise(model: Model, clamping: str | None = None, a: float = 0.0,
              fixed_point: LoopFixedPoint | None = None, net: LearningNetwork | None = None) -> LinearLoop:
    """Fixed point of the loop, analytic Jacobian and reduction to the invariant subspace.

    ``net``: a prepared :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork`
    (e.g. with a ``clamped_speedup``); then ``clamping`` must be None.
    """
    if net is not None and clamping is not None:
        raise ValueError("give either clamping or net, not both")
    net = net or LearningNetwork(model, clamping)
    fp = fixed_point or loop_fixed_point(model, net, a)
    J = net.jacobian(fp.x, a)
    B = net.input_vector(fp.x)
    n = net.n_states
    rows, piv = [], []
    # probability normalisation of each ensemble; pivot at the most probable state
    blocks = [(0, net.n_f)] + ([(net.n_f, net.n_c)] if net.dynamic and net.n_c else [])
    for start, size in blocks:
        w = np.zeros(n)
        w[start:start + size] = 1.0
        rows.append(w)
        piv.append(start + int(np.argmax(fp.x[start:start + size])))
    # neutral theta directions: n_k^T E^{-1} theta is conserved by the loop
    N = model.neutral
    n_neutral = N.shape[1]
    if n_neutral:
        Wt = (N / model.eps[:, None]).T
        _, _, perm = qr(Wt, pivoting=True)
        tpiv = perm[:n_neutral]
        base = net.n_f + net.n_c
        for r in range(n_neutral):
            w = np.zeros(n)
            w[base:] = Wt[r]
            rows.append(w)
        piv.extend(base + tpiv)
    W = np.array(rows)
    V, rest = _elimination(W, np.array(piv), n)
    removed = {"normalisation": len(blocks), "neutral": n_neutral}
    return LinearLoop(net, fp, J, B, V, rest, removed, W)


__all__ = ["linearise", "LinearLoop"]
