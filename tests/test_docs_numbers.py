"""The numbers README.md and docs/tutorial.md quote are the ones the code prints today.

Three kinds of check, all against live runs:

* every ``$ crnfb ...`` command in a ``console`` block is run and each quoted
  output line must appear in the live output (in order; ``...`` stands for
  omitted lines), numbers equal within the precision the page prints;
* every ``python`` block is executed; a ``print(...)`` with a trailing comment
  must print what the comment says (same rule for numbers);
* numbers quoted in the prose are matched by the patterns of ``CLAIMS`` and
  compared with the live value they describe.

Where two numbers are both below ``1e-9`` in magnitude they count as equal: the
pages call them "0 to rounding" and their digits differ between platforms.
``crnfb report`` is not rerun as a command: it prints ``res.summary()`` of
``analyse(model, validate=..., seed=0)`` and one ``wrote ...`` line
(``analysis/cli/report.py``), so the same analysis is run once without the figures
(which change no number in the summary) and shared by every check;
``tests/test_report.py`` runs the command itself.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import io
import json
import math
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

import crnfb
from crnfb.analysis.cli.entry import main
from crnfb.analysis.reporting.figures import report_figures

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"README.md": ROOT / "README.md", "tutorial": ROOT / "docs" / "tutorial.md"}
#: pages with quoted numbers but no commands to rerun
PROSE = {"theory": ROOT / "docs" / "theory.md"}
ROUNDING = 1e-9
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")

pytestmark = pytest.mark.slow     # two full analyses (E1 with validation, E3): about 35 s of CPU


# -- comparing printed numbers ------------------------------------------------------------------
def unit(token: str) -> float:
    """One unit in the last printed digit of ``token`` ("0.0348" -> 1e-4, "6.6e4" -> 1e3)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (int(exponent or 0) - decimals)


def agrees(token: str, live: float, units: float = 1.0) -> bool:
    value = float(token)
    if abs(value) < ROUNDING and abs(live) < ROUNDING:
        return True
    if re.fullmatch(r"[-+]?\d+", token) and units >= 1:      # a count, or printed as a whole number
        return value == live
    return abs(live - value) <= units * unit(token) * (1 + 1e-9) + 1e-12 * abs(value)


def skeleton(line: str) -> str:
    line = re.sub(r"(?<=\d)\.\.\.", "", line)          # "1.6094379..." is a truncated number
    return " ".join(NUMBER.sub("#", line).split())


def line_agrees(doc: str, live: str) -> bool:
    if skeleton(doc) != skeleton(live):
        return False
    doc_nums = NUMBER.findall(re.sub(r"(?<=\d)\.\.\.", "", doc))
    live_nums = NUMBER.findall(live)
    return all(agrees(d, float(v)) for d, v in zip(doc_nums, live_nums))


#: Validation rows whose *predicted* column is itself measured on the ODE (the linear range is
#: estimated from the smallest simulated step), so it varies like the simulated column.
MEASURED_PREDICTIONS = ("linear range",)


def validation_rows(live_lines: list[str], checks: list[dict] | None) -> dict[int, dict]:
    """Index of each row of the summary's validation table in ``live_lines`` -> its check.

    The rows are printed in the order of ``report.json``'s ``validation`` list, after the
    title, its underline, the column header and its rule.
    """
    title = "Validation against the nonlinear loop"
    if not checks or title not in live_lines:
        return {}
    first = live_lines.index(title) + 4
    assert live_lines[first - 2].startswith("quantity"), live_lines[first - 2]
    return {first + k: c for k, c in enumerate(checks)}


def measured_allowance(check: dict, value: float) -> float:
    """How far two runs of a passing check may measure apart: its relative tolerance, or for a
    statistical check (an SSA sample with a confidence interval) twice today's half-width
    (the documented run is another independent draw)."""
    allowance = (check.get("tolerance") or 0.0) * abs(value)
    ci = check.get("ci") or (check.get("details") or {}).get("ci")
    if ci and None not in ci:
        allowance = max(allowance, ci[1] - ci[0])
    return allowance


