"""SBML export / import (the crnfb.feedback.io.sbml package) and cross-checks against peer tools.

Peer tests (marker ``peers``) load the exported learning network into
libRoadRunner and build a finite-ensemble network in GillesPy2; they are
skipped with a reason when those packages are absent. The reference for the
ensemble-level ODE is :class:`crnfb.feedback.dynamics.ensembles.LearningNetwork` (its own
generator code, in theta coordinates), so every comparison below is between
two independent implementations.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import linear_sum_assignment

libsbml = pytest.importorskip("libsbml")

from crnfb.feedback.io import sbml  # noqa: E402
from crnfb.feedback.model.environment import Poisson  # noqa: E402
from crnfb.feedback.errors import ModelError  # noqa: E402
from crnfb.feedback.model.model import Ensembles, Model  # noqa: E402
from crnfb.feedback.io.modelfile import load_model  # noqa: E402
from crnfb.feedback.model.network import Network  # noqa: E402

EX = Path(__file__).resolve().parents[1] / "examples"


def load(name: str, **learning) -> Model:
    m = load_model(EX / f"{name}.toml")
    return m.with_learning(**learning) if learning else m


def consistency_errors(text: str) -> list[str]:
    doc = libsbml.readSBMLFromString(text)
    doc.checkConsistency()
    return [doc.getError(i).getMessage() for i in range(doc.getNumErrors())
            if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]


def label(names, s):
    """Independent re-implementation of the documented state-label scheme."""
    return "_".join(f"{n}{int(c)}" for n, c in zip(names, s))


def to_sbml_vector(ids: list[str], model: Model, lnet, x: np.ndarray) -> np.ndarray:
    """Map a LearningNetwork loop state (p_f, p_c, theta) to SBML species amounts in ``ids`` order."""
    names = model.network.names
    p_f, p_c, theta = lnet.split(x)
    val = {}
    for s, p in zip(model.space.states, p_f):
        val[f"free_{label(names, s)}"] = p
    for k, p in zip(lnet.clamped_states, p_c):
        val[f"clamped_{label(names, model.space.states[k])}"] = p
    for i, t in zip(model.learned, theta):
        val[f"Lambda_{names[i]}"] = np.exp(t)
    assert set(val) == set(ids), "species sets of the SBML and of LearningNetwork differ"
    return np.array([val[i] for i in ids])


def from_sbml_rates(ids, model, lnet, dx, x_sbml) -> np.ndarray:
    """SBML time derivatives in LearningNetwork coordinates (theta = ln Lambda)."""
    pos = {i: k for k, i in enumerate(ids)}
    names = model.network.names
    out = [dx[pos[f"free_{label(names, s)}"]] for s in model.space.states]
    out += [dx[pos[f"clamped_{label(names, model.space.states[k])}"]] for k in lnet.clamped_states]
    out += [dx[pos[f"Lambda_{names[i]}"]] / x_sbml[pos[f"Lambda_{names[i]}"]] for i in model.learned]
    return np.array(out)


def nontrivial_model() -> Model:
    """Open + conserved species, bimolecular and dimerisation steps, an unlearned species."""
    species = {"A": dict(energy=0.3, visible=True), "B": dict(energy=-0.7), "C": dict(energy=1.1, learn=False),
               "D": dict(energy=0.25)}
    eqs = [("0 <-> A", 0.8), ("A + B <-> C", 1.7), ("2 A <-> D", 0.4), ("D + B <-> C + A", 0.6)]
    net = Network.from_equations(species, eqs, name="nontrivial")
    return Model(net, initial={"A": 1, "B": 3}, n_max=7, environment=Poisson(1.0), truncation_tol=1e-3)


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("names,state", [
    (["X"], [3]), (["X", "Y"], [3, 17]), (["S0", "S01", "S1"], [1, 2, 10]), (["a_1", "a"], [0, 12]),
])
def test_state_label_roundtrip(names, state):
    lab = sbml.state_label(names, state)
    assert sbml.parse_state_label(names, lab) == tuple(state)
    assert lab == label(names, state)


def test_state_label_examples_and_errors():
    assert sbml.state_label(["X", "Y"], [3, 17]) == "X3_Y17"
    with pytest.raises(ValueError):
        sbml.parse_state_label(["X", "Y"], "X3Y17")


# ---------------------------------------------------------------------------------------------
# model network export / import
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "hidden_scaffold", "dimer", "chain"])
def test_model_sbml_is_valid(name):
    m = load(name)
    text = sbml.model_sbml(m, validate=True)
    assert consistency_errors(text) == []
    doc = libsbml.readSBMLFromString(text)
    assert (doc.getLevel(), doc.getVersion()) == (3, 2)
    mod = doc.getModel()
    assert [s.getId() for s in mod.getListOfSpecies()] == m.network.names
    assert [s.getInitialAmount() for s in mod.getListOfSpecies()] == m.initial.tolist()
    assert mod.getNumReactions() == len(m.network.reactions)
    assert all(r.getReversible() for r in mod.getListOfReactions())
    assert mod.getNumCompartments() == 1 and mod.getCompartment(0).getSize() == 1.0


def test_model_sbml_rate_constants():
    m = nontrivial_model()
    mod = libsbml.readSBMLFromString(sbml.model_sbml(m)).getModel()
    kf, kr = m.network.rate_constants()
    for r in range(len(m.network.reactions)):
        assert mod.getParameter(f"kf_r{r + 1}").getValue() == pytest.approx(kf[r], rel=1e-14)
        assert mod.getParameter(f"kr_r{r + 1}").getValue() == pytest.approx(kr[r], rel=1e-14)


def _compare_networks(n0: Network, n1: Network, exact_energies: bool):
    assert n1.names == n0.names
    assert (n1.Y == n0.Y).all() and (n1.Yp == n0.Yp).all()
    kf0, kr0 = n0.rate_constants()
    kf1, kr1 = n1.rate_constants()
    np.testing.assert_allclose(kf1, kf0, rtol=1e-12)
    np.testing.assert_allclose(kr1, kr0, rtol=1e-12)
    np.testing.assert_allclose(np.log(kf1 / kr1), np.log(kf0 / kr0), atol=1e-12)
    dG = n1.energies - n0.energies
    if exact_energies:
        np.testing.assert_allclose(n1.energies, n0.energies, atol=1e-12)
        np.testing.assert_allclose(n1.kappa, n0.kappa, rtol=1e-12)
    else:
        # energies agree up to the conservation-law directions (nu . dG = 0)
        np.testing.assert_allclose(n0.nu @ dG, 0.0, atol=1e-12)
        L = n0.conservation_laws.astype(float)
        if L.shape[0]:
            c, *_ = np.linalg.lstsq(L.T, dG, rcond=None)
            np.testing.assert_allclose(L.T @ c, dG, atol=1e-12)  # dG = L^T c
        else:
            np.testing.assert_allclose(dG, 0.0, atol=1e-12)


@pytest.mark.parametrize("use_annotations", [True, False])
def test_round_trip_model_network(use_annotations):
    m = nontrivial_model()
    imp = sbml.read_network(sbml.model_sbml(m), use_annotations=use_annotations)
    _compare_networks(m.network, imp.network, exact_energies=use_annotations)
    assert imp.initial == {"A": 1, "B": 3, "C": 0, "D": 0}
    assert imp.balance.residual < 1e-12
    if use_annotations:
        assert [s.visible for s in imp.network.species] == [s.visible for s in m.network.species]
        assert [s.learn for s in imp.network.species] == [s.learn for s in m.network.species]
    # conservation laws (B + C) give a non-trivial null direction: min-norm energies differ
    if not use_annotations:
        assert not np.allclose(imp.network.energies, m.network.energies)


@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "hidden_scaffold", "dimer", "chain"])
def test_round_trip_examples(name):
    m = load(name)
    imp = sbml.read_network(sbml.model_sbml(m))
    _compare_networks(m.network, imp.network, exact_energies=True)


def test_import_sbml_builds_the_same_model(tmp_path):
    m = load("isomerisation")
    path = tmp_path / "e2.xml"
    sbml.write_sbml(sbml.model_sbml(m), path)
    m2 = sbml.import_sbml(path, visible=["X"], environment=m.environment, change=m.change)
    s0, s1 = m.describe(), m2.describe()
    for k in ("species", "visible", "hidden", "learned", "reactions", "conservation_laws", "state_count"):
        assert s1[k] == s0[k], k
    th = np.array([0.3, -0.2])
    assert m2.divergence(th) == pytest.approx(m.divergence(th), rel=1e-12)


# hand-written SBML for the import paths -------------------------------------------------------
def sbml_text(species, reactions, *, compartments=(("c", 1.0),), params=(), extra="", level=(3, 2),
              species_attrs=None):
    """Minimal SBML text. ``species``: (id, amount, compartment); ``reactions``: (id, reversible,
    reactants, products, mathml) with reactants/products lists of (species, stoichiometry)."""
    ns = f"http://www.sbml.org/sbml/level{level[0]}/version{level[1]}/core"
    comp = "".join(f'<compartment id="{c}" size="{v}" constant="true"/>' for c, v in compartments)
    sp = ""
    for sid, amount, c in species:
        attrs = (species_attrs or {}).get(sid, 'boundaryCondition="false" constant="false"')
        sp += (f'<species id="{sid}" compartment="{c}" initialAmount="{amount}" hasOnlySubstanceUnits="true" '
               f'{attrs}/>')
    pa = "".join(f'<parameter id="{p}" value="{v}" constant="true"/>' for p, v in params)
    rx = ""
    for rid, rev, reac, prod, math, *local in reactions:
        loc = ""
        if local:
            loc = "<listOfLocalParameters>" + "".join(
                f'<localParameter id="{p}" value="{v}"/>' for p, v in local[0]) + "</listOfLocalParameters>"
        def refs(lst, tag):
            if not lst:
                return ""
            inner = "".join(f'<speciesReference species="{s}" stoichiometry="{n}" constant="true"/>' for s, n in lst)
            return f"<{tag}>{inner}</{tag}>"
        rx += (f'<reaction id="{rid}" reversible="{str(rev).lower()}">{refs(reac, "listOfReactants")}'
               f'{refs(prod, "listOfProducts")}<kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">'
               f'{math}</math>{loc}</kineticLaw></reaction>')
    return (f'<?xml version="1.0" encoding="UTF-8"?><sbml xmlns="{ns}" level="{level[0]}" version="{level[1]}">'
            f'<model id="hand"><listOfCompartments>{comp}</listOfCompartments>'
            f'<listOfSpecies>{sp}</listOfSpecies>' + (f"<listOfParameters>{pa}</listOfParameters>" if pa else "")
            + f"<listOfReactions>{rx}</listOfReactions>{extra}</model></sbml>")


def mml(formula: str) -> str:
    """MathML of a formula via libsbml (test helper only; the importer never parses text)."""
    ast = libsbml.parseL3Formula(formula)
    assert ast is not None, formula
    xml = libsbml.writeMathMLToString(ast)
    return xml.split("<math xmlns=\"http://www.w3.org/1998/Math/MathML\">", 1)[1].rsplit("</math>", 1)[0]


def test_import_irreversible_pairs_volume_and_local_parameters():
    # V = 2, concentration-valued species, a compartment factor, local parameters, and the
    # reverse of A + B -> C given as a separate irreversible reaction.
    V = 2.0
    text = sbml_text(
        [("A", 2 * V, "c"), ("B", 1 * V, "c"), ("C", 0, "c")],
        [("bind", False, [("A", 1), ("B", 1)], [("C", 1)], mml("c * k1 * A * B")),
         ("unbind", False, [("C", 1)], [("A", 1), ("B", 1)], mml("c * k2 * C")),
         ("make", True, [], [("A", 1)], mml("c * (kb - kd * A / 2)"), (("kb", 0.2), ("kd", 0.4)))],
        compartments=(("c", V),), params=(("k1", 3.0), ("k2", 0.5), ("kb", 99.0)),
        species_attrs={s: 'boundaryCondition="false" constant="false"' for s in "ABC"},
    ).replace('hasOnlySubstanceUnits="true"', 'hasOnlySubstanceUnits="false"')
    imp = sbml.read_network(text, visible=["A"])
    net = imp.network
    kf, kr = net.rate_constants()
    eqs = [net.equation(r) for r in range(len(net.reactions))]
    assert eqs == ["A + B <-> C", "0 <-> A"]
    np.testing.assert_allclose(kf, [3.0, 0.2], rtol=1e-12)
    np.testing.assert_allclose(kr, [0.5, 0.2], rtol=1e-12)
    assert imp.initial == {"A": 2, "B": 1, "C": 0}
    assert imp.reaction_ids == [["bind", "unbind"], ["make"]]
    assert [s.visible for s in net.species] == [True, False, False]


def test_import_amount_valued_rate_constants_scale_with_volume():
    # amounts in V = 4: rate c * A_amount * B_amount -> concentration constant c * V
    V = 4.0
    text = sbml_text([("A", 8, "c"), ("B", 4, "c"), ("C", 0, "c")],
                     [("r", True, [("A", 1), ("B", 1)], [("C", 1)], mml("k1 * A * B - k2 * C"))],
                     compartments=(("c", V),), params=(("k1", 0.25), ("k2", 3.0)))
    net = sbml.read_network(text).network
    kf, kr = net.rate_constants()
    np.testing.assert_allclose([kf[0], kr[0]], [0.25 * V, 3.0], rtol=1e-12)


def test_import_level2_document():
    m = nontrivial_model()
    doc = libsbml.readSBMLFromString(sbml.model_sbml(m))
    props = libsbml.ConversionProperties()
    props.addOption("setLevelAndVersion", True)
    props.addOption("strict", False)
    target = libsbml.SBMLNamespaces(2, 4)
    props.setTargetNamespaces(target)
    assert doc.convert(props) == libsbml.LIBSBML_OPERATION_SUCCESS
    text = libsbml.writeSBMLToString(doc)
    assert 'level="2"' in text
    imp = sbml.read_network(text)
    _compare_networks(m.network, imp.network, exact_energies=True)


REJECT = {
    "michaelis-menten": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("mm", True, [("S", 1)], [("P", 1)], mml("V * S / (K + S)"))],
                  params=(("V", 1), ("K", 1))), ["'mm'", "not mass action"]),
    "function": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("expo", True, [("S", 1)], [("P", 1)], mml("exp(k) * S - P"))], params=(("k", 1),)),
        ["'expo'", "exp"]),
    "modifier-in-law": (
        sbml_text([("S", 1, "c"), ("P", 0, "c"), ("E", 1, "c")],
                  [("cat", True, [("S", 1)], [("P", 1)], mml("k * E * S - k * P")),
                   ("e", True, [], [("E", 1)], mml("k - k * E"))], params=(("k", 1),)),
        ["'cat'", "not mass action"]),
    "non-integer": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("half", True, [("S", 1)], [("P", 0.5)], mml("k * S - k * P^0.5"))], params=(("k", 1),)),
        ["'half'", "non-integer stoichiometry"]),
    "negative": (   # issue 23: called "non-integer stoichiometry -1" before
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("neg", True, [("S", 1)], [("P", -1)], mml("k * S - k * P"))], params=(("k", 1),)),
        ["'neg'", "negative stoichiometry -1"]),
    "boundary": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("r", True, [("S", 1)], [("P", 1)], mml("k * S - k * P"))], params=(("k", 1),),
                  species_attrs={"S": 'boundaryCondition="true" constant="false"'}),
        ["'S'", "boundaryCondition"]),
    "compartments": (
        sbml_text([("S", 1, "c"), ("P", 0, "d")],
                  [("r", True, [("S", 1)], [("P", 1)], mml("k * S - k * P"))], params=(("k", 1),),
                  compartments=(("c", 1.0), ("d", 2.0))),
        ["S in c (size 1)", "P in d (size 2)", "different volumes", "put every reacting species in one"]),
    "event": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("r", True, [("S", 1)], [("P", 1)], mml("k * S - k * P"))], params=(("k", 1),),
                  extra='<listOfEvents><event id="boom" useValuesFromTriggerTime="true"><trigger initialValue="true" '
                        'persistent="true"><math xmlns="http://www.w3.org/1998/Math/MathML"><apply><gt/><csymbol '
                        'encoding="text" definitionURL="http://www.sbml.org/sbml/symbols/time"> t </csymbol><cn> 1 '
                        '</cn></apply></math></trigger></event></listOfEvents>'),
        ["events", "boom"]),
    "rule": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("r", True, [("S", 1)], [("P", 1)], mml("k * S - k * P"))],
                  params=(("k", 1),)).replace(
            '<parameter id="k" value="1" constant="true"/>', '<parameter id="k" value="1" constant="false"/>'
        ).replace("</listOfReactions>", '</listOfReactions><listOfRules><assignmentRule variable="k"><math '
                  'xmlns="http://www.w3.org/1998/Math/MathML"><cn> 2 </cn></math></assignmentRule></listOfRules>'),
        ["rules", "k"]),
    "initial-assignment": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("r", True, [("S", 1)], [("P", 1)], mml("k * S - k * P"))], params=(("k", 1),)).replace(
            "</listOfReactions>", '</listOfReactions><listOfInitialAssignments><initialAssignment symbol="k">'
            '<math xmlns="http://www.w3.org/1998/Math/MathML"><cn> 2 </cn></math></initialAssignment>'
            "</listOfInitialAssignments>"),
        ["initial assignments", "(k)"]),
    "time": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("clock", True, [("S", 1)], [("P", 1)], mml("k * S * time - k * P"))], params=(("k", 1),)),
        ["'clock'", "time"]),
    "no-reverse": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("oneway", False, [("S", 1)], [("P", 1)], mml("k * S"))], params=(("k", 1),)),
        ["'oneway'", "irreversible"]),
    "wegscheider": (
        sbml_text([("A", 1, "c"), ("B", 0, "c"), ("C", 0, "c")],
                  [("ab", True, [("A", 1)], [("B", 1)], mml("2 * A - B")),
                   ("bc", True, [("B", 1)], [("C", 1)], mml("B - C")),
                   ("ca", True, [("C", 1)], [("A", 1)], mml("C - A"))]),
        ["detailed balance", "A <-> B", "B <-> C", "C <-> A"]),
    "wrong-sign": (
        sbml_text([("S", 1, "c"), ("P", 0, "c")],
                  [("plus", True, [("S", 1)], [("P", 1)], mml("k * S + k * P"))], params=(("k", 1),)),
        ["'plus'", "subtracted"]),
}


@pytest.mark.parametrize("case", sorted(REJECT))
def test_import_rejects(case):
    text, needles = REJECT[case]
    with pytest.raises(ModelError) as err:
        sbml.read_network(text)
    msg = str(err.value)
    for n in needles:
        assert n in msg, (case, msg)


def test_import_one_reacting_compartment_of_several(tmp_path, capsys):
    """Issue 23: a multi-compartment model whose reacting species all live in one compartment is read, with
    that compartment's volume; a species elsewhere that takes part in no reaction is left out, with a warning."""
    from crnfb.analysis.cli.entry import main
    V = 2.0
    text = sbml_text([("S", 4, "cyt"), ("P", 0, "cyt"), ("Z", 7, "nuc")],
                     [("r", True, [("S", 1)], [("P", 1)], mml("k1 * S - k2 * P"))],
                     compartments=(("cyt", V), ("nuc", 5.0)), params=(("k1", 3.0), ("k2", 1.5)))
    with pytest.warns(sbml.SBMLExportWarning, match=r"Z take part in no reaction .* left out"):
        mnet = sbml.read_sbml(text)
    assert list(mnet.species) == ["S", "P"]
    assert mnet.species["S"] == pytest.approx(4 / V)           # amounts over the reacting compartment's volume
    assert [r.rate_constant for r in mnet.reactions] == pytest.approx([3.0, 1.5])
    # a modifier counts as taking part: Z in another volume is refused, named with its compartment
    bad = text.replace("</listOfProducts>", '</listOfProducts><listOfModifiers><modifierSpeciesReference '
                       'species="Z"/></listOfModifiers>')
    with pytest.raises(ModelError, match=r"S, P in cyt \(size 2\); Z in nuc \(size 5\)"):
        sbml.read_sbml(bad)
    # crnfb convert says so on stderr and writes the model
    src = tmp_path / "two.xml"
    src.write_text(sbml_text([("S", 4, "cyt"), ("P", 0, "cyt"), ("Z", 7, "nuc")],
                             [("r", True, [("S", 1)], [("P", 1)], mml("k1 * S - k2 * P"))],
                             compartments=(("cyt", 1.0), ("nuc", 5.0)), params=(("k1", 3.0), ("k2", 1.5))),
                   encoding="utf-8")
    assert main(["convert", str(src), "-o", str(tmp_path / "two.toml"), "--visible", "S"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "Z take part in no reaction" in err
    assert "Z" not in (tmp_path / "two.toml").read_text(encoding="utf-8").split("[initial]")[1].split("[")[0]


def test_import_missing_file_is_model_error(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        sbml.read_sbml(tmp_path / "absent.xml")


def test_import_needs_environment():
    with pytest.raises(ModelError, match="environment"):
        sbml.import_sbml(sbml.model_sbml(load("isomerisation")), visible=["X"])


# ---------------------------------------------------------------------------------------------
# learning network export
# ---------------------------------------------------------------------------------------------
LEARNING_CASES = {
    "E1": lambda: load("birth_death", clamping="dynamic"),
    "E2": lambda: load("isomerisation"),
    "E3": lambda: load("hidden_scaffold"),
    "dimer": lambda: load("dimer"),
    "chain": lambda: load("chain", clamping="dynamic"),
    "nontrivial": lambda: nontrivial_model(),
}


@pytest.mark.parametrize("case", ["E1", "E2", "E3"])
def test_learning_sbml_is_valid(case):
    m = LEARNING_CASES[case]()
    text = sbml.learning_sbml(m)
    assert consistency_errors(text) == []
    mod = libsbml.readSBMLFromString(text).getModel()
    ids = [s.getId() for s in mod.getListOfSpecies()]
    names = m.network.names
    n_free = sum(i.startswith("free_") for i in ids)
    n_clamped = sum(i.startswith("clamped_") for i in ids)
    assert n_free == m.space.size
    support = ((m.q > 0) | (m.q_change > 0))[m.space.visible_index]
    assert n_clamped == int(support.sum())
    assert [i for i in ids if i.startswith("Lambda_")] == [f"Lambda_{names[i]}" for i in m.learned]
    for i in ids:
        if i.startswith(("free_", "clamped_")):
            sbml.parse_state_label(names, i.split("_", 1)[1])
    assert mod.getParameter("gamma").getValue() == m.learning.gamma
    for k, i in enumerate(m.learned):
        assert mod.getParameter(f"eps_{names[i]}").getValue() == m.eps[k]
    assert all(not r.getReversible() for r in mod.getListOfReactions())


@pytest.mark.parametrize("case", sorted(LEARNING_CASES))
def test_learning_rhs_matches_ensemble_ode(case):
    """The exported network's mass-action ODE equals crnfb.feedback.dynamics.ensembles.LearningNetwork's."""
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
    m = LEARNING_CASES[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sbml.SBMLExportWarning)
        back = sbml.read_sbml(sbml.learning_sbml(m))
    ids = back.species_ids
    lnet = LearningNetwork(m, clamping="dynamic")
    rng = np.random.default_rng(3)
    for trial in range(3):
        x = lnet.initial_state()
        if trial:
            x = x * rng.uniform(0.5, 1.5, x.size)
            x[lnet.n_f + lnet.n_c:] = m.theta0 + rng.normal(0, 0.3, lnet.k)
        xs = to_sbml_vector(ids, m, lnet, x)
        got = from_sbml_rates(ids, m, lnet, back.rhs(xs), xs)
        want = lnet.rhs(x)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", ["E2", "E3", "dimer", "nontrivial"])
def test_lambda_rate_is_integral_action(case):
    """dLambda_i/dt of the exported network is eps_i lambda_i (m_c,i - m_f,i), at any state."""
    m = LEARNING_CASES[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sbml.SBMLExportWarning)  # nontrivial: no hidden-only reactions
        back = sbml.read_sbml(sbml.learning_sbml(m))
    ids = back.species_ids
    names = m.network.names
    rng = np.random.default_rng(11)
    for trial in range(3):
        x = back.initial if trial == 0 else back.initial * rng.uniform(0.2, 2.0, back.initial.size)
        dx = back.rhs(x)
        for k, i in enumerate(m.learned):
            m_f = sum(x[j] * sbml.parse_state_label(names, s[5:])[i] for j, s in enumerate(ids)
                      if s.startswith("free_"))
            m_c = sum(x[j] * sbml.parse_state_label(names, s[8:])[i] for j, s in enumerate(ids)
                      if s.startswith("clamped_"))
            lam = x[ids.index(f"Lambda_{names[i]}")]
            want = m.eps[k] * lam * (m_c - m_f)
            assert dx[ids.index(f"Lambda_{names[i]}")] == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("case", ["E1", "E2", "E3", "dimer"])
def test_learning_initial_values(case):
    m = LEARNING_CASES[case]()
    back = sbml.read_sbml(sbml.learning_sbml(m))
    ids, x = back.species_ids, back.initial
    names = m.network.names
    pf = np.array([x[ids.index(f"free_{label(names, s)}")] for s in m.space.states])
    pi = m.space.stationary(m.full_theta(m.theta0))
    np.testing.assert_allclose(pf, np.where(pi >= sbml.AMOUNT_FLOOR, pi, 0.0), rtol=1e-13, atol=0)
    for i in m.learned:
        assert x[ids.index(f"Lambda_{names[i]}")] == pytest.approx(np.exp(m.network.theta0[i]), rel=1e-15)
    # the start is stationary for frozen theta: copy-state derivatives vanish
    dx = back.rhs(x)
    copy = [k for k, s in enumerate(ids) if not s.startswith("Lambda_")]
    assert np.abs(dx[copy]).max() < 1e-12
    # clamped start against a dense solve of (A_hid - gamma I) p + gamma Q u = 0
    states, pc = sbml.clamped_start(m)
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
    ln = LearningNetwork(m)
    A = ln.hidden_generator(m.theta0).toarray()
    dense = np.linalg.solve(m.learning.gamma * np.eye(A.shape[0]) - A, m.learning.gamma * ln.reset_target())
    np.testing.assert_array_equal(states, ln.clamped_states)
    np.testing.assert_allclose(pc, dense, atol=1e-13)
    if case == "E2":  # y is fixed by x: the clamped start is Q itself
        np.testing.assert_allclose(pc, m.q[m.space.visible_index[states]], atol=1e-14)


def test_equilibrium_clamping_is_refused_or_a_stated_speedup():
    m = load("birth_death")
    assert m.learning.clamping == "equilibrium"
    with pytest.raises(ModelError, match="speedup|speed-up"):
        sbml.learning_sbml(m)
    text = sbml.learning_sbml(m, speedup=100.0)
    assert "APPROXIMATION" in libsbml.readSBMLFromString(text).getModel().getNotesString()
    # no hidden species: the clamped start is Q itself (Qt = Q), whatever the speed-up
    back = sbml.read_sbml(text)
    pc = np.array([back.species[f"clamped_X{x}"] for x in range(m.space.size)])
    np.testing.assert_allclose(pc, m.q, atol=1e-15)
    assert back.parameters["clamped_speedup"] == 100.0
    with pytest.raises(ModelError, match="only to clamping"):
        sbml.learning_sbml(load("isomerisation"), speedup=10.0)


def test_speedup_scales_only_the_clamped_hidden_jumps():
    """The exported ODE with a speed-up is LearningNetwork(clamped_speedup=S).rhs, and differs from S = 1."""
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
    m = load("chain")
    back = sbml.read_sbml(sbml.learning_sbml(m, speedup=50.0))
    fast, slow = (LearningNetwork(m, "dynamic", clamped_speedup=s) for s in (50.0, 1.0))
    x = fast.initial_state()
    x[fast.n_f + fast.n_c:] += 0.3
    xs = to_sbml_vector(back.species_ids, m, fast, x)
    got = from_sbml_rates(back.species_ids, m, fast, back.rhs(xs), xs)
    np.testing.assert_allclose(got, fast.rhs(x), rtol=1e-10, atol=1e-13)
    assert np.abs(fast.rhs(x) - slow.rhs(x)).max() > 1e-3


def test_copies_conserve_the_copy_totals():
    """Copy counts: every reaction moves one copy, so M_f and M_c are invariants of each reaction."""
    m = load("hidden_scaffold").replace(ensembles=Ensembles(40, 30, 500.0))
    mnet = sbml.learning_network(m, copies=True)
    S = mnet.stoichiometry.toarray()
    ids = mnet.species_ids
    free = np.array([i.startswith("free_") for i in ids])
    clamped = np.array([i.startswith("clamped_") for i in ids])
    assert np.abs(S[free].sum(axis=0)).max() == 0 and np.abs(S[clamped].sum(axis=0)).max() == 0
    x0 = mnet.initial
    assert x0[free].sum() == 40 and x0[clamped].sum() == 30 and np.all(x0 == np.round(x0))
    n_c = int(clamped.sum())
    resets = [r for r in mnet.reactions if r.id.startswith("Reset_")]
    assert len(resets) <= n_c * (n_c - 1)
    # as an ODE in fractions it is the same loop: rhs / M equals LearningNetwork.rhs
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
    ln = LearningNetwork(m)
    x = ln.initial_state()
    x[ln.n_f + ln.n_c:] += 0.2
    frac = to_sbml_vector(ids, m, ln, x)
    scale = np.where(free, 40.0, np.where(clamped, 30.0, 500.0))
    got = from_sbml_rates(ids, m, ln, mnet.rhs(frac * scale) / scale, frac)
    np.testing.assert_allclose(got, ln.rhs(x), rtol=1e-9, atol=1e-12)


def test_pruning_reports_the_dropped_mass():
    m = load("birth_death", clamping="dynamic")
    full = sbml.learning_network(m)
    pruned = sbml.learning_network(m, prune=1e-12)
    pi = m.space.stationary(m.full_theta(m.theta0))
    assert pruned.info["dropped_mass"]["free"] == pytest.approx(pi[pi < 1e-12].sum(), rel=1e-12)
    assert 0 < pruned.info["dropped_mass"]["free"] < 1e-10
    assert len(pruned.species) < len(full.species)
    assert min(v for k, v in pruned.species.items() if k.startswith("free_")) >= 1e-12
    assert "PRUNED" in " ".join(pruned.notes)


def test_unlearned_activities_are_parameters():
    m = load("chain", clamping="dynamic")  # only A learned; B and X catalyse as constants
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sbml.SBMLExportWarning)
        mod = libsbml.readSBMLFromString(sbml.learning_sbml(m)).getModel()
    assert mod.getParameter("lambda_B") is not None and mod.getParameter("lambda_X") is not None
    assert mod.getSpecies("Lambda_B") is None
    r = mod.getReaction("F_r1f_A10_B0_X0")  # A -> B from (10, 0, 0): catalyst lambda_B, rate 10 * kappa
    assert {s.getSpecies() for s in r.getListOfReactants()} == {"free_A10_B0_X0"}
    formula = libsbml.formulaToL3String(r.getKineticLaw().getMath()).replace(" dimensionless", "")
    assert formula == "10 * kappa_r1 * lambda_B * free_A10_B0_X0"
    r = mod.getReaction("F_r1b_A9_B1_X0")  # B -> A: catalyst Lambda_A (learned) on both sides
    assert {s.getSpecies(): s.getStoichiometry() for s in r.getListOfReactants()} == \
        {"free_A9_B1_X0": 1, "Lambda_A": 1}
    assert {s.getSpecies(): s.getStoichiometry() for s in r.getListOfProducts()} == \
        {"free_A10_B0_X0": 1, "Lambda_A": 1}


def test_id_collisions_are_reported():
    net = Network.from_equations({"cell": dict(visible=True)}, ["0 <-> cell"])
    with pytest.raises(ModelError, match="'cell'"):
        sbml.model_sbml(net)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def test_cli_export(tmp_path, capsys):
    from crnfb.analysis.cli.entry import main
    out = tmp_path / "e2.xml"
    assert main(["export", str(EX / "isomerisation.toml"), "--sbml", str(out)]) == 0
    assert consistency_errors(out.read_text()) == []
    assert main(["export", str(EX / "isomerisation.toml"), "--sbml", str(out), "--learning", "--force"]) == 0
    text = out.read_text()
    assert "free_X3_Y17" in text and "Lambda_X" in text and consistency_errors(text) == []
    capsys.readouterr()
    assert main(["export", str(EX / "birth_death.toml"), "--sbml", str(tmp_path / "e1.xml"), "--learning"]) == 2
    assert "--speedup" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2.xml"]  # nothing written, no temp files left


def test_cli_export_bad_input_writes_nothing(tmp_path, capsys):
    from crnfb.analysis.cli.entry import main
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[species.X]\nvisible = true\n[[reactions]]\neq = "0 <-> Y"\n')
    out = tmp_path / "out.xml"
    out.write_text("previous")
    assert main(["export", str(bad), "--sbml", str(out), "--force"]) == 2   # bad input: even --force writes nothing
    assert "unknown species" in capsys.readouterr().err
    assert out.read_text() == "previous"
    assert main(["export", str(EX / "isomerisation.toml"), "--sbml", str(tmp_path / "no" / "dir.xml")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "out.xml"]


# ---------------------------------------------------------------------------------------------
# peers: libRoadRunner
# ---------------------------------------------------------------------------------------------
def _roadrunner(text):
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner is not installed (pip install libroadrunner)")
    opt = roadrunner.LoadSBMLOptions()
    opt.setLLVMBackend(roadrunner.LoadSBMLOptions.LLJIT)
    rr = roadrunner.RoadRunner(text, opt)
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-13
    return rr


PEER_CASES = {"E1": lambda: load("birth_death", clamping="dynamic"), "E2": lambda: load("isomerisation")}


@pytest.mark.peers
@pytest.mark.parametrize("case", sorted(PEER_CASES))
def test_roadrunner_time_course(case):
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
    m = PEER_CASES[case]()
    rr = _roadrunner(sbml.learning_sbml(m))
    t_end, n = 10.0, 11
    res = rr.simulate(0, t_end, n, ["time", "Lambda_X"])
    lnet = LearningNetwork(m)
    sol = solve_ivp(lambda t, x: lnet.rhs(x), (0, t_end), lnet.initial_state(), method="Radau",
                    jac=lambda t, x: lnet.jacobian(x).toarray(), t_eval=np.linspace(0, t_end, n),
                    rtol=1e-11, atol=1e-13)
    assert sol.success
    ours = np.exp(sol.y[lnet.n_f + lnet.n_c])  # theta_X -> lambda_X
    np.testing.assert_allclose(res[:, 0], sol.t)
    np.testing.assert_allclose(res[:, 1], ours, rtol=1e-6)
    assert abs(ours[-1] - ours[0]) > 0.1  # the horizon shows learning, not a constant


# roadrunner's Jacobian costs grow steeply with size (53 species: ~4 s CPU, 83 species: ~37 s),
# so the eigenvalue check uses E1 truncated at 22 (47 species; no [environment.change]) and E2
# (44 species).
EIGEN_CASES = {"E1": lambda: load("birth_death", clamping="dynamic").replace(n_max=22, change=None),
               "E2": lambda: load("isomerisation")}


@pytest.mark.peers
@pytest.mark.parametrize("case", sorted(EIGEN_CASES))
def test_roadrunner_jacobian_eigenvalues(case):
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    from crnfb.feedback.dynamics.ensembles import LearningNetwork
    m = EIGEN_CASES[case]()
    text = sbml.learning_sbml(m)
    rr = _roadrunner(text)
    lnet = LearningNetwork(m)
    fp = loop_fixed_point(m, lnet)
    assert fp.residual < 1e-10
    ids = list(rr.model.getFloatingSpeciesIds())
    xs = to_sbml_vector(ids, m, lnet, fp.x)
    rr.model.setFloatingSpeciesAmounts(xs)
    assert np.abs(rr.getRatesOfChange()).max() < 1e-10  # roadrunner agrees it is a steady state
    ev_rr = np.asarray(rr.getFullEigenValues(), dtype=complex)
    # ours: LearningNetwork's analytic Jacobian (theta coordinates; similar at a steady state)
    ev_ours = np.linalg.eigvals(lnet.jacobian(fp.x).toarray())
    # and the exported network's own exact Jacobian in Lambda coordinates
    back = sbml.read_sbml(text)
    perm = [back.species_ids.index(i) for i in ids]
    ev_back = np.linalg.eigvals(back.jacobian(xs).toarray()[np.ix_(perm, perm)])
    for other in (ev_ours, ev_back):
        assert other.size == ev_rr.size
        cost = np.abs(ev_rr[:, None] - other[None, :])
        r, c = linear_sum_assignment(cost)
        assert cost[r, c].max() < 1e-6 * max(1.0, np.abs(ev_rr).max()), cost[r, c].max()
    # the slowest non-zero mode is the learning mode; it is stable
    nz = ev_rr[np.abs(ev_rr) > 1e-8]
    assert nz.real.max() < 0


# ---------------------------------------------------------------------------------------------
# peers: GillesPy2 finite ensembles (docs/theory.md §6), theta frozen
# ---------------------------------------------------------------------------------------------
def finite_ensemble_gillespy2(m: Model, M_f: int, M_c: int, omega: float, rng):
    """Copy-state-count network: F_<state>, C_<state> (copies per state), L_<species> (molecules).

    Theta frozen (eps = 0): the learning reactions are omitted, so L is constant; copy jumps
    have propensity coef * n_copies * prod (L_j / Omega)^{expo_j}; clamped resets
    C_s -> C_s' at gamma * C_s * Q(v') u(h'|v').
    """
    gillespy2 = pytest.importorskip("gillespy2", reason="gillespy2 is not installed (pip install gillespy2)")
    sp, net = m.space, m.network
    names = net.names
    lam = np.exp(m.full_theta(m.theta0))
    g = gillespy2.Model(name="finite_ensemble")
    g.add_parameter([gillespy2.Parameter(name="Omega", expression=repr(float(omega))),
                     gillespy2.Parameter(name="gamma", expression=repr(float(m.learning.gamma)))])
    pi = sp.stationary(m.full_theta(m.theta0))
    vi = sp.visible_index
    per_v = np.bincount(vi)
    target = m.q[vi] / per_v[vi]
    f0, c0 = rng.multinomial(M_f, pi), rng.multinomial(M_c, target / target.sum())
    labs = [label(names, s) for s in sp.states]
    spec = [gillespy2.Species(name=f"F_{lab}", initial_value=int(n), mode="discrete") for lab, n in zip(labs, f0)]
    spec += [gillespy2.Species(name=f"C_{lab}", initial_value=int(n), mode="discrete") for lab, n in zip(labs, c0)]
    spec += [gillespy2.Species(name=f"L_{names[i]}", initial_value=int(round(omega * lam[i])), mode="discrete")
             for i in m.learned]
    g.add_species(spec)
    learned = set(m.learned.tolist())
    rx = []
    for e in sp.edges:
        cat = []
        for j in np.nonzero(e.exponent)[0]:
            term = f"(L_{names[j]}/Omega)" if j in learned else repr(float(lam[j]))
            cat += [term] * int(e.exponent[j])
        for s, d, c in zip(e.src, e.dst, e.coef):
            for ens, hidden_ok in (("F", True), ("C", bool(net.hidden_only[e.reaction]))):
                if not hidden_ok:
                    continue
                prop = "*".join([repr(float(c)), f"{ens}_{labs[s]}", *cat])
                rx.append(gillespy2.Reaction(name=f"{ens}_r{e.reaction}{'f' if e.forward else 'b'}_{labs[s]}",
                                             reactants={f"{ens}_{labs[s]}": 1}, products={f"{ens}_{labs[d]}": 1},
                                             propensity_function=prop))
    for a in range(sp.size):
        for b in range(sp.size):
            if a != b and target[b] > 0:
                rx.append(gillespy2.Reaction(name=f"reset_{labs[a]}_to_{labs[b]}", reactants={f"C_{labs[a]}": 1},
                                             products={f"C_{labs[b]}": 1},
                                             propensity_function=f"gamma*{float(target[b])!r}*C_{labs[a]}"))
    g.add_reaction(rx)
    return g, labs, pi, target


@pytest.mark.peers
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gillespy2's own use of ast.Num
def test_gillespy2_finite_ensemble_stationary_occupancy():
    gillespy2 = pytest.importorskip("gillespy2", reason="gillespy2 is not installed (pip install gillespy2)")
    m = load("isomerisation")
    M_f = M_c = 50
    g, labs, pi, target = finite_ensemble_gillespy2(m, M_f, M_c, omega=1000.0, rng=np.random.default_rng(5))
    t_end, burn, batch = 150.0, 10.0, 10.0
    g.timespan(np.linspace(0, t_end, int(t_end * 4) + 1))
    bindir = os.path.dirname(sys.executable)  # the C++ solver builds with SCons from this interpreter
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    try:
        solver = gillespy2.SSACSolver(model=g)
        n_traj = 8
    except Exception:  # no compiler: the pure-Python direct method, fewer events
        solver, n_traj = gillespy2.NumPySSASolver(model=g), 2
    res = g.run(solver=solver, number_of_trajectories=n_traj, seed=11)
    t = np.asarray(res[0]["time"])
    F = np.array([[np.asarray(r[f"F_{lab}"]) for lab in labs] for r in res])  # traj, state, time
    C = np.array([[np.asarray(r[f"C_{lab}"]) for lab in labs] for r in res])
    assert (F.sum(axis=1) == M_f).all() and (C.sum(axis=1) == M_c).all()
    # batch means (10 time units >> the copies' relaxation time 1/2) give nearly independent samples
    edges = np.arange(burn, t_end + 1e-9, batch)
    batches = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (t >= lo) & (t < hi)
        batches.append(F[:, :, sel].mean(axis=2))
    B = np.concatenate(batches)  # (n_batches * n_traj, states)
    mean, se = B.mean(axis=0), B.std(axis=0, ddof=1) / np.sqrt(B.shape[0])
    expect = M_f * pi
    big = expect > 0.5
    z = (mean[big] - expect[big]) / se[big]
    assert np.abs(z).max() < 5.0, z
    x_mean = (m.space.states[:, 0] @ mean) / M_f
    x_se = np.std(B @ m.space.states[:, 0] / M_f, ddof=1) / np.sqrt(B.shape[0])
    assert abs(x_mean - m.space.states[:, 0] @ pi) < 5 * x_se
    # clamped copies: resets keep their occupancy at M_c Q(v) u(h|v)
    cm = C[:, :, t >= burn].mean(axis=(0, 2))
    assert np.abs(cm - M_c * target).max() < 1.5
