"""The SBML unit rule (docs/sbml.md, "Units"): N = c*V*u = n*u copies, k_stoch = k*u^(1-m)*V^(-m_c).

Checked against numbers we did not produce: libRoadRunner's deterministic
trajectory of the file BioCRNpyler writes (``tests/data/biocrnpyler/scaffold.xml``:
concentrations in a compartment of 1e-6, laws ``k * X``), and the SBML Test
Suite's reference time courses of its amount and concentration cases, each
for the default rule and for a volume and copies-per-unit given by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path

import libsbml
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from crnfb.analysis.cli.entry import main
from crnfb.feedback.io import sbml
from crnfb.feedback.errors import ModelError

from test_sbml_import import ACCEPTED, SUITE, settings  # one reading of the SBML Test Suite's cases

ROOT = Path(__file__).resolve().parent
SCAFFOLD = ROOT / "data" / "biocrnpyler" / "scaffold.xml"
E1 = ROOT.parent / "examples" / "birth_death.toml"


def mean_field(net, N0, t):
    """The converted network's mean-field ODE dN/dt = nu (kf N^y - kr N^y') (the large-N limit of its
    propensities kf N!/(N-y)!), integrated at the times ``t``."""
    kf, kr = net.rate_constants()
    Y, Yp = net.Y.astype(float), net.Yp.astype(float)

    def rhs(_, N):
        Np = np.maximum(N, 0.0)
        flux = kf * np.prod(Np ** Y, axis=1) - kr * np.prod(Np ** Yp, axis=1)
        return (Yp - Y).T @ flux
    sol = solve_ivp(rhs, (0.0, t[-1]), np.asarray(N0, float), t_eval=t, method="LSODA", rtol=1e-11, atol=1e-12)
    assert sol.success
    return sol.y


def _roadrunner_concentrations(text: str, names, t_end: float, volume=None):
    """libRoadRunner's time course of the species concentrations ([X]) of an SBML text (compartment size
    replaced by ``volume`` first, the file's own reading of that volume)."""
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner is not installed (pip install libroadrunner)")
    if volume is not None:
        doc = libsbml.readSBMLFromString(text)
        for c in doc.getModel().getListOfCompartments():
            c.setSize(volume)
        text = libsbml.writeSBMLToString(doc)
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance = 1e-11
    rr.integrator.absolute_tolerance = 1e-14
    rr.timeCourseSelections = ["time"] + [f"[{n}]" for n in names]
    res = np.asarray(rr.simulate(0.0, t_end, 41))
    return res[:, 0], res[:, 1:].T


@pytest.mark.peers
@pytest.mark.parametrize("volume, copies", [(None, None), (1.0, None), (1.0, 50.0), (None, 3e6), (2e-3, 2e4)])
def test_biocrnpyler_file_mean_field_matches_roadrunner(volume, copies):
    """Converted N(t) = c(t) * V * u, with c(t) libRoadRunner's trajectory of the same file (same V)."""
    imp = sbml.read_network(str(SCAFFOLD), ["X"], volume=volume, copies_per_unit=copies)
    net, V, u = imp.network, imp.units.volume, imp.units.copies_per_unit
    kf, kr = net.rate_constants()
    t_end = 4.0 / float(min(kf.min(), kr.min()))          # a few relaxation times of the slowest direction
    t, c = _roadrunner_concentrations(SCAFFOLD.read_text(), net.names, t_end, volume)
    N0 = [imp.initial[n] for n in net.names]
    assert np.allclose(N0, c[:, 0] * V * u, rtol=1e-12)
    N = mean_field(net, N0, t)
    want = c * V * u
    assert np.max(np.abs(N - want)) <= 1e-8 * np.max(np.abs(want)), (volume, copies)
    assert np.max(np.abs(want[:, -1] - want[:, 0])) > 1.0 * V * u   # the trajectory really moved


def test_default_rule_reads_concentrations_as_copies_and_divides_rates_by_V():
    imp = sbml.read_network(str(SCAFFOLD), ["X"])
    assert imp.initial == {"X": 20, "Y": 0, "S": 1, "C": 0}
    kf, kr = imp.network.rate_constants()
    assert np.allclose(kf, [2e6, 1.5e6], rtol=1e-12) and np.allclose(kr, [1e6, 0.5e6], rtol=1e-12)
    line = imp.units.line()
    assert "V = 1e-06 (compartment 'default')" in line and "u = 1e+06" in line
    assert "x1e+06 on every rate constant" in line


