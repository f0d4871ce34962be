"""``crnfb report`` and :mod:`crnfb.analysis.reporting.results`: files, report.json contract, exit codes, atomicity."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crnfb.feedback.io.files import MARKER, OutputError

from crnfb.analysis.reporting import results as R
from crnfb.analysis.cli.entry import main
from crnfb.analysis.cli.report import FIGURES, write_report
from crnfb.analysis.reporting.pipeline import analyse
from crnfb.analysis.reporting.results import REQUIRED_KEYS, get_path

ROOT = Path(__file__).resolve().parent.parent
E1 = ROOT / "examples" / "birth_death.toml"
CHAIN = ROOT / "examples" / "chain.toml"
#: E1 has no random environment: every figure but fluctuation.png (report_figures)
E1_FIGURES = [f for f in FIGURES if f != "fluctuation"]
FILES = ["report.json", "report.md", "report.html"] + [f"{f}.png" for f in E1_FIGURES]


def interface_keys() -> list[str]:
    """The report.json keys docs/cli.md guarantees (the code block under ``### report.json``).

    When the project's external interface specification sits beside the repository
    (``../shared/spec/INTERFACE.md``, as on the development machine), every key it
    requires must be in the documented list too; the repository itself never depends on it.
    """
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    block = text.split("### report.json", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    keys = [line.split()[0] for line in block.splitlines() if line.strip()]
    for spec in (ROOT.parent / "shared" / "spec" / "INTERFACE.md", Path("/work/shared/spec/INTERFACE.md")):
        if spec.exists():
            external = []
            for line in spec.read_text().split("## report.json", 1)[1].split("```", 2)[1].splitlines():
                parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
                if not parts[0]:
                    continue
                heads = [k.strip() for k in parts[0].split(",")]
                external.extend(heads)
                sub = re.match(r"\{([a-z_, ]+)\}", parts[1] if len(parts) > 1 else "")
                if sub and len(heads) == 1:
                    external.extend(f"{heads[0]}.{x.strip()}" for x in sub.group(1).split(","))
            missing = sorted(set(external) - set(keys))
            assert not missing, f"docs/cli.md does not list {missing}"
            break
    return keys


def _strict_load(path: Path) -> dict:
    def bad(x):
        raise ValueError(f"non-finite constant {x} in {path}")
    return json.loads(path.read_text(), parse_constant=bad)


def _walk_numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_numbers(v, f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, float):
        yield path, obj


@pytest.fixture(scope="module")
def e1_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("e1") / "report-e1"
    rc = main(["report", str(E1), "-o", str(out)])
    return rc, out


@pytest.fixture(scope="module")
def e1_results(e1):
    return analyse(e1, validate=False)


# -- the command -----------------------------------------------------------------------------
def test_report_e1_exit_0_and_every_file(e1_report):
    rc, out = e1_report
    assert rc == 0
    for f in FILES:
        assert (out / f).is_file(), f
        assert (out / f).stat().st_size > 500, f
    # nothing left beside it
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report-e1")]


def test_report_json_has_every_interface_key(e1_report):
    _, out = e1_report
    d = _strict_load(out / "report.json")
    keys = interface_keys()
    assert len(keys) >= 30
    assert set(keys) <= set(REQUIRED_KEYS) | {"fixed_point.bias", "fixed_point.optimum"}
    for k in set(keys) | set(REQUIRED_KEYS):
        get_path(d, k)          # KeyError if absent


def test_report_json_numbers_finite_and_nulls_have_reasons(e1_report):
    _, out = e1_report
    d = _strict_load(out / "report.json")
    for path, v in _walk_numbers(d):
        assert math.isfinite(v), path
    for k in REQUIRED_KEYS:
        if get_path(d, k) is None:
            head, _, last = k.rpartition(".")
            sec = get_path(d, head) if head else d
            assert isinstance(sec.get(f"{last}_reason"), str) and sec[f"{last}_reason"], k


def test_report_e1_values(e1_report):
    """E1 (docs/theory.md §8): Poisson(E_Q x) learned; s^2 + s + eps mu; rate eps mu."""
    _, out = e1_report
    d = _strict_load(out / "report.json")
    assert d["model"]["name"] == "birth-death"
    assert d["model"]["species"] == ["X"] and d["model"]["visible"] == ["X"] and d["model"]["hidden"] == []
    assert d["fixed_point"]["theta"]["X"] == pytest.approx(math.log(5.0), abs=1e-6)
    assert abs(d["fixed_point"]["divergence"]) < 1e-8
    assert d["quasi_static"]["rates"] == pytest.approx([0.05 * 5.0], rel=1e-6)
    assert d["closed_loop"]["stable"] is True
    ev = np.array(d["closed_loop"]["eigenvalues"])
    assert ev[0, 0] == pytest.approx(-0.5, abs=1e-5) and ev[1, 0] == pytest.approx(-0.5, abs=1e-5)
    assert d["closed_loop"]["slowest_rate"] == pytest.approx(0.5, abs=1e-5)
    # L(s) = eps mu kappa / (s (s + kappa)): crossover and phase margin in closed form
    wc = math.sqrt((-1 + math.sqrt(1 + 4 * 0.25 ** 2)) / 2)
    assert d["margins"]["crossover_frequency"] == pytest.approx(wc, rel=1e-3)
    assert d["margins"]["phase_margin_deg"] == pytest.approx(90 - math.degrees(math.atan(wc)), abs=0.05)
    assert d["validation"], d.get("validation_reason")     # the report ran with validation
    assert all(c["passed"] is not False for c in d["validation"])     # a check not made is null
    for c in d["validation"]:
        assert set(c) >= {"quantity", "predicted", "simulated", "rel_error", "passed"}


def test_report_md_and_html(e1_report):
    _, out = e1_report
    md = (out / "report.md").read_text()
    assert "# Stability report: birth-death" in md
    assert "| quantity | value |" in md
    for f in E1_FIGURES:
        assert f"({f}.png)" in md
    assert "fluctuation.png" not in md and not (out / "fluctuation.png").exists()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(E1_FIGURES)
    assert not re.search(r"(src|href)=['\"](https?:)?//", html)   # self-contained
    assert "<table>" in html and "STABLE" in html


def test_report_bad_input_exit_2_and_nothing_written(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[species.X]\nvisible = true\n[[reactions]]\neq = "0 <-> Y"\n')
    out = tmp_path / "out"
    assert main(["report", str(bad), "-o", str(out)]) == 2
    assert "bad.toml" in capsys.readouterr().err
    assert not out.exists()
    assert main(["report", str(tmp_path / "missing.toml"), "-o", str(out)]) == 2
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_report_unstable_chain_exit_1_report_written(tmp_path):
    text = CHAIN.read_text().replace("eps = 0.05", "eps = 10.0")
    model = tmp_path / "chain_fast.toml"
    model.write_text(text)
    out = tmp_path / "unstable"
    assert main(["report", str(model), "-o", str(out), "--no-validate"]) == 1
    d = _strict_load(out / "report.json")
    assert d["closed_loop"]["stable"] is False
    assert d["closed_loop"]["slowest_rate"] < 0
    assert d["margins"]["gain_margin"] is None or d["margins"]["gain_margin"] < 1
    for f in FILES:
        assert (out / f).is_file(), f
    assert "UNSTABLE" in (out / "report.md").read_text()


def test_write_report_is_atomic(tmp_path, e1_results, monkeypatch):
    out = tmp_path / "rep"
    from crnfb.analysis.reporting.summary import Summary

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(Summary, "as_html", boom)     # fails after the figures and report.json are written
    with pytest.raises(RuntimeError):
        write_report(e1_results, out)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_report(e1_results, out)
    write_report(e1_results, out)          # a rerun replaces a directory holding only its files as a whole
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES + [MARKER])   # the marker: ours to replace
    (out / "stale.txt").write_text("old")  # a file crnfb did not write: refused, kept even with force
    with pytest.raises(OutputError, match="stale.txt"):
        write_report(e1_results, out)
    write_report(e1_results, out, force=True)
    assert (out / "stale.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]


def test_missing_sections_are_null_with_reasons(e1, monkeypatch):
    from crnfb.analysis.analyses import context
    from crnfb.analysis.reporting import pipeline, section_thermodynamics

    def unavailable(*a, **k):
        raise R.Unavailable("not available in this installation")
    for name in ("margins", "disturbance"):      # computed by the report's Analysis
        monkeypatch.setattr(context, name, unavailable)
    monkeypatch.setattr(pipeline, "validate_checks", unavailable)
    monkeypatch.setattr(section_thermodynamics, "thermodynamics", unavailable)
    res = analyse(e1, validate=True)
    d = json.loads(res.to_json(), parse_constant=lambda x: pytest.fail(x))
    for k in REQUIRED_KEYS:
        get_path(d, k)
    assert d["margins"]["eps_crit"] is None and "not available" in d["margins"]["eps_crit_reason"]
    assert d["disturbance"]["step"]["rise_time"] is None and d["disturbance"]["step"]["rise_time_reason"]
    assert d["thermodynamics"]["episode_total"] is None and d["thermodynamics"]["episode_total_reason"]
    assert d["validation"] is None and "not available" in d["validation_reason"]
    assert res.step is None and "not available" in res.reasons["disturbance"]
    assert res.exit_code == 0
    text = res.summary().as_text()
    assert "n/a" in text and "birth-death" in text


def test_failing_section_does_not_lose_the_report(e1, monkeypatch):
    from crnfb.analysis.analyses import context

    def broken(loop, **kw):
        raise ZeroDivisionError("bug")
    monkeypatch.setattr(context, "margins", broken)      # what the report's Analysis calls
    with pytest.warns(RuntimeWarning, match="margins failed"):
        res = analyse(e1, validate=False, figures=False)
    d = res.to_dict()
    assert d["margins"]["gain_margin"] is None
    assert "ZeroDivisionError" in d["margins"]["gain_margin_reason"]
    assert d["disturbance"]["bandwidth"] is not None       # the other sections are kept
    # a crash is an internal error (exit 3), never a clean exit, and the verdict names the section
    assert res.exit_code == 3 and d["verdict"]["internal_errors"] == ["margins"]
    assert "internal error in margins" in res.summary().as_text()


def test_report_command_exits_3_when_a_section_crashed(tmp_path, monkeypatch, capsys):
    from crnfb.analysis.analyses import context

    def broken(*a, **kw):
        raise ZeroDivisionError("bug")
    monkeypatch.setattr(context, "margins", broken)      # what the report's Analysis calls
    out = tmp_path / "rep"
    assert main(["report", "--no-validate", str(E1), "-o", str(out)]) == 3
    d = json.loads((out / "report.json").read_text())
    assert d["verdict"]["exit_code"] == 3 and d["margins"]["gain_margin"] is None
    assert "internal error: section margins failed (ZeroDivisionError: bug)" in capsys.readouterr().err


def test_clean_replaces_non_finite():
    d = R._clean(R._plain({"a": float("inf"), "b": {"c": float("nan"), "c_reason": "given"},
                           "v": [1.0, float("nan")], "z": np.float64(2.0), "w": np.array([1, 2])}))
    assert d["a"] is None and d["a_reason"] == "infinite"
    assert d["b"]["c"] is None and d["b"]["c_reason"] == "given"
    assert d["v"] == [1.0, None] and d["v_reason"]
    assert d["z"] == 2.0 and d["w"] == [1, 2]
    json.dumps(d, allow_nan=False)


def test_summary_table(e1_results):
    """One Summary, three renderings with the same content."""
    summ = e1_results.summary()
    text, md, html = summ.as_text(), summ.as_markdown(), summ.as_html()
    assert str(summ) == text
    for word in ("birth-death", "Learned fixed point", "at the fixed point (nats)", "Closed loop", "phase margin", "eps_crit",
                 "bandwidth", "H∞ norm", "rise time", "Validation", "Thermodynamics", "STABLE"):
        assert word in text and word in md and word in html, word
    assert max(len(line) for line in text.splitlines()) <= 78
    d = e1_results.to_dict()
    pm = format(d["margins"]["phase_margin_deg"], ".4g")
    assert pm in text and pm in md and pm in html
    assert md.count("\n## ") == len(summ.tables)


def test_results_scalars_and_exit_code(e1_results):
    s = e1_results.scalars()
    assert set(s) == set(R.SCALAR_KEYS)
    assert s["closed_loop.stable"] is True
    assert e1_results.exit_code == 0


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


@pytest.mark.skipif(_chromium() is None, reason="chromium not installed")
def test_report_html_renders_in_headless_chromium(e1_report, tmp_path):
    _, out = e1_report
    shot = tmp_path / "shot.png"
    # no background networking: the machine has no network beyond its package registries
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1100,3000", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   check=False, capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 50_000
    from matplotlib.image import imread
    img = imread(shot)
    assert img.std() > 0.05          # text, tables and figures, not a blank page


def test_docs_build_strict(tmp_path):
    """The site builds offline with no warning; the API page is rendered from the docstrings (mkdocstrings)."""
    for plugin in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter"):
        pytest.importorskip(plugin, reason="the docs extra is not installed")
    # the notebook is executed by tests/test_notebook.py; here it is only rendered
    env = {**os.environ, "CRNFB_DOCS_EXECUTE": "false"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for obj in ("crnfb.feedback.io.modelfile.load_model", "crnfb.analysis.reporting.pipeline.analyse",
                "crnfb.analysis.reporting.results.Results.summary", "crnfb.analysis.cli.sweep.run_sweep"):
        assert f'id="{obj}"' in api, obj
    assert ":func:`" not in api and ":class:`" not in api          # Sphinx roles rendered as code
    assert "hidden" in (tmp_path / "site" / "e3_hidden_units" / "index.html").read_text(encoding="utf-8")


def test_api_page_has_every_module():
    """docs/api.md has one mkdocstrings directive per public module and package of crnfb.feedback and
    crnfb.analysis (a new, split or renamed module must be added there); the command line itself is docs/cli.md."""
    listed = re.findall(r"^::: (crnfb\.\S+)$", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), re.M)
    modules = set()
    for pkg in ("feedback", "analysis"):
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if len(parts) > 1 and not any(x.startswith("_") for x in parts):
                modules.add("crnfb." + ".".join(parts))
    modules -= {"crnfb.analysis.cli.entry"}
    assert len(listed) == len(set(listed))
    assert set(listed) == modules, (sorted(modules - set(listed)), sorted(set(listed) - modules))


def test_report_output_is_a_file_exit_2(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    assert main(["report", str(E1), "-o", str(f), "--no-validate"]) == 2
    assert f.read_text() == "x"
