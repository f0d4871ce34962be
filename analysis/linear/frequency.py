"""Frequency responses of the reduced learning loop (docs/theory.md §5).

Shared by :mod:`crnfb.analysis.analyses.margins` and :mod:`crnfb.analysis.analyses.disturbance`. Everything
is evaluated from the sparse reduced Jacobian of
:class:`crnfb.analysis.linear.linearise.LinearLoop` with one sparse LU factorisation per
frequency (no polynomial transfer functions: those break at ~100 states,
notes/python-control-0.10.md).

Block structure
---------------
Split the reduced state into ensemble coordinates ``x_p`` (free, and under
dynamic clamping clamped copies; normalisation eliminated) and the learned
parameters ``theta``. With theta frozen the ensembles obey::

    dx_p/dt = A x_p + B_theta dtheta + B_a a
    m_f     = C_mf x_p
    m_c     = C_mc x_p + D_mc dtheta + D_a a         (e = m_c - m_f, C_e = C_mc - C_mf)

``B_theta`` acts on the *full* learned theta (k columns); ``D_mc = d m_c/d
theta`` and ``D_a`` (the feedthrough of ``a``) are non-zero only under
equilibrium clamping. Hence the plant broken at theta::

    P_f(s) = C_mf (sI - A)^{-1} B_theta,   P_c(s) = C_mc (sI - A)^{-1} B_theta + D_mc
    P(s) = P_f(s) - P_c(s)
    G_frozen(s) = C_e (sI - A)^{-1} B_a + D_a          (theta held fixed)
    e = G_frozen a - P theta,   dtheta/dt = E e

The conservation laws give ``N^T P = 0`` and ``N^T G_frozen = 0`` (the
conserved totals are the same in every copy), so ``theta - theta*`` stays
in ``range(E^{1/2} U)``, ``U`` the orthonormal complement of ``E^{-1/2} N``.
In the identifiable coordinates ``x = U^T E^{-1/2} (theta - theta*)``,
``W = E^{1/2} U``::

    dx/dt = W^T e,    M(s) = W^T P(s) W,    L_id(s) = M(s) / s
    S_id = (I + L_id)^{-1} = s (sI + M)^{-1}
    G_a->x = (sI + M)^{-1} W^T G_frozen,  G_a->theta = W G_a->x
    G_ae = G_frozen - P W G_a->x

``L_id`` is the exact loop transfer in those coordinates (its eigenvalues
are the non-zero ones of ``E P / s``); for one learned species without
neutral directions it is the classical ``L(s) = eps (P_f - P_c)/s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from crnfb.analysis.linear.plantrom import ROM_TOL, PlantROM, build_rom, modal_model, symmetric_plant
from crnfb.analysis.linear.slowmodes import ShiftedReduced, reduced_solve
from crnfb.feedback.model.landscape import identifiable_basis
from crnfb.feedback.numerics.sparselu import inverse_operator, lu_without_pivoting, nested_dissection
from crnfb.feedback.numerics import sizes

if TYPE_CHECKING:  # pragma: no cover
    from crnfb.analysis.linear.linearise import LinearLoop     # the loop holds its BrokenLoop: linearise imports this

#: The frequency grid of docs/cli.md (bandwidth); other grids extend it.
SPEC_OMEGA = np.logspace(-4, 3, 2000)
POINTS_PER_DECADE = 2000 / 7.0
#: Single frequencies (root searches) stop being kept in a plant's table of responses past this size:
#: grids are always kept (margins, disturbance and figures read them); with 205 learned parameters an
#: entry is 1.3 MB and the searches evaluate thousands of frequencies once each.
RESPONSE_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True, kw_only=True)
class LoopResponse:
    """Frequency responses of one loop on a grid (index 0 of every array: frequency).

    Attributes
    ----------
    omega : ndarray (nw,)
    P : ndarray (nw, k, k)          ``P_f - P_c`` (full learned theta -> full e)
    P_f, P_c : ndarray (nw, k, k)   theta -> m_f (free ensemble), theta -> m_c (clamped)
    G_frozen : ndarray (nw, k)      a -> e with theta held fixed
    L : ndarray (nw, r, r)          ``L_id`` (identifiable, E^{1/2}-scaled coordinates)
    S : ndarray (nw, r, r)          ``(I + L_id)^{-1}``
    G_ae : ndarray (nw, k)          closed loop a -> e
    G_atheta : ndarray (nw, k)      closed loop a -> theta
    """

    omega: np.ndarray
    P: np.ndarray
    G_frozen: np.ndarray
    L: np.ndarray
    S: np.ndarray
    G_ae: np.ndarray
    G_atheta: np.ndarray
    P_f: np.ndarray | None = None
    P_c: np.ndarray | None = None
    eps: np.ndarray | None = None

    @property
    def L_full(self) -> np.ndarray:
        """``E (P_f - P_c) / s`` in learned coordinates (nw, k, k), neutral directions included."""
        if self.eps is None:
            raise ValueError("L_full needs the learning rates (eps) of the response")
        s = 1j * self.omega
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.eps[None, :, None] * self.P / s[:, None, None]

    def frd(self, name: str):
        """``control.FrequencyResponseData`` of ``"P"``, ``"P_f"``, ``"P_c"``, ``"L"``, ``"L_full"``,
        ``"S"``, ``"T"``, ``"G_ae"``, ``"G_frozen"`` or ``"G_atheta"`` (one input for the a-responses)."""
        import control

        if name == "T":
            data = np.eye(self.S.shape[1])[None] - self.S
        else:
            data = getattr(self, name)
        if data.ndim == 2:       # (nw, k): one input a
            data = data[:, :, None]
        return control.FrequencyResponseData(np.moveaxis(data, 0, -1), self.omega)

    @cached_property
    def loci(self) -> np.ndarray:
        """The characteristic loci: eigenvalues of ``L_id(jw)`` (nw, r), unordered, computed once per
        response (the margins' Nyquist crossings and the Nyquist figure read the same)."""
        return np.linalg.eigvals(self.L)

    @property
    def siso(self) -> bool:
        """One identifiable direction: ``L`` is a scalar transfer (phase margin defined)."""
        return self.L.shape[1] == 1

    @property
    def gain_ratio(self) -> np.ndarray:
        """``|G_ae(jw)| / |G_frozen(jw)|`` (Euclidean norms; NaN where the frozen response vanishes)."""
        num = np.linalg.norm(self.G_ae, axis=1)
        den = np.linalg.norm(self.G_frozen, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, np.nan)


@dataclass(frozen=True, eq=False)
class BrokenLoop:
    """The loop broken at theta: ensemble plant and integral controller as sparse matrices
    for frequency sweeps (module docstring). Not to be confused with
    :class:`crnfb.feedback.dynamics.loop.LoopBlocks`, the same loop as python-control systems.

    Build with :func:`broken_loop`. ``gains`` scale the learning rates
    (``E -> diag(gains) E``) without touching the plant.
    """

    loop: LinearLoop
    A: sparse.csc_matrix        # (n_p, n_p) ensemble dynamics at frozen theta
    B_theta: np.ndarray         # (n_p, k)
    B_a: np.ndarray             # (n_p,)
    C_mf: sparse.csr_matrix     # (k, n_p)
    C_mc: sparse.csr_matrix     # (k, n_p) zero under equilibrium clamping
    D_mc: np.ndarray            # (k, k)
    D_a: np.ndarray             # (k,)
    eps: np.ndarray             # (k,) learning rates (possibly scaled)
    neutral: np.ndarray         # (k, n_neutral) orthonormal neutral directions N
    full: tuple | None = None   # (A, rhs, C_mf, C_mc) in full copy-state coordinates (see plants)
    plant_of: "BrokenLoop | None" = field(default=None, repr=False)   # scaled(): the loop whose plant this is
    _responses: dict = field(default_factory=dict, init=False, repr=False)  # w -> plants at w (plants())

    @property
    def _plant(self) -> "BrokenLoop":
        """The unscaled loop that owns this plant's derived quantities (responses, reduced model, rate
        range): they do not depend on the learning rates, so :meth:`scaled` copies share them."""
        return self if self.plant_of is None else self.plant_of

    @property
    def k(self) -> int:
        return self.B_theta.shape[1]

    @property
    def n_p(self) -> int:
        return self.A.shape[0]

    @cached_property
    def U(self) -> np.ndarray:
        """Orthonormal complement of ``E^{-1/2} N`` (k, r)."""
        return identifiable_basis(self.neutral, self.k, self.eps)

    @cached_property
    def W(self) -> np.ndarray:
        """``E^{1/2} U``: identifiable coordinates -> theta."""
        return np.sqrt(self.eps)[:, None] * self.U

    @property
    def r(self) -> int:
        """Number of identifiable directions (size of ``L_id``)."""
        return self.U.shape[1]

    @property
    def has_disturbance(self) -> bool:
        return bool(np.any(self.B_a != 0) or np.any(self.D_a != 0))

    def scaled(self, gains) -> "BrokenLoop":
        """Same plant, learning rates ``gains * eps`` (scalar or per species)."""
        g = np.broadcast_to(np.asarray(gains, float), self.eps.shape)
        return BrokenLoop(self.loop, self.A, self.B_theta, self.B_a, self.C_mf, self.C_mc, self.D_mc, self.D_a,
                          self.eps * g, self.neutral, self.full, self._plant)

    # -- evaluation --------------------------------------------------------------------------
    @cached_property
    def _pattern(self):
        """``-A`` with a stored diagonal (reduced coordinates)."""
        return _shift_pattern(self.A)

    @cached_property
    def _pattern_full(self):
        """``-A`` with a stored diagonal (full copy-state coordinates)."""
        return _shift_pattern(self.full[0])

    @cached_property
    def _blocks_full(self) -> "BlockShiftedLU | None":
        """Block-wise factoriser of the full plant above :data:`crnfb.feedback.numerics.sizes.BLOCK_PLANT` copy states
        (else None)."""
        if self.full is None or self.full[0].shape[0] <= sizes.BLOCK_PLANT:
            return None
        net = self.loop.net
        return BlockShiftedLU.build(self.full[0], [0, net.n_f, net.n_f + net.n_c])

    def shifted_lu(self, w: float, *, full: bool = False):
        """Sparse LU of ``jw I - A``: the one shifted solve of the plant (responses, noise spectra).

        ``full=True`` factors the plant in full copy-state coordinates (:attr:`full`; its generators are
        banded where the reduced ``A`` has the pivots' dense rows), else in reduced coordinates.
        """
        return shifted_lu(self._pattern_full if full else self._pattern, w)

    @cached_property
    def inputs(self) -> np.ndarray:
        """``[B_theta, B_a]`` as one complex array (n_p, k + 1): the right-hand sides of the shifted solves."""
        return np.column_stack([self.B_theta, self.B_a]).astype(complex)

    @property
    def C_e(self) -> sparse.csr_matrix:
        """``C_mc - C_mf``: ensemble coordinates -> e."""
        return (self.C_mc - self.C_mf).tocsr()

    def plants(self, omega) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(P_f(jw), P_c(jw), G_frozen(jw))``, shapes (nw, k, k) twice and (nw, k): one sparse LU per frequency."""
        omega = np.atleast_1d(np.asarray(omega, float))
        k = self.k
        Pf = np.empty((omega.size, k, k), complex)
        Pc = np.empty((omega.size, k, k), complex)
        G = np.empty((omega.size, k), complex)
        rhs = self.inputs
        dynamic_c = self.C_mc.nnz > 0
        table = self._plant._responses       # each frequency solved once per plant
        keep = omega.size > 1 or len(table) * 2 * k * k * 16 < RESPONSE_CACHE_BYTES
        for i, w in enumerate(omega):
            hit = table.get(float(w))
            if hit is None:
                hit = self._plants_at(float(w), rhs, dynamic_c)
                if keep:
                    table[float(w)] = hit
            Pf[i], Pc[i], G[i] = hit
        return Pf, Pc, G

    @property
    def rom(self) -> "PlantROM | None":
        """The verified reduced model of the full plant (:mod:`crnfb.analysis.linear.plantrom`), built on first use
        above :data:`crnfb.feedback.numerics.sizes.ROM_PLANT` states; None for smaller plants, without detailed
        balance, or when the model did not verify (then every frequency is solved exactly; :attr:`plant_model` says why)."""
        rom = self._rom_attempt[0]
        return rom if rom is not None and rom.verified else None

    @cached_property
    def _rom_attempt(self) -> tuple:
        """``(model or None, reason or None)``, built once per plant (shared by :meth:`scaled` copies)."""
        if self.plant_of is not None:
            return self.plant_of._rom_attempt
        if self.full is None or self.n_p <= sizes.ROM_PLANT:
            return None, None
        return _plant_rom(self)

    @cached_property
    def symmetric(self):
        """The full plant in detailed-balance coordinates (:func:`crnfb.analysis.linear.plantrom.symmetric_plant`),
        outputs ``m_f`` and ``e``; None without a full plant or detailed balance. Built once per plant."""
        return self._plant._symmetric_form()

    @cached_property
    def rate_range(self) -> tuple[float, float] | None:
        """Smallest and largest non-zero ``|eig(A)|`` of the ensemble plant (:func:`_plant_rate_range`),
        computed once per plant."""
        return self.plant_of.rate_range if self.plant_of is not None else _plant_rate_range(self)

    def _symmetric_form(self):
        """:attr:`symmetric`, computed."""
        if self.full is None:
            return None
        net = self.loop.net
        A, rhs, Cf, Cc = self.full
        pi = net.free_stationary(self.loop.fixed_point.theta)
        weight = np.concatenate([pi, pi[net.clamped_states]]) if net.dynamic else pi
        cuts = [0, net.n_f, net.n_f + net.n_c] if net.dynamic else [0, net.n_f]
        rhs = rhs.real if not np.any(rhs.imag) else rhs      # stored complex for the exact solves
        return symmetric_plant(A, rhs, sparse.vstack([Cf, Cc - Cf]).tocsr(), weight, cuts)

    @property
    def plant_model(self) -> dict:
        """How the plant's frequency responses are computed, for the report (``margins.plant_model``)."""
        rom, reason = self._rom_attempt
        if rom is not None and rom.verified:
            return {"method": "reduced model", **rom.to_dict()}
        out = {"method": "exact", "reason": reason or f"{self.n_p} plant states (a reduced model is built above "
                                                     f"{sizes.ROM_PLANT})"}
        if rom is not None:
            out["reduced_model"] = rom.to_dict()
        return out

    def closed_loop_model(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(A, B, C)``: the closed loop ``a -> theta`` with the plant replaced by its verified reduced model
        (None without one). States: the model's ``m`` modes, then the ``k`` learned parameters::

            d xi/dt    = Lambda xi + B_r[:, theta] theta + B_r[:, a] a
            d theta/dt = E (C_r[e] xi + D_mc theta + D_a a)

        Its transfer equals the loop's wherever the plant model does (to its verified error).
        """
        rom = self.rom
        if rom is None:
            return None
        k, m = self.k, rom.order
        E = np.diag(self.eps)
        Ce = rom.C_r[k:].real
        A = np.block([[np.diag(rom.lam), rom.B_r[:, :k]], [E @ Ce, E @ self.D_mc]])
        B = np.concatenate([rom.B_r[:, k], self.eps * self.D_a])[:, None]
        C = np.hstack([np.zeros((k, m)), np.eye(k)])
        return A, B, C

    def _plants_at(self, w: float, rhs: np.ndarray, dynamic_c: bool):
        k = self.k
        rom = self.rom       # w = 0 included: below its lowest anchor the plant is flat to 1e-9
        if rom is not None:
            Y = rom(w)      # rows m_f then e = m_c - m_f; columns theta then a
            Yf, Ye = Y[:k], Y[k:]
            return Yf[:, :k], Ye[:, :k] + Yf[:, :k] + self.D_mc, Ye[:, k] + self.D_a
        if self.n_p:
            if self.full is not None and w != 0.0 and self.n_p > sizes.LARGE_PLANT:
                # the generators' columns sum to zero and every input is tangent to the
                # simplices, so at w != 0 the full solve equals V times the reduced one;
                # the full generators are banded, the reduced A has the pivots' dense rows.
                # Only for large plants: near w = 0 the full matrix is nearly singular (its
                # zero eigenvalue), which moved E3's low-frequency lag cost by 3e-6 relative.
                _, rhs_f, Cf_f, Cc_f = self.full
                X = (self._blocks_full.solve(w, rhs_f) if self._blocks_full is not None
                     else self.shifted_lu(w, full=True).solve(rhs_f))
                Yf = Cf_f @ X
                Yc = Cc_f @ X if dynamic_c else np.zeros_like(Yf)
            else:
                X = self.shifted_lu(w).solve(rhs)
                Yf = self.C_mf @ X
                Yc = self.C_mc @ X if dynamic_c else np.zeros_like(Yf)
        else:
            Yf = Yc = np.zeros((k, k + 1), complex)
        return Yf[:, :k], Yc[:, :k] + self.D_mc, Yc[:, k] - Yf[:, k] + self.D_a

    def open_loop(self, omega) -> tuple[np.ndarray, np.ndarray]:
        """``(P(jw), G_frozen(jw))`` with ``P = P_f - P_c``: shapes (nw, k, k), (nw, k).

        With a reduced model, a frequency not already solved takes only the model's ``e`` rows
        (``P = -Y_e - D_mc``): half the product of :meth:`plants`, for the margins' refinements.
        """
        omega = np.atleast_1d(np.asarray(omega, float))
        rom = self.rom
        if rom is None:
            Pf, Pc, G = self.plants(omega)
            return Pf - Pc, G
        k = self.k
        P = np.empty((omega.size, k, k), complex)
        G = np.empty((omega.size, k), complex)
        table = self._plant._responses
        for i, w in enumerate(omega):
            hit = table.get(float(w))
            if hit is not None:
                P[i], G[i] = hit[0] - hit[1], hit[2]
            else:
                Ye = rom(float(w), rows=slice(k, None))     # rows e = m_c - m_f (see _plants_at)
                P[i], G[i] = -Ye[:, :k] - self.D_mc, Ye[:, k] + self.D_a
        return P, G

    def loop_transfer(self, omega) -> np.ndarray:
        """``L_id(jw) = W^T P(jw) W / (jw)`` alone (nw, r): what the Nyquist refinements need of a response."""
        omega = np.atleast_1d(np.asarray(omega, float))
        P, _ = self.open_loop(omega)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.W.T @ P @ self.W) / (1j * omega)[:, None, None]

    def response(self, omega) -> LoopResponse:
        """All loop responses on ``omega`` (see :class:`LoopResponse`)."""
        omega = np.atleast_1d(np.asarray(omega, float))
        Pf, Pc, G = self.plants(omega)
        P = Pf - Pc
        W = self.W
        r = self.r
        s = 1j * omega
        M = W.T @ P @ W           # W^T P W per frequency (batched BLAS; a three-operand einsum is O(k^4) a frequency)
        I = np.eye(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            L = M / s[:, None, None]
        K = s[:, None, None] * I[None] + M                  # sI + M
        S = s[:, None, None] * np.linalg.inv(K)
        x = np.linalg.solve(K, np.einsum("ki,wk->wi", W, G)[..., None])[..., 0]
        G_at = x @ W.T
        G_ae = G - np.einsum("wkl,wl->wk", P, G_at)
        return LoopResponse(omega=omega, P=P, G_frozen=G, L=L, S=S, G_ae=G_ae, G_atheta=G_at, P_f=Pf, P_c=Pc,
                            eps=self.eps)

    def loop_eigenvalues(self, omega) -> np.ndarray:
        """Eigenvalues of ``L_id(jw)`` (nw, r)."""
        return self.response(omega).loci

    # -- dense state-space forms (small loops; python-control cross-checks) ----------------------
    def loop_ss(self):
        """``L_id`` as a dense ``control.StateSpace`` (plant states then r integrators)."""
        import control

        A = self.A.toarray()
        n, r = self.n_p, self.r
        W = self.W
        AL = np.block([[A, self.B_theta @ W], [np.zeros((r, n)), np.zeros((r, r))]])
        BL = np.vstack([np.zeros((n, r)), np.eye(r)])
        CL = np.hstack([-W.T @ self.C_e.toarray(), -W.T @ self.D_mc @ W])
        return control.ss(AL, BL, CL, np.zeros((r, r)))


def _shift_pattern(A: sparse.spmatrix):
    """``-A`` in complex CSC with every diagonal entry stored, the diagonal's places in ``data``, ``-diag A``."""
    n = A.shape[0]
    M = (-A + sparse.identity(n)).astype(complex).tocsc()
    M.sort_indices()
    diag = np.empty(n, dtype=np.int64)
    for j in range(n):
        lo, hi = M.indptr[j], M.indptr[j + 1]
        diag[j] = lo + np.searchsorted(M.indices[lo:hi], j)
    return M, diag, -A.diagonal().astype(complex)


def shifted_lu(pattern, w: float):
    """Sparse LU of ``jw I - A`` from :func:`_shift_pattern` (no re-assembly per frequency)."""
    M, diag, d0 = pattern
    data = M.data.copy()
    data[diag] = d0 + 1j * w
    return splu(sparse.csc_matrix((data, M.indices, M.indptr), shape=M.shape))


class BlockShiftedLU:
    """``jw I - A`` for a block-diagonal ``A`` (the two ensembles' generators), one LU per block.

    Each block's symmetric fill-reducing order
    (:func:`crnfb.feedback.numerics.sparselu.nested_dissection`) and shifted pattern
    are computed once; per frequency only the numeric factorisation runs,
    without row pivoting (:func:`crnfb.feedback.numerics.sparselu.lu_without_pivoting`).
    """

    def __init__(self, blocks: list[tuple[int, int, np.ndarray, tuple]]):
        self.blocks = blocks

    @classmethod
    def build(cls, A: sparse.spmatrix, cuts: list[int]) -> "BlockShiftedLU | None":
        """Blocks between consecutive ``cuts``; ``None`` if ``A`` couples them."""
        A = sparse.csc_matrix(A)
        blocks = []
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if hi <= lo:
                continue
            if A[lo:hi].nnz != A[lo:hi, lo:hi].nnz or A[:, lo:hi].nnz != A[lo:hi, lo:hi].nnz:
                return None
            Ab = A[lo:hi, lo:hi].tocsc()
            perm = nested_dissection(Ab)
            blocks.append((lo, hi, perm, _shift_pattern(Ab[perm][:, perm])))
        return cls(blocks)

    def solve(self, w: float, rhs: np.ndarray) -> np.ndarray:
        """``(jw I - A)^{-1} rhs``."""
        return self._solve(1j * w, rhs, complex)

    def solve_real(self, s: float, rhs: np.ndarray) -> np.ndarray:
        """``(s I - A)^{-1} rhs`` for a real shift ``s`` (a real factorisation: about a quarter of the
        complex one's work; a complex ``rhs`` is solved as its real and imaginary parts)."""
        if np.iscomplexobj(rhs):
            return self._solve(float(s), rhs.real, float) + 1j * self._solve(float(s), rhs.imag, float)
        return self._solve(float(s), rhs, float)

    def _solve(self, shift, rhs: np.ndarray, dtype) -> np.ndarray:
        out = np.zeros(rhs.shape, dtype)
        for lo, hi, perm, (M, diag, d0) in self.blocks:
            data = M.data.astype(dtype) if dtype is complex else M.data.real.copy()
            data[diag] = (d0 if dtype is complex else d0.real) + shift
            lu = lu_without_pivoting(sparse.csc_matrix((data, M.indices, M.indptr), shape=M.shape))
            out[lo + perm] = lu.solve(np.ascontiguousarray(rhs[lo + perm].astype(dtype)))
        return out


#: The reduced plant model's anchors: one a decade from this factor below the slowest plant
#: rate to this factor above the fastest, plus :data:`ROM_FLAT` beyond both, where the
#: response is constant (below) or ``CB/(jw)`` (above) to that relative size.
ROM_MARGIN = 1e2
ROM_FLAT = 1e9


def _plant_rom(blocks: BrokenLoop) -> tuple:
    """``(model, reason)``: :func:`crnfb.analysis.linear.plantrom.build_rom` for the full plant with outputs ``m_f``
    and ``e``, or ``(None, why not)``; an unverified model comes with the reason it is not used."""
    plant = blocks.symmetric
    if plant is None:
        return None, "the ensembles' generators are not in detailed balance with the free law at the fixed point"
    rng = plant_rate_range(blocks)
    if rng is None:
        return None, "the plant's rate range could not be estimated (sparse eigenvalues did not converge)"
    lu = BlockShiftedLU.build(plant.S, plant.cuts)
    if lu is None:
        return None, "the symmetrised plant couples its ensembles' blocks"
    lo, hi = np.log10(rng[0] / ROM_MARGIN), np.log10(rng[1] * ROM_MARGIN)
    inner = np.logspace(lo, hi, int(np.ceil(hi - lo)) + 1)
    shifts = np.concatenate([[rng[0] / ROM_FLAT], inner, [rng[1] * ROM_FLAT]])
    k = blocks.k
    # each shift adds the inputs (theta and a) and the outputs' duals (m_f and e) to the basis: with many
    # learned parameters the first shifts alone span as many vectors as the plant has states, and the
    # "reduced" model would be the plant itself at the cost of dense algebra on it (205 learned: 616 a shift)
    width = (k + 1) + 2 * k
    if 100 * width * shifts.size >= sizes.ROM_BASIS_PERCENT * blocks.n_p:
        why = (f"a reduced model would not be smaller than the plant: {shifts.size} shifts of {width} "
               f"vectors each ({k} learned parameters) against {blocks.n_p} plant states")
        if blocks.n_p > sizes.MODAL_PLANT_MAX:
            return None, why + f"; no dense modal form above {sizes.MODAL_PLANT_MAX} plant states"
        rom = modal_model(plant)
        return rom, None if rom.verified else (f"{why}; the modal form's residual {rom.error:.2g} is above "
                                               f"the tolerance {ROM_TOL:g}")
    groups = [(slice(0, k), slice(0, k)), (slice(k, 2 * k), slice(0, k)), (slice(k, 2 * k), slice(k, k + 1))]
    # rate_range's lower end is the smallest non-zero |eig| found (Lanczos, tol 1e-6): a 1e-3 margin
    rom = build_rom(plant, lu.solve_real, shifts, lam_min=rng[0] * (1 - 1e-3), groups=groups)
    return rom, None if rom.verified else (f"the reduced model's error bound {rom.error:.2g} is above the "
                                           f"tolerance {ROM_TOL:g}")


def broken_loop(loop: LinearLoop) -> BrokenLoop:
    """Split a :class:`LinearLoop` into ensemble plant and controller (module docstring).

    One :class:`BrokenLoop` per loop (cached on the loop): margins,
    disturbance and the report's figures share it.
    """
    return loop.broken


def split_at_theta(loop: LinearLoop) -> BrokenLoop:
    """Build the :class:`BrokenLoop` of a loop (use :attr:`LinearLoop.broken`, built once per loop)."""
    net = loop.net
    n_p_full = net.n_f + net.n_c
    rest = loop.rest
    pos_p = np.nonzero(rest < n_p_full)[0]
    Jr = loop.Jr
    A = Jr[pos_p][:, pos_p].tocsc()
    B_theta = loop.J[rest[pos_p]][:, n_p_full:].toarray()
    B_a = np.asarray(loop.B[rest[pos_p]], float)
    Vp = loop.V[:n_p_full][:, pos_p]
    C = net.output_matrices()
    C_mf = sparse.csr_matrix(C["m_f"][:, :n_p_full] @ Vp)
    if net.dynamic:
        C_mc = sparse.csr_matrix(C["m_c"][:, :n_p_full] @ Vp)
        D_mc = np.zeros((net.k, net.k))
    else:
        C_mc = sparse.csr_matrix(C_mf.shape)
        fp = loop.fixed_point
        D_mc = net.clamped_mean_jacobian(fp.theta, fp.a)
    D_a = np.asarray(loop.feedthrough("e"), float)
    full = None
    if pos_p.size:
        Jp = loop.J[:n_p_full][:, :n_p_full].tocsc()
        rhs_f = np.column_stack([loop.J[:n_p_full][:, n_p_full:].toarray(),
                                 np.asarray(loop.B[:n_p_full], float)]).astype(complex)
        Cf_full = sparse.csr_matrix(C["m_f"][:, :n_p_full])
        Cc_full = sparse.csr_matrix(C["m_c"][:, :n_p_full]) if net.dynamic else sparse.csr_matrix(Cf_full.shape)
        full = (Jp, rhs_f, Cf_full, Cc_full)
    return BrokenLoop(loop, A, B_theta, B_a, C_mf, C_mc, D_mc, D_a, net.eps.astype(float), net.model.neutral, full)


def closed_loop_direct(loop: LinearLoop, omega, output: str = "e") -> np.ndarray:
    """``C (jwI - Jr)^{-1} Br + D`` straight from the reduced Jacobian (nw, k): a cross-check."""
    omega = np.atleast_1d(np.asarray(omega, float))
    C = loop.output(output)
    D = loop.feedthrough(output)
    B = loop.Br.astype(complex)
    out = np.empty((omega.size, C.shape[0]), complex)
    for i, w in enumerate(omega):
        out[i] = C @ -ShiftedReduced(loop, 1j * w).solve(B) + D     # (jw - Jr)^{-1} = -(Jr - jw)^{-1}
    return out


def dc_response(loop: LinearLoop, output: str = "e") -> np.ndarray:
    """``-C Jr^{-1} Br + D``: the loop's steady-state response to a unit step in ``a``.

    Falls back to the minimum-norm least-squares solution when ``Jr`` is
    singular (flat directions).
    """
    from scipy.sparse.linalg import lsqr

    Jr = loop.Jr.tocsc()
    try:
        x = -reduced_solve(loop, loop.Br.astype(float))
        if not np.all(np.isfinite(x)):
            raise RuntimeError
    except RuntimeError:
        x = -lsqr(Jr, loop.Br, atol=1e-14, btol=1e-14)[0]
    return loop.output(output) @ x + loop.feedthrough(output)


def grid_stride(blocks: BrokenLoop) -> int:
    """Stride through ``SPEC_OMEGA``: 1 (2000/7 points a decade), 7 (about 40,
    :data:`crnfb.feedback.numerics.sizes.LARGE_POINTS_PER_DECADE`) above
    :data:`crnfb.feedback.numerics.sizes.LARGE_PLANT` states."""
    return 7 if blocks.n_p > sizes.LARGE_PLANT else 1


def spec_grid(blocks: BrokenLoop) -> np.ndarray:
    """``SPEC_OMEGA`` for small plants; every 7th point of it (40 a decade) for large ones."""
    return SPEC_OMEGA[::grid_stride(blocks)]


def plant_rate_range(blocks: BrokenLoop, dense_limit: int | None = None) -> tuple[float, float] | None:
    """Smallest and largest non-zero ``|eig(A)|`` of the ensemble plant: :attr:`BrokenLoop.rate_range`
    (computed once per plant), or computed now for another ``dense_limit`` (:func:`_plant_rate_range`)."""
    return blocks.rate_range if dense_limit is None else _plant_rate_range(blocks, dense_limit)


def _plant_rate_range(blocks: BrokenLoop, dense_limit: int | None = None) -> tuple[float, float] | None:
    """Smallest and largest non-zero ``|eig(A)|`` of the ensemble plant.

    Dense up to ``dense_limit`` states (None: :data:`crnfb.feedback.numerics.sizes.LARGE_PLANT`); above, the two
    ends from sparse
    Lanczos on the symmetrised full plant (:attr:`BrokenLoop.symmetric`; the null
    vector and the unexcited ``-gamma`` modes of the clamped block may set
    the lower end, which only widens the band), or, without detailed
    balance, Arnoldi on the reduced plant (largest magnitude, and
    shift-invert at 0: its normalisation is removed, so it is non-singular;
    but the eliminated pivots fill its factorisation). Only the decades
    matter (they size the grid and the reduced model's anchors).
    """
    if blocks.n_p == 0:
        return None
    dense_limit = sizes.LARGE_PLANT if dense_limit is None else dense_limit
    if blocks.n_p > dense_limit:
        from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigs, eigsh

        sym = blocks.symmetric
        if sym is not None:
            try:
                hi = float(np.abs(eigsh(sym.S, k=1, which="SA", return_eigenvectors=False, tol=1e-3)).max())
                # -S + shift I is positive definite; the eigenvalues of -S nearest 0: the null one and the slowest
                shift = -1e-6 * hi
                ev = eigsh(-sym.S, k=3, sigma=shift, which="LM", return_eigenvectors=False, tol=1e-6,
                           OPinv=inverse_operator(-sym.S - shift * sparse.identity(sym.S.shape[0], format="csc")))
            except (ArpackError, ArpackNoConvergence, RuntimeError):
                return None
            ev = np.abs(ev)
            ev = ev[ev > 1e-10 * hi]
            return (float(ev.min()), hi) if ev.size and 0 < ev.min() <= hi else None

        A = blocks.A.tocsc()
        try:
            hi = float(np.max(np.abs(eigs(A, k=1, which="LM", return_eigenvectors=False, tol=1e-3))))
            lo = float(np.min(np.abs(eigs(A, k=1, sigma=0.0, which="LM", return_eigenvectors=False, tol=1e-6,
                                          OPinv=inverse_operator(A)))))
        except (ArpackError, ArpackNoConvergence, RuntimeError):
            return None
        return (lo, hi) if 0 < lo <= hi else None
    ev = np.abs(np.linalg.eigvals(blocks.A.toarray()))
    ev = ev[ev > 1e-12 * max(ev.max(), 1e-300)]
    if ev.size == 0:
        return None
    return float(ev.min()), float(ev.max())


def analysis_grid(blocks: BrokenLoop, extra: tuple[float, ...] = ()) -> np.ndarray:
    """The spec grid (:func:`spec_grid`) extended, same density, to two decades beyond the plant's and loop's rates."""
    lo, hi = -4.0, 3.0
    rng = plant_rate_range(blocks)
    rates = [x for x in ((rng or ()) + tuple(extra)) if x > 0 and np.isfinite(x)]
    if rates:
        lo = min(lo, np.floor(np.log10(min(rates))) - 2)
        hi = max(hi, np.ceil(np.log10(max(rates))) + 2)
    density = POINTS_PER_DECADE / grid_stride(blocks)
    parts = [spec_grid(blocks)]
    if lo < -4:
        parts.insert(0, np.logspace(lo, -4, int((-4 - lo) * density) + 1)[:-1])
    if hi > 3:
        parts.append(np.logspace(3, hi, int((hi - 3) * density) + 1)[1:])
    return np.concatenate(parts)


__all__ = ["analysis_grid", "broken_loop", "BrokenLoop", "closed_loop_direct", "dc_response", "LoopResponse", "spec_grid",
           "plant_rate_range", "shifted_lu"]