def test_given_units_scale_counts_and_rate_constants_by_order():
    imp = sbml.read_network(str(SCAFFOLD), ["X"], volume=1.0, copies_per_unit=50.0)
    assert imp.initial == {"X": 1000, "Y": 0, "S": 50, "C": 0}
    kf, kr = imp.network.rate_constants()
    assert np.allclose(kf, [2.0, 1.5 / 50], rtol=1e-12) and np.allclose(kr, [1.0, 0.5], rtol=1e-12)
    assert "x1 (order 1), x0.02 (order 2)" in imp.units.line()


# -- the SBML Test Suite's amount and concentration cases ----------------------------------------
def _settings(case: str) -> dict:
    return settings(case)      # the suite's settings file, read as tests/test_sbml_import.py reads it


@pytest.mark.parametrize("case", ACCEPTED)
@pytest.mark.parametrize("copies", [None, 7.0])
def test_suite_cases_in_copies(case, copies):
    """N(t)/u is the suite's amount, N(t)/(u V) its concentration, for the default u = 1/V and u = 7."""
    path = SUITE / case / f"{case}-sbml-l3v2.xml"
    imp = sbml.read_network(str(path), copies_per_unit=copies)
    V, u = imp.units.volume, imp.units.copies_per_unit
    st = _settings(case)
    amount = {s.strip() for s in st["amount"].split(",") if s.strip()}
    rows = list(csv.DictReader(open(SUITE / case / f"{case}-results.csv")))
    t = np.array([float(r["time"]) for r in rows])
    net = imp.network
    N = mean_field(net, [imp.initial[n] for n in net.names], t)
    atol, rtol = float(st["absolute"]), float(st["relative"])
    for sp in st["variables"].split(","):
        sp = sp.strip()
        got = N[net.names.index(sp)] / u / (1.0 if sp in amount else V)
        want = np.array([float(r[sp]) for r in rows])
        assert np.all(np.abs(got - want) <= atol + rtol * np.abs(want)), (case, sp, copies)


# -- the command line ----------------------------------------------------------------------------
def test_convert_prints_and_writes_the_rule(tmp_path, capsys):
    out = tmp_path / "m.toml"
    assert main(["convert", str(SCAFFOLD), "-o", str(out), "--visible", "X", "--volume", "1",
                 "--copies-per-unit", "50"]) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.strip().startswith("units:"))
    assert "V = 1 (--volume, file 1e-06)" in line and "u = 50 per substance unit (--copies-per-unit)" in line
    text = out.read_text(encoding="utf-8")
    assert "# units: N = c*V*u" in text and "X = 1000" in text


def test_check_prints_the_rule(tmp_path, capsys):
    env = tmp_path / "env.toml"
    env.write_text('[environment]\nfamily = "poisson"\nmean = 5.0\n\n[truncation]\nn_max = 40\n', encoding="utf-8")
    assert main(["check", str(SCAFFOLD), "--visible", "X", "--environment-file", str(env), "--volume", "1"]) == 0
    printed = capsys.readouterr().out
    units = [x for x in printed.splitlines() if x.startswith("units")]
    assert len(units) == 1 and "x1 on every rate constant" in units[0], printed


@pytest.mark.parametrize("argv, words", [
    (["--volume", "0"], "--volume must be a positive finite number, got '0'"),
    (["--volume", "nan"], "--volume must be a positive finite number"),
    (["--copies-per-unit", "-3"], "--copies-per-unit must be a positive finite number, got '-3'"),
    (["--copies-per-unit", "many"], "--copies-per-unit must be a positive finite number, got 'many'"),
])
def test_bad_unit_options_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "m.toml"
    assert main(["convert", str(SCAFFOLD), "-o", str(out), "--visible", "X", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and not out.exists()


def test_unit_options_on_a_model_file_exit_2(capsys):
    assert main(["check", str(E1), "--volume", "1"]) == 2
    err = capsys.readouterr().err
    assert "--volume applies to SBML" in err and "Traceback" not in err


def test_whole_counts_are_required_by_import_sbml():
    from crnfb import Poisson
    with pytest.raises(ModelError, match="not whole molecule counts .*copies_per_unit"):
        sbml.import_sbml(str(SCAFFOLD), ["X"], Poisson(5.0), n_max=40, volume=1.0, copies_per_unit=0.3)
