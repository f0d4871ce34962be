"""The learning network at the ensemble level (docs/theory.md §4).

:class:`LearningNetwork` holds the free ensemble's master equation
``dp_f/dt = A(theta) p_f``, the clamped ensemble (``dynamic``: hidden-only
reactions plus resets at rate ``gamma`` to ``Q(v) u(h|v)``;
``equilibrium``: ``p_c = Qt(theta)``) and the integral controller
``dtheta/dt = E (m_c - m_f)``, with the closed-loop right-hand side and its
analytic sparse Jacobian (generator entries are monomials in ``lambda``,
so their theta-derivatives are exact).

Loop state ``x = (p_f, p_c, theta)`` (``p_c`` absent under equilibrium
clamping); ``theta`` are the learned parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse

from ..model.model import Model
from ..numerics.sparselu import sparse_lu


@dataclass(frozen=True)
class EdgeList:
    """All jumps of one copy, flattened over reactions and directions.

    The propensity of edge ``e`` at ``theta`` is
    ``coef[e] * exp(expo[e] . theta)`` (catalytic scheme).
    """

    src: np.ndarray
    dst: np.ndarray
    coef: np.ndarray
    expo: np.ndarray          # (E, N) exponents (the other complex)
    reaction: np.ndarray      # reaction index of each edge
    forward: np.ndarray       # bool

    def subset(self, mask: np.ndarray) -> "EdgeList":
        return EdgeList(self.src[mask], self.dst[mask], self.coef[mask], self.expo[mask],
                        self.reaction[mask], self.forward[mask])

    def rates(self, theta_full: np.ndarray) -> np.ndarray:
        return self.coef * np.exp(self.expo @ theta_full)


def _edge_list(space) -> EdgeList:
    E = space.edges
    cat = lambda attr: np.concatenate([getattr(e, attr) for e in E])  # noqa: E731
    expo = np.concatenate([np.repeat(e.exponent[None, :], e.src.size, axis=0) for e in E])
    reac = np.concatenate([np.full(e.src.size, e.reaction) for e in E])
    fwd = np.concatenate([np.full(e.src.size, e.forward) for e in E])
    return EdgeList(cat("src").astype(np.int64), cat("dst").astype(np.int64), cat("coef"), expo, reac, fwd)


def generator(edges: EdgeList, rates: np.ndarray, n: int) -> sparse.csr_matrix:
    """Master-equation generator ``A`` (columns sum to zero): ``dp/dt = A p``."""
    rows = np.concatenate([edges.dst, edges.src])
    cols = np.concatenate([edges.src, edges.src])
    vals = np.concatenate([rates, -rates])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))


def generator_derivative(edges: EdgeList, rates: np.ndarray, p: np.ndarray, n: int,
                         cols: np.ndarray) -> np.ndarray:
    """``d(A(theta) p)/dtheta_j`` for ``j`` in ``cols``: dense (n, len(cols))."""
    flux = rates * p[edges.src]
    out = np.zeros((n, len(cols)))
    for k, j in enumerate(cols):
        fj = flux * edges.expo[:, j]
        nz = fj != 0
        if nz.any():
            np.add.at(out[:, k], edges.dst[nz], fj[nz])
            np.add.at(out[:, k], edges.src[nz], -fj[nz])
    return out


def generator_derivative_k(edges: EdgeList, rates: np.ndarray, p: np.ndarray, n: int,
                           dirs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """``D^k (A(theta) p)[u_1, ..., u_k]`` along loop directions ``u_i = (du_i, dtheta_i)``.

    ``dirs`` holds ``(du_i, dtheta_i)`` pairs (``dtheta_i`` on the full theta);
    complex directions are allowed (the form is multilinear, no conjugation).
    The flux of edge e is ``r_e(theta) p[src]`` with ``r_e`` exponential in
    theta and ``p`` linear, so its k-th derivative is
    ``r_e (prod_i a_i p[src] + sum_j prod_{i != j} a_i du_j[src])`` with
    ``a_i = expo_e . dtheta_i`` (docs/theory.md §4c).
    """
    a = [edges.expo @ dth for _, dth in dirs]
    flux = np.prod(a, axis=0) * p[edges.src]
    for j, (du, _) in enumerate(dirs):
        others = [a[i] for i in range(len(dirs)) if i != j]
        flux = flux + (np.prod(others, axis=0) if others else 1.0) * du[edges.src]
    flux = rates * flux
    out = np.zeros(n, dtype=np.result_type(flux, float))
    np.add.at(out, edges.dst, flux)
    np.add.at(out, edges.src, -flux)
    return out


class LearningNetwork:
    """The closed learning loop of one :class:`~crnfb.feedback.model.model.Model`.

    Parameters
    ----------
    model : Model
    clamping : str or None
        Override ``model.learning.clamping``.
    clamped_speedup : float
        Factor on the rates of the clamped copies' hidden-only jumps (dynamic
        clamping only; default 1). Large values approach equilibrium
        clamping's ``p_c = Qt(theta)``: this is the network the SBML export of
        an equilibrium-clamped model writes (docs/sbml.md).

    Notes
    -----
    Free copies live on the whole class; clamped copies (dynamic clamping)
    on the class states whose visible part is in the support of ``Q_1`` or
    ``Q_2`` (docs/theory.md §4). The reset law ``u(h|v)`` is uniform on the
    class states with visible part ``v``, so it respects conservation laws.
    """

    def __init__(self, model: Model, clamping: str | None = None, *, clamped_speedup: float = 1.0):
        self.model = model
        self.clamping = clamping or model.learning.clamping
        if not (np.isfinite(clamped_speedup) and clamped_speedup > 0):
            raise ValueError(f"clamped_speedup must be a positive finite number, got {clamped_speedup!r}")
        if clamped_speedup != 1.0 and self.clamping != "dynamic":
            raise ValueError("clamped_speedup applies to dynamic clamping only")
        self.clamped_speedup = float(clamped_speedup)
        self.space = model.space
        self.learned = model.learned
        self.eps = model.eps
        self.gamma = model.learning.gamma
        self.n_f = self.space.size
        self.k = len(self.learned)
        S = self.space.states.astype(float)
        self.S_f = S
        if self.dynamic:
            self.clamped_states = self._clamped_states()
            self.S_c = S[self.clamped_states]
            self.n_c = self.clamped_states.size
        else:
            self.clamped_states = np.zeros(0, dtype=np.int64)
            self.S_c = np.zeros((0, S.shape[1]))
            self.n_c = 0

    @property
    def dynamic(self) -> bool:
        return self.clamping == "dynamic"

    @property
    def n_states(self) -> int:
        return self.n_f + self.n_c + self.k

    # -- structure ---------------------------------------------------------------
    @cached_property
    def edges(self) -> EdgeList:
        return _edge_list(self.space)

    @cached_property
    def hidden_edges(self) -> EdgeList:
        """Hidden-only jumps between clamped states (re-indexed to clamped order)."""
        e = self.edges
        mask = self.model.network.hidden_only[e.reaction]
        sub = e.subset(mask)
        pos = np.full(self.n_f, -1)
        pos[self.clamped_states] = np.arange(self.n_c)
        keep = (pos[sub.src] >= 0) & (pos[sub.dst] >= 0)
        sub = sub.subset(keep)
        return EdgeList(pos[sub.src], pos[sub.dst], sub.coef * self.clamped_speedup, sub.expo, sub.reaction,
                        sub.forward)

    def _clamped_states(self) -> np.ndarray:
        m = self.model
        support = (m.q > 0) | (m.q_change > 0)
        return np.nonzero(support[self.space.visible_index])[0]

    @cached_property
    def reset_law(self) -> np.ndarray:
        """``u(h|v)`` on the clamped states: uniform on the class states with visible part v."""
        vi = self.space.visible_index[self.clamped_states]
        counts = np.bincount(vi, minlength=self.space.visible_states.shape[0])
        return 1.0 / counts[vi]

    def reset_target(self, a: float = 0.0) -> np.ndarray:
        """``Q(a)(v) u(h|v)`` on the clamped states (sums to one)."""
        q = self.model.q_at(a)
        return q[self.space.visible_index[self.clamped_states]] * self.reset_law

    # -- generators -----------------------------------------------------------------
    def theta_full(self, theta: np.ndarray) -> np.ndarray:
        return self.model.full_theta(theta)

    def free_generator(self, theta: np.ndarray) -> sparse.csr_matrix:
        th = self.theta_full(theta)
        return generator(self.edges, self.edges.rates(th), self.n_f)

    def hidden_generator(self, theta: np.ndarray) -> sparse.csr_matrix:
        th = self.theta_full(theta)
        return generator(self.hidden_edges, self.hidden_edges.rates(th), self.n_c)

    # -- laws at fixed theta ------------------------------------------------------------
    def free_stationary(self, theta: np.ndarray) -> np.ndarray:
        return self.space.stationary(self.theta_full(theta))

    def clamped_block_lu(self, theta: np.ndarray):
        """Sparse LU of the dynamic clamped block ``gamma I - A_hid(theta)`` (for further solves with it)."""
        return sparse_lu(self.gamma * sparse.identity(self.n_c, format="csc") - self.hidden_generator(theta).tocsc())

    def clamped_stationary(self, theta: np.ndarray, a: float = 0.0, lu=None) -> np.ndarray:
        """Stationary clamped law at fixed theta: the one solver of the clamped law.

        Dynamic clamping: ``(gamma I - A_hid) p = gamma r`` (``lu`` from :meth:`clamped_block_lu` if the
        caller has it); equilibrium clamping: ``Q(v) pi(h|v)`` from ``ln pi``.
        """
        if not self.dynamic:
            # from ln pi: whole visible slices underflow in pi when theta is far from the environment
            return self.model.landscape.clamped_law(None, self.model.q_at(a),
                                                    log_pi=self.model.landscape.log_law(self.theta_full(theta)))
        lu = self.clamped_block_lu(theta) if lu is None else lu
        p = lu.solve(self.gamma * self.reset_target(a))
        return np.clip(np.atleast_1d(p), 0.0, None)

    def clamped_mean(self, theta: np.ndarray, a: float = 0.0) -> np.ndarray:
        """``m_c`` (all species) at the clamped ensemble's stationary law for fixed theta."""
        p = self.clamped_stationary(theta, a)
        S = self.S_c if self.dynamic else self.S_f
        return S.T @ p

    # -- the closed loop -------------------------------------------------------------------
    def split(self, x: np.ndarray):
        """``(p_f, p_c, theta)`` views of a loop state."""
        return x[:self.n_f], x[self.n_f:self.n_f + self.n_c], x[self.n_f + self.n_c:]

    def initial_state(self, theta: np.ndarray | None = None, a: float = 0.0) -> np.ndarray:
        """Start of a learning episode: p_f = pi(theta0), p_c its stationary law at theta0."""
        theta = self.model.theta0 if theta is None else np.asarray(theta, float)
        parts = [self.free_stationary(theta)]
        if self.dynamic:
            parts.append(self.clamped_stationary(theta, a))
        parts.append(theta)
        return np.concatenate(parts)

    @cached_property
    def field(self) -> "LoopField":
        """The closed-loop vector field with plain means ``S^T p`` (:class:`LoopField`, built once)."""
        return LoopField(self, normalised=False)

    def means(self, x: np.ndarray, a: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``(m_f, m_c)`` of the learned species at loop state ``x``."""
        return self.field.means(x, a)

    def rhs(self, x: np.ndarray, a: float = 0.0) -> np.ndarray:
        """Closed-loop vector field ``dx/dt`` (:attr:`field`: the one definition, plain means)."""
        return self.field(x, a)

    def jacobian(self, x: np.ndarray, a: float = 0.0) -> sparse.csr_matrix:
        """Analytic sparse Jacobian ``d rhs / dx`` (plain means; :meth:`LoopField.jacobian` adds the
        normalisation terms of the integrators' field)."""
        p_f, p_c, theta = self.split(x)
        th = self.theta_full(theta)
        L = self.learned
        Ef = self.edges
        rf = Ef.rates(th)
        A = generator(Ef, rf, self.n_f)
        Df = generator_derivative(Ef, rf, p_f, self.n_f, L)
        ctrl_f = -(self.eps[:, None] * self.S_f[:, L].T)
        if self.dynamic:
            Eh = self.hidden_edges
            rh = Eh.rates(th)
            Ah = generator(Eh, rh, self.n_c) - self.gamma * sparse.identity(self.n_c)
            Dc = generator_derivative(Eh, rh, p_c, self.n_c, L)
            ctrl_c = self.eps[:, None] * self.S_c[:, L].T
            return sparse.bmat([[A, None, sparse.csr_matrix(Df)],
                                [None, Ah, sparse.csr_matrix(Dc)],
                                [sparse.csr_matrix(ctrl_f), sparse.csr_matrix(ctrl_c), None]], format="csr")
        dmc = self.clamped_mean_jacobian(theta, a)
        return sparse.bmat([[A, sparse.csr_matrix(Df)],
                            [sparse.csr_matrix(ctrl_f), sparse.csr_matrix(self.eps[:, None] * dmc)]],
                           format="csr")

    def rhs_derivative(self, x: np.ndarray, directions: list[np.ndarray], a: float = 0.0) -> np.ndarray:
        """Analytic directional derivative ``D^k rhs(x)[u_1, ..., u_k]`` (k = 1, 2, 3).

        Directions are loop vectors (complex allowed; multilinear, no
        conjugation): the second and third derivatives of the vector field that
        the Hopf normal form needs (docs/theory.md §4c). Only the generators
        (exponential in theta, linear in the laws) and, under equilibrium
        clamping, ``m_c(theta)`` (its conditional cumulants) are nonlinear.
        """
        if len(directions) == 1:
            return self.jacobian(x, a) @ np.asarray(directions[0])
        p_f, p_c, theta = self.split(x)
        th = self.theta_full(theta)
        parts = [self.split(np.asarray(u)) for u in directions]

        def full(dth):
            out = np.zeros(th.size, dtype=np.result_type(dth, float))
            out[self.learned] = dth
            return out

        dth = [full(t) for _, _, t in parts]
        out = [generator_derivative_k(self.edges, self.edges.rates(th), p_f, self.n_f,
                                      [(u, t) for (u, _, _), t in zip(parts, dth)])]
        if self.dynamic:
            out.append(generator_derivative_k(self.hidden_edges, self.hidden_edges.rates(th), p_c, self.n_c,
                                              [(u, t) for (_, u, _), t in zip(parts, dth)]))
        if self.dynamic:     # the theta rows are linear in the laws
            out.append(np.zeros(self.k, dtype=out[0].dtype))
        else:
            lsc = self.model.landscape
            dm = lsc.clamped_mean_derivative(lsc.log_law(th), dth, self.model.q_at(a))
            out.append(self.eps * dm[self.learned])
        return np.concatenate(out)

    def clamped_mean_jacobian(self, theta: np.ndarray, a: float = 0.0) -> np.ndarray:
        """``d m_c / d theta`` (learned x learned) under equilibrium clamping: ``E_Q[Cov(n|v)]``."""
        lsc = self.model.landscape
        # from ln pi, as in clamped_stationary (1/P(v) overflows where pi underflows)
        C = lsc.conditional_covariance(None, self.model.q_at(a), log_pi=lsc.log_law(self.theta_full(theta)))
        return C[np.ix_(self.learned, self.learned)]

    def clamped_mean_sensitivity(self, theta: np.ndarray) -> np.ndarray:
        """``d m_c / d a`` of the learned species under equilibrium clamping (``m_c`` is linear in a)."""
        lsc, m = self.model.landscape, self.model
        th = self.theta_full(theta)
        dm = lsc.moments(th, m.q_change).mean_clamped - lsc.moments(th, m.q).mean_clamped
        return dm[self.learned]

    def input_vector(self, x: np.ndarray) -> np.ndarray:
        """``d rhs / d a`` (the environment's mixing weight enters linearly)."""
        out = np.zeros(self.n_states)
        if self.dynamic:
            out[self.n_f:self.n_f + self.n_c] = self.gamma * (self.reset_target(1.0) - self.reset_target(0.0))
        else:
            _, _, theta = self.split(x)
            out[self.n_f:] = self.eps * self.clamped_mean_sensitivity(theta)
        return out

    # -- output maps ------------------------------------------------------------------------------
    def output_matrices(self) -> dict[str, sparse.csr_matrix]:
        """Linear maps from the loop state to ``m_f`` and (dynamic) ``m_c`` and ``theta``."""
        L = self.learned
        n = self.n_states
        Cf = sparse.hstack([sparse.csr_matrix(self.S_f[:, L].T),
                            sparse.csr_matrix((self.k, n - self.n_f))], format="csr")
        Ct = sparse.hstack([sparse.csr_matrix((self.k, self.n_f + self.n_c)), sparse.identity(self.k)],
                           format="csr")
        out = {"m_f": Cf, "theta": Ct}
        if self.dynamic:
            out["m_c"] = sparse.hstack([sparse.csr_matrix((self.k, self.n_f)),
                                        sparse.csr_matrix(self.S_c[:, L].T),
                                        sparse.csr_matrix((self.k, self.k))], format="csr")
        return out


class LoopField:
    """The closed-loop vector field ``dx/dt = f(x, a)``: its one definition.

    :meth:`LearningNetwork.rhs` is this field with ``normalised=False``; the
    integrators (:func:`crnfb.feedback.dynamics.integrate.loop_system`) use
    ``normalised=True``; the nonlinear blocks of
    :mod:`crnfb.feedback.dynamics.loop` use its parts (:meth:`free_flow`,
    :meth:`clamped_flow`, :meth:`mean`, :meth:`clamped_mean`). The generators
    are applied edge by edge (``np.bincount`` of the probability fluxes), not
    assembled as sparse matrices on every call, and the fixed species'
    factors of the propensities are folded into the constants once.

    Parameters
    ----------
    net : LearningNetwork
    normalised : bool
        Controller means ``S^T p / sum(p)`` (True) or ``S^T p`` (False).
        Identical on the physical states (``sum p = 1``). Normalised, the
        neutral invariants ``N^T E^{-1} theta`` are conserved exactly even when
        the solver lets ``sum p_f`` wander at round-off level (a zero mode of
        the master equation). With plain means that wander is integrated by the
        neutral direction: on E3 over 2e6 time units ``N^T E^{-1} theta``
        drifted by 5e-4 and the solver needed twice the steps. The plain field
        is the one the linearisation differentiates (:meth:`LearningNetwork.jacobian`):
        on the tangent space ``sum dp = 0`` the two Jacobians agree.
    """

    def __init__(self, net: LearningNetwork, normalised: bool = True):
        self.net = net
        self.normalised = bool(normalised)
        model = net.model
        L = model.learned
        th_fixed = model.full_theta(np.zeros(net.k))      # the fixed species' theta, zeros at learned
        e = net.edges
        self.src, self.dst = e.src, e.dst
        self.coef = e.coef * np.exp(e.expo @ th_fixed)
        self.expo = np.ascontiguousarray(e.expo[:, L])
        self.n_f, self.n_c, self.k = net.n_f, net.n_c, net.k
        self.SfL = np.ascontiguousarray(net.S_f[:, L])
        self.eps = net.eps
        if net.dynamic:
            h = net.hidden_edges
            self.hsrc, self.hdst = h.src, h.dst
            self.hcoef = h.coef * np.exp(h.expo @ th_fixed)
            self.hexpo = np.ascontiguousarray(h.expo[:, L])
            self.ScL = np.ascontiguousarray(net.S_c[:, L])
            self.r1 = net.reset_target(0.0)
            self.r2 = net.reset_target(1.0)
            self.gamma = net.gamma
        else:
            sp = model.space
            self.lsc = model.landscape
            self.log_base = sp.states @ th_fixed - sp.log_factorial
            self.states_L = np.ascontiguousarray(sp.states[:, L].astype(float))
            self.vi = sp.visible_index

    # -- the parts (the blocks of the loop) --------------------------------------------------------
    def free_flow(self, p_f: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``A(theta) p_f``: the free ensemble's master equation."""
        flux = self.coef * np.exp(self.expo @ theta) * p_f[self.src]
        return np.bincount(self.dst, flux, self.n_f) - np.bincount(self.src, flux, self.n_f)

    def clamped_flow(self, p_c: np.ndarray, theta: np.ndarray, a: float) -> np.ndarray:
        """``A_hid(theta) p_c + gamma (r(a) - p_c)``: the clamped ensemble (dynamic clamping)."""
        n_c = self.n_c
        fl = self.hcoef * np.exp(self.hexpo @ theta) * p_c[self.hsrc]
        reset = (1.0 - a) * self.r1 + a * self.r2
        return np.bincount(self.hdst, fl, n_c) - np.bincount(self.hsrc, fl, n_c) + self.gamma * (reset - p_c)

    def mean(self, SL: np.ndarray, p: np.ndarray) -> np.ndarray:
        """An ensemble's mean of the learned species, ``SL^T p`` (over ``sum p`` when normalised)."""
        m = SL.T @ p
        return m / p.sum() if self.normalised else m

    def clamped_mean(self, theta: np.ndarray, a: float) -> np.ndarray:
        """``<n>_Qt`` of the learned species (equilibrium clamping).

        ``Qt = Q(v) pi(h|v)`` with the conditional law from the log weights
        (:meth:`~crnfb.feedback.model.landscape.Landscape.conditional`): exact
        when whole visible slices underflow in ``pi``.
        """
        lw = self.log_base + self.states_L @ theta
        return self.states_L.T @ (self.lsc.conditional(log_pi=lw) * self.net.model.q_at(a)[self.vi])

    def means(self, x: np.ndarray, a: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``(m_f, m_c)`` of the learned species at loop state ``x``."""
        n_f, n_c = self.n_f, self.n_c
        m_f = self.mean(self.SfL, x[:n_f])
        if n_c:
            return m_f, self.mean(self.ScL, x[n_f:n_f + n_c])
        return m_f, self.clamped_mean(x[n_f:], a)

    def __call__(self, x: np.ndarray, a: float = 0.0) -> np.ndarray:
        n_f, n_c = self.n_f, self.n_c
        p_f, p_c, theta = x[:n_f], x[n_f:n_f + n_c], x[n_f + n_c:]
        out = np.empty_like(x)
        out[:n_f] = self.free_flow(p_f, theta)
        if n_c:
            out[n_f:n_f + n_c] = self.clamped_flow(p_c, theta, a)
        m_f, m_c = self.means(x, a)
        out[n_f + n_c:] = self.eps * (m_c - m_f)
        return out

    def jacobian(self, x: np.ndarray, a: float = 0.0) -> sparse.csr_matrix:
        """Jacobian of :meth:`__call__`: :meth:`LearningNetwork.jacobian` plus the normalisation terms.

        The generator part has one implementation, the network's (plain means).
        For ``m = S^T p / s`` (``s = sum p``): ``dm/dp = S^T / s - m 1^T / s``;
        the network's Jacobian has ``S^T``, so the correction is
        ``S^T (1/s - 1) - m 1^T / s`` in the theta rows (times ``-eps`` for the
        free, ``+eps`` for the clamped ensemble). It vanishes on the tangent
        space ``sum dp = 0`` at ``s = 1``.
        """
        J = self.net.jacobian(x, a)
        if not self.normalised:
            return J
        n_f, n_c, k = self.n_f, self.n_c, self.k
        base = n_f + n_c
        blocks = [(0, n_f, self.SfL, -1.0)]
        if n_c:
            blocks.append((n_f, n_c, self.ScL, 1.0))
        rows, cols, vals = [], [], []
        for start, size, SL, sign in blocks:
            p = x[start:start + size]
            tot = p.sum()
            m = SL.T @ p / tot
            corr = SL.T * (1.0 / tot - 1.0) - m[:, None] / tot          # (k, size)
            corr *= sign * self.eps[:, None]
            rr, cc = np.nonzero(np.ones((k, size), bool))
            rows.append(base + rr)
            cols.append(start + cc)
            vals.append(corr.ravel())
        C = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=J.shape)
        return (J + C).tocsr()


__all__ = ["EdgeList", "generator", "generator_derivative", "generator_derivative_k", "LearningNetwork", "LoopField"]