def validation_row_agrees(doc: str, live: str, check: dict) -> bool:
    """A validation row: ODE/SSA measurements agree within the check's own tolerance.

    The simulated column (and a measured prediction) is an ODE or SSA measurement whose
    digits move with the integrator's error, the BLAS build and the sampling; two runs of a
    passing check agree to the check's relative tolerance ``tol`` (docs/validation.md), so
    that is the allowance; a relative error agrees when both are below ``tol``.
    """
    tol = check.get("tolerance")
    if tol is None or skeleton(doc) != skeleton(live):
        return line_agrees(doc, live)
    doc_nums = iter(float(t) for t in NUMBER.findall(doc))
    live_nums = iter(float(t) for t in NUMBER.findall(live))
    doc_tokens = iter(NUMBER.findall(doc))
    measured = check["quantity"].startswith(MEASURED_PREDICTIONS)
    for key in ("predicted", "simulated", "rel_error"):
        if check.get(key) is None:
            continue
        token, d, v = next(doc_tokens), next(doc_nums), next(live_nums)
        if key == "rel_error":
            pred = abs(check.get("predicted") or 0.0)
            statistical = bool(check.get("ci") or (check.get("details") or {}).get("ci"))
            ok = (d <= tol and v <= tol) or (statistical and abs(d - v) * pred <= measured_allowance(check, pred))
        elif key == "simulated" or measured:
            ok = abs(d - v) <= max(unit(token), tol * max(abs(d), abs(v)), measured_allowance(check, v))
        else:
            ok = agrees(token, v)
        if not ok:
            return False
    return True


def assert_output_matches(doc_lines: list[str], live: str, what: str, checks: list[dict] | None = None) -> None:
    """Every quoted line appears in ``live`` in order; ``checks`` (report.json's validation list)
    gives the validation table's rows their tolerances (:func:`validation_row_agrees`)."""
    live_lines = [l for l in live.splitlines() if l.strip()]
    rows = validation_rows(live_lines, checks)
    pos = 0
    for doc in doc_lines:
        if not doc.strip() or doc.strip() == "...":
            continue
        for i in range(pos, len(live_lines)):
            ok = (validation_row_agrees(doc, live_lines[i], rows[i]) if i in rows
                  else line_agrees(doc, live_lines[i]))
            if ok:
                pos = i + 1
                break
        else:
            same_shape = [l for l in live_lines if skeleton(l) == skeleton(doc)]
            pytest.fail(f"{what}: the page shows\n  {doc.strip()}\nlive output has "
                        + (f"\n  {same_shape[0].strip()}" if same_shape else f"no such line:\n{live}"))


def assert_json_matches(doc, live, path="") -> None:
    if isinstance(doc, dict):
        assert isinstance(live, dict) and set(doc) == set(live), path
        for k in doc:
            assert_json_matches(doc[k], live[k], f"{path}.{k}")
    elif isinstance(doc, list):
        assert isinstance(live, list) and len(doc) == len(live), path
        for i, (a, b) in enumerate(zip(doc, live)):
            assert_json_matches(a, b, f"{path}[{i}]")
    elif isinstance(doc, float) or isinstance(live, float):
        assert math.isclose(doc, live, rel_tol=1e-9, abs_tol=ROUNDING), (path, doc, live)
    else:
        assert doc == live, (path, doc, live)


def test_number_rules():
    assert unit("0.0348") == pytest.approx(1e-4) and unit("6.6e4") == pytest.approx(1e3) and unit("10") == 1
    assert agrees("0.0065", 0.006471) and not agrees("0.0065", 0.0067, units=0.5)
    assert agrees("1e-15", -1.2e-16) and not agrees("0.25", 0.27)
    assert line_agrees("  theta_X   1.609438", "  theta_X           1.609438")
    assert not line_agrees("Validation:     9 of 9 checks passed", "Validation:     10 of 10 checks passed")
    assert line_agrees("{'X': 1.6094379...}", "{'X': 1.6094379124341516}")


# -- live runs, shared ---------------------------------------------------------------------
_REAL_ANALYSE = crnfb.analyse
_CACHE: dict = {}


def cached_analyse(model, *args, **kwargs):
    """``crnfb.analyse``, run once per (model file, arguments) for the whole module."""
    bound = inspect.signature(_REAL_ANALYSE).bind(model, *args, **kwargs)
    bound.apply_defaults()
    key = (str(Path(model.source).resolve()),
           tuple((k, v) for k, v in bound.arguments.items() if k not in ("model", "progress")))
    if key not in _CACHE:
        _CACHE[key] = _REAL_ANALYSE(model, *args, **kwargs)
    return _CACHE[key]


@contextlib.contextmanager
def in_dir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def report_results(argv: list[str]):
    """The analysis ``crnfb report MODEL -o DIR [--no-validate]`` runs (see the module docstring)."""
    model_path = argv[1]
    with in_dir(ROOT):   # the summary names the model file as given on the command line
        return cached_analyse(crnfb.load_model(model_path), validate="--no-validate" not in argv, seed=0,
                              figures=False)


