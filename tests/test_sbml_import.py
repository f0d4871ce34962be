"""Import of third-party models: SBML Test Suite cases, the importer's gaps, ``crnfb convert`` (docs/sbml.md).

The accepted cases are checked against the suite's own reference time
courses (``*-results.csv``, computed by the suite's authors with other tools):
integrating the imported mass-action ODE must reproduce them within the
suite's stated tolerances. That checks species, stoichiometry and rate
constants together, against numbers we did not produce.
"""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import libsbml
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from crnfb.analysis.cli.entry import main
from crnfb.feedback.io import sbml
from crnfb.feedback.errors import ModelError
from crnfb.feedback.io.modelfile import load_model
from crnfb.feedback.model.network import Network

SUITE = Path(__file__).resolve().parent / "data" / "sbml-test-suite"
ACCEPTED = ["00006", "00021", "00034", "00061", "00465", "01030"]
REFUSED = {"00001": "irreversible", "00007": "boundaryCondition", "00026": "events", "00028": "not mass action",
           "00079": "rules", "00851": "time"}


def case_file(case: str) -> Path:
    return SUITE / case / f"{case}-sbml-l3v2.xml"


def settings(case: str) -> dict:
    out = {}
    for line in (SUITE / case / f"{case}-settings.txt").read_text(encoding="utf-8").splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


@pytest.mark.parametrize("case", ACCEPTED)
def test_suite_case_imports_faithfully(case):
    """The imported ODE reproduces the suite's reference time course within its tolerances."""
    mnet = sbml.read_sbml(str(case_file(case)))
    sbml.read_network(str(case_file(case)))             # and it is a detailed-balanced network
    doc = libsbml.readSBMLFromFile(str(case_file(case)))
    V = doc.getModel().getCompartment(0).getSize()
    st = settings(case)
    amount = {s.strip() for s in st["amount"].split(",") if s.strip()}
    rows = list(csv.DictReader(open(SUITE / case / f"{case}-results.csv")))
    t = np.array([float(r["time"]) for r in rows])
    sol = solve_ivp(lambda _, x: mnet.rhs(x), (0, t[-1]), mnet.initial, t_eval=t, method="LSODA",
                    rtol=1e-10, atol=1e-14)
    ids = mnet.species_ids
    atol, rtol = float(st["absolute"]), float(st["relative"])
    for sp in st["variables"].split(","):
        sp = sp.strip()
        got = sol.y[ids.index(sp)] * (V if sp in amount else 1.0)
        want = np.array([float(r[sp]) for r in rows])
        assert np.all(np.abs(got - want) <= atol + rtol * np.abs(want)), (case, sp)


@pytest.mark.parametrize("case, words", sorted(REFUSED.items()))
def test_suite_case_is_refused_with_a_named_element(case, words):
    with pytest.raises(ModelError, match=words) as err:
        sbml.read_network(str(case_file(case)))
    assert str(case_file(case)) in str(err.value)


