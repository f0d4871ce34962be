"""BioCRNpyler networks in: a ``ChemicalReactionNetwork`` object as our model (docs/sbml.md, "BioCRNpyler").

BioCRNpyler (a Python compiler of chemical reaction networks) holds species
as concentrations in compartments (default size 1e-6, its microlitre) and
mass-action propensities ``k * prod c^y``; its SBML writer
(``crn.write_sbml_file``) writes them as species with ``initialConcentration``
and laws ``k * prod X^y``. :func:`biocrnpyler_network` reads the object
directly and applies the same unit rule as the SBML importer
(:mod:`.units`: ``N = c V u``, ``k_stoch = k u^(1-m) V^(-m)``), so
``crnfb.from_biocrnpyler(crn, ...)`` and ``crnfb convert`` of the file
BioCRNpyler writes give the same model (tests/test_biocrnpyler.py). Species
are named by BioCRNpyler's own SBML ids (``protein_X`` for
``Species("X", material_type="protein")``).

Accepted: reversible mass-action reactions, and irreversible mass-action
reactions that come in pairs, each the other's reverse. Anything else
(another propensity, an irreversible reaction without its reverse, a
non-integer stoichiometry, compartments of different sizes) is a
:class:`ModelError` naming the reaction as BioCRNpyler prints it.
"""

from __future__ import annotations

import dataclasses
import warnings

from ...errors import DetailedBalanceError, ModelError
from ...model.network import Species, from_rate_constants
from .importer import ImportedNetwork, equation_side, initial_counts, model_of_import
from .units import UnitConversion

__all__ = ["biocrnpyler_network", "from_biocrnpyler", "SOURCE"]

#: What a model built from a BioCRNpyler object names as its source.
SOURCE = "BioCRNpyler ChemicalReactionNetwork"


def _biocrnpyler():
    try:
        import biocrnpyler
    except ImportError:
        raise ModelError("reading a BioCRNpyler network needs the biocrnpyler package: "
                         "pip install 'crn-feedback[peers]' (or pip install biocrnpyler)") from None
    return biocrnpyler