def report_output(argv: list[str]) -> str:
    """What ``crnfb report MODEL -o DIR [--no-validate]`` prints."""
    out = argv[argv.index("-o") + 1]
    res = report_results(argv)
    return f"{res.summary()}\nwrote {out}/report.json, report.md, report.html and {len(report_figures(res))} figures\n"


def cli_output(argv: list[str]) -> str:
    if argv[0] == "report":
        return report_output(argv)
    buf = io.StringIO()
    with in_dir(ROOT), contextlib.redirect_stdout(buf):
        main(argv)
    return buf.getvalue()


@functools.cache
def e1() -> dict:
    """E1's report (with validation, as ``crnfb report`` runs it)."""
    return cached_analyse(crnfb.load_model(ROOT / "examples/birth_death.toml"), validate=True, seed=0,
                          figures=False).to_dict()


@functools.cache
def e3() -> dict:
    """E3's report (``--no-validate``, as the tutorial runs it)."""
    return cached_analyse(crnfb.load_model(ROOT / "examples/hidden_scaffold.toml"), validate=False, seed=0,
                          figures=False).to_dict()


# -- console blocks ---------------------------------------------------------------------------
def blocks(page: str, lang: str) -> list[tuple[int, str]]:
    text = PAGES[page].read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)]


def console_commands() -> list[tuple[str, int, list[str], list[str]]]:
    out = []
    for page in PAGES:
        for line, block in blocks(page, "console"):
            cmd, expected = None, []
            for text in block.splitlines() + ["$ end"]:
                if text.startswith("$ "):
                    if cmd and cmd[0] == "crnfb" and any(l.strip() for l in expected):
                        out.append((page, line, cmd[1:], expected))
                    cmd, expected = text[2:].split(), []
                else:
                    expected.append(text)
    return out


COMMANDS = console_commands()


def test_pages_have_console_blocks():
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize("page,line,argv,expected", COMMANDS,
                         ids=[f"{p}:{l}:{' '.join(a)}" for p, l, a, _ in COMMANDS])
def test_console_block(page, line, argv, expected):
    live = cli_output(argv)
    text = "\n".join(expected).strip()
    if text.startswith("{"):
        assert_json_matches(json.loads(text), json.loads(live))
    else:
        checks = report_results(argv).to_dict().get("validation") if argv[0] == "report" else None
        assert_output_matches(expected, live, f"{page}:{line} crnfb {' '.join(argv)}", checks)


# -- python blocks ----------------------------------------------------------------------------
PYTHON = [(page, line, code) for page in PAGES for line, code in blocks(page, "python")]


@pytest.mark.parametrize("page,line,code", PYTHON, ids=[f"{p}:{l}" for p, l, _ in PYTHON])
def test_python_block(page, line, code, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")   # relative paths as from the checkout
    monkeypatch.setattr(crnfb, "analyse", cached_analyse)
    lines = code.splitlines()
    namespace: dict = {}
    checked = 0
    with in_dir(tmp_path):
        for stmt in ast.parse(code).body:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile(ast.Module([stmt], []), f"{page}:{line}", "exec"), namespace)
            last = lines[stmt.end_lineno - 1]
            is_print = (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                        and getattr(stmt.value.func, "id", None) == "print")
            if is_print and "  # " in last:
                checked += 1
                expected = last.split("  # ", 1)[1]
                assert line_agrees(expected, buf.getvalue().strip()), \
                    f"{page}:{line + stmt.lineno}: the page says {expected!r}, the code prints {buf.getvalue()!r}"
    assert checked >= 1


# -- numbers in the prose -----------------------------------------------------------------------
def _validation(d: dict, name: str) -> dict:
    return next(v for v in d["validation"] if v["quantity"].startswith(name))


def _e3_total_variation() -> float:
    """Total variation between the learned P and Q at E3's loop fixed point, from theory §8's
    closed form ``P(x) = sum_k w_k binomial(T - k, p)(x)`` (independent of the package's laws)."""
    theta = e3()["fixed_point"]["theta"]
    T, K = 20, 10
    lam = {k: math.exp(v) for k, v in theta.items()}
    p = lam["X"] / (lam["X"] + lam["Y"])
    logw = np.array([theta[f"S{k}"] + (T - k) * math.log(lam["X"] + lam["Y"]) - math.lgamma(T - k + 1)
                     for k in range(K + 1)])
    w = np.exp(logw - logw.max())
    w /= w.sum()
    x = np.arange(T + 1)
    P = sum(w[k] * binom.pmf(x, T - k, p) for k in range(K + 1))
    env = tomllib.loads((ROOT / "examples" / "hidden_scaffold.toml").read_text())["environment"]
    Q = sum(wt * binom.pmf(x, c["n"], c["p"]) for wt, c in zip(env["weights"], env["components"]))
    return 0.5 * float(np.abs(P - Q / Q.sum()).sum())


