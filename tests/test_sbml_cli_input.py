"""SBML / Antimony as the model argument of every subcommand, with --visible and --environment-file (docs/cli.md).

The model is built in memory from the SBML (what ``crnfb convert`` writes)
plus the environment file's tables and parsed by the model-file parser;
errors exit 2 naming the SBML element, Antimony line or environment-file key.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest

from crnfb.analysis.cli.entry import main
from tests.test_sbml_import import ANT  # the dimer Antimony model of the convert tests

ROOT = Path(__file__).resolve().parents[1]
BIRTH_DEATH = ROOT / "examples" / "birth_death.toml"



@pytest.fixture(scope="module")
def bd(tmp_path_factory):
    """birth_death.toml's model network exported to SBML by crnfb export, and its learning problem as ENV.toml."""
    d = tmp_path_factory.mktemp("bd")
    assert main(["export", str(BIRTH_DEATH), "--sbml", str(d / "bd.xml")]) == 0
    text = BIRTH_DEATH.read_text(encoding="utf-8")
    env = text[text.index("[truncation]"):]          # the example's tables after [initial], verbatim
    assert set(tomllib.loads(env)) == {"truncation", "environment", "learning", "ensembles"}
    (d / "env.toml").write_text(env, encoding="utf-8")
    return d


def _fit(argv, capsys) -> dict:
    assert main(["fit", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fit_on_sbml_export_gives_the_toml_theta(bd, capsys):
    ref = _fit([str(BIRTH_DEATH)], capsys)["fixed_points"][0]
    got = _fit([str(bd / "bd.xml"), "--visible", "X", "--environment-file", str(bd / "env.toml")],
               capsys)["fixed_points"][0]
    assert got["converged"] and got["kind"] == "minimum"
    assert got["theta"]["X"] == pytest.approx(ref["theta"]["X"], rel=1e-12, abs=1e-12)
    # E1 closed form (docs/theory.md §8): the learned Poisson mean is E_Q[x] = 5, so theta_X = log 5
    assert got["theta"]["X"] == pytest.approx(math.log(5.0), abs=1e-9)
    assert got["rates"] == pytest.approx(ref["rates"], rel=1e-9)


def test_check_json_on_antimony(tmp_path, capsys):
    pytest.importorskip("antimony", reason="antimony is not installed (pip install 'crn-feedback[convert]')")
    (tmp_path / "dimer.ant").write_text(ANT, encoding="utf-8")
    (tmp_path / "env.toml").write_text('[environment]\nfamily = "binomial"\nn = 4\np = 0.5\n', encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["check", str(tmp_path / "dimer.ant"), "--visible", "A", "--learn", "A,B",
                 "--environment-file", str(tmp_path / "env.toml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["species"] == ["A", "B", "D"] and info["visible"] == ["A"] and info["learned"] == ["A", "B"]
    assert info["conservation_laws"] == [[1, 1, 2]]
    # A + B + 2 D = 4 by hand: D = 0 -> 5 states, D = 1 -> 3, D = 2 -> 1
    assert info["state_count"] == 9
    assert info["detailed_balance"] is True or info["detailed_balance_residual"] < 1e-9
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # nothing written next to the inputs


def test_every_subcommand_takes_sbml(bd, tmp_path, capsys):
    sb = [str(bd / "bd.xml"), "--visible", "X", "--environment-file", str(bd / "env.toml")]
    assert main(["simulate", *sb, "--t-end", "2", "--points", "5", "-o", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) >= 6
    assert main(["sweep", *sb, "--param", "eps=0.05:0.05:1", "-o", str(tmp_path / "sw"), "--workers", "1"]) == 0
    rows = (tmp_path / "sw" / "sweep.csv").read_text().splitlines()
    assert len(rows) == 2 and ",ok," in rows[1]
    assert main(["export", *sb, "--sbml", str(tmp_path / "again.xml")]) == 0
    assert "<sbml" in (tmp_path / "again.xml").read_text()
    capsys.readouterr()   # a check after loading, under a key of the environment file, names that file
    _bad(["export", *sb, "--sbml", str(tmp_path / "learn.xml"), "--learning"], capsys,
         "env.toml [learning.clamping]", "--speedup")
    assert not (tmp_path / "learn.xml").exists()
    # report: its full run (~6 s) is left out to keep this file fast; that it reads the model through the
    # same loader shows in an environment-file error, raised before anything is written
    capsys.readouterr()
    (tmp_path / "bad.toml").write_text('[environment]\nfamily = "poisson"\nmean = 0\n', encoding="utf-8")
    _bad(["report", sb[0], "--visible", "X", "--environment-file", str(tmp_path / "bad.toml"), "-o",
          str(tmp_path / "rep")], capsys, "bad.toml [environment.mean]")
    assert not (tmp_path / "rep").exists()


def _bad(argv, capsys, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)
    return err


def test_toml_model_with_sbml_options_is_bad_input(bd, capsys):
    _bad(["check", str(BIRTH_DEATH), "--visible", "X"], capsys, "[--visible]", "SBML", "Antimony")
    _bad(["fit", str(BIRTH_DEATH), "--environment-file", str(bd / "env.toml")], capsys,
         "[--environment-file]", "SBML")


def test_sbml_model_without_options_says_what_to_add(bd, capsys):
    err = _bad(["check", str(bd / "bd.xml")], capsys, "bd.xml", "--visible", "--environment-file")
    assert "add --visible X[,Y] and --environment-file ENV.toml" in err
    _bad(["fit", str(bd / "bd.xml"), "--visible", "X"], capsys, "[--environment-file]", "add --environment-file")


@pytest.mark.parametrize("env, words", [
    ('[environment]\nfamily = "poisson"\nmean = -1.0\n[truncation]\nn_max = 60\n',
     ("env.toml [environment.mean]", "> 0")),
    ('[environment]\nfamily = "poisson"\nmean = 5.0\n[truncation]\nn_max = 60\n[species.X]\nenergy = 1.0\n',
     ("env.toml [species]", "unknown key")),
    ('[learning]\neps = 0.1\n', ("env.toml [environment]", "missing [environment]")),
    ('[environment]\nfamily = "poisson"\nmean = 5.0\n[truncation]\nn_max = 60\n[learning]\neps = "fast"\n',
     ("env.toml [learning.eps]",)),
    ('[environment]\nfamily = "poisson"\nmean = 5.0\n', ("env.toml [truncation.n_max]", "open")),
    ('[environment]\nfamily = = 1\n', ("env.toml:2", "TOML syntax error")),
])
def test_environment_file_errors_name_the_key(bd, tmp_path, capsys, env, words):
    (tmp_path / "env.toml").write_text(env, encoding="utf-8")
    _bad(["fit", str(bd / "bd.xml"), "--visible", "X", "--environment-file", str(tmp_path / "env.toml")],
         capsys, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.toml"]


def test_sbml_and_antimony_errors_name_the_element(bd, tmp_path, capsys):
    _bad(["check", str(bd / "bd.xml"), "--visible", "Y", "--environment-file", str(bd / "env.toml")], capsys,
         "bd.xml", "'Y'")
    pytest.importorskip("antimony", reason="antimony is not installed (pip install 'crn-feedback[convert]')")
    (tmp_path / "dimer.ant").write_text(ANT.replace("k3*A - k4*B", "k3*A"), encoding="utf-8")  # J2 irreversible
    (tmp_path / "env.toml").write_text('[environment]\nfamily = "binomial"\nn = 4\np = 0.5\n', encoding="utf-8")
    _bad(["check", str(tmp_path / "dimer.ant"), "--visible", "A", "--environment-file", str(tmp_path / "env.toml")],
         capsys, "dimer.ant:6")
