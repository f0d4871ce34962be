"""SBML export and import (docs/theory.md §1 and 4; docs/cli.md ``crnfb export``).

Export
------
* :func:`model_sbml` -- the model network C: one species per species of C
  (id = species name, initial amount from ``[initial]``), one reversible
  reaction per reaction of C with the mass-action law
  ``kf_rK * prod(reactants) - kr_rK * prod(products)``,
  ``kf = kappa lambda^{y'}``, ``kr = kappa lambda^{y}``; energies, ``theta``,
  ``lambda``, visibility and ``kappa`` travel in ``crnfb`` annotations.
* :func:`learning_network` / :func:`learning_sbml` -- the learning CRN at the
  ensemble level (docs/theory.md §4): copy-state species ``free_<state>`` and
  ``clamped_<state>`` (amounts = fractions of copies), parameter species
  ``Lambda_<species>`` (amount = lambda), all reactions irreversible mass
  action. The state label scheme is :func:`state_label`.

Import
------
* :func:`read_sbml` reads any SBML whose reactions are mass action (the
  kinetic-law ASTs are walked node by node; nothing is parsed as text or
  evaluated as code) into a :class:`MassActionNetwork`.
* :func:`read_network` / :func:`import_sbml` turn a reversible mass-action
  SBML model into a :class:`~crnfb.feedback.network.Network` / a
  :class:`~crnfb.feedback.model.Model` after the Wegscheider check.

The id scheme, what is exported and what import rejects are documented in
``docs/sbml.md``.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from .files import write_text
from .errors import DetailedBalanceError, ModelError
from .network import Network, Species, from_rate_constants

try:  # python-libsbml is a hard dependency (pyproject), but fail with a clear message
    import libsbml
except ImportError:  # pragma: no cover
    libsbml = None

__all__ = [
    "CRNFB_NS", "SBMLExportWarning", "MassActionReaction", "MassActionNetwork", "ImportedNetwork",
    "state_label", "parse_state_label", "model_sbml", "learning_network", "learning_sbml",
    "clamped_start", "write_sbml", "export_model", "run_export_command", "read_sbml",
    "read_network", "import_sbml",
]

#: XML namespace of the ``crnfb`` annotations.
CRNFB_NS = "urn:crn-feedback:sbml:1"
COMPARTMENT = "cell"
#: Initial amounts below this are written as 0: tools such as libRoadRunner scale each species'
#: absolute tolerance by its initial value, and a subnormal one makes CVODE fail (CV_TOO_MUCH_ACC).
AMOUNT_FLOOR = 1e-200
_SID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SBMLExportWarning(UserWarning):
    """The exported SBML differs from the model in a documented way (e.g. equilibrium clamping)."""


def _need_libsbml():
    if libsbml is None:  # pragma: no cover
        raise ModelError("python-libsbml is not installed; `pip install python-libsbml`")


# ---------------------------------------------------------------------------------------------
# state labels
# ---------------------------------------------------------------------------------------------
def state_label(names, state) -> str:
    """Label of a copy state: each species name followed by its count, joined by ``_``.

    All species are listed, in network order (zeros included), so the label
    decodes unambiguously given the species names (:func:`parse_state_label`),
    even when names end in digits or contain ``_``.

    >>> state_label(["X", "Y"], [3, 17])
    'X3_Y17'
    """
    return "_".join(f"{n}{int(c)}" for n, c in zip(names, state))


def parse_state_label(names, label: str) -> tuple[int, ...]:
    """Inverse of :func:`state_label` (``ValueError`` if ``label`` is not one)."""
    pos, out = 0, []
    for k, n in enumerate(names):
        if k:
            if label[pos:pos + 1] != "_":
                raise ValueError(f"{label!r} is not a state label over {list(names)}")
            pos += 1
        if not label.startswith(n, pos):
            raise ValueError(f"{label!r} is not a state label over {list(names)}")
        pos += len(n)
        m = re.compile(r"\d+").match(label, pos)
        if not m:
            raise ValueError(f"{label!r} is not a state label over {list(names)}")
        out.append(int(m.group()))
        pos = m.end()
    if pos != len(label):
        raise ValueError(f"{label!r} is not a state label over {list(names)}")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# an irreversible mass-action network (what the learning CRN is, and what read_sbml returns)
# ---------------------------------------------------------------------------------------------
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
    """

    id: str
    name: str
    species: dict
    parameters: dict
    reactions: list
    notes: list = field(default_factory=list)
    species_notes: dict = field(default_factory=dict)
    parameter_notes: dict = field(default_factory=dict)

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


