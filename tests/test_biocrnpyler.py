"""BioCRNpyler in (docs/sbml.md, "BioCRNpyler"): networks built in BioCRNpyler become our model, from the
Python object (``crnfb.from_biocrnpyler``) and from the SBML file BioCRNpyler writes (``crnfb convert``),
with the same energies, rate constants and initial state, the rate constants those BioCRNpyler was given
under the stated unit rule.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

import crnfb
from crnfb.analysis.cli.entry import main
from crnfb.feedback.io import sbml
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.network import Network

bcp = pytest.importorskip("biocrnpyler", reason="biocrnpyler is not installed (pip install 'crn-feedback[peers]')")
pytestmark = pytest.mark.peers


def isomerisation():
    X, Y = bcp.Species("X"), bcp.Species("Y")
    crn = bcp.ChemicalReactionNetwork(species=[X, Y], reactions=[
        bcp.Reaction.from_massaction([X], [Y], k_forward=2.0, k_reverse=1.0)], initial_concentration_dict={X: 20})
    return crn, {"X <-> Y": (2.0, 1.0)}


def scaffold():
    """X <-> Y visible X; a hidden scaffold S binds Y: S + Y <-> C (the issue's network)."""
    X, Y, S, C = (bcp.Species(n) for n in "XYSC")
    crn = bcp.ChemicalReactionNetwork(species=[X, Y, S, C], reactions=[
        bcp.Reaction.from_massaction([X], [Y], k_forward=2.0, k_reverse=1.0),
        bcp.Reaction.from_massaction([S, Y], [C], k_forward=1.5, k_reverse=0.5)],
        initial_concentration_dict={X: 20, S: 1})
    return crn, {"X <-> Y": (2.0, 1.0), "S + Y <-> C": (1.5, 0.5)}


def dimer():
    """2 A <-> D (order 2 on one side) with a protein material type (BioCRNpyler's id protein_A)."""
    A, D = bcp.Species("A", material_type="protein"), bcp.Species("D")
    crn = bcp.ChemicalReactionNetwork(species=[A, D], reactions=[
        bcp.Reaction.from_massaction([A, A], [D], k_forward=0.3, k_reverse=2.0)],
        initial_concentration_dict={A: 6})
    return crn, {"2 protein_A <-> D": (0.3, 2.0)}


NETWORKS = {"isomerisation": (isomerisation, "X"), "scaffold": (scaffold, "X"), "dimer": (dimer, "protein_A")}


def _given(net: Network, given: dict, order_factor) -> None:
    """Each reaction's (kf, kr) is the given pair times the unit rule's factor of its order; the energies
    satisfy ln(kf/kr) = -G . nu (detailed balance) with those converted constants."""
    kf, kr = net.rate_constants()
    G = np.array([s.energy for s in net.species])
    seen = set()
    for r in range(len(net.reactions)):
        eq = net.equation(r)
        key = eq if eq in given else " <-> ".join(" + ".join(sorted(side.split(" + "))) for side in eq.split(" <-> "))
        assert key in given, (eq, list(given))
        seen.add(key)
        f, b = given[key]
        assert kf[r] == pytest.approx(f * order_factor(int(net.Y[r].sum())), rel=1e-12)
        assert kr[r] == pytest.approx(b * order_factor(int(net.Yp[r].sum())), rel=1e-12)
        ratio = f * order_factor(int(net.Y[r].sum())) / (b * order_factor(int(net.Yp[r].sum())))
        assert -(net.Yp[r] - net.Y[r]) @ G == pytest.approx(math.log(ratio), abs=1e-12)
    assert seen == set(given)


def _same(a, b) -> None:
    """Two imported networks are the same model network: species, roles, energies, reactions, kappas, initial."""
    na, nb = a.network, b.network
    assert na.names == nb.names
    assert [(s.visible, s.learn) for s in na.species] == [(s.visible, s.learn) for s in nb.species]
    assert np.allclose([s.energy for s in na.species], [s.energy for s in nb.species], rtol=0, atol=1e-12)
    assert [na.equation(r) for r in range(len(na.reactions))] == [nb.equation(r) for r in range(len(nb.reactions))]
    assert np.allclose(na.kappa, nb.kappa, rtol=1e-12, atol=0)
    assert a.initial == b.initial
    assert a.units.line() == b.units.line()


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("volume, copies", [(None, None), (1.0, None), (1.0, 4.0)])
def test_object_and_sbml_file_give_the_same_network(name, volume, copies, tmp_path):
    build, visible = NETWORKS[name]
    crn, given = build()
    path = tmp_path / f"{name}.xml"
    crn.write_sbml_file(str(path))
    a = sbml.biocrnpyler_network(crn, [visible], volume=volume, copies_per_unit=copies)
    b = sbml.read_converted(path, [visible], None, volume=volume, copies_per_unit=copies)
    _same(a, b)
    V = 1e-6 if volume is None else volume
    u = 1.0 / V if copies is None else copies
    _given(a.network, given, lambda m: u ** (1 - m) * V ** (-m))


def test_scaffold_counts_and_hidden_species(tmp_path):
    crn, given = scaffold()
    m = crnfb.from_biocrnpyler(crn, ["X"], crnfb.Poisson(5.0), n_max=40)
    assert m.network.names == ["X", "Y", "S", "C"]
    assert [n for n, s in zip(m.network.names, m.network.species) if s.visible] == ["X"]
    assert dict(zip(m.network.names, m.initial.tolist())) == {"X": 20, "Y": 0, "S": 1, "C": 0}
    info = m.describe()
    assert info["hidden"] == ["Y", "S", "C"]
    _given(m.network, given, lambda _m: 1e6)                 # default: every rate constant / V
    # the same model from the file through crnfb convert, and through crnfb check's in-memory conversion
    path, out = tmp_path / "scaffold.xml", tmp_path / "scaffold.toml"
    crn.write_sbml_file(str(path))
    assert main(["convert", str(path), "-o", str(out), "--visible", "X"]) == 0
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    net = Network.from_equations(data["species"], [(r["eq"], r["kappa"]) for r in data["reactions"]])
    assert np.allclose(net.kappa, m.network.kappa, rtol=1e-12)
    assert np.allclose([s.energy for s in net.species], [s.energy for s in m.network.species], atol=1e-12)
    assert data["initial"] == {"X": 20, "S": 1}


def test_from_biocrnpyler_is_the_public_function():
    """``crnfb.from_biocrnpyler`` is the function of the SBML package (``Model`` itself does not import its
    converters: no import cycle)."""
    from crnfb.feedback.io.sbml.biocrnpyler import from_biocrnpyler
    crn, _ = isomerisation()
    assert crnfb.from_biocrnpyler is from_biocrnpyler
    assert not hasattr(crnfb.Model, "from_biocrnpyler")
    a = crnfb.from_biocrnpyler(crn, ["X"], crnfb.Poisson(5.0), n_max=40, volume=1.0)
    assert a.source == "BioCRNpyler ChemicalReactionNetwork"
    assert a.network.rate_constants()[0][0] == pytest.approx(2.0, rel=1e-12)


def test_irreversible_pairs_are_one_reversible_reaction():
    X, Y = bcp.Species("X"), bcp.Species("Y")
    crn = bcp.ChemicalReactionNetwork(species=[X, Y], reactions=[
        bcp.Reaction.from_massaction([X], [Y], k_forward=2.0), bcp.Reaction.from_massaction([Y], [X], k_forward=1.0)])
    imp = sbml.biocrnpyler_network(crn, ["X"], volume=1.0)
    assert len(imp.network.reactions) == 1
    kf, kr = imp.network.rate_constants()
    assert (kf[0], kr[0]) == pytest.approx((2.0, 1.0), rel=1e-12)


def test_refused_reactions_are_named():
    X, Y = bcp.Species("X"), bcp.Species("Y")
    irreversible = bcp.ChemicalReactionNetwork(species=[X, Y], reactions=[
        bcp.Reaction.from_massaction([X], [Y], k_forward=2.0)])
    with pytest.raises(ModelError, match=r"reaction 'X --> Y' is irreversible and no other reaction is its reverse"):
        sbml.biocrnpyler_network(irreversible, ["X"])
    hill = bcp.ChemicalReactionNetwork(species=[X, Y], reactions=[
        bcp.Reaction([X], [Y], propensity_type=bcp.HillPositive(k=1.0, s1=X, K=2.0, n=2))])
    with pytest.raises(ModelError, match=r"reaction 'X --> Y' has a HillPositive propensity; only mass-action"):
        sbml.biocrnpyler_network(hill, ["X"])
    with pytest.raises(ModelError, match=r"visible species \['Z'\] are not in the BioCRNpyler"):
        sbml.biocrnpyler_network(isomerisation()[0], ["Z"])
    with pytest.raises(ModelError, match="from_biocrnpyler needs environment"):
        crnfb.from_biocrnpyler(isomerisation()[0], ["X"])
    with pytest.raises(ModelError, match="expected a biocrnpyler ChemicalReactionNetwork"):
        sbml.biocrnpyler_network("X <-> Y", ["X"])


def test_refused_in_the_file_too(tmp_path, capsys):
    """The file BioCRNpyler writes for a non-mass-action reaction: crnfb convert exits 2 naming the reaction."""
    X, Y = bcp.Species("X"), bcp.Species("Y")
    crn = bcp.ChemicalReactionNetwork(species=[X, Y], reactions=[
        bcp.Reaction([X], [Y], propensity_type=bcp.HillPositive(k=1.0, s1=X, K=2.0, n=2)),
        bcp.Reaction.from_massaction([Y], [X], k_forward=1.0)])
    path, out = tmp_path / "hill.xml", tmp_path / "hill.toml"
    crn.write_sbml_file(str(path))
    assert main(["convert", str(path), "-o", str(out), "--visible", "X"]) == 2
    err = capsys.readouterr().err
    assert "reaction 'r0'" in err and "not mass action" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("use_annotations", [True, False])
def test_our_export_of_a_biocrnpyler_model_reads_back_the_same(use_annotations):
    """Round trip: the model network we export (SBML, V = 1, amounts) read back by libsbml through the importer
    keeps the energies, kappas and initial counts (with the annotations, and from the rate constants alone)."""
    crn, _ = scaffold()
    m = crnfb.from_biocrnpyler(crn, ["X"], crnfb.Poisson(5.0), n_max=40)
    back = sbml.read_network(sbml.model_sbml(m), use_annotations=use_annotations, visible=["X"])
    assert back.network.names == m.network.names
    assert np.allclose([s.energy for s in back.network.species], [s.energy for s in m.network.species], atol=1e-9)
    assert np.allclose(back.network.kappa, m.network.kappa, rtol=1e-9)
    assert back.initial == dict(zip(m.network.names, m.initial.tolist()))
    assert "x1 on every rate constant" in back.units.line()      # our exports need no conversion


def test_check_json_states_the_units(tmp_path, capsys):
    import json
    crn, _ = scaffold()
    path, env = tmp_path / "scaffold.xml", tmp_path / "env.toml"
    crn.write_sbml_file(str(path))
    env.write_text('[environment]\nfamily = "poisson"\nmean = 5.0\n\n[truncation]\nn_max = 40\n', encoding="utf-8")
    assert main(["check", str(path), "--visible", "X", "--environment-file", str(env), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["units"].startswith("N = c*V*u = n*u copies, V = 1e-06 (compartment 'default'), u = 1e+06")
