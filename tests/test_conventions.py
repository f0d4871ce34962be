"""Conventions users bring (issue 23): Markov generators as ``rates``, ``[initial]`` in environment files.

- ``[environment.fluctuation] rates`` in generator form (diagonal minus the row's other rates, to
  1e-12 of the row's total rate) means the same chain as the zero-diagonal form; any other diagonal
  is bad input naming the row (docs/model-file.md).
- An environment file's ``[initial]`` is applied over the SBML's initial state: the species it names
  get its counts, the others keep the SBML's (docs/model-file.md, docs/cli.md).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crnfb.analysis.cli.entry import main
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.randomenv import GENERATOR_RTOL, MarkovEnvironment
from crnfb.feedback.io.modelfile import parse_model

ROOT = Path(__file__).resolve().parents[1]
TELEGRAPH = ROOT / "examples" / "birth_death_telegraph.toml"
ISOMERISATION = ROOT / "examples" / "isomerisation.toml"


def _generator(R: np.ndarray) -> np.ndarray:
    """The textbook generator of jump rates ``R`` (zero diagonal), built here independently of the package."""
    G = np.array(R, float)
    for i in range(G.shape[0]):
        G[i, i] = -sum(G[i, j] for j in range(G.shape[0]) if j != i)
    return G


# -- generator form ------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(2, 5).flatmap(lambda K: st.tuples(
    st.lists(st.floats(0, 1), min_size=K, max_size=K, unique=True),
    st.lists(st.lists(st.floats(1e-3, 1e3), min_size=K, max_size=K), min_size=K, max_size=K))))
def test_generator_form_is_the_same_chain(data):
    levels, rows = data
    R = np.array(rows)
    np.fill_diagonal(R, 0.0)
    jump = MarkovEnvironment(tuple(levels), R.tolist())
    gen = MarkovEnvironment(tuple(levels), _generator(R).tolist())
    assert gen.rates == jump.rates                             # stored as jump rates, exactly
    assert np.array_equal(gen.generator, jump.generator)
    # pi^T G = 0 with G the textbook generator: the chain the user wrote is the chain analysed
    assert np.abs(gen.stationary @ _generator(R)).max() <= 1e-9 * np.abs(R).max()


def test_generator_tolerance_is_relative_to_the_row():
    R = np.array([[0.0, 2e5, 1e5], [3e-6, 0.0, 1e-6], [1.0, 1.0, 0.0]])
    G = _generator(R)
    ok = G.copy()
    ok[0, 0] *= 1 + 0.5 * GENERATOR_RTOL           # within 1e-12 of its row's total rate
    ok[1, 1] *= 1 - 0.5 * GENERATOR_RTOL
    assert MarkovEnvironment((0.0, 0.5, 1.0), ok.tolist()).rates == MarkovEnvironment((0.0, 0.5, 1.0), R).rates
    for row, factor in ((0, 1 + 1e-9), (1, 1 - 1e-9), (2, 0.5)):
        bad = G.copy()
        bad[row, row] *= factor
        with pytest.raises(ModelError) as e:
            MarkovEnvironment((0.0, 0.5, 1.0), bad.tolist())
        assert e.value.key == f"environment.fluctuation.rates[{row}]"
        assert f"row {row}" in e.value.message and "generator" in e.value.message


def test_mixed_forms_are_refused_naming_the_row():
    """Row 0 in generator form, row 1 with a zero diagonal: neither form as a whole (an irreducible
    generator has no zero on its diagonal), so the zero row is the one named."""
    with pytest.raises(ModelError) as e:
        MarkovEnvironment((0.0, 1.0), [[-0.2, 0.2], [0.2, 0.0]])
    assert e.value.key == "environment.fluctuation.rates[1]"


def _telegraph_with(rates) -> dict:
    d = tomllib.loads(TELEGRAPH.read_text(encoding="utf-8"))
    d["environment"]["fluctuation"]["rates"] = rates
    return d


def test_model_file_accepts_the_issue_generator():
    """The issue's example: [[-0.2, 0.2], [0.2, -0.2]] is the telegraph with k_01 = k_10 = 0.2."""
    m = parse_model(_telegraph_with([[-0.2, 0.2], [0.2, -0.2]]), "x.toml")
    assert m.fluctuation.rates == ((0.0, 0.2), (0.2, 0.0))
    # telegraph closed form (feedback/model/randomenv.py): correlation time 1 / (k_01 + k_10)
    assert m.fluctuation.correlation_time == pytest.approx(1 / 0.4, rel=1e-12)


