"""Detailed-balanced reaction networks (docs/theory.md §1).

A :class:`Network` holds species (with free energies ``G_i``, visibility and
whether ``G_i`` is learned) and reversible reactions ``y_r <-> y'_r`` with the
catalytic kinetics ``k+_r = kappa_r lambda^{y'_r}``, ``k-_r = kappa_r lambda^{y_r}``.
Reactions given by raw rate constants are converted by :func:`from_rate_constants`
after the Wegscheider check (:func:`detailed_balance`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from math import gcd, lcm

import numpy as np
from sympy import QQ
from sympy.polys.matrices import DomainMatrix

from ..errors import DetailedBalanceError, ModelError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TERM = re.compile(rf"^\s*(?:(\d+)\s*\*?\s*)?({_NAME})\s*$")
_ARROW = "<->"
MAX_COEFFICIENT = 1000  # larger stoichiometric coefficients overflow int64 / stall falling factorials


@dataclass(frozen=True)
class Species:
    """One species of the model network.

    Attributes
    ----------
    name : str
    energy : float
        Free energy ``G_i`` in kT (initial value when learned); ``theta_i = -G_i``.
    visible : bool
        Visible species are set by the environment in the clamped ensemble.
    learn : bool
        Whether ``G_i`` is a learned parameter (has a parameter species).
    """

    name: str
    energy: float = 0.0
    visible: bool = False
    learn: bool = True


@dataclass(frozen=True)
class Reaction:
    """A reversible reaction ``y <-> y'`` with catalytic-scheme constant ``kappa``.

    ``reactants`` and ``products`` are stoichiometric vectors over the
    network's species (tuples of non-negative ints).
    """

    reactants: tuple[int, ...]
    products: tuple[int, ...]
    kappa: float = 1.0
    eq: str = ""

    @property
    def nu(self) -> np.ndarray:
        return np.asarray(self.products) - np.asarray(self.reactants)


def parse_complex(text: str, names: list[str]) -> tuple[int, ...]:
    """Parse ``"A + 2 B"`` (or ``"0"``) into a stoichiometric vector over ``names``.

    Raises
    ------
    ModelError
        For malformed terms or unknown species (the message says which).
    """
    text = text.strip()
    vec = [0] * len(names)
    if text == "0":
        return tuple(vec)
    if not text:
        raise ModelError("empty complex; write '0' for the empty complex")
    index = {n: i for i, n in enumerate(names)}
    for term in text.split("+"):
        m = _TERM.match(term)
        if not m:
            raise ModelError(
                f"malformed term {term.strip()!r} in complex {text!r}; "
                "expected '[coefficient] Species', e.g. '2 B', or '0' for the empty complex")
        coef = int(m.group(1)) if m.group(1) else 1
        if coef == 0:
            raise ModelError(f"zero coefficient in {term.strip()!r}; leave the term out")
        if coef > MAX_COEFFICIENT:
            raise ModelError(f"coefficient {coef} in {term.strip()!r} is too large "
                             f"(at most {MAX_COEFFICIENT})")
        name = m.group(2)
        if name not in index:
            raise ModelError(
                f"unknown species {name!r} in {text!r}; declared species: {', '.join(names)}")
        vec[index[name]] += coef
    return tuple(vec)


def parse_equation(eq: str, names: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Parse ``"A + 2 B <-> C"`` into (reactants, products) vectors."""
    if eq.count(_ARROW) != 1:
        raise ModelError(
            f"reaction {eq!r} must contain exactly one '<->' (reactions are reversible), "
            "e.g. 'A + 2 B <-> C' or '0 <-> X'")
    left, right = eq.split(_ARROW)
    y, yp = parse_complex(left, names), parse_complex(right, names)
    if y == yp:
        raise ModelError(f"reaction {eq!r} has identical sides; it changes nothing")
    return y, yp


