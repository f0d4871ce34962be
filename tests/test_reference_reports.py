"""Old vs new paths: today's report numbers against the pre-refactor reports.

tests/data/reference_reports/*.json were written by commit 8af904108587
(README.md there). Issue 12 changed how margins (sparse crossing checks above
a size limit), frequency responses (full-coordinate solves, shared and
memoised per frequency) and step responses are computed; the examples below
must keep every number of the linear analysis within the validation
tolerance (2e-3 relative, docs/validation.md), with an absolute floor for
numbers that are zero to rounding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crnfb.analysis.results import analyse
from crnfb.feedback.modelfile import load_model

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "reference_reports"
SECTIONS = ("fixed_point", "quasi_static", "closed_loop", "margins", "disturbance")
REL, ABS = 2e-3, 1e-9


def _leaves(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def _compare(new: dict, ref: dict) -> list[str]:
    bad = []
    got = dict(_leaves(new))
    for path, want in _leaves(ref):
        if path not in got:
            bad.append(f"{path}: missing (reference {want!r})")
            continue
        have = got[path]
        if isinstance(want, bool) or want is None or isinstance(want, str):
            if have != want and not isinstance(want, str):
                bad.append(f"{path}: {have!r} != {want!r}")
        elif isinstance(want, (int, float)):
            if not (isinstance(have, (int, float)) and np.isclose(have, want, rtol=REL, atol=ABS)):
                bad.append(f"{path}: {have!r} vs reference {want!r}")
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "chain", "hidden_scaffold"])
def test_linear_analysis_unchanged(name):
    ref = json.loads((REF / f"{name}.json").read_text())
    new = analyse(load_model(ROOT / "examples" / f"{name}.toml"), validate=False).to_dict()
    bad = []
    for sec in SECTIONS:
        bad += [f"{sec}{b}" for b in _compare(new[sec], ref[sec])]
    assert not bad, "\n".join(bad[:20])