def _write_telegraph(tmp_path, rates: str) -> Path:
    text = TELEGRAPH.read_text(encoding="utf-8").replace("rates = [[0.0, 0.1], [0.1, 0.0]]", f"rates = {rates}")
    assert f"rates = {rates}" in text
    p = tmp_path / "tele.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_cli_generator_and_bad_diagonal(tmp_path, capsys):
    p = _write_telegraph(tmp_path, "[[-0.1, 0.1], [0.1, -0.1]]")
    assert main(["check", str(p), "--json"]) == 0
    capsys.readouterr()
    p = _write_telegraph(tmp_path, "[[-0.1, 0.1], [0.1, -0.3]]")
    assert main(["check", str(p)]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "tele.toml" in err and "[environment.fluctuation.rates[1]]" in err and "row 1" in err


# -- [initial] in an environment file ------------------------------------------------------------
@pytest.fixture(scope="module")
def iso(tmp_path_factory):
    """isomerisation.toml (X <-> Y, X + Y = 20 from [initial] X = 20) exported to SBML."""
    d = tmp_path_factory.mktemp("iso")
    assert main(["export", str(ISOMERISATION), "--sbml", str(d / "iso.xml")]) == 0
    return d


def _check(capsys, d: Path, env: str, code: int = 0) -> dict | str:
    (d / "env.toml").write_text(env, encoding="utf-8")
    rc = main(["check", str(d / "iso.xml"), "--visible", "X", "--environment-file", str(d / "env.toml"), "--json"])
    cap = capsys.readouterr()
    assert rc == code, cap.err
    return json.loads(cap.out) if code == 0 else cap.err


ENV = '[environment]\nfamily = "binomial"\nn = {n}\np = 0.3\n'


def test_environment_file_initial_replaces_the_sbml_counts(iso, capsys):
    # the SBML's own initial state: X + Y = 20, so 21 states (k = 0..20 copies of X)
    assert _check(capsys, iso, ENV.format(n=20))["state_count"] == 21
    # both species given: X + Y = 4 + 6 = 10, 11 states
    assert _check(capsys, iso, ENV.format(n=10) + "[initial]\nX = 4\nY = 6\n")["state_count"] == 11
    # one species given: Y = 5 over the SBML's X = 20, so X + Y = 25 and 26 states
    assert _check(capsys, iso, ENV.format(n=25) + "[initial]\nY = 5\n")["state_count"] == 26


def test_environment_file_initial_gives_the_model_file_fit(iso, tmp_path, capsys):
    """fit of SBML + [initial] = fit of the TOML model with the same [initial] (an independent parse)."""
    toml = ISOMERISATION.read_text(encoding="utf-8").replace("X = 20\nY = 0", "X = 4\nY = 6")
    toml = toml.replace("n = 20", "n = 10")
    (tmp_path / "m.toml").write_text(toml, encoding="utf-8")
    assert main(["fit", str(tmp_path / "m.toml"), "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)["fixed_points"][0]
    (iso / "env.toml").write_text(ENV.format(n=10) + "[initial]\nX = 4\nY = 6\n", encoding="utf-8")
    assert main(["fit", str(iso / "iso.xml"), "--visible", "X", "--environment-file", str(iso / "env.toml"),
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["fixed_points"][0]
    assert got["theta"] == pytest.approx(ref["theta"], abs=1e-9)
    # E2 closed form (docs/theory.md §8): binomial(T, p) with T p = E_Q[x] = 10 * 0.3; theta_X - theta_Y
    # is the log-odds of p
    assert got["theta"]["X"] - got["theta"]["Y"] == pytest.approx(np.log(0.3 / 0.7), abs=1e-6)


@pytest.mark.parametrize("initial, words", [
    ("Z = 3\n", ("env.toml [initial.Z]", "unknown species")),
    ("X = -1\n", ("env.toml [initial.X]",)),
    ("X = 2.5\n", ("env.toml [initial.X]",)),
    ("X = 4\nY = 6\n", ("env.toml [environment]", "outside the reachable class")),
])
def test_environment_file_initial_errors_name_that_file(iso, capsys, initial, words):
    err = _check(capsys, iso, ENV.format(n=20) + "[initial]\n" + initial, code=2)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err, err