def _bias_at_gamma(gamma: float) -> float:
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    model = crnfb.load_model(ROOT / "examples" / "hidden_scaffold.toml").with_learning(gamma=gamma)
    return float(loop_fixed_point(model).bias)


def _fit_divergence(example: str, index: int = 0, starts: int = 0) -> float:
    argv = ["fit", "--json", f"examples/{example}.toml"] + (["--starts", str(starts)] if starts else [])
    return json.loads(cli_output(argv))["fixed_points"][index]["divergence"]


def _e3_second_point() -> float:
    argv = ["fit", "--json", "--starts", "4", "examples/hidden_scaffold.toml"]
    found = json.loads(cli_output(argv))
    points = found["fixed_points"][1:] + found["plateaus"]
    return min((p["divergence"] for p in points), key=lambda D: abs(D - 0.76))


#: (page, pattern with one group per number, live value(s), allowance): the allowance is units of
#: the last printed digit, or ``("check", NAME)`` for a number measured by the validation check NAME
#: on the ODE or the SSA, whose digits move with the integrator's error, the BLAS build and the
#: sampling: it agrees within that check's own relative tolerance (docs/validation.md).
CLAIMS = [
    # E1: margins, disturbance, validation, thermodynamics (tutorial)
    ("tutorial", r"`ω_c = (\S+)`, where the phase is `−90° − atan\(\S+\) = −(\S+)°`",
     lambda: (e1()["margins"]["crossover_frequency"], 180 - e1()["margins"]["phase_margin_deg"]), 0.5),
    ("tutorial", r"a phase\nmargin of `(\S+)°`", lambda: e1()["margins"]["phase_margin_deg"], 0.5),
    ("tutorial", r"rise time of `(\S+)` and settles \(2 %\) after\n`(\S+)` time units",
     lambda: (e1()["disturbance"]["step"]["rise_time"], e1()["disturbance"]["step"]["settling_time"]), 0.5),
    ("tutorial", r"`ω = (\S+)` \(the tracking bandwidth\)", lambda: e1()["disturbance"]["bandwidth"], 0.5),
    ("tutorial", r"H∞ norm of environment → error is\n`(\S+) = 2√3`",
     lambda: e1()["disturbance"]["hinf_norm"], 0.5),
    ("tutorial", r"levels off at `(\S+)` nats per `a₁²`", lambda: e1()["disturbance"]["lag_cost_unadapted"], 0.5),
    ("tutorial", r"convergence rate `(\S+)`\n\(simulated", lambda: _validation(e1(), "convergence rate")["predicted"],
     0.5),
    ("tutorial", r"\(simulated `(\S+)`\)", lambda: _validation(e1(), "convergence rate")["simulated"],
     ("check", "convergence rate")),
    ("tutorial", r"the frequency response at (\w+)\nfrequencies",
     lambda: sum(v["quantity"].startswith("frequency response") for v in e1()["validation"]), 0),
    ("tutorial", r"\(`a ≈ (\S+)`\)", lambda: _validation(e1(), "linear range")["predicted"],
     ("check", "linear range")),
    ("tutorial", r"`var θ_X = (\S+)`\npredicted", lambda: _validation(e1(), "parameter noise")["predicted"], 0.5),
    ("tutorial", r"`(\S+)` simulated\.", lambda: _validation(e1(), "parameter noise")["simulated"],
     ("check", "parameter noise")),
    ("tutorial", r"simulated\.[\s\S]*?All (\d+) passed",
     lambda: sum(v["passed"] is True for v in e1()["validation"]), 0),
    ("tutorial", r"= 20 · 0\.05 · 5 · 10 = (\d+)`", lambda: e1()["thermodynamics"]["fixed_point"]["learning"], 0.5),
    ("tutorial", r"about `(\d+)` kT over a learning", lambda: e1()["thermodynamics"]["episode_total"], 0.5),
    # E3: quasi-static problem, loop, report (tutorial)
    ("tutorial", r"stops at `D = (\S+)` nats", lambda: _fit_divergence("isomerisation_bimodal"), 0.5),
    ("tutorial", r"rates range from `(\S+)` down to `(\S+)` per", lambda: (max(e3()["quasi_static"]["rates"]),
                                                                           e3()["quasi_static"]["slowest_rate"]), 0.5),
    ("tutorial", r"\| `D` at the optimum .*? \| `(\S+)` nats", lambda: e3()["fixed_point"]["optimum"]["divergence"], 0.5),
    ("tutorial", r"\| `D` at the loop's fixed point \| `(\S+)` nats", lambda: e3()["fixed_point"]["divergence"], 0.5),
    ("tutorial", r"\| \*\*bias\*\* .*? \| `(\S+)` nats", lambda: e3()["fixed_point"]["bias"], 0.5),
    ("tutorial", r"total variation between learned `P` and `Q` \| `(\S+)`", _e3_total_variation, 0.5),
    ("tutorial", r"\(total variation `(\S+)`\)", _e3_total_variation, 0.5),
    ("tutorial", r"reduced loop states \| `(\d+)` \((\d) normalisation and (\d) neutral",
     lambda: (e3()["closed_loop"]["reduced_states"], e3()["closed_loop"]["removed_modes"]["normalisation"],
              e3()["closed_loop"]["removed_modes"]["neutral"]), 0),
    ("tutorial", r"slowest closed-loop rate \| `(\S+)` per", lambda: e3()["closed_loop"]["slowest_rate"], 0.5),
    ("tutorial", r"minimum damping ratio \| `(\S+)`", lambda: e3()["closed_loop"]["damping_ratio_min"], 0.5),
    ("tutorial", r"the free means, `(\S+)` nats above", lambda: e3()["fixed_point"]["bias"], 0.5),
    ("tutorial", r"\| 0\.02 \| (\S+) \|", lambda: _bias_at_gamma(0.02), 0.5),
    ("tutorial", r"\| 0\.1 \| (\S+) \|", lambda: e3()["fixed_point"]["bias"], 0.5),
    ("tutorial", r"\| 1\.0 \| (\S+) \|", lambda: _bias_at_gamma(1.0), 0.5),
    ("tutorial", r"slowest eigenvalue, `−(\S+)`, is\n(\d+) times faster than the slowest quasi-static rate `(\S+)`",
     lambda: (e3()["closed_loop"]["slowest_rate"], e3()["closed_loop"]["slowest_rate"]
              / e3()["quasi_static"]["slowest_rate"], e3()["quasi_static"]["slowest_rate"]), 0.5),
    ("tutorial", r"damping down to `(\S+)`", lambda: e3()["closed_loop"]["damping_ratio_min"], 0.5),
    ("tutorial", r"`eps_crit = (\S+)`, a gain margin of `(\S+)`",
     lambda: (e3()["margins"]["eps_crit"], e3()["margins"]["gain_margin"]), 0.5),
    ("tutorial", r"With (\w+)\n  identifiable directions", lambda: e3()["margins"]["identifiable_directions"], 0),
    ("tutorial", r"The bandwidth, `(\S+)` rad", lambda: e3()["disturbance"]["bandwidth"], 0.5),
    ("tutorial", r"settles only after `(\S+)` time\n  units", lambda: e3()["disturbance"]["step"]["settling_time"], 0.5),
    ("tutorial", r"\(rise `(\S+)`\)", lambda: e3()["disturbance"]["step"]["rise_time"], 0.5),
    ("tutorial", r"dissipate \(`(\S+)` kT per time\n  unit per copy",
     lambda: e3()["thermodynamics"]["fixed_point"]["clamped"], 0.5),
    ("tutorial", r"the learning reactions `(\S+)` kT per time unit",
     lambda: e3()["thermodynamics"]["fixed_point"]["learning"], 0.5),
    ("tutorial", r"costs `(\S+)` kT, because", lambda: e3()["thermodynamics"]["episode_total"], 0.5),
    ("tutorial", r"the Hessian metric of `D`, at `t = (\S+)`\)",
     lambda: e3()["thermodynamics"]["episode"]["settled_at"], 0.5),
    ("tutorial", r"`D` drops from (\S+) nats", lambda: (lambda m: m.divergence(m.theta0))(
        crnfb.load_model(ROOT / "examples" / "hidden_scaffold.toml")), 0.5),
    ("tutorial", r"levels off at the bias \(`(\S+)` nats\)", lambda: e3()["fixed_point"]["bias"], 0.5),
    ("tutorial", r"\n(\d+) reduced states, (\w+) learned species",
     lambda: (e3()["closed_loop"]["reduced_states"], len(e3()["model"]["learned"])), 0),
    # README: examples table and hidden units
    ("README.md", r"`examples/isomerisation_bimodal.toml` \| .*? \| (\S+) nats \|",
     lambda: _fit_divergence("isomerisation_bimodal"), 0.5),
    ("README.md", r"learns the bimodal target \| (\S+) nats", lambda: _fit_divergence("hidden_scaffold"), 0.5),
    ("README.md", r"`D ≈ (\S+)` nats where the best E2 fit stays at `(\S+)` nats",
     lambda: (_fit_divergence("hidden_scaffold"), _fit_divergence("isomerisation_bimodal")), 0.5),
    ("README.md", r"plateau with `D = (\S+)` nats where the scaffold", _e3_second_point, 0.5),
    # theory §5/§8: the chain is the example that does lose stability
    ("theory", r"that does become unstable, at `eps_crit ≈ (\S+)`\)", lambda: cached_analyse(
        crnfb.load_model(ROOT / "examples" / "chain.toml"), validate=False, figures=False).to_dict()["margins"]["eps_crit"],
     0.5),
]

WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "eleven": 11, "twelve": 12,
         "thirteen": 13, "Thirteen": 13}


@pytest.mark.parametrize("page,pattern,live,units", CLAIMS, ids=[f"{c[0]}:{c[1][:40]}" for c in CLAIMS])
def test_prose_number(page, pattern, live, units):
    text = {**PAGES, **PROSE}[page].read_text(encoding="utf-8")
    m = re.search(pattern, text)
    assert m, f"{page} no longer says {pattern!r}: update the page and this claim together"
    values = live()
    values = values if isinstance(values, tuple) else (values,)
    assert len(values) == len(m.groups())
    for token, value in zip(m.groups(), values):
        token = token.strip("`,;.")
        if token in WORDS:
            assert WORDS[token] == value, (token, value)
        elif isinstance(units, tuple):
            check = _validation(e1(), units[1])
            tol = check["tolerance"]
            assert abs(float(token) - value) <= max(unit(token), measured_allowance(check, value)), \
                f"{page}: the page says {token}, the check {units[1]!r} measures {value:.6g} (tolerance {tol})"
        elif units == 0:
            assert float(token) == value, (token, value)
        else:
            assert agrees(token, float(value), units), f"{page}: the page says {token}, the code gives {value:.6g}"


def test_e1_eps_crit_json_snippet():
    """The tutorial's ``report.json`` excerpt for E1's margins is the live one."""
    text = PAGES["tutorial"].read_text(encoding="utf-8")
    snippet = re.search(r"```json\n(.*?)```", text, flags=re.S).group(1).strip().rstrip(",")
    doc = json.loads("{" + snippet + "}")
    live = e1()["margins"]
    assert {k: live[k] for k in doc} == doc