def _species_ids(crn) -> dict:
    """BioCRNpyler species -> the id its SBML writer gives it (so both routes name species alike)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, m = crn.generate_sbml_model(check_validity=False)
        except Exception as e:  # noqa: BLE001 - BioCRNpyler's own failure, reported as bad input
            raise ModelError(f"{SOURCE}: BioCRNpyler could not write it as SBML ({type(e).__name__}: {e}); "
                             "only networks BioCRNpyler can export can be read") from None
    by_name = {s.getName(): s.getId() for s in m.getListOfSpecies()}
    return {s: by_name.get(str(s), str(s)) for s in crn.species}


def _volume(crn) -> tuple[float, str]:
    comps = {}
    for s in crn.species:
        c = s.compartment
        comps[c.name] = float(c.size)
    sizes = sorted(set(comps.values()))
    if not sizes:
        raise ModelError(f"{SOURCE}: the network has no species")
    if len(sizes) > 1 and sizes[-1] - sizes[0] > 1e-12 * sizes[-1]:
        raise ModelError(f"{SOURCE}: compartments {', '.join(f'{k} (size {v:g})' for k, v in comps.items())} "
                         "have different volumes; only one well-mixed volume can be represented")
    if not sizes[0] > 0:
        raise ModelError(f"{SOURCE}: compartment size must be positive, got {sizes[0]:g} (pass volume=...)")
    return sizes[0], next(iter(comps))


def _complex(ws_list, ids: dict, rname: str) -> dict:
    out: dict = {}
    for w in ws_list:
        st = w.stoichiometry
        if not (float(st).is_integer() and st > 0):
            raise ModelError(f"{SOURCE}: reaction {rname!r}: species {ids[w.species]!r} has stoichiometry {st!r}; "
                             "only positive whole-number stoichiometries can be represented")
        out[ids[w.species]] = out.get(ids[w.species], 0) + int(st)
    return out


def _check_mass_action(crn, bcp) -> None:
    """Every propensity mass action (before anything else touches the reactions)."""
    for r in crn.reactions:
        prop = r.propensity_type
        if not isinstance(prop, bcp.MassAction):
            raise ModelError(f"{SOURCE}: reaction {str(r).strip()!r} has a {type(prop).__name__} propensity; only "
                             "mass-action reactions (Reaction.from_massaction, reversible) can be represented: "
                             "detailed balance needs kf*prod(reactants) - kr*prod(products)")


def _reactions(crn, ids: dict) -> list:
    """``(reactants, products, k_forward, k_reverse or None, name)`` of every BioCRNpyler reaction."""
    out = []
    for r in crn.reactions:
        name = str(r).strip()
        prop = r.propensity_type
        kr = float(prop.k_reverse) if prop.is_reversible else None
        out.append((_complex(r.inputs, ids, name), _complex(r.outputs, ids, name), float(prop.k_forward), kr, name))
    return out


def _pairs(rx: list) -> list:
    """Reversible reactions from reversible ones and from irreversible pairs (each the other's reverse)."""
    pairs, used = [], set()
    for i, (a, b, kf, kr, name) in enumerate(rx):
        if i in used:
            continue
        if kr is not None:
            pairs.append((a, b, kf, kr, [name]))
            continue
        j = next((j for j in range(i + 1, len(rx)) if j not in used and rx[j][3] is None
                  and rx[j][0] == b and rx[j][1] == a), None)
        if j is None:
            raise ModelError(f"{SOURCE}: reaction {name!r} is irreversible and no other reaction is its reverse; "
                             "detailed balance needs every reaction reversible (Reaction.from_massaction(..., "
                             "k_forward=..., k_reverse=...), or add the reverse reaction)")
        used |= {i, j}
        pairs.append((a, b, kf, rx[j][2], [name, rx[j][4]]))
    if not pairs:
        raise ModelError(f"{SOURCE}: the network has no reactions")
    return pairs


def biocrnpyler_network(crn, visible=None, learned=None, *, volume=None, copies_per_unit=None,
                        tol: float = 1e-8) -> ImportedNetwork:
    """Our detailed-balanced network of a BioCRNpyler ``ChemicalReactionNetwork`` (module docstring).

    ``visible`` / ``learned``: species ids (default none visible, all
    learned); ``volume`` (default the species' compartment size) and
    ``copies_per_unit`` (default ``1/V``): the unit rule of :mod:`.units`.
    """
    bcp = _biocrnpyler()
    if not isinstance(crn, bcp.ChemicalReactionNetwork):
        raise ModelError(f"expected a biocrnpyler ChemicalReactionNetwork, got {type(crn).__name__}")
    _check_mass_action(crn, bcp)
    ids = _species_ids(crn)
    names = list(dict.fromkeys(ids.values()))
    units = UnitConversion.choose(*_volume(crn), volume, copies_per_unit)
    pairs = _pairs(_reactions(crn, ids))
    for what, given in (("visible", visible), ("learned", learned)):
        bad = set(given or ()) - set(names)
        if bad:
            raise ModelError(f"{what} species {sorted(bad)} are not in the {SOURCE}; species: {', '.join(names)}")
    vis, lrn = set(visible or ()), set(names if learned is None else learned)
    species = [Species(s, 0.0, s in vis, s in lrn) for s in names]
    kf: list[float] = []
    kr: list[float] = []
    factors = []
    for a, b, f, r, _ in pairs:
        for side, k, out in ((a, f, kf), (b, r, kr)):
            m = sum(side.values())
            out.append(k * units.factor(m, m))
            factors.append((m, m, units.factor(m, m)))
    equations = [f"{equation_side(a)} <-> {equation_side(b)}" for a, b, *_ in pairs]
    try:
        net, db = from_rate_constants(species, equations, kf, kr, name="biocrnpyler", tol=tol)
    except DetailedBalanceError as e:
        raise ModelError(f"{SOURCE}: {e.message}") from None
    init = {s: 0.0 for s in names}
    for s, c in crn.initial_concentration_dict.items():
        init[ids.get(s, str(s))] = units.copies(concentration=float(bcp.parameter_to_value(c)))
    return ImportedNetwork(net, initial_counts(init), db, [p[4] for p in pairs], SOURCE,
                           dataclasses.replace(units, factors=tuple(factors)))


def from_biocrnpyler(crn, visible=None, environment=None, learning=None, *, learned=None, initial=None,
                     n_max=None, change=None, ensembles=None, volume=None, copies_per_unit=None,
                     tol: float = 1e-8, truncation_tol: float = 1e-6):
    """A :class:`~crnfb.feedback.model.model.Model` of a BioCRNpyler ``ChemicalReactionNetwork``.

    Parameters
    ----------
    crn : biocrnpyler.ChemicalReactionNetwork
        Reversible mass-action reactions (module docstring).
    visible : list of str
        Visible species (BioCRNpyler's SBML ids, e.g. ``"X"``, ``"protein_X"``).
    environment : Environment
        The target law ``Q`` (required).
    learning : Learning, optional
    learned, initial, n_max, change, ensembles, truncation_tol
        As for :func:`~crnfb.feedback.io.sbml.import_sbml`.
    volume, copies_per_unit : float, optional
        The unit rule (:mod:`.units`): default the compartment size and
        ``1/V``, so the network's concentrations are copy numbers and every
        rate constant is divided by ``V`` (SBML's reading of the file
        BioCRNpyler writes); ``volume=1`` keeps BioCRNpyler's numbers.
    """
    imp = biocrnpyler_network(crn, visible, learned, volume=volume, copies_per_unit=copies_per_unit, tol=tol)
    return model_of_import(imp, environment, initial=initial, n_max=n_max, change=change, learning=learning,
                           ensembles=ensembles, truncation_tol=truncation_tol, what="from_biocrnpyler")
