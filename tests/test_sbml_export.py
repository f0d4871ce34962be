"""The exported learning network is the analysed system, or says in numbers how far it is (docs/sbml.md).

Independent numbers: an external COPASI (basico) check of the exported chain
network at the file's gamma without speed-up found lambda_A = 1.274 and a
loss of stability at eps = 0.938 (issue 14 of this project); the report's
values (equilibrium clamping) are lambda_A = exp(theta*) = 2 and eps_crit = 0.186.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crnfb.analysis.sbml_commands import export_deviation
from crnfb.feedback.modelfile import load_model

EX = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def chain():
    return load_model(EX / "chain.toml")


def test_chain_without_speedup_matches_the_external_copasi_numbers(chain):
    d = export_deviation(chain, 1.0)
    assert d.lambda_report[0] == pytest.approx(2.0, rel=1e-6)       # exp(theta*), equilibrium clamping
    assert d.lambda_export[0] == pytest.approx(1.274, abs=5e-4)     # COPASI steady state
    assert d.eps_crit_export[0] == pytest.approx(0.938, abs=5e-4)   # COPASI sign change of the rightmost eigenvalue
    assert d.eps_crit_report[0] == pytest.approx(0.186, abs=5e-4)


@pytest.mark.parametrize("speedup", [1e3, 1e4])
def test_speedup_converges_like_one_over_speedup(chain, speedup):
    d = export_deviation(chain, speedup)
    # the clamped law deviates from Qt by O(gamma / (speedup * kappa)); 10/speedup bounds it with room
    assert 0 < d.lambda_deviation < 10.0 / speedup
    assert d.eps_crit_deviation < 10.0 / speedup
    assert any("relative deviation" in line for line in d.lines())


def test_cli_prints_the_deviation(chain, tmp_path, capsys):
    from crnfb.analysis.cli import main
    out = tmp_path / "chain.xml"
    assert main(["export", str(EX / "chain.toml"), "--sbml", str(out), "--learning", "--speedup", "1e4"]) == 0
    text = capsys.readouterr().out
    assert "lambda_A: exported" in text and "eps_crit: exported" in text
    assert "clamped_speedup" in out.read_text(encoding="utf-8")
    for bad in (["--speedup", "-1"], ["--prune", "1.5"]):
        assert main(["export", str(EX / "chain.toml"), "--sbml", str(tmp_path / "x.xml"), "--learning", *bad]) == 2
    assert main(["export", str(EX / "chain.toml"), "--sbml", str(tmp_path / "x.xml"), "--copies"]) == 2
    assert not (tmp_path / "x.xml").exists()


def test_cli_copies_and_prune(tmp_path, capsys):
    from crnfb.analysis.cli import main
    out = tmp_path / "e2.xml"
    assert main(["export", str(EX / "isomerisation.toml"), "--sbml", str(out), "--learning", "--copies",
                 "--prune", "1e-12"]) == 0
    text = capsys.readouterr().out
    assert "copy-conserving resets" in text and "dropped start mass free" in text
    assert "Reset_" in out.read_text(encoding="utf-8") and "In_" not in out.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="only to clamping"):  # dynamic clamping is exported exactly
        export_deviation(load_model(EX / "isomerisation.toml"), 10.0)
