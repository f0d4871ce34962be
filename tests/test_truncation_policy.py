"""One truncation policy (issue 22, deliverable 4; docs/cli.md, "The truncation policy").

``tests/data/zeromodes/open_chain_truncated.toml``: the open chain ``0 <-> A <-> B``
with the box ``n_max = 12`` and ``tol = 1e-3``. At the file's energies the box
drops almost nothing; at the learned point ``B`` is Poisson with the target's
mean 6 (the Poisson law nearest a binomial(10, 0.6) in ``D(Q||P)``) and ``A``
Poisson with the unchanged ``exp(-theta_A)``, so the box drops
``1 - F_A(12) F_B(12)`` (about 0.0097): every command refuses with exit 2 and
the same message; with ``tol`` raised above that mass every command proceeds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from crnfb.analysis.cli.entry import main
from crnfb.analysis.cli.model_input import check_learned_truncation
from crnfb.analysis.linear.fixedpoints import learned_fixed_point
from crnfb.feedback import load_model
from crnfb.feedback.errors import TruncationError

MODEL = Path(__file__).resolve().parent / "data" / "zeromodes" / "open_chain_truncated.toml"


def commands(path: Path, out: Path) -> dict[str, list[str]]:
    return {"check": ["check", str(path)], "fit": ["fit", str(path)],
            "report": ["report", str(path), "-o", str(out / "report"), "--no-validate"],
            "simulate": ["simulate", str(path), "--t-end", "1", "--points", "3", "-o", str(out / "sim.csv")],
            "sweep": ["sweep", str(path), "--param", "eps=0.02:0.05:2", "-o", str(out / "sweep")]}


def expected_mass(model) -> float:
    """Closed form: the untruncated law at the learned point is the product of Poisson laws with
    means ``exp(theta_A)``, ``exp(theta_B)``; the box keeps ``F_A(12) F_B(12)`` of it."""
    theta = learned_fixed_point(model).theta
    return 1.0 - float(np.prod(stats.poisson.cdf(12, np.exp(theta))))


def test_the_mass_is_the_closed_form(tmp_path):
    model = load_model(MODEL)
    with pytest.raises(TruncationError) as info:
        check_learned_truncation(model, source=str(MODEL))
    found = float(re.search(r"drops stationary mass ([0-9.e+-]+)", str(info.value)).group(1))
    assert found == pytest.approx(expected_mass(model), rel=2e-3)     # printed to 3 digits
    assert 1e-3 < found < 0.05
    admitted = tmp_path / "admitted.toml"
    admitted.write_text(MODEL.read_text().replace("tol = 1e-3", "tol = 0.05"))
    assert check_learned_truncation(load_model(admitted)) == pytest.approx(expected_mass(model), rel=1e-3)


def test_every_command_refuses_with_one_message(capsys, tmp_path):
    messages = {}
    for name, argv in commands(MODEL, tmp_path).items():
        rc = main(argv)
        out, err = capsys.readouterr()
        assert rc == 2, (name, err)
        assert out == "", name                          # nothing but the refusal
        prefix = f"crnfb {name}: error: "
        assert err.startswith(prefix) and err.count("\n") == 1, err
        messages[name] = err[len(prefix):]
    assert len(set(messages.values())) == 1, messages   # the same rule, the same words
    msg = messages["check"]
    for part in (str(MODEL), "[truncation.n_max]", "at the learned fixed point", "tol = 0.001", "n_max", "raise"):
        assert part in msg, (part, msg)
    assert not (tmp_path / "report").exists() and not (tmp_path / "sim.csv").exists()


def test_every_command_proceeds_when_tol_admits_the_mass(capsys, tmp_path):
    path = tmp_path / "admitted.toml"
    path.write_text(MODEL.read_text().replace("tol = 1e-3", "tol = 0.05"))
    for name in ("check", "fit", "simulate"):        # report and sweep: the same function, slower to run
        rc = main(commands(path, tmp_path)[name])
        _, err = capsys.readouterr()
        assert rc == 0, (name, err)