# ---------------------------------------------------------------------------------------------
# the learning CRN at the ensemble level
# ---------------------------------------------------------------------------------------------
def _hidden_generator(space, states: np.ndarray, theta_full: np.ndarray) -> sparse.csr_matrix:
    """Generator (columns = source) of the hidden-only reactions on the sub-list ``states``."""
    net = space.network
    pos = np.full(space.size, -1)
    pos[states] = np.arange(states.size)
    rows, cols, vals = [], [], []
    for e in space.edges:
        if not net.hidden_only[e.reaction]:
            continue
        keep = (pos[e.src] >= 0) & (pos[e.dst] >= 0)
        a = e.coef[keep] * np.exp(e.exponent @ theta_full)
        s, d = pos[e.src[keep]], pos[e.dst[keep]]
        rows += [d, s]
        cols += [s, s]
        vals += [a, -a]
    n = states.size
    if not rows:
        return sparse.csr_matrix((n, n))
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _clamped_support(model) -> np.ndarray:
    """Class states whose visible part is in the union of the supports of Q and its change.

    Probabilities below :data:`AMOUNT_FLOOR` count as zero.
    """
    qv = (model.q >= AMOUNT_FLOOR) | (model.q_change >= AMOUNT_FLOOR)
    return np.nonzero(qv[model.space.visible_index])[0]