@pytest.mark.parametrize("case", ["00026", "00028"])
def test_convert_refuses_suite_cases_with_exit_2(case, tmp_path, capsys):
    out = tmp_path / "m.toml"
    assert main(["convert", str(case_file(case)), "-o", str(out), "--visible", "S1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("crnfb convert: error:") and "Traceback" not in err
    assert not out.exists()


def _network_of(path_toml: Path) -> Network:
    """The network part of a converted file, built the way load_model builds it (no environment needed)."""
    data = tomllib.loads(path_toml.read_text(encoding="utf-8"))
    return Network.from_equations(data["species"], [(r["eq"], r["kappa"]) for r in data["reactions"]])


def _rate_constants_match(path_toml: Path, mnet) -> None:
    net = _network_of(path_toml)
    kf, kr = net.rate_constants()
    want = {(tuple(sorted(r.reactants.items())), tuple(sorted(r.products.items()))): r.rate_constant
            for r in mnet.reactions}
    for k in range(len(kf)):
        y = tuple(sorted((n, int(c)) for n, c in zip(net.names, net.Y[k]) if c))
        yp = tuple(sorted((n, int(c)) for n, c in zip(net.names, net.Yp[k]) if c))
        assert kf[k] == pytest.approx(want[(y, yp)], rel=1e-12)
        assert kr[k] == pytest.approx(want[(yp, y)], rel=1e-12)


def test_convert_sbml_round_trip(tmp_path, capsys):
    """Converted energies and kappas give back the SBML's rate constants exactly (detailed balance holds)."""
    case = "00021"
    out = tmp_path / "m.toml"
    assert main(["convert", str(case_file(case)), "-o", str(out), "--visible", "S1"]) == 0
    assert "fill in [environment]" in capsys.readouterr().out
    with pytest.raises(ModelError, match="environment"):
        load_model(out)                                   # the template is not yet a model
    _rate_constants_match(out, sbml.read_sbml(str(case_file(case))))


def _via_antimony(sbml_text: str) -> str:
    """Antimony text of an SBML document, written by the antimony library (as a user's converter would)."""
    antimony = pytest.importorskip("antimony", reason="antimony is not installed (pip install 'crn-feedback[convert]')")
    antimony.clearPreviousLoads()
    assert antimony.loadSBMLString(sbml_text) >= 0, antimony.getLastError()
    return antimony.getAntimonyString(None)


def test_learn_flags_survive_an_antimony_round_trip(tmp_path, capsys):
    """Issue 23: export -> Antimony -> crnfb convert kept no learn flags (Antimony drops the crnfb annotations);
    the roles line of the model notes survives, and convert reads it and says so."""
    model = load_model(Path(__file__).resolve().parents[1] / "examples" / "chain.toml")
    text = sbml.model_sbml(model)
    ant = _via_antimony(text)
    assert "crnfb" not in ant.split("notes")[0]             # the annotations are gone ...
    assert "Visible species: X; learned: A." in ant          # ... the notes are not
    src = tmp_path / "chain.ant"
    src.write_text(ant, encoding="utf-8")
    out = tmp_path / "chain.toml"
    assert main(["convert", str(src), "-o", str(out), "--visible", "X"]) == 0
    cap = capsys.readouterr()
    assert "learned species A: from the model notes" in cap.out and cap.err == ""
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    assert {n: d["learn"] for n, d in data["species"].items()} == {s.name: s.learn for s in model.network.species}
    _rate_constants_match(out, sbml.read_sbml(text))
    imp = sbml.read_network(sbml.antimony_to_sbml(src))
    assert imp.flags == "notes" and [imp.network.names[i] for i in imp.network.visible] == ["X"]
    # --learn still wins; and without the notes line convert warns that every species is learned
    assert sbml.read_network(sbml.antimony_to_sbml(src), learned=["X"]).flags == "given"
    bare = tmp_path / "bare.ant"
    bare.write_text(ant.replace("Visible species: X; learned: A.", ""), encoding="utf-8")
    assert main(["convert", str(bare), "-o", str(tmp_path / "bare.toml"), "--visible", "X"]) == 0
    err = capsys.readouterr().err
    assert "holds no learn flags" in err and "every species is learned (A, B, X)" in err and "--learn" in err
    # an SBML file with its annotations: nothing to say
    xml = tmp_path / "chain.xml"
    xml.write_text(text, encoding="utf-8")
    assert main(["convert", str(xml), "-o", str(tmp_path / "x.toml"), "--visible", "X"]) == 0
    cap = capsys.readouterr()
    assert "learn" not in cap.err and "from the model notes" not in cap.out


ANT = """// a reversible dimerisation and an isomerisation
model dimer
  compartment c = 1
  species A in c = 4, B in c = 0, D in c = 0
  J1: 2 A -> D; k1*A^2 - k2*D
  J2: A -> B; k3*A - k4*B
  k1 = 0.5; k2 = 0.25; k3 = 2; k4 = 1
end
"""


def test_convert_antimony(tmp_path, capsys):
    pytest.importorskip("antimony", reason="antimony is not installed (pip install 'crn-feedback[convert]')")
    src = tmp_path / "dimer.ant"
    src.write_text(ANT, encoding="utf-8")
    out = tmp_path / "dimer.toml"
    assert main(["convert", str(src), "-o", str(out), "--visible", "A", "--learn", "A,B"]) == 0
    # fill in the template: an environment on A's reachable range 0..4 (A + B + 2 D = 4)
    text = out.read_text(encoding="utf-8").replace('# [environment]\n# family = "poisson"          # one visible species: mean\n'
                                   '# mean = 5.0', '[environment]\nfamily = "binomial"\nn = 4\np = 0.5')
    out.write_text(text, encoding="utf-8")
    model = load_model(out)
    assert [s.learn for s in model.network.species] == [True, True, False]
    assert model.space.size == 9       # (A, B, D) with A + B + 2 D = 4
    _rate_constants_match(out, sbml.read_sbml(sbml.antimony_to_sbml(src)))


@pytest.mark.parametrize("text, words", [
    (ANT.replace("k3*A - k4*B", "k3*A - "), "line 6"),                       # syntax error
    (ANT.replace("k3*A - k4*B", "k3*A"), "dimer.ant:6"),                     # irreversible J2, named by line
    (ANT.replace("k4 = 1", "k4 = 0"), "rate constant is zero"),
    # unnamed reactions (Antimony calls them _J0, _J1, ...): the second one, on line 6, is irreversible
    (ANT.replace("J1: 2 A", "2 A").replace("J2: A -> B; k3*A - k4*B", "A -> B; k3*A"),
     "dimer.ant:6: reaction '_J1' (the unnamed reaction on line 6)"),
    (ANT.replace("J1: 2 A -> D; k1*A^2 - k2*D", "2 A -> D; k1*A^2  // -> a comment with an arrow")
        .replace("J2: A", "A"), "dimer.ant:5: reaction '_J0' (the unnamed reaction on line 5)"),
])
def test_convert_antimony_errors_name_the_line(tmp_path, capsys, text, words):
    pytest.importorskip("antimony", reason="antimony is not installed (pip install 'crn-feedback[convert]')")
    src = tmp_path / "dimer.ant"
    src.write_text(text, encoding="utf-8")
    assert main(["convert", str(src), "-o", str(tmp_path / "x.toml"), "--visible", "A"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "x.toml").exists()


# -- the three importer gaps ------------------------------------------------------------------------------
def _sbml(law: str, a0: str = "10", extra: str = "") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
 <model id="m">
  {extra}
  <listOfCompartments><compartment id="c" size="1" constant="true" spatialDimensions="3"/></listOfCompartments>
  <listOfSpecies>
   <species id="A" compartment="c" initialAmount="{a0}" hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
   <species id="B" compartment="c" initialAmount="0" hasOnlySubstanceUnits="true" boundaryCondition="false" constant="false"/>
  </listOfSpecies>
  <listOfParameters>
   <parameter id="kf" value="2" constant="true"/><parameter id="kr" value="0.5" constant="true"/>
   <parameter id="kz" value="0" constant="true"/>
  </listOfParameters>
  <listOfReactions>
   <reaction id="R1" reversible="true">
    <listOfReactants><speciesReference species="A" stoichiometry="1" constant="true"/></listOfReactants>
    <listOfProducts><speciesReference species="B" stoichiometry="1" constant="true"/></listOfProducts>
    <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">{law}</math></kineticLaw>
   </reaction>
  </listOfReactions>
 </model>
</sbml>"""


MA = "<apply><minus/><apply><times/><ci>kf</ci><ci>A</ci></apply><apply><times/><ci>kr</ci><ci>B</ci></apply></apply>"
FUNDEF = """<listOfFunctionDefinitions><functionDefinition id="ma">
 <math xmlns="http://www.w3.org/1998/Math/MathML"><lambda><bvar><ci>k</ci></bvar><bvar><ci>x</ci></bvar>
 <apply><times/><ci>k</ci><ci>x</ci></apply></lambda></math></functionDefinition></listOfFunctionDefinitions>"""


def test_function_definitions_are_expanded():
    law = ("<apply><minus/><apply><ci>ma</ci><ci>kf</ci><ci>A</ci></apply>"
           "<apply><ci>ma</ci><ci>kr</ci><ci>B</ci></apply></apply>")
    got = sbml.read_network(_sbml(law, extra=FUNDEF))
    plain = sbml.read_network(_sbml(MA))
    np.testing.assert_allclose(got.network.rate_constants(), plain.network.rate_constants(), rtol=1e-15)


@pytest.mark.parametrize("a0, want", [("3e-10", 3e-10), ("10.0000000001", 10.0000000001), ("7", 7)])
def test_initial_amounts_are_never_rounded(a0, want):
    init = sbml.read_network(_sbml(MA, a0=a0)).initial["A"]
    assert init == want and isinstance(init, int) == (want == 7)


def test_near_integer_amounts_are_refused_by_import_sbml():
    from crnfb.feedback.model.environment import Poisson
    with pytest.raises(ModelError, match="not whole molecule counts"):
        sbml.import_sbml(_sbml(MA, a0="3e-10"), ["A"], Poisson(1.0), n_max=10)


def test_zero_rate_constant_gets_a_clear_message():
    law = MA.replace("<ci>kr</ci>", "<ci>kz</ci>")
    with pytest.raises(ModelError, match="reverse rate constant is zero"):
        sbml.read_network(_sbml(law))
    with pytest.raises(ModelError, match="identically zero"):
        sbml.read_network(_sbml("<apply><times/><ci>kz</ci><ci>A</ci></apply>"))
