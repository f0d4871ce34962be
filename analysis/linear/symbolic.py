"""The linearised learning loop in symbols (sympy), for small models (docs/theory.md §4-5, 8).

:func:`symbolic_loop` builds the loop's Jacobian at its fixed point with
symbols for the learning rates ``epsilon_<sp>`` (one per learned species, or
one ``epsilon`` with ``eps_mode="scalar"``), the reaction constants ``kappa_r``
(``kappa`` when the network has one reaction), the reset rate ``gamma``
(dynamic clamping) and the fixed-point activities ``lambda_<sp> =
exp(theta_<sp>)`` of every species. The generator is built from
:attr:`crnfb.feedback.model.statespace.StateSpace.edges`: an edge's propensity is
``coef * lambda^expo`` and ``coef`` is ``kappa_r`` times an integer
(falling factorial) so ``kappa_r`` is factored out as a symbol. Fixed-point
laws are exact functions of the symbols: the free ensemble's product form
``lambda^n / n! / Z``, the clamped ensemble's stationary law at those
activities (the environment enters as exact rationals of its tabulated
probabilities). Structural zero modes are removed as in
:mod:`crnfb.analysis.linear.linearise` (pivot elimination of ``sum dp = 0`` per ensemble
and of the neutral invariants ``N^T E^{-1} theta``).

Results: :attr:`SymbolicLoop.charpoly` (``det(s I - J_r)``, monic in ``s``),
:attr:`SymbolicLoop.loop_transfer` (``L(s) = E (P_f(s) - P_c(s)) / s``) and
:meth:`SymbolicLoop.latex`.

E1 (birth-death, equilibrium clamping): the mean and theta couple through
``s^2 + kappa s + kappa epsilon lambda`` (``lambda = mu`` at the fixed point).
On a truncated box this factor is exact only up to the truncation (the box
drops births out of ``n_max``); :func:`mean_closure` gives the exact factor
from the closed equations of the means (first-order networks), and
:func:`divide_out` shows that the truncated polynomial is that factor times
the higher modes plus a remainder of the size of the truncation mass.

Everything here is exact and slow: the loop is limited to
:data:`crnfb.feedback.numerics.sizes.MAX_SYMBOLIC_STATES` reduced states (:class:`SymbolicTooLargeError`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import sympy as sp
from sympy.polys.matrices import DomainMatrix

from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics import sizes


_RATIONAL_DEN = 10 ** 12


class SymbolicTooLargeError(ValueError):
    """The loop is too large for exact symbolic analysis."""


# -- symbols ------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LoopSymbols:
    """The symbols of a symbolic loop.

    Attributes
    ----------
    s : Symbol               Laplace variable
    eps : list[Symbol]       learning rate per learned species (all the same symbol for ``eps_mode="scalar"``)
    kappa : list[Symbol]     one per reaction
    lam : list[Symbol]       activity ``lambda_i = exp(theta_i)`` per species (all species)
    gamma : Symbol           reset rate (used under dynamic clamping only)
    """

    s: sp.Symbol
    eps: list
    kappa: list
    lam: list
    gamma: sp.Symbol

    def by_name(self) -> dict[str, sp.Symbol]:
        out = {str(x): x for x in [self.s, self.gamma, *self.eps, *self.kappa, *self.lam]}
        return out


#: How the learning rates become symbols: one per learned species, or one for all.
EPS_MODES = ("per_species", "scalar")


def _eps_mode(eps_mode: str, eps: str | None, where: str) -> str:
    """``eps_mode``, or the value of the keyword it replaced, ``eps`` (deprecated: in this package ``eps``
    always names the learning-rate vector, never a mode)."""
    if eps is None:
        return eps_mode
    if eps_mode != EPS_MODES[0]:
        raise TypeError(f"{where}() got eps_mode and its deprecated name eps; pass eps_mode only")
    warnings.warn(f"{where}(eps=...) is deprecated; pass eps_mode=... (eps names the learning rates)",
                  DeprecationWarning, stacklevel=3)
    return eps


def make_symbols(model: Model, eps_mode: str = "per_species", *, eps: str | None = None) -> LoopSymbols:
    """Symbols for ``model``.

    ``epsilon_<sp>`` (or one ``epsilon`` with ``eps_mode="scalar"``), ``kappa`` /
    ``kappa_<r>`` (1-based), ``lambda_<sp>`` for every species, ``gamma``.
    ``eps`` is the deprecated name of ``eps_mode``.
    """
    eps_mode = _eps_mode(eps_mode, eps, "make_symbols")
    if eps_mode not in EPS_MODES:
        raise ValueError(f"eps_mode must be 'per_species' or 'scalar', got {eps_mode!r}")
    net = model.network
    R = len(net.reactions)
    kap = [sp.Symbol("kappa", positive=True)] if R == 1 else \
        [sp.Symbol(f"kappa_{r + 1}", positive=True) for r in range(R)]
    lam = [sp.Symbol(f"lambda_{n}", positive=True) for n in net.names]
    if eps_mode == "scalar":
        e = sp.Symbol("epsilon", positive=True)
        epss = [e] * len(model.learned)
    else:
        epss = [sp.Symbol(f"epsilon_{n}", positive=True) for n in model.learned_names]
    return LoopSymbols(s=sp.Symbol("s"), eps=epss, kappa=kap, lam=lam, gamma=sp.Symbol("gamma", positive=True))


def _rational(x: float) -> sp.Rational:
    return sp.Rational(float(x)).limit_denominator(_RATIONAL_DEN)


def _monomial(lam: list, expo: np.ndarray):
    out = sp.Integer(1)
    for i in np.nonzero(expo)[0]:
        out *= lam[i] ** int(round(expo[i]))
    return out


def _integer_coef(coef: float, kappa: float, what: str) -> sp.Integer:
    ff = coef / kappa
    r = int(round(ff))
    if abs(ff - r) > 1e-9 * max(1.0, abs(ff)):
        raise ValueError(f"{what}: propensity factor {ff} is not an integer falling factorial")
    return sp.Integer(r)


def _generator(n: int, src, dst, rates) -> sp.Matrix:
    A = sp.zeros(n, n)
    for a, b, r in zip(src, dst, rates):
        A[b, a] += r
        A[a, a] -= r
    return A


def _generator_derivative(n: int, src, dst, rates, expo_cols, p) -> sp.Matrix:
    """``d(A p)/dtheta_j`` (columns ``j`` given by ``expo_cols``: (E, k) exponents of learned species)."""
    k = expo_cols.shape[1]
    D = sp.zeros(n, k)
    for e, (a, b, r) in enumerate(zip(src, dst, rates)):
        for j in range(k):
            x = expo_cols[e, j]
            if x:
                f = int(round(x)) * r * p[a]
                D[b, j] += f
                D[a, j] -= f
    return D


def _product_form(states: np.ndarray, lam: list) -> tuple[list, sp.Expr]:
    """Unnormalised weights ``lambda^n / n!`` and their sum."""
    w = []
    for n in states:
        t = sp.Integer(1)
        for i, c in enumerate(n):
            if c:
                t *= lam[i] ** int(c) / sp.factorial(int(c))
        w.append(t)
    return w, sp.Add(*w)


def _neutral_exact(model: Model) -> sp.Matrix:
    """Exact (rational) basis of the neutral directions in learned coordinates (columns)."""
    net = model.network
    cl = net.conservation_laws
    L = sp.Matrix(cl.astype(int).tolist()) if cl.size else sp.zeros(0, net.n_species)
    learned = list(map(int, model.learned))
    k = len(learned)
    if L.rows == 0:
        return sp.zeros(k, 0)
    fixed = [i for i in range(net.n_species) if i not in learned]
    if fixed:
        C = L[:, fixed].T.nullspace()
        if not C:
            return sp.zeros(k, 0)
        C = sp.Matrix.hstack(*C)
    else:
        C = sp.eye(L.rows)
    vecs = L[:, learned].T * C
    cols = vecs.columnspace()
    return sp.Matrix.hstack(*cols) if cols else sp.zeros(k, 0)


def _clamped_gain_equilibrium(space, q: np.ndarray, lam: list, learned: np.ndarray) -> sp.Matrix:
    """``d m_c / d theta = E_Q[Cov_{pi(.|v)}(n)]`` (learned x learned), exact in ``lam``."""
    k = len(learned)
    G = sp.zeros(k, k)
    vi = space.visible_index
    S = space.states
    for v in np.nonzero(q > 0)[0]:
        idx = np.nonzero(vi == v)[0]
        if idx.size < 2:
            continue                         # one state per fibre: no conditional spread
        w, Z = _product_form(S[idx], lam)
        qv = _rational(q[v])
        Sl = S[np.ix_(idx, learned)]
        mean = [sp.Add(*[w[a] * int(Sl[a, j]) for a in range(idx.size)]) / Z for j in range(k)]
        for i in range(k):
            for j in range(k):
                second = sp.Add(*[w[a] * int(Sl[a, i]) * int(Sl[a, j]) for a in range(idx.size)]) / Z
                G[i, j] += qv * (second - mean[i] * mean[j])
    return G.applyfunc(sp.cancel)


def _elimination(W: sp.Matrix, pivots: list[int], n: int) -> tuple[sp.Matrix, list[int]]:
    """Embedding ``V`` of ``ker W`` eliminating ``pivots`` (exact); returns ``(V, rest)``."""
    rest = [i for i in range(n) if i not in set(pivots)]
    V = sp.zeros(n, len(rest))
    for c, i in enumerate(rest):
        V[i, c] = 1
    if pivots:
        Wp = W[:, pivots]
        Wr = W[:, rest]
        dep = (-Wp.inv() * Wr).applyfunc(sp.cancel)
        for a, i in enumerate(pivots):
            for c in range(len(rest)):
                V[i, c] = dep[a, c]
    return V, rest


def _dm(*Ms: sp.Matrix) -> list:
    """Convert sympy matrices to :class:`DomainMatrix` over one common fraction field (fast exact algebra)."""
    ds = [DomainMatrix.from_Matrix(M).to_field() for M in Ms]
    K = ds[0].domain
    for d in ds[1:]:
        K = K.unify(d.domain)
    return [d.convert_to(K) for d in ds]


def _to_matrix(d: DomainMatrix, simplify=sp.factor) -> sp.Matrix:
    K = d.domain
    rows, cols = d.shape
    out = sp.zeros(rows, cols)
    for (i, j), v in d.to_dok().items():
        out[i, j] = simplify(K.to_sympy(v))
    return out


def _charpoly(M: sp.Matrix, s: sp.Symbol) -> sp.Poly:
    """Monic ``det(s I - M)`` with coefficients as factored rational functions."""
    if M.rows == 0:
        return sp.Poly(1, s)
    (d,) = _dm(M)
    coeffs = [sp.factor(d.domain.to_sympy(c)) for c in d.charpoly()]
    return sp.Poly.from_list(coeffs, s, domain="EX")


def _transfer(A: sp.Matrix, B: sp.Matrix, C: sp.Matrix, s: sp.Symbol) -> sp.Matrix:
    """``C (s I - A)^{-1} B`` exactly (entries factored)."""
    if A.rows == 0:
        return sp.zeros(C.rows, B.cols)
    M, Bd, Cd = _dm(s * sp.eye(A.rows) - A, B, C)
    return _to_matrix(Cd * M.lu_solve(Bd))


# -- the symbolic loop ------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class SymbolicLoop:
    """The loop linearised at its fixed point, in symbols.

    Attributes
    ----------
    model : Model
    clamping : str
    sym : LoopSymbols
    J : Matrix          full Jacobian in ``(p_f, p_c, theta)`` (as :class:`LearningNetwork`)
    V : Matrix          embedding of the invariant subspace (exact)
    rest : list[int]    kept coordinates (``Jr = J[rest, :] V``)
    n_f, n_c, k : int   block sizes
    dmc : Matrix        ``d m_c / d theta`` under equilibrium clamping (else ``None``)
    description : str   what the state is (``"ensemble"`` or ``"mean closure"``)
    """

    model: Model
    clamping: str
    sym: LoopSymbols
    J: sp.Matrix
    V: sp.Matrix
    rest: list
    n_f: int
    n_c: int
    k: int
    dmc: sp.Matrix | None = None
    description: str = "ensemble"
    extra: dict = field(default_factory=dict)

    @cached_property
    def Jr(self) -> sp.Matrix:
        """Reduced Jacobian (structural zero modes removed), entries cancelled."""
        if not self.rest:
            return sp.zeros(0, 0)
        Jd, Vd = _dm(self.J.extract(self.rest, list(range(self.J.cols))), self.V)
        return _to_matrix(Jd * Vd, sp.cancel)

    @property
    def n_reduced(self) -> int:
        return len(self.rest)

    @cached_property
    def charpoly(self) -> sp.Poly:
        """``det(s I - Jr)`` as a monic polynomial in ``s`` (coefficients factored)."""
        return _charpoly(self.Jr, self.sym.s)

    @cached_property
    def charpoly_expr(self) -> sp.Expr:
        return self.charpoly.as_expr()

    def _split(self):
        """Positions within ``rest`` of the kept p_f / p_c / theta coordinates."""
        f = [c for c, i in enumerate(self.rest) if i < self.n_f]
        c_ = [c for c, i in enumerate(self.rest) if self.n_f <= i < self.n_f + self.n_c]
        t = [c for c, i in enumerate(self.rest) if i >= self.n_f + self.n_c]
        return f, c_, t

    @cached_property
    def plants(self) -> tuple[sp.Matrix, sp.Matrix]:
        """``(P_f(s), P_c(s))``: transfer matrices theta -> m_f and theta -> m_c (learned x learned)."""
        if self.description != "ensemble":
            raise NotImplementedError("plants are defined for the ensemble loop")
        s = self.sym.s
        f, c_, _ = self._split()
        rows_t = list(range(self.n_f + self.n_c, self.n_f + self.n_c + self.k))
        E = sp.diag(*self.sym.eps)
        J, V = self.J, self.V
        # output maps m = S^T p (the controller rows are E (S_c^T p_c - S_f^T p_f))
        Ctl = E.inv() * J.extract(rows_t, list(range(J.cols))) * V   # (k, r): E^-1 * theta rows
        full_rest = [self.rest[c] for c in f]
        Af = self.Jr.extract(f, f)
        Bf = J.extract(full_rest, rows_t)
        Cf = -Ctl.extract(list(range(self.k)), f)
        Pf = _transfer(Af, Bf, Cf, s)
        if self.clamping == "dynamic":
            full_c = [self.rest[c] for c in c_]
            Ac = self.Jr.extract(c_, c_)
            Bc = J.extract(full_c, rows_t)
            Cc = Ctl.extract(list(range(self.k)), c_)
            Pc = _transfer(Ac, Bc, Cc, s)
        else:
            Pc = self.dmc
        return Pf, Pc

    @cached_property
    def loop_transfer(self) -> sp.Matrix:
        """``L(s) = E (P_f(s) - P_c(s)) / s`` (learned x learned, full integrator ``E/s``)."""
        Pf, Pc = self.plants
        E = sp.diag(*self.sym.eps)
        return (E * (Pf - Pc) / self.sym.s).applyfunc(sp.factor)

    # -- numbers -------------------------------------------------------------------------------
    def values(self, theta: np.ndarray | None = None) -> dict:
        """Numbers for every symbol: file's eps, kappa, gamma; ``lambda = exp(theta_full)``.

        ``theta`` (learned) defaults to the loop's fixed point
        (:func:`crnfb.analysis.linear.fixedpoints.loop_fixed_point`).
        """
        m = self.model
        if theta is None:
            from crnfb.analysis.linear.fixedpoints import loop_fixed_point
            theta = loop_fixed_point(m, LearningNetwork(m, self.clamping)).theta
        th = m.full_theta(np.asarray(theta, float))
        out = {}
        for e, v in zip(self.sym.eps, m.eps):
            out[e] = float(v)
        for kk, v in zip(self.sym.kappa, m.network.kappa):
            out[kk] = float(v)
        for l_, v in zip(self.sym.lam, np.exp(th)):
            out[l_] = float(v)
        out[self.sym.gamma] = float(m.learning.gamma)
        return out

    def eigenvalues(self, values: dict | None = None) -> np.ndarray:
        """Roots of :attr:`charpoly` at ``values`` (default :meth:`values`), slowest first."""
        values = self.values() if values is None else values
        coeffs = [complex(sp.N(c.subs(values), 30)) for c in self.charpoly.all_coeffs()]
        ev = np.roots(np.real_if_close(np.array(coeffs)))
        return ev[np.lexsort((np.abs(ev.imag), -ev.real))]

    def numeric_jacobian(self, values: dict | None = None) -> np.ndarray:
        values = self.values() if values is None else values
        return np.array(self.Jr.subs(values).evalf(), dtype=float)

    # -- presentation ------------------------------------------------------------------------------
    def latex(self, factor: bool = True) -> str:
        """LaTeX of the characteristic polynomial (and ``L(s)`` for the ensemble loop).

        With ``factor`` the polynomial is shown as a product of its factors,
        each in descending powers of ``s``.
        """
        s = self.sym.s
        out = [r"\det(sI - J_r) = " + latex_polynomial(self.charpoly_expr, s, factor)]
        if self.description == "ensemble":
            Lm = self.loop_transfer
            Ltex = sp.latex(Lm[0, 0]) if Lm.shape == (1, 1) else sp.latex(Lm)
            out.append(r"L(s) = " + Ltex)
        return " \\\\\n".join(out)


def _latex_descending(p: sp.Expr, s: sp.Symbol) -> str:
    poly = sp.Poly(p, s)
    deg = poly.degree()
    terms = []
    for k, c in zip(range(deg, -1, -1), poly.all_coeffs()):
        c = sp.factor(c)
        if c == 0:
            continue
        neg = c.could_extract_minus_sign()
        a = -c if neg else c
        sk = "" if k == 0 else ("s" if k == 1 else f"s^{{{k}}}")
        if a == 1 and sk:
            body = sk
        else:
            ca = sp.latex(a)
            if isinstance(a, sp.Add) and sk:
                ca = rf"\left({ca}\right)"
            body = f"{ca} {sk}".strip()
        terms.append(("- " if neg else "+ ") + body)
    text = " ".join(terms) if terms else "0"
    return text[2:] if text.startswith("+ ") else text


def latex_polynomial(expr: sp.Expr, s: sp.Symbol, factor: bool = True) -> str:
    """LaTeX of a rational function of ``s``: factors in descending powers of ``s``."""
    num, den = sp.fraction(sp.factor(sp.cancel(expr)))
    if not factor:
        body = _latex_descending(sp.expand(num), s)
    else:
        c, facs = sp.factor_list(num)
        const = sp.Integer(c)
        parts = []
        for f, mult in facs:
            if not f.has(s):
                const *= f ** mult
                continue
            t = _latex_descending(f, s)
            t = t if (len(facs) == 1 and mult == 1 and const == 1) else rf"\left({t}\right)"
            parts.append(t + (f"^{{{mult}}}" if mult > 1 else ""))
        lead = "" if const == 1 else sp.latex(const) + " "
        body = lead + " ".join(parts) if parts else sp.latex(const)
    if den != 1:
        return rf"\frac{{{body}}}{{{sp.latex(den)}}}"
    return body


def _check_size(model: Model, net: LearningNetwork, max_states: int | None) -> None:
    """:class:`SymbolicTooLargeError` when the reduced loop has more than ``max_states`` states."""
    n_red = net.n_states - 1 - (1 if net.dynamic and net.n_c else 0) - model.neutral.shape[1]
    max_states = sizes.MAX_SYMBOLIC_STATES if max_states is None else max_states
    if n_red > max_states:
        raise SymbolicTooLargeError(
            f"the reduced loop has {n_red} states; exact symbolic analysis is limited to {max_states} "
            "(lower n_max or the conserved totals, or use crnfb.analysis.linear.linearise / "
            "crnfb.feedback.dynamics.loop numerically)")


def symbolic_loop(model: Model, clamping: str | None = None, eps_mode: str = "per_species",
                  max_states: int | None = None, *, eps: str | None = None) -> SymbolicLoop:
    """The loop's Jacobian at its fixed point in symbols (see the module docstring).

    Parameters
    ----------
    model : Model
    clamping : str or None
        Override ``model.learning.clamping``.
    eps_mode : ``"per_species"`` or ``"scalar"``
        One learning-rate symbol per learned species, or one for all.
    max_states : int or None
        Largest reduced loop accepted (None: :data:`crnfb.feedback.numerics.sizes.MAX_SYMBOLIC_STATES`).
    eps : str or None
        Deprecated name of ``eps_mode`` (a :class:`DeprecationWarning`).

    Raises
    ------
    SymbolicTooLargeError
        When the reduced loop has more than ``max_states`` states.
    """
    eps_mode = _eps_mode(eps_mode, eps, "symbolic_loop")
    net = LearningNetwork(model, clamping)
    _check_size(model, net, max_states)
    sym = make_symbols(model, eps_mode)
    lam, kap = sym.lam, sym.kappa
    L = np.asarray(model.learned)
    k = L.size
    space = model.space
    S = space.states

    # free ensemble: generator, product-form fixed point, theta-derivative
    src, dst, rates, expo = _free_edges(model, lam, kap, L)
    n_f = space.size
    Af = _generator(n_f, src, dst, rates)
    w, Z = _product_form(S, lam)
    pf = [wi / Z for wi in w]
    Df = _generator_derivative(n_f, src, dst, rates, expo, pf)
    E = sp.diag(*sym.eps)
    Sf = sp.Matrix(S[:, L].T.astype(int).tolist())

    dmc = None
    if net.dynamic:
        he = net.hidden_edges
        n_c = net.n_c
        hrates = [_integer_coef(c, model.network.kappa[r], f"reaction {r}") * kap[r] * _monomial(lam, x)
                  for c, r, x in zip(he.coef, he.reaction, he.expo)]
        Ah0 = _generator(n_c, he.src.tolist(), he.dst.tolist(), hrates)
        Ah = Ah0 - sym.gamma * sp.eye(n_c)
        r0 = sp.Matrix([_rational(x) for x in net.reset_target(0.0)])
        pc = (-Ah).LUsolve(sym.gamma * r0).applyfunc(sp.cancel) if n_c else sp.zeros(0, 1)
        Dc = _generator_derivative(n_c, he.src.tolist(), he.dst.tolist(), hrates,
                                   np.asarray(he.expo)[:, L].reshape(-1, k), list(pc))
        Sc = sp.Matrix(net.S_c[:, L].T.astype(int).tolist())
        n = n_f + n_c + k
        J = sp.zeros(n, n)
        J[:n_f, :n_f] = Af
        J[:n_f, n_f + n_c:] = Df
        J[n_f:n_f + n_c, n_f:n_f + n_c] = Ah
        J[n_f:n_f + n_c, n_f + n_c:] = Dc
        J[n_f + n_c:, :n_f] = -E * Sf
        J[n_f + n_c:, n_f:n_f + n_c] = E * Sc
    else:
        n_c = 0
        dmc = _clamped_gain_equilibrium(space, model.q, lam, L)
        n = n_f + k
        J = sp.zeros(n, n)
        J[:n_f, :n_f] = Af
        J[:n_f, n_f:] = Df
        J[n_f:, :n_f] = -E * Sf
        J[n_f:, n_f:] = E * dmc

    W, piv = _constraints(model, sym, n, [(0, n_f)] + ([(n_f, n_c)] if n_c else []), n_f + n_c)
    V, rest = _elimination(W, piv, n)
    return SymbolicLoop(model=model, clamping=net.clamping, sym=sym, J=J.applyfunc(sp.cancel), V=V, rest=rest,
                        n_f=n_f, n_c=n_c, k=k, dmc=dmc)


def _free_edges(model: Model, lam, kap, L: np.ndarray) -> tuple[list, list, list, np.ndarray]:
    """Free-ensemble transitions: sources, targets, symbolic rates, learned exponents (one row each)."""
    src, dst, rates, expo = [], [], [], []
    for e in model.space.edges:
        mono = _monomial(lam, e.exponent)
        for a, b, c in zip(e.src, e.dst, e.coef):
            src.append(int(a))
            dst.append(int(b))
            rates.append(_integer_coef(c, model.network.kappa[e.reaction], f"reaction {e.reaction}")
                         * kap[e.reaction] * mono)
            expo.append(e.exponent[L])
    return src, dst, rates, np.array(expo).reshape(-1, L.size)


def _constraints(model: Model, sym: LoopSymbols, n: int, blocks: list, theta_start: int):
    """Rows of ``W`` (normalisation of each block, neutral ``N^T E^{-1}``) and their pivots."""
    rows, piv = [], []
    for start, size in blocks:
        w = sp.zeros(1, n)
        for i in range(start, start + size):
            w[0, i] = 1
        rows.append(w)
        piv.append(start)
    N = _neutral_exact(model)
    if N.cols:
        Einv = sp.diag(*[1 / e for e in sym.eps])
        Wt = N.T * Einv
        _, pcols = N.T.rref()
        for r in range(N.cols):
            w = sp.zeros(1, n)
            for j in range(Wt.cols):
                w[0, theta_start + j] = Wt[r, j]
            rows.append(w)
        piv.extend(theta_start + c for c in pcols)
    return sp.Matrix.vstack(*rows), piv


def _mean_constraints(model: Model, sym: LoopSymbols, Lc: np.ndarray, n: int, N_sp: int):
    """Rows of ``W`` for the means loop (conservation laws on m, neutral directions on theta) and pivots."""
    rows, piv = [], []
    if Lc.shape[0]:
        Lm = sp.Matrix(Lc.tolist())
        _, pcols = Lm.rref()
        for a in range(Lm.rows):
            w = sp.zeros(1, n)
            w[0, :N_sp] = Lm[a, :]
            rows.append(w)
        piv.extend(pcols)
    Wn, pn = _constraints(model, sym, n, [], N_sp)
    if Wn.rows:
        rows.append(Wn)
        piv.extend(pn)
    return (sp.Matrix.vstack(*rows) if rows else sp.zeros(0, n)), piv


# -- mean closure --------------------------------------------------------------------------------------------
def mean_closure(model: Model, eps_mode: str = "per_species", *, eps: str | None = None) -> SymbolicLoop:
    """Exact linearisation of the *means* for first-order networks under equilibrium clamping.

    For reactions with at most one molecule on each side, the free
    ensemble's means obey closed linear equations (untruncated):
    ``dm/dt = sum_r nu_r kappa_r (lambda^{y'_r} m^{y_r} - lambda^{y_r} m^{y'_r})``
    (``m^{e_i} = m_i``, ``m^0 = 1``). Together with
    ``dtheta/dt = E (m_c(theta) - m_f)`` (``d m_c/d theta = E_Q[Cov(n|v)]``)
    this is the loop seen by the means. Conservation laws ``L m = const``
    and neutral theta directions are eliminated. For E1 the characteristic
    polynomial is exactly ``s^2 + kappa s + kappa epsilon lambda``. ``eps_mode`` as in
    :func:`symbolic_loop` (``eps``: its deprecated name).

    Raises
    ------
    ValueError
        For reactions of higher order or dynamic clamping.
    """
    eps_mode = _eps_mode(eps_mode, eps, "mean_closure")
    net = model.network
    if (net.Y.sum(axis=1) > 1).any() or (net.Yp.sum(axis=1) > 1).any():
        raise ValueError("mean_closure needs first-order reactions (at most one molecule on each side); "
                         "use symbolic_loop for the full ensemble loop")
    sym = make_symbols(model, eps_mode)
    lam, kap = sym.lam, sym.kappa
    N_sp = net.n_species
    m = sp.symbols(f"m_0:{N_sp}")
    th = sp.symbols(f"t_0:{N_sp}")
    L = np.asarray(model.learned)
    k = L.size
    lam_th = [lam[i] * sp.exp(th[i]) for i in range(N_sp)]     # activities around the fixed point

    def mono_mean(y):
        i = np.nonzero(y)[0]
        return m[int(i[0])] if i.size else sp.Integer(1)

    f = sp.zeros(N_sp, 1)
    for r in range(len(net.reactions)):
        y, yp, nu = net.Y[r], net.Yp[r], net.nu[r]
        flux = kap[r] * (_monomial(lam_th, yp) * mono_mean(y) - _monomial(lam_th, y) * mono_mean(yp))
        for i in np.nonzero(nu)[0]:
            f[i] += int(nu[i]) * flux
    # fixed point of the means at theta = 0 offsets (lambda = fixed-point activities), on the leaf L m = L n0
    Lc = net.conservation_laws.astype(int)
    f0 = f.subs({t: 0 for t in th})
    eqs = list(f0) + [sum(int(Lc[a, i]) * m[i] for i in range(N_sp)) - int(Lc[a] @ model.initial)
                      for a in range(Lc.shape[0])]
    sol = sp.solve(eqs, m, dict=True)
    if len(sol) != 1:
        raise ValueError("the mean equations have no unique fixed point")
    mstar = sol[0]
    at = {**mstar, **{t: 0 for t in th}}
    Jm = f.jacobian(m).subs(at).applyfunc(sp.cancel)
    Jt = f.jacobian([th[i] for i in L]).subs(at).applyfunc(sp.cancel)
    E = sp.diag(*sym.eps)
    clamping = model.learning.clamping
    if clamping != "equilibrium":
        model = model.with_learning(clamping="equilibrium")
    dmc = _clamped_gain_equilibrium(model.space, model.q, lam, L)
    n = N_sp + k
    J = sp.zeros(n, n)
    J[:N_sp, :N_sp] = Jm
    J[:N_sp, N_sp:] = Jt
    sel = sp.zeros(k, N_sp)
    for a, i in enumerate(L):
        sel[a, int(i)] = 1
    J[N_sp:, :N_sp] = -E * sel
    J[N_sp:, N_sp:] = E * dmc
    W, piv = _mean_constraints(model, sym, Lc, n, N_sp)
    V, rest = _elimination(W, piv, n)
    return SymbolicLoop(model=model, clamping="equilibrium", sym=sym, J=J, V=V, rest=rest, n_f=N_sp, n_c=0, k=k,
                        dmc=dmc, description="mean closure", extra={"fixed_point_means": mstar})


def divide_out(poly: sp.Poly | sp.Expr, factor: sp.Expr, s: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """``poly = factor * quotient + remainder`` (polynomial division in ``s``); returns ``(quotient, remainder)``.

    A zero remainder means ``factor`` divides ``poly`` exactly; on a
    truncated box the remainder carries the truncation's effect.
    """
    p = poly.as_expr() if isinstance(poly, sp.Poly) else poly
    q, r = sp.div(sp.Poly(p, s), sp.Poly(factor, s))
    return sp.collect(sp.cancel(q.as_expr()), s), sp.collect(sp.cancel(r.as_expr()), s)


__all__ = ["EPS_MODES", "divide_out", "latex_polynomial", "LoopSymbols", "make_symbols", "mean_closure", "symbolic_loop",
           "SymbolicLoop", "SymbolicTooLargeError"]
