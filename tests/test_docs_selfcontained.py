"""The repository stands alone: code, docs, examples and outputs cite only its own docs.

The mathematics is ``docs/theory.md`` (sections ``§1``..``§8``, anchors ``#s1``..),
the file format ``docs/model-file.md``, the command line and report keys
``docs/cli.md``. No file or output may point to the specification documents
the project was written from, which are not part of the repository; every
``docs/theory.md §N`` citation and every ``theory.md#sN`` link must name a
section that exists.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

import crnfb
from crnfb.analysis.cli.entry import main

ROOT = Path(__file__).resolve().parent.parent
THEORY = ROOT / "docs" / "theory.md"

# The two names are assembled so that this file does not trip its own check.
EXTERNAL = re.compile(r"\b(?:MODEL|INTERFACE)" + r"\.md\b")

#: Where references live: code, docs, examples, benchmarks, tests, build and CI files.
SCANNED = ["feedback/**/*.py", "analysis/**/*.py", "src/**/*.py", "docs/*.md", "docs/*.py",
           "examples/**/*", "benchmarks/*.py", "tests/*.py", "tools/*.py", "README.md", "pyproject.toml",
           "mkdocs.yml", ".ci/run"]

#: Exempt, with the reason.
EXEMPT = {
    # this file names the pattern it looks for
    "tests/test_docs_selfcontained.py",
}


def _exempt_functions(path: Path, text: str) -> str:
    """Blank out ``tests/test_report.py::interface_keys``: the one place that reads the
    external report-key list, when a copy sits beside the repository, to compare it with
    docs/cli.md's list."""
    if path.name != "test_report.py":
        return text
    lines = text.splitlines()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == "interface_keys":
            for i in range(node.lineno - 1, node.end_lineno):
                lines[i] = ""
    return "\n".join(lines)


def scanned_files() -> list[Path]:
    files = set()
    for pattern in SCANNED:
        for p in ROOT.glob(pattern):
            if p.is_file() and p.relative_to(ROOT).as_posix() not in EXEMPT and "__pycache__" not in p.parts:
                files.add(p)
    return sorted(files)


def test_scan_covers_the_tree():
    rel = {p.relative_to(ROOT).as_posix() for p in scanned_files()}
    for must in ("docs/theory.md", "docs/cli.md", "README.md", "examples/birth_death.toml",
                 "feedback/model/network.py", "analysis/cli/entry.py", "src/crnfb/__init__.py", "tests/test_report.py"):
        assert must in rel, must


def test_no_reference_to_external_specification_in_the_tree():
    hits = []
    for p in scanned_files():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:     # binary files in examples/ (none today)
            continue
        text = _exempt_functions(p, text)
        for n, line in enumerate(text.splitlines(), 1):
            if EXTERNAL.search(line):
                hits.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "cite docs/theory.md §N, docs/model-file.md or docs/cli.md instead:\n" + "\n".join(hits)


def test_exemption_is_narrow():
    """Outside ``interface_keys`` test_report.py is scanned like any other file."""
    text = (ROOT / "tests" / "test_report.py").read_text()
    blanked = _exempt_functions(ROOT / "tests" / "test_report.py", text)
    assert len(blanked.splitlines()) == len(text.splitlines())
    assert "def test_" in blanked and "def interface_keys" not in blanked


# -- outputs ------------------------------------------------------------------------------
def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


@pytest.fixture(scope="module")
def e1_result():
    return crnfb.analyse(crnfb.load_model(ROOT / "examples" / "birth_death.toml"), validate=False, figures=False)


def test_report_strings_cite_only_the_repository(e1_result):
    d = e1_result.to_dict()
    strings = list(_strings(d))
    assert any("docs/cli.md" in s for s in strings)          # the units string cites our page (scan is live)
    bad = [s for s in strings if EXTERNAL.search(s)]
    assert not bad, bad
    assert not EXTERNAL.search(e1_result.summary().as_text())


