"""Random environments: the mixing weight ``a(t)`` as a stationary Markov chain (docs/theory.md §5a).

``Q(t) = (1 - a(t)) Q_1 + a(t) Q_2`` with ``a(t)`` a continuous-time Markov
chain on levels ``l_1..l_K`` (each in ``[0, 1]``) with off-diagonal rates
``R_ij >= 0`` (``i -> j``), irreducible. The generator ``G`` has the rates
off the diagonal and ``-sum_j R_ij`` on it (rows sum to zero).

Second-order statistics (used by the loop's cost prediction):

- stationary law ``pi`` (``pi^T G = 0``, ``sum pi = 1``), mean ``abar = pi . l``;
- autocovariance ``C(tau) = l^T (diag(pi) e^{G |tau|} - pi pi^T) l``;
- two-sided power spectral density ``S_a(w) = int C(tau) e^{-j w tau} dtau``.
  With the eigen-decomposition ``G = sum_m mu_m r_m s_m^T`` (``mu_0 = 0``,
  ``Re mu_m < 0`` otherwise) ``C(tau) = sum_{m>0} c_m e^{mu_m |tau|}`` with
  ``c_m = (l^T diag(pi) r_m)(s_m^T l)`` and
  ``S_a(w) = sum_{m>0} c_m (-2 mu_m) / (mu_m^2 + w^2)``. For a reversible
  chain the ``mu_m`` are real; the closed form holds for complex pairs too.
  Telegraph (two levels, ``k = k_01 + k_10``):
  ``C(tau) = var_a e^{-k|tau|}``, ``S_a(w) = var_a 2k / (k^2 + w^2)``.

Sample paths (:meth:`MarkovEnvironment.path`) are drawn from
``numpy.random.default_rng(seed)``: the first level from ``pi`` (stationary
start), then exponential holding times and jumps by the embedded chain. A
path is a piecewise-constant :class:`~crnfb.feedback.model.signals.Signal`, so the
ODE restarts at its switches and the SSA redraws its waiting time there
(exact: the environment does not depend on the network's state, so drawing
its path first and the network's events given the path samples the joint
process exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, sparse
from scipy.sparse import csgraph

from ..errors import ModelError
from .signals import Signal

__all__ = ["MarkovEnvironment", "MarkovPath", "telegraph", "parse_fluctuation", "GENERATOR_RTOL"]

_KEY = "environment.fluctuation"
MAX_SWITCHES = 5_000_000


def _finite_number(v, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ModelError(f"must be a finite number, got {v!r}", key=key)
    return float(v)


def _check_irreducible(R: np.ndarray, lv: list) -> None:
    """Every level reaches every other along positive rates: one strongly connected component.

    ``scipy.sparse.csgraph`` (Tarjan, O(K + edges)): a 1,000-level chain is
    checked in milliseconds (K boolean matrix products took minutes).
    """
    adj = sparse.csr_matrix(R > 0)
    n, _ = csgraph.connected_components(adj, directed=True, connection="strong")
    if n == 1:
        return
    # name one pair: a level that level 0 does not reach, or one that does not reach level 0
    fwd = set(csgraph.breadth_first_order(adj, 0, directed=True, return_predecessors=False).tolist())
    bwd = set(csgraph.breadth_first_order(adj.T.tocsr(), 0, directed=True, return_predecessors=False).tolist())
    i, j = (0, min(set(range(len(lv))) - fwd)) if len(fwd) < len(lv) else (min(set(range(len(lv))) - bwd), 0)
    raise ModelError(f"the chain is not irreducible: level {i} (a = {lv[i]:g}) never reaches level {j} "
                     f"(a = {lv[j]:g}); give positive rates so that every level can reach every other",
                     key=f"{_KEY}.rates")


@dataclass(frozen=True, eq=False)
class MarkovEnvironment:
    """A stationary continuous-time Markov chain for the mixing weight ``a``.

    Parameters
    ----------
    levels : sequence of float
        Values of ``a`` (each in ``[0, 1]``; at least two, distinct).
    rates : (K, K) array
        ``rates[i][j]`` is the rate of ``i -> j`` (``>= 0``). The diagonal is
        either 0 everywhere (jump rates) or minus each row's other rates
        everywhere (the generator, to :data:`GENERATOR_RTOL` relative); it is
        stored as 0. The chain must be irreducible.

    Raises
    ------
    ModelError
        Levels outside ``[0, 1]`` or repeated, rates negative, not finite,
        of the wrong shape, or a chain that is not irreducible.
    """

    levels: tuple
    rates: tuple

    def __post_init__(self):
        lv = list(self.levels) if isinstance(self.levels, (list, tuple, np.ndarray)) else None
        if lv is None or len(lv) < 2:
            raise ModelError(f"levels must be a list of at least two mixing weights in [0, 1], got {self.levels!r}",
                             key=f"{_KEY}.levels")
        lv = [_finite_number(x, f"{_KEY}.levels[{i}]") for i, x in enumerate(lv)]
        for i, x in enumerate(lv):
            if not 0.0 <= x <= 1.0:
                raise ModelError(f"level {x:g} is outside [0, 1]; a level is the mixing weight a of "
                                 "Q = (1-a) Q_1 + a Q_2", key=f"{_KEY}.levels[{i}]")
        if len(set(lv)) != len(lv):
            raise ModelError(f"levels must be distinct, got {lv}; merge equal levels (add their rates)",
                             key=f"{_KEY}.levels")
        K = len(lv)
        rt = self.rates
        if not isinstance(rt, (list, tuple, np.ndarray)) or len(rt) != K or any(
                not isinstance(row, (list, tuple, np.ndarray)) or len(row) != K for row in rt):
            raise ModelError(f"rates must be a {K} x {K} table (one row per level: rates[i][j] is the rate "
                             f"of the jump from level i to level j), got {rt!r}", key=f"{_KEY}.rates")
        R = np.array([[_finite_number(x, f"{_KEY}.rates[{i}][{j}]") for j, x in enumerate(row)]
                      for i, row in enumerate(rt)])
        for i in range(K):
            for j in range(K):
                if i != j and R[i, j] < 0:
                    raise ModelError(f"rates must be >= 0, got {R[i, j]:g}", key=f"{_KEY}.rates[{i}][{j}]")
        R = _zero_diagonal(R)
        _check_irreducible(R, lv)
        object.__setattr__(self, "levels", tuple(lv))
        object.__setattr__(self, "rates", tuple(tuple(float(x) for x in row) for row in R))

    # -- second-order statistics ---------------------------------------------------------------
    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def level_array(self) -> np.ndarray:
        return np.asarray(self.levels, float)

    @property
    def generator(self) -> np.ndarray:
        """``G``: rates off the diagonal, minus the row sums on it."""
        R = np.asarray(self.rates, float)
        return R - np.diag(R.sum(axis=1))

    @property
    def rate_scale(self) -> float:
        """``s = max R_ij``: the chain's fastest rate (the time unit of :attr:`scaled_generator`)."""
        return float(np.max(np.asarray(self.rates, float)))

    @property
    def scaled_generator(self) -> np.ndarray:
        """``G / s`` (:attr:`rate_scale`): entries in [-K, 1], so LAPACK never sees rates of 1e300.

        The stationary law and the eigenvectors of ``G`` are those of ``G / s``
        and its eigenvalues are ``s`` times; computing on ``G`` itself overflows
        its norms at rates near 1e300 (LAPACK's "DLASCL parameter 4" message).
        """
        R = np.asarray(self.rates, float) / self.rate_scale
        return R - np.diag(R.sum(axis=1))

    @property
    def stationary(self) -> np.ndarray:
        """``pi`` with ``pi^T G = 0``, ``sum pi = 1`` (unique: the chain is irreducible; on ``G / s``)."""
        G = self.scaled_generator
        K = G.shape[0]
        A = np.vstack([G.T, np.ones((1, K))])
        b = np.zeros(K + 1)
        b[-1] = 1.0
        pi = np.linalg.lstsq(A, b, rcond=None)[0]
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()

    @property
    def mean(self) -> float:
        """``abar = sum pi_i l_i``."""
        return float(self.stationary @ self.level_array)

    @property
    def variance(self) -> float:
        """``var a = C(0)``."""
        pi, l = self.stationary, self.level_array
        return float(pi @ (l - pi @ l) ** 2)

    def rates_of_decay(self) -> np.ndarray:
        """The non-zero eigenvalues ``mu_m`` of ``G`` (the zero mode removed), defective or not."""
        mu = linalg.eigvals(self.scaled_generator)
        return mu[np.argsort(np.abs(mu))[1:]] * self.rate_scale

    def modes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu_m, c_m)`` with ``C(tau) = sum_m Re(c_m e^{mu_m |tau|})`` (the zero mode removed).

        Raises ``ValueError`` for a defective generator (a repeated eigenvalue
        with too few eigenvectors): ``C`` then has ``tau e^{mu tau}`` terms and
        no such expansion; :meth:`psd` and :meth:`autocovariance` do not need it.
        """
        pi, l = self.stationary, self.level_array
        mu, Rv = linalg.eig(self.scaled_generator)      # eigenvalues of G / s: scaled back below
        if np.linalg.cond(Rv) > 1.0 / np.sqrt(np.finfo(float).eps):
            raise ValueError("the generator is defective (a repeated eigenvalue with too few eigenvectors): "
                             "C(tau) has no expansion in exponentials")
        Sv = np.linalg.inv(Rv)                          # rows: left eigenvectors, S R = I
        c = (l * pi) @ Rv * (Sv @ l)                    # (l^T diag(pi) r_m)(s_m^T l)
        keep = np.argsort(np.abs(mu))[1:]               # drop mu_0 = 0 (its term is (pi.l)^2, the mean)
        return mu[keep] * self.rate_scale, c[keep]

    def autocovariance(self, tau) -> np.ndarray:
        """``C(tau) = l^T (diag(pi) e^{G |tau|} - pi pi^T) l`` (by the matrix exponential)."""
        tau = np.abs(np.atleast_1d(np.asarray(tau, float)))
        pi, l = self.stationary, self.level_array
        G, s = self.scaled_generator, self.rate_scale
        # e^{G t} = e^{(G/s)(s t)}; past s t = 1e6 / (slowest scaled rate) the chain has mixed to 1e-400000
        slow = float(np.min(np.abs(self.rates_of_decay().real))) / s
        out = np.array([0.0 if s * t * slow > 1e3 else float((l * pi) @ linalg.expm(G * (s * t)) @ l - (pi @ l) ** 2)
                        for t in tau])
        return out

    def psd(self, omega) -> np.ndarray:
        """Two-sided power spectral density ``S_a(w)`` (closed form, module docstring)."""
        w = np.asarray(omega, float)
        # S(w) = 2 Re int_0^inf C(t) e^{-iwt} dt = 2 Re[(dl pi)^T (i w I - G)^{-1} dl] with dl = l - pi.l
        # (C(t) = (dl pi)^T e^{Gt} dl, as pi^T e^{Gt} = pi^T and e^{Gt} 1 = 1); pi^T dl = 0, so
        # adding 1 pi^T leaves the solution unchanged and makes w = 0 regular. No eigenvectors: exact
        # also for a defective generator, where a modal sum is not defined.
        pi, l, sc = self.stationary, self.level_array, self.rate_scale
        dl = l - pi @ l
        A = np.outer(np.ones_like(pi), pi) - self.scaled_generator
        out = [2.0 * float(np.real((dl * pi) @ np.linalg.solve(A + 1j * (wk / sc) * np.eye(pi.size), dl))) / sc
               for wk in np.atleast_1d(w).ravel()]
        return np.asarray(out, float).reshape(np.shape(w))

    @property
    def correlation_time(self) -> float:
        """``1 / min |Re mu_m|``: the slowest decay of ``C(tau)``."""
        return float(1.0 / np.min(np.abs(self.rates_of_decay().real)))

    @property
    def switching_rate(self) -> float:
        """Mean number of jumps per unit time in the stationary chain: ``sum_i pi_i sum_j R_ij``."""
        return float(self.stationary @ np.asarray(self.rates).sum(axis=1))

    def with_rates(self, rates) -> "MarkovEnvironment":
        return MarkovEnvironment(self.levels, rates)

    def scaled(self, factor: float) -> "MarkovEnvironment":
        """The same chain run ``factor`` times faster (``pi`` unchanged)."""
        return MarkovEnvironment(self.levels, (np.asarray(self.rates) * float(factor)).tolist())

    # -- sample paths ---------------------------------------------------------------------------
    def path(self, t_end: float, seed: int | np.random.SeedSequence | np.random.Generator) -> "MarkovPath":
        """A stationary sample path on ``[0, t_end]`` (first level drawn from ``pi``)."""
        if not (isinstance(t_end, (int, float, np.floating)) and math.isfinite(t_end) and t_end > 0):
            raise ModelError(f"t_end must be a positive number, got {t_end!r}")
        expected = self.switching_rate * float(t_end)
        if expected > MAX_SWITCHES:
            raise ModelError(f"{expected:.3g} switches expected on [0, {t_end:g}]; at most {MAX_SWITCHES:g}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        R = np.asarray(self.rates, float)
        out_rate = R.sum(axis=1)
        jump = R / out_rate[:, None]
        K = self.n_levels
        state = int(rng.choice(K, p=self.stationary))
        times, states = [], [state]
        t = 0.0
        while True:
            t += rng.exponential(1.0 / out_rate[state])
            if t >= t_end:
                break
            state = int(rng.choice(K, p=jump[state]))
            times.append(t)
            states.append(state)
        lv = self.level_array
        return MarkovPath(tuple(times), tuple(float(lv[s]) for s in states), float(t_end))

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "rates": [list(r) for r in self.rates],
                "stationary": self.stationary.tolist(), "mean": self.mean, "variance": self.variance,
                "correlation_time": self.correlation_time, "switching_rate": self.switching_rate}


#: Relative tolerance of the generator form: ``|R_ii + sum_{j != i} R_ij| <= GENERATOR_RTOL * sum_{j != i} R_ij``.
GENERATOR_RTOL = 1e-12


def _zero_diagonal(R: np.ndarray) -> np.ndarray:
    """The jump rates of ``R`` with a zero diagonal; ``R`` is either that already or a generator.

    A generator (the textbook form) has ``-sum_{j != i} R_ij`` on row ``i``'s
    diagonal; both forms mean the same chain. A table that is neither (some
    diagonal entry non-zero and not minus its row's rates, to
    :data:`GENERATOR_RTOL` of the row's total rate) is refused naming the row:
    it is ambiguous which rates were meant.
    """
    diag = np.diag(R).copy()
    if not np.any(diag != 0.0):
        return R
    off = (R - np.diag(diag)).sum(axis=1)
    for i in range(R.shape[0]):
        if not abs(diag[i] + off[i]) <= GENERATOR_RTOL * off[i]:
            raise ModelError(
                f"row {i} is neither of the two accepted forms: its diagonal entry is {float(diag[i])!r}, but a table "
                f"with a non-zero diagonal is read as a generator, whose diagonal is minus the row's other rates "
                f"(here {float(-off[i])!r}, to a relative {GENERATOR_RTOL:g}); give every diagonal entry as 0 "
                f"(jump rates) or every one as minus its row's sum (generator)", key=f"{_KEY}.rates[{i}]")
    out = R.copy()
    np.fill_diagonal(out, 0.0)
    return out


def telegraph(level0: float, level1: float, k01: float, k10: float) -> MarkovEnvironment:
    """Two levels with rates ``k01`` (0 -> 1) and ``k10`` (1 -> 0)."""
    return MarkovEnvironment((level0, level1), ((0.0, k01), (k10, 0.0)))


@dataclass(frozen=True)
class MarkovPath(Signal):
    """A sampled path: ``values[i]`` holds on ``[switches[i-1], switches[i])`` (``switches[-1] = 0``)."""

    switches: tuple
    values: tuple
    t_end: float
    _sw: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_sw", np.asarray(self.switches, float))

    def __call__(self, t):
        k = np.searchsorted(self._sw, np.asarray(t, float), side="right")
        out = np.asarray(self.values, float)[k]
        return float(out) if np.ndim(t) == 0 else out

    def breakpoints(self, t0, t1):
        return tuple(s for s in self.switches if t0 < s < t1)

    def bounds(self):
        return (min(self.values), max(self.values))

    def describe(self):
        return f"markov({len(set(self.values))} levels, {len(self.switches)} switches)"

    def time_average(self, fun=lambda a: a) -> float:
        """``(1/t_end) int_0^t_end fun(a(t)) dt`` (exact, piecewise constant)."""
        edges = np.concatenate([[0.0], self._sw, [self.t_end]])
        return float(np.sum(np.diff(edges) * np.array([fun(v) for v in self.values])) / self.t_end)


def parse_fluctuation(tab, has_change: bool) -> MarkovEnvironment:
    """``[environment.fluctuation]`` (docs/model-file.md): ``levels`` and ``rates``.

    ``rates`` is the K x K table of jump rates (``rates[i][j]``: level i to
    level j) with a zero diagonal, or the generator (diagonal minus the row
    sum); for two levels ``k_01``/``k_10`` may be given
    instead.
    """
    if not isinstance(tab, dict):
        raise ModelError(f"must be a table, got {type(tab).__name__} {tab!r}", key=_KEY)
    allowed = {"levels", "rates", "k_01", "k_10"}
    extra = sorted(set(tab) - allowed)
    if extra:
        raise ModelError(f"unknown key(s) {extra}; allowed: {sorted(allowed)}", key=_KEY)
    if not has_change:
        raise ModelError("a fluctuating environment moves the mixing weight a of Q = (1-a) Q_1 + a Q_2: "
                         "give [environment.change] (Q_2) as well", key=_KEY)
    if "levels" not in tab:
        raise ModelError("needs levels = [a_1, a_2, ...] (mixing weights in [0, 1])", key=f"{_KEY}.levels")
    levels = tab["levels"]
    has_k = "k_01" in tab or "k_10" in tab
    if has_k and "rates" in tab:
        raise ModelError("give either rates = [[...]] or k_01/k_10, not both", key=_KEY)
    if has_k:
        if not (isinstance(levels, list) and len(levels) == 2):
            raise ModelError("k_01/k_10 describe a telegraph: give exactly two levels", key=f"{_KEY}.levels")
        if not ("k_01" in tab and "k_10" in tab):
            raise ModelError("k_01 and k_10 go together; give both", key=_KEY)
        k01 = _finite_number(tab["k_01"], f"{_KEY}.k_01")
        k10 = _finite_number(tab["k_10"], f"{_KEY}.k_10")
        for name, v in (("k_01", k01), ("k_10", k10)):
            if v <= 0:
                raise ModelError(f"must be > 0 (a telegraph with a zero rate never leaves a level), got {v:g}",
                                 key=f"{_KEY}.{name}")
        return MarkovEnvironment(tuple(levels), ((0.0, k01), (k10, 0.0)))
    if "rates" not in tab:
        raise ModelError("needs rates = [[0, r_01, ...], [r_10, 0, ...], ...] (rates[i][j]: level i to j) "
                         "or, for two levels, k_01 and k_10", key=f"{_KEY}.rates")
    return MarkovEnvironment(tuple(levels) if isinstance(levels, list) else levels, tab["rates"])