def test_e1_eigenvalues_as_described():
    """``−0.5`` twice (split by rounding into a pair of order 1e-7), then ``−2, −3, −4``.

    A defective double root perturbed by rounding ``δ ≈ eps·|J|`` splits by ``√δ`` along the real
    or the imaginary axis, depending on the machine: both parts agree to ``√eps·max|λ|``
    (docs/theory.md §5), the simple roots to round-off.
    """
    ev = np.array(e1()["closed_loop"]["eigenvalues"])
    split = math.sqrt(np.finfo(float).eps) * np.abs(ev[:, 0] + 1j * ev[:, 1]).max()
    assert np.allclose(ev[:2, 0], -0.5, rtol=0, atol=split) and np.all(np.abs(ev[:2, 1]) < split)
    assert np.allclose(ev[2:5], [[-2, 0], [-3, 0], [-4, 0]], atol=1e-9)
    text = PAGES["tutorial"].read_text(encoding="utf-8")
    assert "`−0.5` twice" in text and "then `−2`,\n`−3`, `−4`" in text


def test_e3_pole_map_span():
    """"The pole map spans nearly eight decades": fastest over slowest closed-loop rate."""
    ev = np.array(e3()["closed_loop"]["eigenvalues"])
    decades = math.log10(np.max(-ev[:, 0]) / np.min(-ev[:, 0]))
    assert 7.5 <= decades < 8 and "spans nearly eight decades" in PAGES["tutorial"].read_text(encoding="utf-8")
