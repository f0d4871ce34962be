"""The exported learning network is the analysed system, or says in numbers how far it is (docs/sbml.md).

Independent numbers: an external COPASI (basico) check of the exported chain
network at the file's gamma without speed-up found lambda_A = 1.274 and a
loss of stability at eps = 0.938 (issue 14 of this project); the report's
values (equilibrium clamping) are lambda_A = exp(theta*) = 2 and eps_crit = 0.186.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crnfb.analysis.cli.sbml_commands import export_deviation
from crnfb.feedback.io.modelfile import load_model

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
    from crnfb.analysis.cli.entry import main
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
    from crnfb.analysis.cli.entry import main
    out = tmp_path / "e2.xml"
    assert main(["export", str(EX / "isomerisation.toml"), "--sbml", str(out), "--learning", "--copies",
                 "--prune", "1e-12"]) == 0
    text = capsys.readouterr().out
    assert "copy-conserving resets" in text and "dropped start mass free" in text
    assert "Reset_" in out.read_text(encoding="utf-8") and "In_" not in out.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="only to clamping"):  # dynamic clamping is exported exactly
        export_deviation(load_model(EX / "isomerisation.toml"), 10.0)


# ---------------------------------------------------------------------------------------------
# --prune (issue 23, deliverable 6): states kept by their mass on the learning path, deviation measured
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def e1_small():
    # E1 truncated at 30 without [environment.change]: libRoadRunner's Jacobian stays cheap
    return load_model(EX / "birth_death.toml").replace(n_max=30, change=None)


def test_prune_by_start_moves_the_fixed_point_as_the_peer_check_found(e1_small):
    """The independent check's numbers: pruning by the start law at 1e-12 learns lambda_X = 5.00237 and splits
    the double eigenvalue -0.5 into -0.4565, -0.5475; at 1e-6, 5.237."""
    from crnfb.analysis.cli.export_prune import prune_deviation
    from crnfb.feedback.io.sbml import exported_network
    net = exported_network(e1_small, 1e3)
    start = net.split(net.initial_state())[:2]
    d = prune_deviation(e1_small, 1e-12, speedup=1e3, keep_mass=start)
    assert d.lambda_full[0] == pytest.approx(5.0, rel=1e-10)
    assert d.lambda_pruned[0] == pytest.approx(5.00237, abs=5e-6)
    np.testing.assert_allclose(d.modes_pruned[:2].real, [-0.4565, -0.5475], atol=5e-4)
    assert prune_deviation(e1_small, 1e-6, speedup=1e3, keep_mass=start).lambda_pruned[0] == \
        pytest.approx(5.237, abs=5e-4)
    assert d.pruned_by == "learning path"   # keep_mass given; None would say "start"
    assert prune_deviation(e1_small, 1e-12, speedup=1e3).pruned_by == "start"


def test_prune_on_the_learning_path_keeps_the_fixed_point(e1_small):
    from crnfb.analysis.cli.export_prune import learning_path_mass, prune_deviation
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    from crnfb.feedback.io.sbml import exported_network
    net = exported_network(e1_small, 1e3)
    fp = loop_fixed_point(e1_small, net)
    mass, info = learning_path_mass(e1_small, net, fp)
    assert info["settled"]
    for prune, modes_tol in ((1e-12, 1e-4), (1e-6, 1e-2)):
        d = prune_deviation(e1_small, prune, speedup=1e3, keep_mass=mass, fp=fp)
        assert d.lambda_deviation < 1e-10           # E1's mean matching is symmetric on the kept states
        assert d.modes_deviation < modes_tol        # the double root splits like sqrt(dropped mass)
        assert d.kept[0] < d.kept[1]                # something was pruned


@pytest.mark.peers
def test_pruned_export_agrees_with_roadrunner_steady_state(e1_small, tmp_path, capsys):
    """What the command prints is what libRoadRunner finds in the written file."""
    import re

    from crnfb.analysis.cli.entry import main
    roadrunner = pytest.importorskip("roadrunner", reason="libroadrunner is not installed")
    text = (EX / "birth_death.toml").read_text(encoding="utf-8").replace("n_max = 60", "n_max = 30")
    text = re.sub(r"\[environment\.change\][^\[]*", "", text)   # as e1_small
    src = tmp_path / "e1.toml"
    src.write_text(text, encoding="utf-8")
    np.testing.assert_array_equal(load_model(src).q_change, e1_small.q_change)
    out = tmp_path / "e1.xml"
    assert main(["export", str(src), "--sbml", str(out), "--learning", "--speedup", "1e3", "--prune", "1e-12"]) == 0
    text = capsys.readouterr().out
    assert "on the learning path" in text and "slowest eigenvalues: pruned" in text
    printed = float(re.search(r"lambda_X: pruned (\S+),", text).group(1))
    modes = [float(v) for v in re.search(r"eigenvalues: pruned ([^;]+);", text).group(1).split(", ")]
    rr = roadrunner.RoadRunner(str(out))
    rr.integrator.relative_tolerance, rr.integrator.absolute_tolerance = 1e-10, 1e-13
    rr.simulate(0, 100, 11)
    rr.steadyState()
    assert np.abs(rr.getRatesOfChange()).max() < 1e-10
    assert rr.Lambda_X == pytest.approx(printed, rel=1e-5)     # printed to 6 digits
    assert rr.Lambda_X == pytest.approx(5.0, rel=1e-9)         # the unpruned loop's lambda*
    ev = np.asarray(rr.getFullEigenValues(), complex)
    ev = ev[np.abs(ev) > 1e-9]                                  # the free copies' conservation law
    ev = ev[np.argsort(-ev.real)]
    np.testing.assert_allclose(ev[:3].real, modes, rtol=1e-5)


def test_prune_deviation_leaves_out_flat_modes_and_conservation_laws():
    """E2 learns two parameters of which one combination is unidentifiable: a zero eigenvalue (a line of fixed
    points) in both networks, left out of the compared modes, as the copy totals are (fractions and copies)."""
    from crnfb.analysis.cli.export_prune import PruneDeviation, learning_path_mass, prune_deviation
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    from crnfb.feedback.io.sbml import exported_network
    m = load_model(EX / "isomerisation.toml")
    net = exported_network(m)
    fp = loop_fixed_point(m, net)
    mass, _ = learning_path_mass(m, net, fp)
    for copies in (False, True):
        d = prune_deviation(m, 1e-9, copies=copies, keep_mass=mass, fp=fp)
        assert d.converged and d.zeros == (1, 1)
        assert d.lambda_deviation < 1e-8 and d.modes_deviation < 1e-8
        assert np.all(d.modes_full.real < 0)
    lost = PruneDeviation(prune=1e-3, learned=("X",), kept=(1, 2, 1, 2), lambda_full=np.ones(1),
                          lambda_pruned=np.ones(1), modes_full=None, modes_pruned=None, residual=1e-3, converged=False)
    assert "NOT MEASURED" in "\n".join(lost.lines())