def _reset_law(model, states: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``Q(v) u(h|v)`` on ``states``, ``u`` uniform on the class states with visible part v."""
    space = model.space
    vi = space.visible_index
    per_v = np.bincount(vi, minlength=space.visible_states.shape[0])
    return q[vi[states]] / per_v[vi[states]]


def clamped_start(model, theta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The clamped ensemble's start ``(states, p_c)`` (docs/theory.md §4).

    Dynamic clamping: the stationary law of the clamped dynamics at ``theta``
    (learned coordinates; default the file's) under the initial environment,
    ``(A_hid(theta) - gamma I) p + gamma Q u = 0`` solved sparsely on the
    clamped states. Equilibrium clamping: ``Qt(theta)``.
    ``states`` are indices into ``model.space.states``.
    """
    theta = model.theta0 if theta is None else np.asarray(theta, float)
    full = model.full_theta(theta)
    states = _clamped_support(model)
    if model.learning.clamping == "equilibrium":
        pi = model.space.stationary(full)
        qt = model.landscape.clamped_law(pi, model.q)
        return states, qt[states]
    gamma = model.learning.gamma
    A = _hidden_generator(model.space, states, full)
    b = gamma * _reset_law(model, states, np.where(model.q >= AMOUNT_FLOOR, model.q, 0.0))
    M = (gamma * sparse.identity(states.size, format="csc") - A.tocsc())
    p = spsolve(M, b) if states.size > 1 else b / M.toarray().ravel()
    p = np.clip(np.atleast_1d(p), 0.0, None)
    return states, p / p.sum()


def _ids_unique(ids, what="SBML ids"):
    seen = set()
    for i in ids:
        if not _SID.match(i):
            raise ModelError(f"{i!r} is not a valid SBML id")
        if i in seen:
            raise ModelError(f"the SBML id {i!r} would be used twice; rename the species so that "
                             f"generated ids ({what}) do not collide")
        seen.add(i)


def _sid(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return s if re.match(r"[A-Za-z_]", s) else f"m_{s}"


def learning_network(model, *, strict: bool = False) -> MassActionNetwork:
    """The learning CRN of ``model`` at the ensemble level, as mass-action reactions.

    Species (amounts in a compartment of volume 1):

    * ``free_<state>`` for every state of the class (fraction of free copies),
      initial ``pi_theta0``;
    * ``clamped_<state>`` for every class state whose visible part is in the
      support of ``Q`` or of its change (fraction of clamped copies), initial
      :func:`clamped_start`;
    * ``Lambda_<i>`` for every learned species (amount ``lambda_i = exp(theta0_i)``).

    Reactions: free copy jumps ``free_s + y'_r Lambda -> free_s' + y'_r Lambda``
    (rate constant ``kappa_r`` times the falling factorial; unlearned
    activities ``lambda_j`` are constant parameters in the rate constant);
    clamped copies likewise for hidden-only reactions; resets ``clamped_s ->``
    at rate ``gamma`` and ``-> clamped_s`` at constant rate
    ``gamma Q(v) u(h|v)``; learning ``clamped_s + Lambda_i -> clamped_s + 2 Lambda_i``
    and ``free_s + Lambda_i -> free_s`` with rate constants ``eps_i n_i(s)``.
    Then ``dlambda_i/dt = eps_i lambda_i (m_c,i - m_f,i)`` exactly.

    Under ``clamping = "equilibrium"`` (no mass-action implementation exists)
    the clamped ensemble is written with the dynamic-clamping structure at the
    model's ``gamma``, starting from ``Qt(theta0)``; an
    :class:`SBMLExportWarning` is issued and the SBML notes say so. With
    ``strict=True`` a :class:`ModelError` is raised instead.
    """
    net = model.network
    space = model.space
    names = net.names
    learned = list(model.learned)
    theta_full = model.full_theta(model.theta0)
    notes = [
        f"Learning CRN of model '{net.name}' at the ensemble level (crn-feedback docs/theory.md §4), "
        "exported by crn-feedback. All reactions are irreversible mass action; compartment volume 1.",
        "Species free_<state> and clamped_<state>: fraction of free / clamped copies in a copy state; "
        "<state> lists every species of the model network followed by its count, joined by '_' "
        f"(species order: {', '.join(names)}). Lambda_<species>: activity lambda = exp(theta) of a "
        "learned species.",
        "Initial values: free copies at pi_theta0, clamped copies at the clamped ensemble's start, "
        "Lambda at exp(theta0) (theta0 = -energy from the model file). Fractions below "
        f"{AMOUNT_FLOOR:g} are written as 0.",
    ]
    if model.learning.clamping == "equilibrium":
        msg = ("the model uses clamping = \"equilibrium\" (p_c = Qt(theta) at all times), which has no "
               "mass-action implementation; the SBML uses the dynamic-clamping structure at "
               f"gamma = {model.learning.gamma:g} and starts the clamped copies at Qt(theta0)")
        if strict:
            raise ModelError(msg + "; set clamping = \"dynamic\" to export it", key="learning.clamping",
                             file=model.source)
        warnings.warn(msg, SBMLExportWarning, stacklevel=2)
        notes.append("NOTE: " + msg + ". Its stationary clamped law equals Qt only as gamma -> 0 "
                     "relative to hidden mixing (exactly, if there are no hidden species).")
    bad = space.hidden_disconnected(np.nonzero((model.q >= AMOUNT_FLOOR) | (model.q_change >= AMOUNT_FLOOR))[0])
    if bad:
        msg = (f"hidden-only reactions do not connect the hidden states for visible states {bad[:5]}; "
               "the clamped ensemble cannot reach pi(h|v) there for any gamma")
        warnings.warn(msg, SBMLExportWarning, stacklevel=2)
        notes.append("WARNING: " + msg + ".")

    # parameters -----------------------------------------------------------------------------
    params: dict[str, float] = {}
    pnotes: dict[str, str] = {}
    for r in range(len(net.reactions)):
        params[f"kappa_r{r + 1}"] = float(net.kappa[r])
        pnotes[f"kappa_r{r + 1}"] = net.equation(r)
    catalyst_unlearned = sorted({j for e in space.edges for j in np.nonzero(e.exponent)[0]
                                 if j not in learned})
    for j in catalyst_unlearned:
        params[f"lambda_{names[j]}"] = float(np.exp(theta_full[j]))
        pnotes[f"lambda_{names[j]}"] = f"constant activity of the unlearned species {names[j]}"
    params["gamma"] = float(model.learning.gamma)
    for k, i in enumerate(learned):
        params[f"eps_{names[i]}"] = float(model.eps[k])
    cstates, pc0 = clamped_start(model)
    vis = net.visible
    vnames = [names[i] for i in vis]
    qlabel = {}
    for v in np.unique(space.visible_index[cstates]):
        lab = f"Q_{state_label(vnames, space.visible_states[v])}"
        qlabel[v] = lab
        params[lab] = float(model.q[v]) if model.q[v] >= AMOUNT_FLOOR else 0.0

    # species --------------------------------------------------------------------------------
    labels = [state_label(names, s) for s in space.states]
    pf0 = space.stationary(theta_full)
    species: dict[str, float] = {}
    def floor(p):
        return float(p) if p >= AMOUNT_FLOOR else 0.0

    for lab, p in zip(labels, pf0):
        species[f"free_{lab}"] = floor(p)
    cpos = np.full(space.size, -1)
    cpos[cstates] = np.arange(cstates.size)
    for s, p in zip(cstates, pc0):
        species[f"clamped_{labels[s]}"] = floor(p)
    for i in learned:
        species[f"Lambda_{names[i]}"] = float(np.exp(theta_full[i]))

    # reactions ------------------------------------------------------------------------------
    rx: list[MassActionReaction] = []
    lam_full = np.exp(theta_full)

    def jump(prefix, ens, e, k):
        s, d = int(e.src[k]), int(e.dst[k])
        cat = {f"Lambda_{names[j]}": int(e.exponent[j]) for j in learned if e.exponent[j]}
        rk = e.reaction
        ff = float(e.coef[k] / net.kappa[rk])
        facs = [(f"kappa_r{rk + 1}", 1)] + [(f"lambda_{names[j]}", int(e.exponent[j]))
                                             for j in catalyst_unlearned if e.exponent[j]]
        kconst = float(e.coef[k] * np.prod([lam_full[j] ** e.exponent[j] for j in catalyst_unlearned]))
        reac = {f"{ens}_{labels[s]}": 1, **cat}
        prod = {f"{ens}_{labels[d]}": 1, **cat}
        rx.append(MassActionReaction(f"{prefix}_r{rk + 1}{'f' if e.forward else 'b'}_{labels[s]}",
                                     reac, prod, kconst, tuple(facs), ff))

    for e in space.edges:
        for k in range(e.src.size):
            jump("F", "free", e, k)
    for e in space.edges:
        if not net.hidden_only[e.reaction]:
            continue
        for k in range(e.src.size):
            if cpos[e.src[k]] >= 0 and cpos[e.dst[k]] >= 0:
                jump("C", "clamped", e, k)
    gamma = params["gamma"]
    u = _reset_law(model, cstates, np.ones_like(model.q))
    for s, uu in zip(cstates, u):
        v = space.visible_index[s]
        rx.append(MassActionReaction(f"In_{labels[s]}", {}, {f"clamped_{labels[s]}": 1},
                                     float(gamma * params[qlabel[v]] * uu), (("gamma", 1), (qlabel[v], 1)), float(uu)))
        rx.append(MassActionReaction(f"Out_{labels[s]}", {f"clamped_{labels[s]}": 1}, {},
                                     gamma, (("gamma", 1),), 1.0))
    for k, i in enumerate(learned):
        eps = float(model.eps[k])
        L = f"Lambda_{names[i]}"
        for s in cstates:
            n = int(space.states[s, i])
            if n > 0:
                c = f"clamped_{labels[s]}"
                rx.append(MassActionReaction(f"Up_{names[i]}_{labels[s]}", {c: 1, L: 1}, {c: 1, L: 2},
                                             eps * n, ((f"eps_{names[i]}", 1),), float(n)))
        for s in range(space.size):
            n = int(space.states[s, i])
            if n > 0:
                f_ = f"free_{labels[s]}"
                rx.append(MassActionReaction(f"Down_{names[i]}_{labels[s]}", {f_: 1, L: 1}, {f_: 1},
                                             eps * n, ((f"eps_{names[i]}", 1),), float(n)))
    ids = [COMPARTMENT, *species, *params, *(r.id for r in rx)]
    _ids_unique(ids, "free_/clamped_/Lambda_/Q_/eps_/kappa_ ids, reaction ids F_, C_, In_, Out_, Up_, Down_")
    snotes = {f"Lambda_{names[i]}": {"theta0": repr(float(theta_full[i])), "species": names[i]} for i in learned}
    return MassActionNetwork(_sid(f"{net.name}_learning"), f"{net.name} (learning CRN)", species, params, rx,
                             notes, snotes, pnotes)


# ---------------------------------------------------------------------------------------------
# writing SBML
# ---------------------------------------------------------------------------------------------
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
    _need_libsbml()
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


def learning_sbml(model, *, strict: bool = False, validate: bool = False) -> str:
    """SBML text of :func:`learning_network` (``validate``: run libsbml's consistency check)."""
    return network_to_sbml(learning_network(model, strict=strict), validate)


def model_sbml(model, *, initial=None, validate: bool = False) -> str:
    """SBML Level 3 Version 2 text of the model network C of ``model`` (docs/theory.md §1).

    ``model`` is a :class:`~crnfb.feedback.model.Model` or a bare
    :class:`~crnfb.feedback.network.Network` (then ``initial`` gives the counts,
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
    _ids_unique(ids, "species names, r<K>, kf_r<K>, kr_r<K>, cell")
    notes = [f"Model network '{net.name}' exported by crn-feedback (docs/theory.md §1): detailed-balanced, "
             "reversible mass-action reactions with kf = kappa*lambda^{y'} and kr = kappa*lambda^{y}, "
             "lambda_i = exp(theta_i) = exp(-G_i). One copy in unit volume: amounts are molecule counts.",
             f"Visible species: {', '.join(net.names[i] for i in net.visible) or '-'}; "
             f"learned: {', '.join(net.names[i] for i in net.learned) or '-'}."]
    doc, m = _new_document(_sid(net.name), net.name, notes)
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


def write_sbml(text: str, path) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same directory, then ``os.replace``)."""
    return write_text(path, text)


def export_model(model, path, *, learning: bool = False, strict: bool = False, validate: bool = False) -> Path:
    """Write the model network (or, with ``learning``, the learning CRN) of ``model`` as SBML."""
    text = learning_sbml(model, strict=strict, validate=validate) if learning else model_sbml(model, validate=validate)
    return write_sbml(text, path)


def run_export_command(args) -> int:
    """``crnfb export MODEL --sbml FILE [--learning]`` (docs/cli.md).

    Export warnings (equilibrium clamping, unreachable hidden states) go to
    stderr; :class:`ModelError` propagates (the CLI maps it to exit 2).
    """
    from .modelfile import load_model
    model = load_model(args.model)
    learning = bool(getattr(args, "learning", False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SBMLExportWarning)
        text = learning_sbml(model) if learning else model_sbml(model)
    for w in caught:
        if issubclass(w.category, SBMLExportWarning):
            print(f"crnfb export: warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    out = write_sbml(text, args.sbml)
    what = "learning network" if learning else "model network"
    print(f"wrote {what} of '{model.name}' to {out}")
    return 0


# ---------------------------------------------------------------------------------------------
# reading SBML
# ---------------------------------------------------------------------------------------------
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

    def fail(self, node, why):
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


@dataclass
class _ReadSpecies:
    id: str
    amount: float | None
    annotation: dict


def _read_document(source):
    _need_libsbml()
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
    m = doc.getModel()
    if m is None:
        raise ModelError(f"{where}: the SBML document has no model")
    return doc, m, where


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


def read_sbml(source) -> MassActionNetwork:
    """Read an SBML model whose reactions are all mass action.

    ``source`` is a path or SBML text. A reversible law
    ``kf*prod(reactants) - kr*prod(products)`` becomes two irreversible
    reactions (``<id>`` and ``<id>__reverse``). Rate constants are converted to
    concentration units (``k = c V^{q-1}``, ``q`` the reactant order in
    amount-valued species, ``V`` the common compartment volume), and initial
    values are concentrations, so the result describes one unit volume.

    Raises
    ------
    ModelError
        Naming the element: events, rules, initial assignments, a species with
        ``boundaryCondition`` or ``constant``, non-integer or variable
        stoichiometry, compartments with different sizes, a missing or
        non-mass-action kinetic law, fast reactions, conversion factors.
    """
    doc, m, where = _read_document(source)
    checks = [(m.getNumEvents(), "events"), (m.getNumRules(), "rules (assignment/rate/algebraic)"),
              (m.getNumInitialAssignments(), "initial assignments")]
    for n, what in checks:
        if n:
            lst = {"events": m.getListOfEvents(), "rules (assignment/rate/algebraic)": m.getListOfRules(),
                   "initial assignments": m.getListOfInitialAssignments()}[what]
            ids = [next((v for v in (getattr(x, g)() for g in ("getId", "getVariable", "getSymbol")
                                     if hasattr(x, g)) if v), f"#{k + 1}") for k, x in enumerate(lst)]
            raise ModelError(f"{where}: the model has {what} ({', '.join(ids[:5])}); only reaction networks "
                             "with constant parameters can be represented")
    if m.isSetConversionFactor():
        raise ModelError(f"{where}: the model sets a conversionFactor; remove it")
    if m.getNumCompartments() == 0:
        raise ModelError(f"{where}: the model has no compartment")
    sizes = {}
    for c in m.getListOfCompartments():
        if not c.isSetSize():
            raise ModelError(f"{where}: compartment {c.getId()!r} has no size")
        sizes[c.getId()] = c.getSize()
    vols = sorted(set(sizes.values()))
    if len(vols) > 1 and (vols[-1] - vols[0]) > 1e-12 * vols[-1]:
        raise ModelError(f"{where}: compartments {', '.join(f'{k} (size {v:g})' for k, v in sizes.items())} have "
                         "different volumes; only one well-mixed volume can be represented")
    V = float(vols[0])
    if not V > 0:
        raise ModelError(f"{where}: compartment volume must be positive, got {V:g}")
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
            species[sid] = s.getInitialAmount() / V
        elif s.isSetInitialConcentration():
            species[sid] = s.getInitialConcentration()
        else:
            species[sid] = None
        ann = _crnfb_attrs(s, "species")
        if ann:
            snotes[sid] = ann
    symbols: dict = {}
    for p in m.getListOfParameters():
        symbols[p.getId()] = float(p.getValue()) if p.isSetValue() else "unset"
    for c in m.getListOfCompartments():
        symbols[c.getId()] = float(c.getSize())
    for sid in species:
        symbols[sid] = "species"
    reactions: list[MassActionReaction] = []
    for k_r in range(m.getNumReactions()):
        r = m.getReaction(k_r)
        rid = r.getId()
        rwhere = f"{where}: reaction {rid!r}"
        if r.isSetFast() and r.getFast():
            raise ModelError(f"{rwhere} is fast (a rapid-equilibrium assumption); remove fast=true")
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
                if not (st > 0 and float(st).is_integer()):
                    raise ModelError(f"{rwhere}: {what} {sr.getSpecies()!r} has non-integer stoichiometry "
                                     f"{st:g}; only whole-number stoichiometries can be represented")
                side[sr.getSpecies()] = side.get(sr.getSpecies(), 0) + int(st)
            sides.append(side)
        reac, prod = sides
        kl = r.getKineticLaw()
        if kl is None or not kl.isSetMath():
            raise ModelError(f"{rwhere} has no kinetic law; give a mass-action law")
        reader = _LawReader(symbols, r, rwhere)
        poly = {k: c for k, c in reader.walk(kl.getMath()).items() if c != 0.0}
        fkey = tuple(sorted(reac.items()))
        rkey = tuple(sorted(prod.items()))
        extra = set(poly) - {fkey, rkey}
        if extra or fkey not in poly or poly[fkey] <= 0 or (rkey in poly and fkey != rkey and poly[rkey] >= 0):
            text = libsbml.formulaToL3String(kl.getMath())
        if extra or fkey not in poly or poly[fkey] <= 0:
            def mono(k):
                return "*".join(f"{s}^{p}" if p > 1 else s for s, p in k) or "1"
            raise ModelError(
                f"{rwhere}: kinetic law '{text}' is not mass action for "
                f"{' + '.join(reac) or '0'} -> {' + '.join(prod) or '0'}: expected kf*{mono(fkey)}"
                f" [- kr*{mono(rkey)}] with kf > 0 (and kr > 0), got terms "
                + ", ".join(f"{c:+g}*{mono(k)}" for k, c in poly.items()))
        if rkey in poly and fkey != rkey and poly[rkey] >= 0:
            raise ModelError(f"{rwhere}: kinetic law '{text}': the product term must be subtracted "
                             "(kf*reactants - kr*products with kr > 0)")

        def conv(c, key):
            q = sum(p for s, p in key if s in amount_valued)
            return float(c) * V ** (q - 1)

        reactions.append(MassActionReaction(rid, reac, prod, conv(poly[fkey], fkey)))
        if rkey in poly and fkey != rkey:
            reactions.append(MassActionReaction(f"{rid}__reverse", prod, reac, conv(-poly[rkey], rkey),
                                                sbml_reversible_pair=rid))
    unknown = {s for rx in reactions for s in (*rx.reactants, *rx.products)} - set(species)
    if unknown:  # pragma: no cover - libsbml flags this as an error already
        raise ModelError(f"{where}: reactions refer to undeclared species {sorted(unknown)}")
    params = {p.getId(): p.getValue() for p in m.getListOfParameters() if p.isSetValue()}
    return MassActionNetwork(m.getId() or "model", m.getName() or m.getId() or "model", species, params,
                             reactions, species_notes=snotes)


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
    """

    network: Network
    initial: dict
    balance: object
    reaction_ids: list
    source: str


def _truthy(v):
    return str(v).strip().lower() in ("true", "1", "yes")


def read_network(source, visible=None, learned=None, *, tol: float = 1e-8,
                 use_annotations: bool = True) -> ImportedNetwork:
    """Read a reversible mass-action SBML model into a detailed-balanced :class:`Network`.

    Each reaction must either have the reversible law
    ``kf*prod(reactants) - kr*prod(products)``, or be an irreversible
    mass-action reaction paired with another irreversible one that is its
    reverse. Detailed balance is checked by the Wegscheider conditions
    (:func:`crnfb.feedback.network.from_rate_constants`); energies are the
    minimum-norm solution, or, if every species carries a ``crnfb:species``
    energy annotation consistent with the rate constants (files written by
    :func:`model_sbml`), those energies.

    ``visible`` / ``learned``: species names; default from the ``crnfb``
    annotations, else none visible and all learned.
    """
    mnet = read_sbml(source)
    where = str(source) if not (isinstance(source, str) and source.lstrip().startswith("<")) else "SBML string"
    names = list(mnet.species)
    # pair irreversible halves
    pairs: list[tuple[dict, dict, float, float, list]] = []
    single = [r for r in mnet.reactions]
    used = set()
    for i, r in enumerate(single):
        if i in used:
            continue
        if r.sbml_reversible_pair is None and i + 1 < len(single) and single[i + 1].sbml_reversible_pair == r.id:
            rev = single[i + 1]
            used |= {i, i + 1}
            pairs.append((r.reactants, r.products, r.rate_constant, rev.rate_constant, [r.id]))
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

    def side(d):
        t = [(f"{c} " if c > 1 else "") + s for s, c in d.items()]
        return " + ".join(t) if t else "0"

    equations = [f"{side(a)} <-> {side(b)}" for a, b, *_ in pairs]
    for eq, (a, b, *_rest, ids) in zip(equations, pairs):
        if a == b:
            raise ModelError(f"{where}: reaction {ids[0]!r} changes nothing ({eq})")
    ann = mnet.species_notes if use_annotations else {}
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
    energies = {}
    if use_annotations and all("energy" in ann.get(s, {}) for s in names):
        try:
            energies = {s: float(ann[s]["energy"]) for s in names}
        except ValueError:
            energies = {}
    species = [Species(s, energies.get(s, 0.0), s in vis, s in lrn) for s in names]
    kf = [p[2] for p in pairs]
    kr = [p[3] for p in pairs]
    name = mnet.name if _SID.match(mnet.name or "") else mnet.id
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
    # keep the SBML ids in the reaction text for messages
    initial = {}
    for s, x in mnet.species.items():
        if x is None:
            initial[s] = None
            continue
        if abs(x - round(x)) > 1e-9 or x < 0:
            initial[s] = float(x)
        else:
            initial[s] = int(round(x))
    return ImportedNetwork(net, initial, db, [p[4] for p in pairs], where)


def import_sbml(source, visible=None, environment=None, *, learned=None, initial=None, n_max=None,
                change=None, learning=None, ensembles=None, tol: float = 1e-8, truncation_tol: float = 1e-6):
    """Import a reversible mass-action SBML model as a :class:`~crnfb.feedback.model.Model`.

    Parameters
    ----------
    source : path or SBML text
    visible : list of str, optional
        Visible species (default: ``crnfb`` annotations).
    environment : Environment
        The target law ``Q`` (required: a Model needs one).
    learned, n_max, change, learning, ensembles, truncation_tol
        As for :class:`~crnfb.feedback.model.Model`.
    initial : dict, optional
        Initial counts; default the SBML initial amounts (whole numbers).
    """
    from .model import Model
    imp = read_network(source, visible, learned, tol=tol)
    if environment is None:
        raise ModelError("import_sbml needs environment=... (the target law Q); use read_network for the "
                         "network alone")
    if initial is None:
        bad = {s: x for s, x in imp.initial.items() if not isinstance(x, int)}
        if bad:
            raise ModelError(f"{imp.source}: initial values {bad} are not whole molecule counts "
                             "(one copy in unit volume); pass initial={{...}}")
        initial = imp.initial
    return Model(imp.network, initial, n_max, environment, change, learning,
                 **({"ensembles": ensembles} if ensembles is not None else {}),
                 truncation_tol=truncation_tol, source=imp.source, balance_residual=imp.balance.residual)