def integer_basis(rows: np.ndarray) -> np.ndarray:
    """Integer basis of the (right) null space of an integer matrix.

    Uses exact rational arithmetic (sympy's sparse ``DomainMatrix`` over
    the rationals, built from the non-zero entries only: a dense
    ``sympy.Matrix`` of a 1,000-species network spends seconds converting a
    million zeros) on integer data; each basis vector is scaled to coprime integers with its
    first non-zero entry positive, and the basis is brought to reduced row
    echelon form so it is canonical.
    """
    rows = np.asarray(rows, dtype=np.int64)
    ncols = rows.shape[1]
    if rows.shape[0] == 0:
        return np.eye(ncols, dtype=np.int64)
    # sparse: only the non-zero stoichiometric entries are converted (a few per reaction)
    entries: dict[int, dict[int, object]] = {}
    for i, j in zip(*np.nonzero(rows)):
        entries.setdefault(int(i), {})[int(j)] = QQ(int(rows[i, j]))
    null = DomainMatrix(entries, rows.shape, QQ).nullspace()   # basis vectors as rows
    if null.shape[0] == 0:
        return np.zeros((0, ncols), dtype=np.int64)
    out = []
    for row in null.rref()[0].to_list():
        fr = [Fraction(int(x.numerator), int(x.denominator)) for x in row]
        den = lcm(*[f.denominator for f in fr])
        ints = [int(f * den) for f in fr]
        g = 0
        for v in ints:
            g = gcd(g, abs(v))
        ints = [v // g for v in ints]
        first = next(v for v in ints if v != 0)
        if first < 0:
            ints = [-v for v in ints]
        out.append(ints)
    return np.array(out, dtype=np.int64)


def _nonnegative_where_possible(L: np.ndarray) -> np.ndarray:
    """Prefer a conservation-law basis whose vectors are non-negative.

    The rref basis of E3 contains mixed signs; adding multiples of other rows
    often gives the physically meaningful totals. This is cosmetic (the row
    space is unchanged) but makes summaries readable.
    """
    L = L.copy()
    for i in range(L.shape[0]):
        if (L[i] >= 0).all():
            continue
        for j in range(L.shape[0]):
            if i == j:
                continue
            for c in (1, 2, 3):
                cand = L[i] + c * L[j]
                if (cand >= 0).all():
                    g = np.gcd.reduce(cand)
                    L[i] = cand // max(g, 1)
                    break
            if (L[i] >= 0).all():
                break
    return L


@dataclass(frozen=True)
class Network:
    """A reversible reaction network with species energies.

    Build it directly, or from a model file with :func:`crnfb.feedback.io.modelfile.load_model`.

    Examples
    --------
    >>> net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    >>> net.stoichiometry.tolist()
    [[1]]
    """

    species: tuple[Species, ...]
    reactions: tuple[Reaction, ...]
    name: str = "network"

    def __post_init__(self) -> None:
        names = [s.name for s in self.species]
        if len(set(names)) != len(names):
            raise ModelError(f"duplicate species names in {names}")
        if not self.species:
            raise ModelError("a network needs at least one species")
        if not self.reactions:
            raise ModelError("a network needs at least one reaction")
        for s in self.species:
            if not re.fullmatch(_NAME, s.name):
                raise ModelError(f"species name {s.name!r} is not an identifier (letters, digits, _)")
            if not np.isfinite(s.energy):
                raise ModelError(f"species {s.name}: energy must be a finite number of kT")
        for r in self.reactions:
            if len(r.reactants) != len(names) or len(r.products) != len(names):
                raise ModelError(f"reaction {r.eq!r}: stoichiometric vectors must have length {len(names)}")
            if not (np.isfinite(r.kappa) and r.kappa > 0):
                raise ModelError(f"reaction {r.eq!r}: kappa must be a positive number, got {r.kappa}")
            if min(r.reactants + r.products) < 0:
                raise ModelError(f"reaction {r.eq!r}: negative stoichiometric coefficient")

    # -- construction -----------------------------------------------------
    @classmethod
    def from_equations(cls, species: dict[str, dict], equations: list[str | tuple[str, float]],
                       name: str = "network") -> "Network":
        """Build from ``{name: dict(energy=, visible=, learn=)}`` and equation strings.

        Each equation is ``"A <-> B"`` or ``("A <-> B", kappa)``.
        """
        sp = tuple(Species(n, **opts) for n, opts in species.items())
        names = [s.name for s in sp]
        rx = []
        for item in equations:
            eq, kappa = (item, 1.0) if isinstance(item, str) else item
            y, yp = parse_equation(eq, names)
            rx.append(Reaction(y, yp, float(kappa), eq))
        return cls(sp, tuple(rx), name)

    def with_energies(self, energies: np.ndarray) -> "Network":
        """Copy with new species energies ``G`` (same order as species)."""
        sp = tuple(Species(s.name, float(g), s.visible, s.learn) for s, g in zip(self.species, energies))
        return Network(sp, self.reactions, self.name)

    # -- basic arrays -------------------------------------------------------
    @cached_property
    def names(self) -> list[str]:
        return [s.name for s in self.species]

    @property
    def n_species(self) -> int:
        return len(self.species)

    @cached_property
    def Y(self) -> np.ndarray:
        """Reactant complexes, shape (R, N)."""
        return np.array([r.reactants for r in self.reactions], dtype=np.int64)

    @cached_property
    def Yp(self) -> np.ndarray:
        """Product complexes, shape (R, N)."""
        return np.array([r.products for r in self.reactions], dtype=np.int64)

    @cached_property
    def nu(self) -> np.ndarray:
        """Net changes ``nu_r = y'_r - y_r``, shape (R, N)."""
        return self.Yp - self.Y

    @property
    def stoichiometry(self) -> np.ndarray:
        """Stoichiometric matrix, shape (N, R) (columns are ``nu_r``)."""
        return self.nu.T

    @cached_property
    def kappa(self) -> np.ndarray:
        return np.array([r.kappa for r in self.reactions], dtype=float)

    @cached_property
    def energies(self) -> np.ndarray:
        return np.array([s.energy for s in self.species], dtype=float)

    @property
    def theta0(self) -> np.ndarray:
        """``theta = -G`` from the species energies (all species)."""
        return 0.0 - self.energies  # not -G: avoids printing -0 for G = 0

    @cached_property
    def visible(self) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.species) if s.visible], dtype=np.int64)

    @cached_property
    def hidden(self) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.species) if not s.visible], dtype=np.int64)

    @cached_property
    def learned(self) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.species) if s.learn], dtype=np.int64)

    @cached_property
    def conservation_laws(self) -> np.ndarray:
        """Integer basis ``L`` (k, N) of the left null space: ``L nu_r = 0`` for all r."""
        return _nonnegative_where_possible(integer_basis(self.nu))

    @cached_property
    def cycles(self) -> np.ndarray:
        """Integer basis of reaction cycles ``c`` with ``sum_r c_r nu_r = 0``, shape (m, R)."""
        return integer_basis(self.nu.T)

    @cached_property
    def hidden_only(self) -> np.ndarray:
        """Boolean mask of reactions that change no visible count."""
        if self.visible.size == 0:
            return np.ones(len(self.reactions), dtype=bool)
        return (self.nu[:, self.visible] == 0).all(axis=1)

    def equation(self, r: int) -> str:
        """Canonical text of reaction ``r``."""
        def side(v):
            terms = [(f"{c} " if c > 1 else "") + n for c, n in zip(v, self.names) if c]
            return " + ".join(terms) if terms else "0"
        return f"{side(self.Y[r])} <-> {side(self.Yp[r])}"

    def rate_constants(self, theta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(k+, k-)`` of the catalytic scheme at ``theta`` (default: file energies)."""
        th = self.theta0 if theta is None else np.asarray(theta, float)
        return self.kappa * np.exp(self.Yp @ th), self.kappa * np.exp(self.Y @ th)


@dataclass(frozen=True)
class DetailedBalance:
    """Result of the Wegscheider check on raw rate constants.

    Attributes
    ----------
    energies : ndarray
        Minimum-norm least-squares ``G`` with ``ln(k+/k-) = -G . nu``.
    kappa : ndarray
        ``sqrt(k+ k- / lambda^{y + y'})``.
    residual : float
        Max absolute residual of the log ratios (kT).
    tol : float
    violated_cycles : list of dict
        Each ``{"reactions": [...], "coefficients": [...], "log_ratio_sum": x}``.
    """

    energies: np.ndarray
    kappa: np.ndarray
    residual: float
    tol: float
    violated_cycles: list = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.residual <= self.tol


def detailed_balance(nu: np.ndarray, Y: np.ndarray, Yp: np.ndarray, k_forward: np.ndarray,
                     k_reverse: np.ndarray, tol: float = 1e-8,
                     equations: list[str] | None = None) -> DetailedBalance:
    """Wegscheider check: is ``ln(k+/k-)`` in the row space of the stoichiometry?

    Returns the energies and kappas; violated cycles are named (reaction
    equations with their cycle coefficients) so the user can fix them.
    """
    kf, kr = np.asarray(k_forward, float), np.asarray(k_reverse, float)
    lr = np.log(kf) - np.log(kr)  # not log(kf / kr): the ratio overflows for e.g. 1e300 / 1e-300
    nu = np.asarray(nu, float)
    G, *_ = np.linalg.lstsq(nu, -lr, rcond=None)
    resid = float(np.max(np.abs(nu @ G + lr))) if lr.size else 0.0
    violated = []
    if resid > tol:
        for c in integer_basis(np.asarray(nu, dtype=np.int64).T):
            s = float(c @ lr)
            if abs(s) > tol:
                idx = np.nonzero(c)[0]
                violated.append({
                    "reactions": [equations[i] if equations else f"reaction {i}" for i in idx],
                    "coefficients": [int(c[i]) for i in idx],
                    "log_ratio_sum": s,
                })
    # kappa = sqrt(k+ k- / lambda^{y + y'}) with lambda = exp(-G), in logs to avoid overflow
    kappa = np.exp(0.5 * (np.log(kf) + np.log(kr) + (np.asarray(Y) + np.asarray(Yp)) @ G))
    return DetailedBalance(G, kappa, resid, tol, violated)


def describe_violation(db: DetailedBalance) -> str:
    """Human-readable statement of the violated Wegscheider cycles."""
    parts = []
    for v in db.violated_cycles:
        cyc = " ; ".join(f"{c:+d} x ({eq})" for c, eq in zip(v["coefficients"], v["reactions"]))
        parts.append(f"cycle [{cyc}] has sum of ln(k_forward/k_reverse) = {v['log_ratio_sum']:.4g} (must be 0)")
    return ("rate constants violate detailed balance (Wegscheider conditions, "
            f"residual {db.residual:.3g} > tol {db.tol:g}): " + "; ".join(parts)
            + ". Change k_forward/k_reverse so that around every cycle the product of "
              "forward constants equals the product of reverse constants.")


def from_rate_constants(species: list[Species], equations: list[str], k_forward, k_reverse,
                        name: str = "network", tol: float = 1e-8,
                        energies_given: bool = False) -> tuple[Network, DetailedBalance]:
    """Network from raw rate constants, after the Wegscheider check.

    If ``energies_given``, the species' energies are kept (and must agree with
    the log ratios); otherwise the minimum-norm energies are used.

    Raises
    ------
    DetailedBalanceError
        Naming each violated cycle.
    """
    names = [s.name for s in species]
    pairs = [parse_equation(eq, names) for eq in equations]
    Y = np.array([p[0] for p in pairs], dtype=np.int64)
    Yp = np.array([p[1] for p in pairs], dtype=np.int64)
    kf, kr = np.asarray(k_forward, float), np.asarray(k_reverse, float)
    for i, (a, b) in enumerate(zip(kf, kr)):
        if not (np.isfinite(a) and a > 0 and np.isfinite(b) and b > 0):
            raise ModelError(f"reaction {equations[i]!r}: k_forward and k_reverse must be positive numbers")
    db = detailed_balance(Yp - Y, Y, Yp, kf, kr, tol, equations)
    if not db.holds:
        raise DetailedBalanceError(describe_violation(db))
    G = db.energies
    if energies_given:
        G = np.array([s.energy for s in species])
        mismatch = np.max(np.abs((Yp - Y) @ G + np.log(kf) - np.log(kr)))
        if mismatch > max(tol, 1e-6):
            raise DetailedBalanceError(
                f"the species energies disagree with ln(k_forward/k_reverse) = -G . nu "
                f"(max mismatch {mismatch:.3g} kT); omit the energies to derive them, or fix them")
        kappa = np.exp(0.5 * (np.log(kf) + np.log(kr) + (Y + Yp) @ G))
        db = DetailedBalance(G, kappa, db.residual, tol, [])
    sp = tuple(Species(s.name, float(g), s.visible, s.learn) for s, g in zip(species, G))
    rx = tuple(Reaction(tuple(map(int, y)), tuple(map(int, yp)), float(k), eq)
               for y, yp, k, eq in zip(Y, Yp, db.kappa, equations))
    return Network(sp, rx, name), db


__all__ = ["describe_violation", "detailed_balance", "DetailedBalance", "from_rate_constants",
           "integer_basis", "Network", "parse_complex", "parse_equation", "Reaction", "Species"]
