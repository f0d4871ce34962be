"""Writing SBML Level 3 Version 2: the model network C and any :class:`MassActionNetwork` (docs/sbml.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import write_text
from ...model.network import Network
from ._libsbml import COMPARTMENT, CRNFB_NS, libsbml, need_libsbml
from .labels import check_ids, to_sid
from .learning import learning_network
from .massaction import MassActionNetwork

__all__ = ["network_to_sbml", "model_sbml", "learning_sbml", "write_sbml", "export_model"]


def _ast_name(i: str):
    n = libsbml.ASTNode(libsbml.AST_NAME)
    n.setName(i)
    return n


def _ast_num(x: float):
    n = libsbml.ASTNode()
    if float(x).is_integer() and abs(x) < 2 ** 31:
        n.setType(libsbml.AST_INTEGER)
        n.setValue(int(x))
    else:
        n.setType(libsbml.AST_REAL)
        n.setValue(float(x))
    n.setUnits("dimensionless")
    return n


def _ast_pow(node, p: int):
    if p == 1:
        return node
    n = libsbml.ASTNode(libsbml.AST_POWER)
    n.addChild(node)
    n.addChild(_ast_num(p))
    return n


def _ast_times(nodes):
    if len(nodes) == 1:
        return nodes[0]
    n = libsbml.ASTNode(libsbml.AST_TIMES)
    for c in nodes:
        n.addChild(c)
    return n


def _monomial(number, factors, species):
    nodes = []
    if number != 1.0 or not (factors or species):
        nodes.append(_ast_num(number))
    nodes += [_ast_pow(_ast_name(p), k) for p, k in factors]
    nodes += [_ast_pow(_ast_name(s), k) for s, k in species]
    return _ast_times(nodes)


def _notes_xhtml(paragraphs) -> str:
    from xml.sax.saxutils import escape
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return f'<body xmlns="http://www.w3.org/1999/xhtml">{body}</body>'


def _annotation(tag: str, attrs: dict) -> str:
    from xml.sax.saxutils import quoteattr
    a = " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    return f'<crnfb:{tag} xmlns:crnfb="{CRNFB_NS}" {a}/>'


def _new_document(model_id: str, name: str, notes):
    need_libsbml()
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId(model_id)
    m.setName(name)
    for setter in ("setTimeUnits", "setSubstanceUnits", "setExtentUnits", "setVolumeUnits"):
        getattr(m, setter)("dimensionless")
    if notes:
        m.setNotes(_notes_xhtml(notes))
    c = m.createCompartment()
    c.setId(COMPARTMENT)
    c.setSize(1.0)
    c.setConstant(True)
    c.setSpatialDimensions(3)
    c.setUnits("dimensionless")
    return doc, m


def _add_species(m, sid, amount, annotation=None):
    sp = m.createSpecies()
    sp.setId(sid)
    sp.setCompartment(COMPARTMENT)
    sp.setInitialAmount(float(amount))
    sp.setHasOnlySubstanceUnits(True)
    sp.setBoundaryCondition(False)
    sp.setConstant(False)
    sp.setSubstanceUnits("dimensionless")
    if annotation:
        sp.setAnnotation(_annotation("species", annotation))
    return sp


def _add_parameter(m, pid, value, note=None):
    p = m.createParameter()
    p.setId(pid)
    p.setValue(float(value))
    p.setConstant(True)
    p.setUnits("dimensionless")
    if note:
        p.setName(note)
    return p


def _add_refs(r, reactants, products):
    for s, c in reactants.items():
        sr = r.createReactant()
        sr.setSpecies(s)
        sr.setStoichiometry(float(c))
        sr.setConstant(True)
    for s, c in products.items():
        sr = r.createProduct()
        sr.setSpecies(s)
        sr.setStoichiometry(float(c))
        sr.setConstant(True)


def _finish(doc, validate: bool) -> str:
    if validate:
        _check(doc)
    return libsbml.writeSBMLToString(doc)


def _check(doc):
    doc.checkConsistency()
    errs = [doc.getError(i) for i in range(doc.getNumErrors())
            if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if errs:  # pragma: no cover - would be a bug in this module
        raise RuntimeError("exported SBML fails libsbml's consistency check: "
                           + "; ".join(e.getMessage().strip() for e in errs[:5]))


def network_to_sbml(mnet: MassActionNetwork, validate: bool = False) -> str:
    """SBML Level 3 Version 2 text of an irreversible mass-action network."""
    doc, m = _new_document(mnet.id, mnet.name, mnet.notes)
    for sid, amount in mnet.species.items():
        _add_species(m, sid, amount, mnet.species_notes.get(sid))
    for pid, value in mnet.parameters.items():
        _add_parameter(m, pid, value, mnet.parameter_notes.get(pid))
    for rxn in mnet.reactions:
        r = m.createReaction()
        r.setId(rxn.id)
        r.setReversible(False)
        _add_refs(r, rxn.reactants, rxn.products)
        kl = r.createKineticLaw()
        if rxn.factors:
            ast = _monomial(rxn.number, rxn.factors, list(rxn.reactants.items()))
        else:
            ast = _monomial(rxn.rate_constant, (), list(rxn.reactants.items()))
        kl.setMath(ast)
    return _finish(doc, validate)


def learning_sbml(model, *, speedup: float | None = None, copies: bool = False, prune: float = 0.0,
                  state=None, validate: bool = False) -> str:
    """SBML text of :func:`~crnfb.feedback.io.sbml.learning.learning_network` (``validate``: libsbml's consistency
    check)."""
    return network_to_sbml(learning_network(model, speedup=speedup, copies=copies, prune=prune, state=state),
                           validate)


def model_sbml(model, *, initial=None, validate: bool = False) -> str:
    """SBML Level 3 Version 2 text of the model network C of ``model`` (docs/theory.md §1).

    ``model`` is a :class:`~crnfb.feedback.model.model.Model` or a bare
    :class:`~crnfb.feedback.model.network.Network` (then ``initial`` gives the counts,
    default all zero).

    Species ids are the species names (initial amounts from ``model.initial``),
    reactions ``r1, r2, ...`` are reversible with the mass-action law
    ``kf_rK * prod(reactants) - kr_rK * prod(products)`` and global parameters
    ``kf_rK = kappa lambda^{y'}``, ``kr_rK = kappa lambda^{y}``. Each species
    carries a ``crnfb:species`` annotation (``energy``, ``theta``, ``lambda``,
    ``visible``, ``learn``) and each reaction a ``crnfb:reaction`` annotation
    (``kappa``).
    """
    if isinstance(model, Network):
        net = model
        init = np.zeros(net.n_species, dtype=np.int64) if initial is None else initial
    else:
        net = model.network
        init = model.initial if initial is None else initial
    if isinstance(init, dict):
        init = [init.get(n, 0) for n in net.names]
    init = np.asarray(init, dtype=np.int64)
    theta = net.theta0
    kf, kr = net.rate_constants(theta)
    ids = [COMPARTMENT, *net.names]
    for r in range(len(net.reactions)):
        ids += [f"r{r + 1}", f"kf_r{r + 1}", f"kr_r{r + 1}"]
    check_ids(ids, "species names, r<K>, kf_r<K>, kr_r<K>, cell")
    notes = [f"Model network '{net.name}' exported by crn-feedback (docs/theory.md §1): detailed-balanced, "
             "reversible mass-action reactions with kf = kappa*lambda^{y'} and kr = kappa*lambda^{y}, "
             "lambda_i = exp(theta_i) = exp(-G_i). One copy in unit volume: amounts are molecule counts.",
             f"Visible species: {', '.join(net.names[i] for i in net.visible) or '-'}; "
             f"learned: {', '.join(net.names[i] for i in net.learned) or '-'}."]
    doc, m = _new_document(to_sid(net.name), net.name, notes)
    for i, s in enumerate(net.species):
        _add_species(m, s.name, int(init[i]), {
            "energy": repr(float(s.energy)), "theta": repr(float(-s.energy)),
            "lambda": repr(float(np.exp(-s.energy))), "visible": str(bool(s.visible)).lower(),
            "learn": str(bool(s.learn)).lower()})
    for r in range(len(net.reactions)):
        _add_parameter(m, f"kf_r{r + 1}", kf[r], f"forward rate constant of {net.equation(r)}")
        _add_parameter(m, f"kr_r{r + 1}", kr[r], f"reverse rate constant of {net.equation(r)}")
    for r in range(len(net.reactions)):
        rx = m.createReaction()
        rx.setId(f"r{r + 1}")
        rx.setName(net.equation(r))
        rx.setReversible(True)
        y, yp = net.Y[r], net.Yp[r]
        reac = {net.names[i]: int(c) for i, c in enumerate(y) if c}
        prod = {net.names[i]: int(c) for i, c in enumerate(yp) if c}
        _add_refs(rx, reac, prod)
        rx.setAnnotation(_annotation("reaction", {"kappa": repr(float(net.kappa[r]))}))
        minus = libsbml.ASTNode(libsbml.AST_MINUS)
        minus.addChild(_monomial(1.0, ((f"kf_r{r + 1}", 1),), list(reac.items())))
        minus.addChild(_monomial(1.0, ((f"kr_r{r + 1}", 1),), list(prod.items())))
        rx.createKineticLaw().setMath(minus)
    return _finish(doc, validate)


def write_sbml(text: str, path, *, overwrite: bool = True, inputs=()) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`crnfb.feedback.io.files.write_text`; same keywords)."""
    return write_text(path, text, overwrite=overwrite, inputs=inputs)


def export_model(model, path, *, learning: bool = False, speedup: float | None = None, copies: bool = False,
                 prune: float = 0.0, validate: bool = False) -> Path:
    """Write the model network (or, with ``learning``, the learning CRN) of ``model`` as SBML."""
    text = (learning_sbml(model, speedup=speedup, copies=copies, prune=prune, validate=validate) if learning
            else model_sbml(model, validate=validate))
    return write_sbml(text, path)
