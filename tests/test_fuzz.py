"""Property-based fuzzing of the command line (issue 10, docs/cli.md "Exit codes").

Generated model files, valid and broken (random networks of up to 6
species, energies in [-50, 50] and at the float limits, rates down to 1e-300
and up to 1e300, random truncations and environments, random byte
corruption of the examples), go through ``check``, ``fit`` and a quick
``report --no-validate``. Every run must end in exit 0/1 with finite,
self-consistent numbers or exit 2 with one message: never a traceback
(exit 3) and never a hang (a per-case alarm).

CI runs a few hundred cases; ``pytest --hypothesis-profile=long
tests/test_fuzz.py`` runs thousands (profile registered in conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crnfb.analysis.cli.entry import main

from conftest import EXAMPLE_FILES

#: Cases per test: the loaded profile's count, at least this many in CI.
N_CHECK_FIT = max(settings.default.max_examples, 100)
N_BYTES = max(settings.default.max_examples, 60)
N_REPORT = max(settings.default.max_examples // 10, 3)
PER_CASE_SECONDS = 30     # a loaded 2-core machine; a healthy case takes well under a second

NAMES = ["A", "B", "C", "D", "E", "F"]
EXTREME = [0.0, 1e-300, -1e-300, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324]


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def toml_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


@st.composite
def complexes(draw, n):
    """A complex of at most two molecules of the first n species ("0" when empty)."""
    k = draw(st.integers(0, 2))
    parts = sorted(draw(st.lists(st.sampled_from(NAMES[:n]), min_size=k, max_size=k)))
    if not parts:
        return "0"
    return " + ".join(f"2 {parts[0]}" if len(parts) == 2 and parts[0] == parts[1] else p
                      for p in (parts[:1] if len(parts) == 2 and parts[0] == parts[1] else parts))


@st.composite
def model_texts(draw, extreme: bool = True):
    """Model files; ``extreme`` adds energies, rates and eps at the float limits."""
    n = draw(st.integers(1, 6))
    energy = st.one_of(st.floats(-50, 50), st.sampled_from(EXTREME)) if extreme else st.floats(-50, 50)
    lines = [f'name = "fuzz"']
    vis = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    for i in range(n):
        lines += [f"[species.{NAMES[i]}]", f"energy = {toml_float(draw(energy))}",
                  f"visible = {str(vis[i]).lower()}", f"learn = {str(draw(st.booleans()) or i == 0).lower()}"]
    for _ in range(draw(st.integers(1, 4))):
        lhs = draw(complexes(n))
        rhs = draw(complexes(n).filter(lambda c: c != lhs))   # identical sides: a known refusal, rarely useful
        r = draw(st.integers(0 if extreme else 3, 19))   # mostly ordinary rates; extremes and invalid ones
        kappa = {0: 0.0, 1: 1e-300, 2: 1e300}.get(r) if r < 3 else draw(st.floats(1e-2, 1e2))
        lines += ["[[reactions]]", f'eq = "{lhs} <-> {rhs}"', f"kappa = {toml_float(kappa)}"]
    init = [draw(st.integers(0, 3)) for _ in range(n)]
    lines += ["[initial]"] + [f"{NAMES[i]} = {init[i]}" for i in range(n)]
    lines += ["[truncation]", f"n_max = {draw(st.integers(1, 12))}"]
    nv = max(sum(vis), 1)
    env = draw(st.sampled_from(["poisson", "binomial", "table", "table", "table", "table"]))
    lines.append("[environment]")
    if env == "poisson" and nv == 1:
        lines += ['family = "poisson"', f"mean = {toml_float(draw(st.floats(0.01, 1.5)))}"]
    elif env == "binomial" and nv == 1:
        lines += ['family = "binomial"', f"n = {draw(st.integers(1, 3))}", f"p = {draw(st.floats(0, 1))!r}"]
    else:
        # the initial state's visible part is in the class: a table on it (and nearby points) is often valid
        start = [init[i] for i in range(n) if vis[i]] or [0]
        near = st.lists(st.integers(0, 2), min_size=nv, max_size=nv)
        pts = [start] + [p for p in draw(st.lists(near, max_size=2)) if p != start]
        pts = [list(p) for p in dict.fromkeys(map(tuple, pts))]
        w = [draw(st.floats(0.05, 1)) for _ in pts]
        probs = [x / sum(w) for x in w]
        lines += ['family = "table"', f"support = {json.dumps(pts)}", f"probs = {json.dumps(probs)}"]
    eps = draw(st.one_of(st.floats(1e-4, 10), st.sampled_from([1e-300, 1e300]))) if extreme else \
        draw(st.floats(1e-3, 1))
    lines += ["[learning]", f"eps = {toml_float(eps)}",
              f'clamping = "{draw(st.sampled_from(["dynamic", "equilibrium"]))}"']
    return "\n".join(lines) + "\n"


def run_cli(capsys, argv):
    with time_limit(PER_CASE_SECONDS):
        rc = main(argv)
    out, err = capsys.readouterr()
    assert rc in (0, 1, 2), f"exit {rc}: {err}"
    assert "Traceback" not in err, err
    if rc == 2:
        assert err.startswith(f"crnfb {argv[0]}: error: ") and err.strip(), err
    return rc, out, err


def finite_numbers(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_numbers(v) for v in obj)
    return True


def check_fit_output(rc: int, out: str):
    def refuse(token):
        raise AssertionError(f"non-JSON constant {token} in fit --json")
    data = json.loads(out, parse_constant=refuse)
    first = data["fixed_points"][0]
    assert finite_numbers(first), first
    assert (rc == 0) == first["converged"]
    if first["converged"]:
        assert first["divergence"] >= 0 and first["gradient_norm"] <= 1e-6
        assert first["kind"] in ("minimum", "saddle", "maximum") and not first["plateau"]
    else:
        assert first["note"]                      # exit 1 always says why


@pytest.fixture
def model_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "model.toml"


FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                   HealthCheck.data_too_large])


@settings(max_examples=N_CHECK_FIT, **FUZZ)
@given(text=model_texts())
def test_generated_models_check_and_fit(capsys, model_file, text):
    model_file.write_text(text)
    rc, out, err = run_cli(capsys, ["check", "--json", str(model_file)])
    if rc != 0:
        return
    assert finite_numbers(json.loads(out))
    rc, out, err = run_cli(capsys, ["fit", "--json", str(model_file)])
    if rc != 2:
        check_fit_output(rc, out)


EXAMPLE_BYTES = [p.read_bytes() for p in EXAMPLE_FILES]


@st.composite
def corrupted(draw):
    data = bytearray(draw(st.sampled_from(EXAMPLE_BYTES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


@settings(max_examples=N_BYTES, **FUZZ)
@given(data=corrupted())
def test_corrupted_files_check_and_fit(capsys, model_file, data):
    model_file.write_bytes(data)
    rc, out, err = run_cli(capsys, ["check", str(model_file)])
    if rc == 0:
        rc, out, err = run_cli(capsys, ["fit", "--json", str(model_file)])
        if rc != 2:
            check_fit_output(rc, out)


@pytest.mark.slow
@settings(max_examples=N_REPORT, **FUZZ)
@given(text=model_texts(extreme=False))
def test_generated_models_quick_report(capsys, tmp_path_factory, text):
    d = tmp_path_factory.mktemp("fuzzrep")
    (d / "m.toml").write_text(text)
    rc, out, err = run_cli(capsys, ["fit", str(d / "m.toml")])
    if rc != 0:
        return
    with time_limit(4 * PER_CASE_SECONDS):
        rc = main(["report", "--no-validate", str(d / "m.toml"), "-o", str(d / "r")])
    out, err = capsys.readouterr()
    assert rc in (0, 1, 2) and "Traceback" not in err, err
    if rc in (0, 1):
        rep = json.loads((d / "r" / "report.json").read_text(), parse_constant=lambda t: 1 / 0)
        assert rep["verdict"]["exit_code"] == rc
        assert rep["verdict"]["stable"] == rep["closed_loop"]["stable"]
