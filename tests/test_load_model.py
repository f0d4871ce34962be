"""``crnfb.load_model``: one loader for every format (TOML, SBML, Antimony), the one the CLI uses.

An SBML file exported by ``crnfb export`` from a birth-death model file (with
a non-zero energy, so that the energies are a real check), the same network
as Antimony, and the model file's tables as the environment file: the three
loads and the CLI's load give the same model numbers. The refusals name the
file and the keyword argument as the key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import crnfb
from crnfb.analysis.cli.entry import build_parser, main
from crnfb.analysis.cli.model_input import load_cli_model
from crnfb.feedback.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
BIRTH_DEATH = ROOT / "examples" / "birth_death.toml"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``bd.toml`` (birth_death.toml with G_X = 0.7, kappa = 2), its SBML export, its Antimony, and ENV.toml."""
    d = tmp_path_factory.mktemp("load")
    text = BIRTH_DEATH.read_text(encoding="utf-8").replace("energy = 0.0", "energy = 0.7")
    text = text.replace("kappa = 1.0", "kappa = 2.0")
    (d / "bd.toml").write_text(text, encoding="utf-8")
    assert main(["export", str(d / "bd.toml"), "--sbml", str(d / "bd.xml")]) == 0
    env = text[text.index("[truncation]"):]          # the tables after [initial], verbatim
    assert set(tomllib.loads(env)) == {"truncation", "environment", "learning", "ensembles"}
    (d / "env.toml").write_text(env, encoding="utf-8")
    return d


def _antimony(files) -> Path:
    """The SBML export written as Antimony by the antimony package (skip without it)."""
    antimony = pytest.importorskip("antimony", reason="antimony is not installed (pip install 'crn-feedback[convert]')")
    antimony.clearPreviousLoads()
    assert antimony.loadSBMLFile(str(files / "bd.xml")) >= 0
    path = files / "bd.ant"
    path.write_text(antimony.getAntimonyString(antimony.getMainModuleName()), encoding="utf-8")
    return path


def _numbers(model) -> dict:
    """What must agree: state count, energies, kappas, visible/learned roles, target laws, learning, truncation."""
    return {"states": model.space.size, "names": list(model.network.names),
            "energies": np.asarray(model.network.energies, float), "kappa": np.asarray(model.network.kappa, float),
            "visible": list(model.network.visible), "learned": list(model.learned_names),
            "q": np.asarray(model.q), "q_change": np.asarray(model.q_change), "eps": np.asarray(model.eps),
            "bounds": model.space.bounds.tolist()}


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14, err_msg=k)
        else:
            assert a[k] == b[k], k


def _cli_model(*argv):
    """The model the command line loads for ``crnfb check ARGV``."""
    return load_cli_model(build_parser().parse_args(["check", *map(str, argv)]))


def test_sbml_and_antimony_give_the_toml_model_and_the_cli_model(files):
    ref = _numbers(crnfb.load_model(files / "bd.toml"))
    assert ref["energies"][0] == pytest.approx(0.7) and ref["states"] == 61
    env = files / "env.toml"
    for path in (files / "bd.xml", _antimony(files)):
        got = _numbers(crnfb.load_model(path, visible=["X"], environment=env))
        _same(got, ref)
        _same(_numbers(_cli_model(path, "--visible", "X", "--environment-file", env)), got)
    # the string forms the command line passes are accepted too
    _same(_numbers(crnfb.load_model(str(files / "bd.xml"), visible="X", learn="X", environment=str(env))), ref)


def test_check_json_agrees_with_load_model(files, capsys):
    model = crnfb.load_model(files / "bd.xml", visible=["X"], environment=files / "env.toml")
    assert main(["check", str(files / "bd.xml"), "--visible", "X", "--environment-file",
                 str(files / "env.toml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["state_count"] == model.space.size and info["visible"] == ["X"]


def test_crnfb_load_model_is_the_one_loader():
    from crnfb.feedback.io import loading
    assert crnfb.load_model is loading.load_model
    assert crnfb.feedback.load_model is loading.load_model


def _refused(call, *words, key):
    with pytest.raises(ModelError) as info:
        call()
    e = info.value
    assert e.key == key, (e.key, str(e))
    for w in words:
        assert w in str(e), (w, str(e))
    return e


@pytest.mark.parametrize("kw, key", [
    ({"visible": ["X"]}, "visible"),
    ({"environment": "env.toml"}, "environment"),
    ({"learn": "X", "volume": 2.0}, "learn"),
    ({"copies_per_unit": 1.0}, "copies_per_unit"),
])
def test_model_file_with_sbml_options_is_refused(kw, key):
    e = _refused(lambda: crnfb.load_model(BIRTH_DEATH, **kw), "SBML", "Antimony", "drop", key=key)
    assert e.file == str(BIRTH_DEATH)


@pytest.mark.parametrize("kw, key, words", [
    ({}, "visible", ("add visible=['X'] and environment='ENV.toml'", "crnfb convert")),
    ({"visible": ["X"]}, "environment", ("add environment='ENV.toml'",)),
    ({"environment": "env.toml"}, "visible", ("add visible=['X']",)),
])
def test_sbml_without_visible_or_environment_is_refused(files, kw, key, words):
    kw = {k: files / v if k == "environment" else v for k, v in kw.items()}
    e = _refused(lambda: crnfb.load_model(files / "bd.xml", **kw), "SBML/Antimony", *words, key=key)
    assert e.file == str(files / "bd.xml")


@pytest.mark.parametrize("kw, key, words", [
    ({"visible": []}, "visible", ("needs species names", "visible=['X', 'Y']")),
    ({"visible": [1]}, "visible", ("needs species names", "got 1")),
    ({"visible": ["X"], "learn": ","}, "learn", ("needs species names",)),
    ({"visible": ["X"], "volume": 0}, "volume", ("positive finite", "volume=1.0")),
    ({"visible": ["X"], "environment": {"environment": {}}}, "environment", ("path of an environment file",)),
    ({"visible": ["Y"]}, None, ("'Y'",)),
])
def test_bad_sbml_options_name_the_keyword(files, kw, key, words):
    kw = {"environment": files / "env.toml", **kw}
    _refused(lambda: crnfb.load_model(files / "bd.xml", **kw), *words, key=key)


def test_environment_file_errors_name_that_file_and_key(files, tmp_path):
    (tmp_path / "bad.toml").write_text('[environment]\nfamily = "poisson"\nmean = 0\n', encoding="utf-8")
    e = _refused(lambda: crnfb.load_model(files / "bd.xml", visible=["X"], environment=tmp_path / "bad.toml"),
                 "bad.toml [environment.mean]", key="environment.mean")
    assert e.file == str(tmp_path / "bad.toml")


def test_cli_messages_keep_their_flags(files, capsys):
    assert main(["check", str(files / "bd.xml"), "--visible", "X"]) == 2
    err = capsys.readouterr().err
    assert "[--environment-file]" in err and "add --environment-file ENV.toml" in err
    assert main(["check", str(BIRTH_DEATH), "--volume", "1"]) == 2
    assert "[--volume]: --volume applies to SBML" in capsys.readouterr().err


def test_toml_loading_does_not_import_libsbml():
    code = ("import sys, crnfb; crnfb.load_model('examples/birth_death.toml'); "
            "print(sorted(m for m in sys.modules if 'sbml' in m))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
