"""The exit codes of docs/cli.md ("Exit codes"), for every subcommand.

0 done, 1 verdict (only fit and report give verdicts), 2 bad input with one
message and nothing written, 3 internal error as one line (traceback only
with --debug).
"""

from __future__ import annotations

import pytest

import crnfb.analysis.cli.entry as cli
from crnfb.analysis.cli.entry import main

from conftest import EXAMPLES

E1 = EXAMPLES / "birth_death.toml"
CHAIN = (EXAMPLES / "chain.toml").read_text()


def argv_for(command: str, model, tmp_path) -> list[str]:
    extra = {
        "check": [],
        "fit": [],
        "report": ["--no-validate", "-o", str(tmp_path / "rep")],
        "simulate": ["--t-end", "1", "--points", "3", "-o", str(tmp_path / "traj.csv")],
        "sweep": ["--param", "eps=0.05", "-o", str(tmp_path / "sw"), "--workers", "1"],
        "export": ["--sbml", str(tmp_path / "m.xml")],
    }[command]
    return [command, str(model), *extra]


COMMANDS = ["check", "fit", "report", "simulate", "sweep", "export"]
FUNCS = {"check": "cmd_check", "fit": "cmd_fit", "report": "cmd_report", "simulate": "cmd_simulate",
         "sweep": "cmd_sweep", "export": "cmd_export"}


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_exit_0_on_good_input(capsys, tmp_path, command):
    rc = main(argv_for(command, E1, tmp_path))
    _, err = capsys.readouterr()
    assert rc == 0, err


@pytest.mark.parametrize("command", COMMANDS)
def test_exit_2_on_bad_input_and_nothing_written(capsys, tmp_path, command):
    bad = tmp_path / "bad.toml"
    bad.write_text(E1.read_text().replace("mean = 5.0", "mean = -5.0"))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(argv_for(command, bad, tmp_path))
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith(f"crnfb {command}: error: ") and err.count("\n") == 1
    assert "bad.toml" in err and "environment.mean" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_exit_3_on_internal_error(capsys, tmp_path, monkeypatch, command):
    def bug(args):
        raise IndexError("index 7 is out of bounds")
    monkeypatch.setattr(cli, FUNCS[command], bug)
    rc = main(argv_for(command, E1, tmp_path))
    _, err = capsys.readouterr()
    assert rc == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"crnfb {command}: internal error: IndexError") and "--debug" in err
    rc = main(argv_for(command, E1, tmp_path) + ["--debug"])
    _, err = capsys.readouterr()
    assert rc == 3 and "Traceback" in err


def test_exit_1_fit_without_a_fixed_point(capsys, tmp_path):
    text = E1.read_text().split("[environment]")[0] + ('[environment]\nfamily = "table"\nsupport = [[0]]\n'
                                                         'probs = [1.0]\n')
    (tmp_path / "m.toml").write_text(text)
    assert main(["fit", str(tmp_path / "m.toml")]) == 1
    assert "no converged fixed point" in capsys.readouterr().err


@pytest.mark.slow
def test_exit_1_report_unstable(capsys, tmp_path):
    (tmp_path / "m.toml").write_text(CHAIN.replace("eps = 0.05", "eps = 1.0"))   # past eps_crit (docs/margins.md)
    rc = main(["report", "--no-validate", str(tmp_path / "m.toml"), "-o", str(tmp_path / "r")])
    _, err = capsys.readouterr()
    assert rc == 1 and "UNSTABLE" in err
    assert (tmp_path / "r" / "report.json").exists()       # outputs still written
