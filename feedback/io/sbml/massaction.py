"""Irreversible mass-action networks: what the learning CRN is, and what :func:`read_sbml` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

__all__ = ["MassActionReaction", "MassActionNetwork"]


@dataclass(frozen=True)
class MassActionReaction:
    """An irreversible mass-action reaction.

    The rate is ``rate_constant * prod_s x_s^{reactants[s]}``. On export the
    rate constant is written as ``number * prod_p p^power`` over ``factors``
    (parameter ids with powers) so that it stays editable in SBML tools.
    """

    id: str
    reactants: dict
    products: dict
    rate_constant: float
    factors: tuple = ()
    number: float = 1.0
    sbml_reversible_pair: str | None = None  # set by read_sbml for the reverse half of a reversible law


@dataclass
class MassActionNetwork:
    """Species with initial amounts, constant parameters and irreversible mass-action reactions.

    Attributes
    ----------
    id, name : str
    species : dict[str, float]
        Initial amounts, in order (compartment volume 1).
    parameters : dict[str, float]
    reactions : list of MassActionReaction
    notes : list of str
        Paragraphs for the SBML ``<notes>``.
    species_notes : dict
        Optional per-species annotation attributes (``crnfb`` namespace).
    parameter_notes : dict
        Optional parameter names (what each parameter is).
    info : dict
        Facts about how it was built (e.g. the learning export's speed-up and
        pruned mass); not written to SBML except through ``notes``.
    """

    id: str
    name: str
    species: dict
    parameters: dict
    reactions: list
    notes: list = field(default_factory=list)
    species_notes: dict = field(default_factory=dict)
    parameter_notes: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    # -- arrays ---------------------------------------------------------------------------------
    @property
    def species_ids(self) -> list[str]:
        return list(self.species)

    @property
    def initial(self) -> np.ndarray:
        return np.array(list(self.species.values()), dtype=float)

    @property
    def rate_constants(self) -> np.ndarray:
        return np.array([r.rate_constant for r in self.reactions], dtype=float)

    def _index(self):
        if getattr(self, "_cache", None) is not None:
            return self._cache
        idx = {s: i for i, s in enumerate(self.species)}
        rj, rs, rp = [], [], []
        sj, ss, sv = [], [], []
        for j, r in enumerate(self.reactions):
            net = {}
            for s, c in r.reactants.items():
                rj.append(j); rs.append(idx[s]); rp.append(int(c))
                net[s] = net.get(s, 0) - c
            for s, c in r.products.items():
                net[s] = net.get(s, 0) + c
            for s, c in net.items():
                if c:
                    sj.append(j); ss.append(idx[s]); sv.append(c)
        S = sparse.csr_matrix((np.array(sv, float), (np.array(ss, int), np.array(sj, int))),
                              shape=(len(self.species), len(self.reactions)))
        cache = (np.array(rj, int), np.array(rs, int), np.array(rp, int), S)
        object.__setattr__(self, "_cache", cache)
        return cache

    @property
    def stoichiometry(self) -> sparse.csr_matrix:
        """Net stoichiometric matrix (species x reactions), sparse."""
        return self._index()[3]

    def rates(self, x: np.ndarray) -> np.ndarray:
        """Reaction rates ``k_j prod_s x_s^{a_js}`` at amounts ``x``."""
        rj, rs, rp, _ = self._index()
        v = self.rate_constants.copy()
        np.multiply.at(v, rj, np.asarray(x, float)[rs] ** rp)
        return v

    def rhs(self, x: np.ndarray) -> np.ndarray:
        """``dx/dt`` of the deterministic mass-action ODE."""
        return self.stoichiometry @ self.rates(x)

    def jacobian(self, x: np.ndarray) -> sparse.csr_matrix:
        """Exact sparse Jacobian of :meth:`rhs` (no finite differences)."""
        rj, rs, rp, S = self._index()
        x = np.asarray(x, float)
        k = self.rate_constants
        # d v_j / d x_s = k_j * p x_s^{p-1} * prod over the other reactant entries of j
        vals = k[rj] * rp * x[rs] ** np.maximum(rp - 1, 0)
        other = np.ones(rj.size)
        order = np.argsort(rj, kind="stable")
        rj_s = rj[order]
        starts = np.searchsorted(rj_s, rj_s, side="left")
        pos = np.arange(rj.size) - starts  # position of each entry within its reaction
        counts = np.bincount(rj, minlength=len(self.reactions))
        fac = x[rs[order]] ** rp[order]
        for q in range(int(counts.max(initial=0))):
            # entries at position q contribute their factor to every other entry of the reaction
            sel = pos == q
            contrib = np.ones(len(self.reactions))
            contrib[rj_s[sel]] = fac[sel]
            mult = contrib[rj_s]
            mult[sel] = 1.0
            other *= mult
        vals_sorted = vals[order] * other
        dv = sparse.csr_matrix((vals_sorted, (rj_s, rs[order])), shape=(len(self.reactions), len(self.species)))
        return (S @ dv).tocsr()
