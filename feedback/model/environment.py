"""Environments ``Q(v)``: laws on visible states (docs/theory.md §2).

Named families (poisson, binomial, table, mixture, product) are value
objects with a ``pmf``; :func:`tabulate` turns one into a table aligned with
the visible states of a :class:`~crnfb.feedback.model.statespace.StateSpace`, reports the
mass it puts outside the reachable class, and refuses (D would be infinite)
when that mass exceeds the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import gammaln, xlog1py, xlogy

from ..errors import EnvironmentModelError, ModelError
from ..errors import check_number as _num

SUM_TOL = 1e-9


class Environment:
    """Base class: a law on visible states of dimension :attr:`dim` (None = any)."""

    dim: int | None = 1

    def pmf(self, points: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def mean(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Poisson(Environment):
    mean_: float

    def __post_init__(self):
        _num(self.mean_, "mean", positive=True)

    def pmf(self, points):
        return stats.poisson.pmf(np.asarray(points)[:, 0], self.mean_)

    def mean(self):
        return np.array([self.mean_])

    def to_dict(self):
        return {"family": "poisson", "mean": self.mean_}


@dataclass(frozen=True)
class Binomial(Environment):
    n: int
    p: float

    def __post_init__(self):
        _num(self.n, "n", nonneg=True, integer=True)
        _num(self.p, "p", prob=True)

    def pmf(self, points):
        # in logs: scipy's binom.pmf raises OverflowError for tiny p (e.g. p = 1e-308)
        k = np.asarray(points)[:, 0].astype(float)
        n, p = int(self.n), float(self.p)
        out = np.zeros(k.shape)
        ok = (k >= 0) & (k <= n)
        kk = k[ok]
        out[ok] = np.exp(gammaln(n + 1.0) - gammaln(kk + 1.0) - gammaln(n - kk + 1.0)
                         + xlogy(kk, p) + xlog1py(n - kk, -p))
        return out

    def mean(self):
        return np.array([self.n * self.p])

    def to_dict(self):
        return {"family": "binomial", "n": int(self.n), "p": self.p}


@dataclass(frozen=True)
class Table(Environment):
    support: tuple[tuple[int, ...], ...]
    probs: tuple[float, ...]

    def __post_init__(self):
        if len(self.support) != len(self.probs) or not self.support:
            raise ModelError(f"support has {len(self.support)} points but probs has "
                             f"{len(self.probs)} values; give one probability per point", key="probs")
        dims = {len(s) for s in self.support}
        if len(dims) != 1:
            raise ModelError("support points have different lengths; give one count per visible species",
                             key="support")
        for i, s in enumerate(self.support):
            for x in s:
                _num(x, f"support[{i}]", nonneg=True, integer=True)
        for i, p in enumerate(self.probs):
            _num(p, f"probs[{i}]", nonneg=True)
        total = float(np.sum(self.probs))
        if abs(total - 1) > 1e-9:
            raise ModelError(f"probabilities sum to {total:.12g}, not 1", key="probs")
        if len(set(self.support)) != len(self.support):
            raise ModelError("support lists a point twice", key="support")
        object.__setattr__(self, "dim", dims.pop())

    def pmf(self, points):
        look = dict(zip(self.support, self.probs))
        return np.array([look.get(tuple(int(x) for x in p), 0.0) for p in np.asarray(points)])

    def mean(self):
        return np.asarray(self.probs) @ np.asarray(self.support, float)

    def to_dict(self):
        return {"family": "table", "support": [list(s) for s in self.support], "probs": list(self.probs)}


@dataclass(frozen=True)
class Mixture(Environment):
    components: tuple[Environment, ...]
    weights: tuple[float, ...]

    def __post_init__(self):
        if len(self.components) != len(self.weights) or not self.components:
            raise ModelError(f"{len(self.components)} components but {len(self.weights)} weights; "
                             "give one weight per component", key="weights")
        for i, w in enumerate(self.weights):
            _num(w, f"weights[{i}]", nonneg=True)
        if abs(sum(self.weights) - 1) > 1e-9:
            raise ModelError(f"weights sum to {sum(self.weights):.12g}, not 1", key="weights")
        dims = {c.dim for c in self.components} - {None}
        if len(dims) > 1:
            raise ModelError("mixture components have different dimensions", key="components")
        object.__setattr__(self, "dim", dims.pop() if dims else None)

    def pmf(self, points):
        return sum(w * c.pmf(points) for w, c in zip(self.weights, self.components))

    def mean(self):
        return sum(w * c.mean() for w, c in zip(self.weights, self.components))

    def to_dict(self):
        return {"family": "mixture", "components": [c.to_dict() for c in self.components],
                "weights": list(self.weights)}


@dataclass(frozen=True)
class Product(Environment):
    components: tuple[Environment, ...]

    def __post_init__(self):
        if not self.components:
            raise ModelError("product needs one component per visible species", key="components")
        for i, c in enumerate(self.components):
            if c.dim not in (1, None):
                raise ModelError("each product component must be a law on one species",
                                 key=f"components[{i}]")
        object.__setattr__(self, "dim", len(self.components))

    def pmf(self, points):
        points = np.asarray(points)
        out = np.ones(points.shape[0])
        for i, c in enumerate(self.components):
            out *= c.pmf(points[:, i:i + 1])
        return out

    def mean(self):
        return np.concatenate([c.mean() for c in self.components])

    def to_dict(self):
        return {"family": "product", "components": [c.to_dict() for c in self.components]}


@dataclass(frozen=True)
class EnvironmentTable:
    """An environment tabulated on the class's visible states.

    Attributes
    ----------
    q : ndarray
        ``Q(v)`` for each row of ``space.visible_states`` (sums to one).
    tail_mass : float
        Mass the family puts outside the reachable visible states (dropped
        and renormalised; below the tolerance by construction).
    """

    q: np.ndarray
    tail_mass: float


def tabulate(env: Environment, space, tol: float = 1e-6, key: str = "environment") -> EnvironmentTable:
    """Tabulate ``env`` on ``space.visible_states``.

    Raises
    ------
    EnvironmentModelError
        Dimension mismatch, or mass outside the reachable class above ``tol``
        (``D(Q||P)`` would be infinite); the message names the points.
    """
    vs = space.visible_states
    nv = vs.shape[1]
    if nv == 0:
        raise EnvironmentModelError("the network has no visible species; mark at least one species "
                                    "visible = true", key=key)
    if env.dim is not None and env.dim != nv:
        raise EnvironmentModelError(
            f"the environment is a law on {env.dim} species but the network has {nv} visible species "
            f"({', '.join(space.network.names[i] for i in space.network.visible)}); "
            "use family = \"product\" or a table with one count per visible species", key=key)
    q = np.asarray(env.pmf(vs), float)
    tail = float(max(0.0, 1.0 - q.sum()))
    if tail > tol:
        msg = (f"the environment puts mass {tail:.3g} on visible states outside the reachable class "
               f"(D(Q||P) would be infinite; tolerance {tol:g})")
        if isinstance(env, Table):
            known = {tuple(int(x) for x in v) for v in vs}
            outside = [s for s, p in zip(env.support, env.probs) if p > 0 and tuple(s) not in known]
            msg += f": points {outside[:10]} are not reachable from the initial state"
        else:
            names = [space.network.names[i] for i in space.network.visible]
            msg += ("; reachable ranges: " + ", ".join(
                f"{n} in [{vs[:, j].min()}, {vs[:, j].max()}]" for j, n in enumerate(names))
                + ". Raise the truncation n_max or change the environment")
        raise EnvironmentModelError(msg, key=key)
    return EnvironmentTable(q / q.sum(), tail)


def from_dict(d: dict, key: str = "environment") -> Environment:
    """Build an environment from its TOML table (validated; errors name the key)."""
    if not isinstance(d, dict):
        raise ModelError(f"must be a table, got {d!r}", key=key)
    fam = d.get("family")
    families = ("poisson", "binomial", "table", "mixture", "product")
    if fam not in families:
        raise ModelError(f"family must be one of {', '.join(families)}, got {fam!r}", key=f"{key}.family")

    def need(name):
        if name not in d:
            raise ModelError(f"family {fam!r} needs key {name!r}", key=f"{key}.{name}")
        return d[name]

    if key != "environment" and "change" in d:
        raise ModelError("a 'change' table belongs directly under [environment], not here", key=f"{key}.change")
    allowed = {"poisson": {"mean"}, "binomial": {"n", "p"}, "table": {"support", "probs"},
               "mixture": {"components", "weights"}, "product": {"components"}}[fam] | {"family", "change"}
    extra = set(d) - allowed
    if extra:
        raise ModelError(f"unknown keys {sorted(extra)} for family {fam!r}; allowed: {sorted(allowed - {'change'})}",
                         key=key)
    try:
        if fam == "poisson":
            return Poisson(_num(need("mean"), "mean", positive=True))
        if fam == "binomial":
            return Binomial(int(_num(need("n"), "n", nonneg=True, integer=True)),
                            _num(need("p"), "p", prob=True))
        if fam == "table":
            sup, probs = need("support"), need("probs")
            if not isinstance(sup, list) or not isinstance(probs, list):
                raise ModelError("support and probs must be arrays", key="support")
            pts = []
            for i, s in enumerate(sup):
                s = s if isinstance(s, list) else [s]
                pts.append(tuple(int(_num(x, f"support[{i}]", nonneg=True, integer=True)) for x in s))
            return Table(tuple(pts), tuple(_num(p, f"probs[{i}]", nonneg=True) for i, p in enumerate(probs)))
        comps = need("components")
        if not isinstance(comps, list):
            raise ModelError("components must be an array of tables", key="components")
        parsed = tuple(from_dict(c, f"{key}.components[{i}]") for i, c in enumerate(comps))
        if fam == "mixture":
            w = need("weights")
            if not isinstance(w, list):
                raise ModelError("weights must be an array of numbers", key="weights")
            return Mixture(parsed, tuple(_num(x, f"weights[{i}]", nonneg=True) for i, x in enumerate(w)))
        return Product(parsed)
    except ModelError as e:
        if e.key and not e.key.startswith(key):
            raise ModelError(e.message, key=f"{key}.{e.key}") from None
        raise


__all__ = ["Binomial", "Environment", "EnvironmentTable", "from_dict", "Mixture", "Poisson", "Product",
           "Table", "tabulate"]