def test_documented_report_keys_exist_in_a_live_report(e1_result):
    d = e1_result.to_dict()
    keys = documented_report_keys()
    assert len(keys) >= 30
    for k in keys:
        node = d
        for part in k.split("."):
            assert isinstance(node, dict) and part in node, f"docs/cli.md lists {k}, the report lacks it"
            node = node[part]


def documented_report_keys() -> list[str]:
    """The dotted keys in the code block under ``### report.json`` of docs/cli.md."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    block = text.split("### report.json", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("command", ["check", "fit", "report", "simulate", "sweep", "export", "convert"])
def test_cli_help_cites_only_the_repository(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([command, "--help"])
    assert code == 0
    assert not EXTERNAL.search(out.getvalue())


def test_sbml_notes_cite_only_the_repository(tmp_path):
    pytest.importorskip("libsbml")
    # E1 uses equilibrium clamping, which the learning export refuses without a speed-up
    for extra in ([], ["--learning", "--speedup", "1000"]):
        target = tmp_path / f"e1{'_learning' if extra else ''}.xml"
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["export", str(ROOT / "examples" / "birth_death.toml"), "--sbml", str(target), *extra]) == 0
        text = target.read_text()
        assert "docs/theory.md" in text
        assert not EXTERNAL.search(text)


# -- citations of docs/theory.md resolve ------------------------------------------------------
def theory_sections() -> set[str]:
    """Section ids of docs/theory.md: ``{#s1}`` .. from the headings; ``5a`` also while the
    placeholder comment for it stands where the section will go."""
    text = THEORY.read_text(encoding="utf-8")
    ids = set(re.findall(r"^##+ .*\{#s(\w+)\}\s*$", text, flags=re.M))
    if "<!-- §5a" in text:
        ids.add("5a")
    return ids


def test_theory_has_the_numbered_sections():
    text = THEORY.read_text(encoding="utf-8")
    heads = re.findall(r"^## (\d+a?)\. .*\{#s(\w+)\}\s*$", text, flags=re.M)
    assert heads, "no numbered sections"
    for number, anchor in heads:
        assert number == anchor
    numbers = [n for n, _ in heads if not n.endswith("a")]
    assert numbers == [str(i) for i in range(1, 9)]


# "docs/theory.md §4-5, 8", "docs/theory.md §1 and 4", "docs/theory.md\n    section 4"
CITATION = re.compile(r"theory\.md(?:\s|#|\*|`|')*(?:§|section\s+)((?:\d+a?)(?:\s*(?:,|-|–|and)\s*\d+a?)*)")


def _expand(spec: str) -> list[str]:
    out = []
    for part in re.split(r"\s*(?:,|and)\s*", spec):
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            lo, hi = (int(x) for x in re.split(r"[-–]", part))
            out += [str(i) for i in range(lo, hi + 1)]
        elif part:
            out.append(part.strip())
    return out


def test_expand_citation_lists():
    assert _expand("4-5, 8") == ["4", "5", "8"]
    assert _expand("1 and 4") == ["1", "4"]
    assert _expand("5a") == ["5a"]
    m = CITATION.search("(docs/theory.md\n        section 4), whatever")
    assert m and _expand(m.group(1)) == ["4"]


def test_every_theory_citation_names_an_existing_section():
    sections = theory_sections()
    bad, seen = [], 0
    for p in scanned_files():
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for m in CITATION.finditer(text):
            seen += 1
            for s in _expand(m.group(1)):
                if s not in sections:
                    line = text.count("\n", 0, m.start()) + 1
                    bad.append(f"{p.relative_to(ROOT)}:{line}: §{s}")
        for m in re.finditer(r"theory\.md#s(\d+a?)\b", text):
            seen += 1
            if m.group(1) not in sections:
                bad.append(f"{p.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: #s{m.group(1)}")
    assert seen >= 40          # the pattern still finds the citations that are there
    assert not bad, "\n".join(bad)
