"""Reading SBML: mass-action laws walked node by node, reversible networks checked for detailed balance.

Nothing is parsed as text or evaluated as code: kinetic laws are libsbml
ASTs, walked into polynomials in the species (docs/sbml.md, "Import").
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ...errors import DetailedBalanceError, ModelError
from ...model.network import DetailedBalance, Network, Species, from_rate_constants
from ._libsbml import CRNFB_NS, SBMLExportWarning, libsbml, need_libsbml
from .labels import SID
from .massaction import MassActionNetwork, MassActionReaction
from .units import UnitConversion

__all__ = ["ImportedNetwork", "read_sbml", "read_network", "import_sbml", "initial_counts", "model_of_import",
           "equation_side"]


_NUMBER_TYPES = None


def _ast_types():
    global _NUMBER_TYPES
    if _NUMBER_TYPES is None:
        _NUMBER_TYPES = {libsbml.AST_INTEGER, libsbml.AST_REAL, libsbml.AST_REAL_E, libsbml.AST_RATIONAL}
    return _NUMBER_TYPES


def _poly_mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for ka, ca in a.items():
        for kb, cb in b.items():
            m = dict(ka)
            for s, p in kb:
                m[s] = m.get(s, 0) + p
            key = tuple(sorted(m.items()))
            out[key] = out.get(key, 0.0) + ca * cb
    return out


def _poly_add(a: dict, b: dict, sign: float = 1.0) -> dict:
    out = dict(a)
    for k, c in b.items():
        out[k] = out.get(k, 0.0) + sign * c
    return out


def _const(p: dict):
    """Value of a polynomial without species, else None."""
    if not p:
        return 0.0
    if set(p) == {()}:
        return p[()]
    return None


class _LawReader:
    """Walks a kinetic-law AST into a polynomial in the species (dict monomial -> coefficient).

    Accepted: numbers, parameter / local parameter / compartment names, species
    names, ``+``, ``-`` (unary and binary), ``*``, ``/`` by a constant, and
    powers with a constant non-negative integer exponent (any constant
    exponent of a constant). Everything else is "not mass action".
    """

    def __init__(self, symbols: dict, reaction, where: str):
        self.symbols = symbols
        self.reaction = reaction
        self.where = where
        kl = reaction.getKineticLaw()
        self.local = {}
        if kl is not None:
            for k in range(kl.getNumParameters()):  # local parameters (Level 3) or parameters (Level 2)
                p = kl.getParameter(k)
                if not p.isSetValue():
                    raise ModelError(f"{where}: local parameter {p.getId()!r} has no value")
                self.local[p.getId()] = p.getValue()

    def fail(self, node, why) -> NoReturn:
        text = libsbml.formulaToL3String(self.reaction.getKineticLaw().getMath())
        raise ModelError(f"{self.where}: kinetic law '{text}' is not mass action ({why}); only products of "
                         "constants and species, and the difference of two such terms, can be imported")

    def walk(self, node) -> dict:
        t = node.getType()
        nc = node.getNumChildren()
        kids = [node.getChild(i) for i in range(nc)]
        if t in _ast_types():
            return {(): float(node.getValue())}
        if t == libsbml.AST_CONSTANT_E:
            return {(): math.e}
        if t == libsbml.AST_CONSTANT_PI:
            return {(): math.pi}
        if t == libsbml.AST_NAME:
            return self.name(node)
        if t == libsbml.AST_PLUS:
            out: dict = {}
            for k in kids:
                out = _poly_add(out, self.walk(k))
            return out
        if t == libsbml.AST_MINUS:
            if nc == 1:
                return {k: -c for k, c in self.walk(kids[0]).items()}
            if nc == 2:
                return _poly_add(self.walk(kids[0]), self.walk(kids[1]), -1.0)
            self.fail(node, "malformed minus")
        if t == libsbml.AST_TIMES:
            out = {(): 1.0}
            for k in kids:
                out = _poly_mul(out, self.walk(k))
            return out
        if t == libsbml.AST_DIVIDE:
            if nc != 2:
                self.fail(node, "malformed division")
            den = _const(self.walk(kids[1]))
            if den is None:
                self.fail(node, "division by an expression that contains species")
            if den == 0:
                self.fail(node, "division by zero")
            return {k: c / den for k, c in self.walk(kids[0]).items()}
        if t in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
            if nc != 2:
                self.fail(node, "malformed power")
            base, ex = self.walk(kids[0]), _const(self.walk(kids[1]))
            if ex is None:
                self.fail(node, "an exponent that contains species")
            cb = _const(base)
            if cb is not None:
                return {(): cb ** ex}
            if ex != int(ex) or ex < 0:
                self.fail(node, f"a species raised to the non-integer or negative power {ex:g}")
            out = {(): 1.0}
            for _ in range(int(ex)):
                out = _poly_mul(out, base)
            return out
        if t == libsbml.AST_NAME_TIME:
            self.fail(node, "it depends on time")
        what = node.getName() or libsbml.formulaToL3String(node)
        self.fail(node, f"it uses {what!r}")

    def name(self, node) -> dict:
        n = node.getName()
        if n in self.local:
            return {(): self.local[n]}
        kind = self.symbols.get(n)
        if kind is None:
            self.fail(node, f"it refers to {n!r}, which is not a parameter, compartment or species")
        if kind == "species":
            return {((n, 1),): 1.0}
        if kind == "unset":
            raise ModelError(f"{self.where}: parameter {n!r} has no value")
        return {(): kind}


def _expand_function_definitions(doc, where: str) -> None:
    """Inline SBML function definitions into the kinetic laws (libsbml's converter), then drop them."""
    if doc.getModel().getNumFunctionDefinitions() == 0:
        return
    props = libsbml.ConversionProperties()
    props.addOption("expandFunctionDefinitions", True)
    if doc.convert(props) != libsbml.LIBSBML_OPERATION_SUCCESS:
        ids = [f.getId() for f in doc.getModel().getListOfFunctionDefinitions()]
        raise ModelError(f"{where}: libsbml could not expand the function definitions {ids[:5]}; inline them "
                         "into the kinetic laws")


def _read_document(source):
    need_libsbml()
    text_given = isinstance(source, str) and source.lstrip().startswith("<")
    where = "SBML string" if text_given else str(source)
    if text_given:
        doc = libsbml.readSBMLFromString(source)
    else:
        if not Path(source).is_file():
            raise ModelError(f"cannot read SBML file {source}: no such file")
        doc = libsbml.readSBMLFromFile(str(source))
    errs = [doc.getError(i) for i in range(doc.getNumErrors())
            if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errs:
        raise ModelError(f"{where}: not valid SBML: " + "; ".join(
            f"line {e.getLine()}: {e.getMessage().strip()}" for e in errs[:5]))
    if doc.getModel() is None:
        raise ModelError(f"{where}: the SBML document has no model")
    _expand_function_definitions(doc, where)
    return doc, doc.getModel(), where


def _crnfb_attrs(sbase, tag: str) -> dict:
    if not sbase.isSetAnnotation():
        return {}
    try:
        root = ET.fromstring(sbase.getAnnotationString())
    except ET.ParseError:
        return {}
    for el in root.iter(f"{{{CRNFB_NS}}}{tag}"):
        return dict(el.attrib)
    return {}


def _model_notes(m) -> list[str]:
    """The paragraphs of the model's ``<notes>`` as plain text (whitespace collapsed)."""
    if not m.isSetNotes():
        return []
    try:
        root = ET.fromstring(m.getNotesString())
    except ET.ParseError:
        return []
    paras = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "p"] or [root]
    return [" ".join("".join(el.itertext()).split()) for el in paras]


#: The roles line :func:`~crnfb.feedback.io.sbml.export.model_sbml` writes in the model notes, which (unlike the
#: ``crnfb`` annotations) survive a round trip through Antimony; backslashes are its markdown escapes.
ROLES_NOTE = re.compile(r"Visible species: ([^;]*); learned: (.*?)\.?\s*$")


def _noted_roles(notes: list, names: list) -> dict:
    """``{species: {"visible": ..., "learn": ...}}`` from the roles line of the notes, or ``{}``."""
    for text in notes:
        m = ROLES_NOTE.search(text)
        if not m:
            continue
        vis, lrn = ({n.strip() for n in g.replace("\\", "").split(",")} - {"-", ""} for g in m.groups())
        if (vis | lrn) <= set(names):
            return {s: {"visible": str(s in vis).lower(), "learn": str(s in lrn).lower()} for s in names}
    return {}


def _refuse_unsupported(m, where: str) -> None:
    """Events, rules, initial assignments and conversion factors cannot be represented."""
    lists = (("events", m.getListOfEvents()), ("rules (assignment/rate/algebraic)", m.getListOfRules()),
             ("initial assignments", m.getListOfInitialAssignments()))
    for what, lst in lists:
        if len(lst):
            ids = [next((v for v in (getattr(x, g)() for g in ("getId", "getVariable", "getSymbol")
                                     if hasattr(x, g)) if v), f"#{k + 1}") for k, x in enumerate(lst)]
            raise ModelError(f"{where}: the model has {what} ({', '.join(ids[:5])}); only reaction networks "
                             "with constant parameters can be represented")
    if m.isSetConversionFactor():
        raise ModelError(f"{where}: the model sets a conversionFactor; remove it")


def _volume(m, where: str) -> tuple[float, str, set]:
    """``(V, id, outside)``: the volume the reacting species share, their compartment's id, and the
    species left out.

    Only the compartments of species that take part in a reaction (reactant,
    product or modifier) count: they must have one size (else refused naming
    each species and its compartment). A species of another compartment that
    takes part in no reaction is left out of the network (``outside``, with a
    warning), so a multi-compartment model whose reactions all happen in one
    compartment is read (issue 23). Without reactions, every compartment counts.
    """
    if m.getNumCompartments() == 0:
        raise ModelError(f"{where}: the model has no compartment")
    comp = {s.getId(): s.getCompartment() for s in m.getListOfSpecies()}
    used = {ref.getSpecies() for r in m.getListOfReactions()
            for refs in (r.getListOfReactants(), r.getListOfProducts(), r.getListOfModifiers()) for ref in refs}
    counted = {comp[s] for s in used if s in comp} or {c.getId() for c in m.getListOfCompartments()}
    sizes = {}
    for c in m.getListOfCompartments():
        if c.getId() not in counted:
            continue
        if not c.isSetSize():
            raise ModelError(f"{where}: compartment {c.getId()!r} has no size")
        sizes[c.getId()] = c.getSize()
    vols = sorted(set(sizes.values()))
    if len(vols) > 1 and (vols[-1] - vols[0]) > 1e-12 * vols[-1]:
        by = {c: [s for s in comp if s in used and comp[s] == c] for c in sizes}   # in document order
        raise ModelError(f"{where}: species that take part in reactions live in compartments of different volumes: "
                         + "; ".join(f"{', '.join(by[k])} in {k} (size {v:g})" for k, v in sizes.items())
                         + "; only one well-mixed volume can be represented (put every reacting species in one "
                         "compartment; species of other compartments that take part in no reaction are left out)")
    outside = {s for s, c in comp.items() if c not in counted}
    if outside:
        warnings.warn(f"{where}: species {', '.join(sorted(outside))} take part in no reaction and live outside "
                      f"compartment {', '.join(sorted(counted))}; they are left out", SBMLExportWarning, stacklevel=3)
    V = float(vols[0])
    if not V > 0:
        raise ModelError(f"{where}: compartment volume must be positive, got {V:g}; give the compartment a "
                         "positive size (or the volume to use: --volume)")
    return V, next(iter(sizes)), outside


def _species(m, where: str, units: UnitConversion):
    """Initial copy numbers (:class:`UnitConversion`), the amount-valued species and the crnfb annotations."""
    species: dict[str, float | None] = {}
    amount_valued: set[str] = set()
    snotes: dict = {}
    for s in m.getListOfSpecies():
        sid = s.getId()
        if s.getBoundaryCondition():
            raise ModelError(f"{where}: species {sid!r} has boundaryCondition=true (a fixed species); "
                             "only species changed by the reactions can be represented")
        if s.getConstant():
            raise ModelError(f"{where}: species {sid!r} is constant; only species changed by the reactions "
                             "can be represented")
        if s.isSetConversionFactor():
            raise ModelError(f"{where}: species {sid!r} has a conversionFactor; remove it")
        if s.getHasOnlySubstanceUnits():
            amount_valued.add(sid)
        if s.isSetInitialAmount():
            species[sid] = units.copies(amount=s.getInitialAmount())
        elif s.isSetInitialConcentration():
            species[sid] = units.copies(concentration=s.getInitialConcentration())
        else:
            species[sid] = None
        ann = _crnfb_attrs(s, "species")
        if ann:
            snotes[sid] = ann
    return species, amount_valued, snotes


def _sides(r, rwhere: str) -> tuple[dict, dict]:
    """Reactant and product stoichiometries (whole numbers, constant)."""
    sides = []
    for n_refs, get_ref, what in ((r.getNumReactants(), r.getReactant, "reactant"),
                                  (r.getNumProducts(), r.getProduct, "product")):
        side: dict[str, int] = {}
        for k_ref in range(n_refs):
            sr = get_ref(k_ref)
            if sr.getLevel() == 2 and sr.isSetStoichiometryMath():
                raise ModelError(f"{rwhere}: {what} {sr.getSpecies()!r} has stoichiometryMath")
            if sr.getLevel() >= 3 and not sr.getConstant() and sr.isSetId():
                raise ModelError(f"{rwhere}: {what} {sr.getSpecies()!r} has a variable stoichiometry")
            st = sr.getStoichiometry() if sr.isSetStoichiometry() or sr.getLevel() < 3 else 1.0
            if st <= 0:    # a species consumed by a negative product stoichiometry has no mass-action form
                raise ModelError(f"{rwhere}: {what} {sr.getSpecies()!r} has {'negative' if st < 0 else 'zero'} "
                                 f"stoichiometry {st:g}; stoichiometries must be positive whole numbers (put a "
                                 f"consumed species among the reactants)")
            if not (st > 0 and float(st).is_integer()):     # NaN and inf too
                raise ModelError(f"{rwhere}: {what} {sr.getSpecies()!r} has non-integer stoichiometry "
                                 f"{st:g}; only whole-number stoichiometries can be represented")
            side[sr.getSpecies()] = side.get(sr.getSpecies(), 0) + int(st)
        sides.append(side)
    return sides[0], sides[1]


def _mono(k) -> str:
    return "*".join(f"{s}^{p}" if p > 1 else s for s, p in k) or "1"


def _mass_action_terms(r, symbols: dict, rwhere: str, reac: dict, prod: dict) -> tuple[float, float | None]:
    """``(kf, kr)`` of a law ``kf*prod(reactants) [- kr*prod(products)]`` (``kr`` None if absent)."""
    kl = r.getKineticLaw()
    if kl is None or not kl.isSetMath():
        raise ModelError(f"{rwhere} has no kinetic law; give a mass-action law")
    raw = _LawReader(symbols, r, rwhere).walk(kl.getMath())
    poly = {k: c for k, c in raw.items() if c != 0.0}
    text = libsbml.formulaToL3String(kl.getMath())
    fkey, rkey = tuple(sorted(reac.items())), tuple(sorted(prod.items()))
    if not poly:
        raise ModelError(f"{rwhere}: kinetic law '{text}' is identically zero (a zero rate constant?); a reaction "
                         "that never fires cannot be represented: remove it or give it a positive rate constant")
    for key, what in ((fkey, "forward"), (rkey, "reverse")):
        if key in raw and raw[key] == 0.0 and fkey != rkey:
            raise ModelError(f"{rwhere}: kinetic law '{text}': the {what} rate constant is zero; a reaction "
                             "direction that never fires cannot be represented (detailed balance needs both "
                             "directions): remove that term or give it a positive rate constant")
    extra = set(poly) - {fkey, rkey}
    if extra or fkey not in poly or poly[fkey] <= 0:
        raise ModelError(
            f"{rwhere}: kinetic law '{text}' is not mass action for "
            f"{' + '.join(reac) or '0'} -> {' + '.join(prod) or '0'}: expected kf*{_mono(fkey)}"
            f" [- kr*{_mono(rkey)}] with kf > 0 (and kr > 0), got terms "
            + ", ".join(f"{c:+g}*{_mono(k)}" for k, c in poly.items()))
    if rkey in poly and fkey != rkey and poly[rkey] >= 0:
        raise ModelError(f"{rwhere}: kinetic law '{text}': the product term must be subtracted "
                         "(kf*reactants - kr*products with kr > 0)")
    kr = -poly[rkey] if rkey in poly and fkey != rkey else None
    return poly[fkey], kr


def _symbols(m, species, volume: float) -> dict:
    symbols: dict = {}
    for p in m.getListOfParameters():
        symbols[p.getId()] = float(p.getValue()) if p.isSetValue() else "unset"
    for c in m.getListOfCompartments():   # all of the same size (checked), or the size given by --volume
        symbols[c.getId()] = float(volume)
    for sid in species:
        symbols[sid] = "species"
    return symbols


def read_sbml(source, *, volume=None, copies_per_unit=None) -> MassActionNetwork:
    """Read an SBML model whose reactions are all mass action.

    ``source`` is a path or SBML text. Function definitions are expanded by
    libsbml first. A reversible law ``kf*prod(reactants) - kr*prod(products)``
    becomes two irreversible reactions (``<id>`` and ``<id>__reverse``).
    Initial values become copy numbers ``N = c V u = n u`` and rate constants
    stochastic ones, ``k_stoch = k u^(1-m) V^(-m_c)`` (``m`` the order, ``m_c``
    its part in species read as concentrations; :mod:`.units`). ``volume``
    (``V``) defaults to the common compartment size, ``copies_per_unit``
    (``u``) to ``1/V``, one copy per unit of concentration. The rule applied
    is ``info["units"]`` (a :class:`~crnfb.feedback.io.sbml.units.UnitConversion`).

    Raises
    ------
    ModelError
        Naming the element: events, rules, initial assignments, a species with
        ``boundaryCondition`` or ``constant``, non-integer or variable
        stoichiometry, reacting species in compartments of different sizes, a missing,
        identically zero or non-mass-action kinetic law, fast reactions,
        conversion factors.
    """
    doc, m, where = _read_document(source)
    _refuse_unsupported(m, where)
    V, cid, outside = _volume(m, where)
    units = UnitConversion.choose(V, cid, volume, copies_per_unit)
    species, amount_valued, snotes = _species(m, where, units)
    species = {s: x for s, x in species.items() if s not in outside}
    symbols = _symbols(m, species, units.volume)
    factors = []

    def conv(c, key):
        m, mc = sum(p for _, p in key), sum(p for s, p in key if s not in amount_valued)
        f = units.factor(m, mc)
        factors.append((m, mc, f))
        return float(c) * f

    reactions: list[MassActionReaction] = []
    for r in m.getListOfReactions():
        rid = r.getId()
        rwhere = f"{where}: reaction {rid!r}"
        if r.isSetFast() and r.getFast():
            raise ModelError(f"{rwhere} is fast (a rapid-equilibrium assumption); remove fast=true")
        reac, prod = _sides(r, rwhere)
        kf, kr = _mass_action_terms(r, symbols, rwhere, reac, prod)
        reactions.append(MassActionReaction(rid, reac, prod, conv(kf, tuple(sorted(reac.items())))))
        if kr is not None:
            reactions.append(MassActionReaction(f"{rid}__reverse", prod, reac, conv(kr, tuple(sorted(prod.items()))),
                                                sbml_reversible_pair=rid))
    unknown = {s for rx in reactions for s in (*rx.reactants, *rx.products)} - set(species)
    if unknown:  # pragma: no cover - libsbml flags this as an error already
        raise ModelError(f"{where}: reactions refer to undeclared species {sorted(unknown)}")
    params = {p.getId(): p.getValue() for p in m.getListOfParameters() if p.isSetValue()}
    return MassActionNetwork(m.getId() or "model", m.getName() or m.getId() or "model", species, params,
                             reactions, _model_notes(m), species_notes=snotes,
                             info={"units": dataclasses.replace(units, factors=tuple(factors))})


@dataclass(frozen=True)
class ImportedNetwork:
    """Result of :func:`read_network`.

    Attributes
    ----------
    network : Network
    initial : dict[str, int]    initial counts (``None`` entries where the SBML gives none)
    balance : DetailedBalance   the Wegscheider check (residual, derived energies, kappas)
    reaction_ids : list         SBML reaction id(s) behind each reversible reaction
    source : str
    units : UnitConversion or None   the unit rule applied (:mod:`.units`)
    flags : str                 where the learn flags came from: "given" (``learned=``), "annotations"
                                (``crnfb:species``), "notes" (the roles line of the model notes, which
                                survives Antimony) or "none" (every species learned)
    """

    network: Network
    initial: dict
    balance: DetailedBalance
    reaction_ids: list
    source: str
    units: UnitConversion | None = None
    flags: str = "given"


def _truthy(v):
    return str(v).strip().lower() in ("true", "1", "yes")


def _pair_reactions(mnet: MassActionNetwork, where: str) -> list[tuple[dict, dict, float, float, list]]:
    """Reversible reactions ``(reactants, products, kf, kr, sbml ids)`` from the irreversible halves."""
    pairs: list[tuple[dict, dict, float, float, list]] = []
    single = list(mnet.reactions)
    used: set = set()
    for i, r in enumerate(single):
        if i in used:
            continue
        if r.sbml_reversible_pair is None and i + 1 < len(single) and single[i + 1].sbml_reversible_pair == r.id:
            used |= {i, i + 1}
            pairs.append((r.reactants, r.products, r.rate_constant, single[i + 1].rate_constant, [r.id]))
            continue
        partner = None
        for j in range(i + 1, len(single)):
            q = single[j]
            if j in used or q.sbml_reversible_pair is not None:
                continue
            if j + 1 < len(single) and single[j + 1].sbml_reversible_pair == q.id:
                continue
            if q.reactants == r.products and q.products == r.reactants:
                partner = j
                break
        if partner is None:
            raise ModelError(f"{where}: reaction {r.id!r} is irreversible and no other reaction is its reverse; "
                             "detailed balance needs every reaction reversible (give the law "
                             "kf*reactants - kr*products, or add the reverse reaction)")
        used |= {i, partner}
        q = single[partner]
        pairs.append((r.reactants, r.products, r.rate_constant, q.rate_constant, [r.id, q.id]))
    if not pairs:
        raise ModelError(f"{where}: the model has no reactions")
    return pairs


def equation_side(d: dict) -> str:
    """One side of a model-file equation from ``{species: stoichiometry}`` (``"2 A + B"``; ``"0"`` when empty)."""
    t = [(f"{c} " if c > 1 else "") + s for s, c in d.items()]
    return " + ".join(t) if t else "0"


def _roles(names: list, ann: dict, visible, learned, where: str) -> tuple[set, set]:
    """Visible and learned species: given, else from the crnfb annotations, else none visible / all learned."""
    vis = set(visible) if visible is not None else {s for s in names if _truthy(ann.get(s, {}).get("visible", ""))}
    if learned is not None:
        lrn = set(learned)
    elif any("learn" in ann.get(s, {}) for s in names):
        lrn = {s for s in names if _truthy(ann.get(s, {}).get("learn", "true"))}
    else:
        lrn = set(names)
    for what, given in (("visible", vis), ("learned", lrn)):
        bad = given - set(names)
        if bad:
            raise ModelError(f"{what} species {sorted(bad)} are not in {where}; species: {', '.join(names)}")
    return vis, lrn


def _annotated_energies(names: list, ann: dict) -> dict:
    if not all("energy" in ann.get(s, {}) for s in names):
        return {}
    try:
        return {s: float(ann[s]["energy"]) for s in names}
    except ValueError:
        return {}


def initial_counts(amounts: dict) -> dict:
    """Whole molecule counts where the SBML value is exactly a non-negative integer, else the float.

    Nothing is rounded: ``3e-10`` stays ``3e-10`` (and :func:`import_sbml`
    then refuses it as not a whole count) instead of becoming 0.
    """
    out: dict = {}
    for s, x in amounts.items():
        out[s] = None if x is None else (int(x) if float(x).is_integer() and x >= 0 else float(x))
    return out


def read_network(source, visible=None, learned=None, *, tol: float = 1e-8, use_annotations: bool = True,
                 volume=None, copies_per_unit=None) -> ImportedNetwork:
    """Read a reversible mass-action SBML model into a detailed-balanced :class:`Network`.

    Each reaction must either have the reversible law
    ``kf*prod(reactants) - kr*prod(products)``, or be an irreversible
    mass-action reaction paired with another irreversible one that is its
    reverse. Detailed balance is checked by the Wegscheider conditions
    (:func:`crnfb.feedback.model.network.from_rate_constants`); energies are the
    minimum-norm solution, or, if every species carries a ``crnfb:species``
    energy annotation consistent with the rate constants (files written by
    :func:`model_sbml`), those energies.

    ``visible`` / ``learned``: species names; default from the ``crnfb``
    annotations, else from the roles line our export writes in the model
    notes (``Visible species: ...; learned: ...``, kept by Antimony, which
    drops the annotations), else none visible and all learned
    (``ImportedNetwork.flags`` says which). ``volume`` and
    ``copies_per_unit``: the unit rule of :func:`read_sbml`.
    """
    mnet = read_sbml(source, volume=volume, copies_per_unit=copies_per_unit)
    where = str(source) if not (isinstance(source, str) and source.lstrip().startswith("<")) else "SBML string"
    names = list(mnet.species)
    pairs = _pair_reactions(mnet, where)
    equations = [f"{equation_side(a)} <-> {equation_side(b)}" for a, b, *_ in pairs]
    for eq, (a, b, *_rest, ids) in zip(equations, pairs):
        if a == b:
            raise ModelError(f"{where}: reaction {ids[0]!r} changes nothing ({eq})")
    ann = mnet.species_notes if use_annotations else {}
    flags = "given" if learned is not None else "annotations" if any("learn" in a for a in ann.values()) else "none"
    noted = _noted_roles(mnet.notes, names) if use_annotations and flags == "none" else {}
    if noted:   # the crnfb annotations were lost (e.g. in Antimony): the model notes still say
        flags, ann = "notes", {s: {**noted[s], **ann.get(s, {})} for s in names}
    vis, lrn = _roles(names, ann, visible, learned, where)
    energies = _annotated_energies(names, ann) if use_annotations else {}
    species = [Species(s, energies.get(s, 0.0), s in vis, s in lrn) for s in names]
    kf, kr = [p[2] for p in pairs], [p[3] for p in pairs]
    name = mnet.name if SID.match(mnet.name or "") else mnet.id
    try:
        net, db = from_rate_constants(species, equations, kf, kr, name=name, tol=tol,
                                      energies_given=bool(energies))
    except DetailedBalanceError as e:
        if not energies:
            raise ModelError(f"{where}: {e.message}") from None
        warnings.warn(f"{where}: the crnfb energy annotations disagree with the rate constants; "
                      "deriving the energies from the rate constants instead", SBMLExportWarning, stacklevel=2)
        try:
            net, db = from_rate_constants(species, equations, kf, kr, name=name, tol=tol)
        except DetailedBalanceError as e2:
            raise ModelError(f"{where}: {e2.message}") from None
    return ImportedNetwork(net, initial_counts(mnet.species), db, [p[4] for p in pairs], where,
                           mnet.info["units"], flags)


def import_sbml(source, visible=None, environment=None, *, learned=None, initial=None, n_max=None,
                change=None, learning=None, ensembles=None, tol: float = 1e-8, truncation_tol: float = 1e-6,
                volume=None, copies_per_unit=None):
    """Import a reversible mass-action SBML model as a :class:`~crnfb.feedback.model.model.Model`.

    Parameters
    ----------
    source : path or SBML text
    visible : list of str, optional
        Visible species (default: ``crnfb`` annotations).
    environment : Environment
        The target law ``Q`` (required: a Model needs one).
    learned, n_max, change, learning, ensembles, truncation_tol
        As for :class:`~crnfb.feedback.model.model.Model`.
    initial : dict, optional
        Initial counts; default the SBML initial values as copy numbers (whole numbers).
    volume, copies_per_unit : float, optional
        The unit rule (:func:`read_sbml`).
    """
    imp = read_network(source, visible, learned, tol=tol, volume=volume, copies_per_unit=copies_per_unit)
    return model_of_import(imp, environment, initial=initial, n_max=n_max, change=change, learning=learning,
                           ensembles=ensembles, truncation_tol=truncation_tol, what="import_sbml")


def model_of_import(imp: ImportedNetwork, environment, *, initial=None, n_max=None, change=None, learning=None,
                    ensembles=None, truncation_tol: float = 1e-6, what: str = "import_sbml"):
    """The :class:`~crnfb.feedback.model.model.Model` of an imported network and a learning problem."""
    from ...model.model import Model
    if environment is None:
        raise ModelError(f"{what} needs environment=... (the target law Q); use read_network for the "
                         "network alone")
    if initial is None:
        bad = {s: x for s, x in imp.initial.items() if not isinstance(x, int)}
        if bad:
            raise ModelError(f"{imp.source}: initial values {bad} are not whole molecule counts (as "
                             f"copy numbers: {imp.units.line() if imp.units else 'one copy in unit volume'}); "
                             "pass initial={...} or another copies_per_unit")
        initial = imp.initial
    return Model(imp.network, initial, n_max, environment, change, learning,
                 **({"ensembles": ensembles} if ensembles is not None else {}),
                 truncation_tol=truncation_tol, source=imp.source, balance_residual=imp.balance.residual)
