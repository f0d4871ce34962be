"""A seeded generator of detailed-balanced learning problems of varied shape (issue 21, deliverable 4).

Our examples are not our users' networks. Every network here is drawn from a
seeded generator, never tuned: pools of open species, hidden scaffolds that
bind several copies, open chains with truncation, two visible species bound
into a complex, dimerisation (a second-order reaction), and token walks on
random graphs with many species and learned energies. Each shape is drawn
with energies or raw rate constants, equilibrium or dynamic clamping, and a
target that the model can or cannot represent.

``corpus(kind)`` returns :class:`Net` values: the model file's text plus what
the tests need to know about it. ``kind="ci"`` is the suite's corpus (small
enough that every network gets a full report); ``kind="bench"`` the bigger
one of ``benchmarks/bench_corpus.py``.

The file text is built from plain numbers; nothing here calls crnfb, so a
generator bug cannot hide a package bug.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import numpy as np

__all__ = ["Net", "corpus", "SHAPES"]

SHAPES = ("pool", "scaffold", "open_chain", "binding", "dimer", "walk")


@dataclass(frozen=True)
class Net:
    """One generated learning problem.

    Attributes
    ----------
    name : str
        ``"<shape>-<kind>-<seed>"``; also the model's ``name``.
    shape : str
        One of :data:`SHAPES`.
    text : str
        The model file (TOML).
    species : tuple of str
        In file order.
    reactions : tuple of (dict, dict, float)
        ``(reactants, products, kappa)`` with stoichiometric coefficients; the
        catalytic scheme's constants at the file's energies (also when the file
        gives raw rate constants).
    energies : dict
        ``G_i`` in kT (the file's, or those the raw constants were made from).
    initial : dict
        Initial counts.
    n_max : int or None
        Truncation bound of every open species.
    visible, learned : tuple of str
    clamping : str
    gamma : float
    eps : float
    target : dict
        Visible state (tuple, file order of visible species) -> probability.
    raw_rates : bool
        The file gives ``k_forward``/``k_reverse`` instead of energies.
    """

    name: str
    shape: str
    text: str
    species: tuple
    reactions: tuple
    energies: dict
    initial: dict
    n_max: int | None
    visible: tuple
    learned: tuple
    clamping: str
    gamma: float
    eps: float
    target: dict
    raw_rates: bool
    notes: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# shapes: each returns (species, reactions, initial, n_max, visible, support) with support the
# list of visible states the class can reach (for the target table)
# ---------------------------------------------------------------------------------------------
def _pool(rng, big):
    k = int(rng.integers(1, 3 if not big else 4))
    n_max = int(rng.integers(5, 9 if not big else 14))
    species = [f"X{i}" for i in range(k)]
    reactions = [({}, {s: 1}) for s in species]
    visible = species[: int(rng.integers(1, k + 1))]
    support = _grid([range(n_max // 2 + 1)] * len(visible))     # a table target well inside the box
    return species, reactions, {}, n_max, visible, support


def _scaffold(rng, big):
    K = int(rng.integers(2, 5 if not big else 8))
    N = int(rng.integers(K + 2, 9 if not big else 16))
    species = ["X", "Y"] + [f"S{k}" for k in range(K + 1)]
    reactions = [({"X": 1}, {"Y": 1})] + [({f"S{k - 1}": 1, "Y": 1}, {f"S{k}": 1}) for k in range(1, K + 1)]
    return species, reactions, {"X": N, "S0": 1}, None, ["X"], [(x,) for x in range(N + 1)]


def _open_chain(rng, big):
    m = int(rng.integers(2, 4 if not big else 6))
    species = [f"A{i}" for i in range(m - 1)] + ["X"]
    reactions = [({}, {species[0]: 1})] + [({species[i]: 1}, {species[i + 1]: 1}) for i in range(m - 1)]
    n_max = int(rng.integers(4, 7 if not big else 9))
    return species, reactions, {}, n_max, ["X"], [(x,) for x in range(n_max // 2 + 1)]


def _binding(rng, big):
    a = int(rng.integers(2, 6 if not big else 12))
    b = int(rng.integers(2, 6 if not big else 12))
    species = ["X", "Y", "C"]
    reactions = [({"X": 1, "Y": 1}, {"C": 1})]
    extra = rng.random() < 0.5                     # a hidden isomer of the complex
    if extra:
        species.append("D")
        reactions.append(({"C": 1}, {"D": 1}))
    support = [(a - c, b - c) for c in range(min(a, b) + 1)]
    return species, reactions, {"X": a, "Y": b}, None, ["X", "Y"], support


def _dimer(rng, big):
    T = int(rng.integers(3, 9 if not big else 20))
    species = ["X", "D", "E"]
    reactions = [({"X": 2}, {"D": 1}), ({"D": 1}, {"E": 1})]
    return species, reactions, {"X": T}, None, ["X"], [(x,) for x in range(T % 2, T + 1, 2)]


def _walk(rng, big, n_species=None):
    n = int(rng.integers(4, 8 if not big else 25))
    n = n if n_species is None else int(n_species)
    tokens = 1 if (not big or rng.random() < 0.5) else 2
    species = [f"S{i}" for i in range(n)]
    order = rng.permutation(n)
    edges = {tuple(sorted((int(order[i]), int(order[int(rng.integers(0, i))])))) for i in range(1, n)}  # a tree
    for _ in range(int(rng.integers(0, n))):                                                         # + cycles
        i, j = sorted(int(v) for v in rng.choice(n, 2, replace=False))
        edges.add((i, j))
    reactions = [({species[i]: 1}, {species[j]: 1}) for i, j in sorted(edges)]
    nv = int(rng.integers(1, 3))
    visible = [species[int(i)] for i in sorted(rng.choice(n, nv, replace=False))]
    support = [v for v in _grid([range(tokens + 1)] * nv) if sum(v) <= tokens]
    return species, reactions, {species[0]: tokens}, None, visible, support


_SHAPE = {"pool": _pool, "scaffold": _scaffold, "open_chain": _open_chain, "binding": _binding,
          "dimer": _dimer, "walk": _walk}


def _grid(ranges):
    out = [()]
    for r in ranges:
        out = [p + (v,) for p in out for v in r]
    return out


# ---------------------------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------------------------
def _target(rng, shape, visible, support, initial, n_max, realisable_family):
    """A target law on ``support``: a named family when the shape has one, else a random table."""
    if realisable_family and shape in ("pool", "open_chain"):
        means = rng.uniform(0.3, 0.25 * n_max, size=len(visible))
        return ("poisson", [float(m) for m in means]), _poisson_table(means, n_max)
    if realisable_family and shape == "scaffold":
        N = initial["X"]
        p = float(rng.uniform(0.2, 0.8))
        return ("binomial", (N, p)), {(x,): comb(N, x) * p ** x * (1 - p) ** (N - x) for x in range(N + 1)}
    w = rng.dirichlet(np.full(len(support), 2.0))
    w = np.maximum(w, 1e-3)
    w = w / w.sum()
    return ("table", None), {tuple(int(c) for c in s): float(p) for s, p in zip(support, w)}


def _poisson_table(means, n_max):
    from math import exp, factorial
    out = {}
    for v in _grid([range(n_max + 1)] * len(means)):
        out[v] = float(np.prod([exp(-m) * m ** x / factorial(x) for m, x in zip(means, v)]))
    return out


def _env_toml(head, family, table, visible):
    if family[0] == "poisson" and len(visible) == 1:
        return f"[{head}]\nfamily = \"poisson\"\nmean = {family[1][0]!r}\n"
    if family[0] == "poisson":
        comps = ", ".join(f'{{ family = "poisson", mean = {m!r} }}' for m in family[1])
        return f"[{head}]\nfamily = \"product\"\ncomponents = [{comps}]\n"
    if family[0] == "binomial":
        return f"[{head}]\nfamily = \"binomial\"\nn = {family[1][0]}\np = {family[1][1]!r}\n"
    pts = sorted(table)
    probs = np.array([table[p] for p in pts])
    probs = probs / probs.sum()
    sup = ", ".join("[" + ", ".join(str(c) for c in p) + "]" for p in pts)
    pr = ", ".join(repr(float(x)) for x in probs[:-1]) + ", " + repr(float(1.0 - probs[:-1].sum()))
    return f"[{head}]\nfamily = \"table\"\nsupport = [{sup}]\nprobs = [{pr}]\n"


# ---------------------------------------------------------------------------------------------
# one network
# ---------------------------------------------------------------------------------------------
def _side(d):
    return " + ".join((f"{c} {s}" if c > 1 else s) for s, c in d.items()) if d else "0"


def make(shape: str, seed: int, kind: str = "ci", n_species: int | None = None) -> Net:
    """Draw one network of ``shape`` from ``seed`` (``kind="bench"`` draws bigger ones).

    ``n_species`` fixes the number of species of a ``walk`` (many learned
    parameters on few states: one token on ``n_species`` sites); other shapes ignore it.
    """
    rng = np.random.default_rng([seed, SHAPES.index(shape), kind == "bench"])
    big = kind == "bench"
    extra = {"n_species": n_species} if shape == "walk" and n_species is not None else {}
    species, reactions, initial, n_max, visible, support = _SHAPE[shape](rng, big, **extra)
    # open species start with lambda = e^-G <= 1, so the box holds their law (truncation tol 1e-2)
    energies = {s: round(float(rng.uniform(0.0, 1.5) if n_max is not None else rng.uniform(-1.0, 1.0)), 3)
                for s in species}
    kappas = [round(float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))), 3) for _ in reactions]
    learned = [s for s in species if rng.random() < 0.7] or [species[int(rng.integers(len(species)))]]
    raw = bool(rng.random() < 0.3)
    clamping = "dynamic" if rng.random() < 0.4 else "equilibrium"
    gamma = round(float(np.exp(rng.uniform(np.log(0.5), np.log(5.0)))), 3)
    eps = round(float(np.exp(rng.uniform(np.log(0.01), np.log(0.1)))), 4)
    family, target = _target(rng, shape, visible, support, initial, n_max, rng.random() < 0.5)
    _, change = _target(rng, shape, visible, support, initial, n_max, False)
    name = f"{shape}-{kind}-{seed}"

    lines = [f'name = "{name}"', ""]
    for s in species:
        lines.append(f"[species.{s}]")
        if not raw:
            lines.append(f"energy = {energies[s]!r}")
        lines.append(f"visible = {'true' if s in visible else 'false'}")
        lines.append(f"learn = {'true' if s in learned else 'false'}")
        lines.append("")
    lam = {s: np.exp(-energies[s]) for s in species}
    for (lhs, rhs), kap in zip(reactions, kappas):
        lines += ["[[reactions]]", f'eq = "{_side(lhs)} <-> {_side(rhs)}"']
        if raw:   # the catalytic scheme's constants at these energies: k+ = kappa lam^y', k- = kappa lam^y
            kf = kap * np.prod([lam[s] ** c for s, c in rhs.items()])
            kr = kap * np.prod([lam[s] ** c for s, c in lhs.items()])
            lines += [f"k_forward = {float(kf)!r}", f"k_reverse = {float(kr)!r}"]
        else:
            lines.append(f"kappa = {kap!r}")
        lines.append("")
    if initial:
        lines += ["[initial]"] + [f"{s} = {c}" for s, c in initial.items()] + [""]
    if n_max is not None:
        lines += ["[truncation]", f"n_max = {n_max}", "tol = 1e-2", ""]
    lines.append(_env_toml("environment", family, target, visible))
    lines.append(_env_toml("environment.change", ("table", None), change, visible))
    lines += ["[learning]", f"eps = {eps!r}", f'clamping = "{clamping}"', f"gamma = {gamma!r}", ""]
    return Net(name=name, shape=shape, text="\n".join(lines), species=tuple(species),
               reactions=tuple((dict(l), dict(r), k) for (l, r), k in zip(reactions, kappas)),
               energies=energies, initial=dict(initial), n_max=n_max, visible=tuple(visible),
               learned=tuple(learned), clamping=clamping, gamma=gamma, eps=eps, target=target,
               raw_rates=raw)


def corpus(kind: str = "ci", per_shape: int | None = None) -> list[Net]:
    """The generated corpus: ``per_shape`` seeds of every shape (default 2 for ``"ci"``, 8 for ``"bench"``)."""
    n = per_shape if per_shape is not None else (2 if kind == "ci" else 8)
    return [make(shape, seed, kind) for shape in SHAPES for seed in range(n)]
