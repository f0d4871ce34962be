"""Render the public API's numpy-style docstrings into ``docs/api.md``.

MkDocs has no autodoc without plugins (which this project does not use, so
that the docs build offline), so this script writes the API reference with
:mod:`inspect`. Run it after changing a docstring::

    python docs/gen_api.py            # rewrite docs/api.md
    python docs/gen_api.py --check    # exit 1 if docs/api.md is out of date (the test suite runs this)

Only modules tracked by git are documented (when git is available), so a
checkout with work in progress renders the same page as a clean clone.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "api.md"

#: (module, one-line description), in the order of the page
MODULES = [
    ("crnfb.feedback.modelfile", "Reading model files"),
    ("crnfb.feedback.model", "The learning problem as one value object"),
    ("crnfb.feedback.network", "Reaction networks and detailed balance"),
    ("crnfb.feedback.environment", "Environments Q(v)"),
    ("crnfb.feedback.statespace", "The class of one copy and its truncation"),
    ("crnfb.feedback.landscape", "The divergence landscape"),
    ("crnfb.feedback.ensembles", "The learning network at the ensemble level"),
    ("crnfb.feedback.loop", "The loop as python-control blocks"),
    ("crnfb.feedback.signals", "Environment signals a(t)"),
    ("crnfb.feedback.simulate", "Deterministic simulation"),
    ("crnfb.feedback.ssa", "Stochastic simulation"),
    ("crnfb.feedback.sbml", "SBML export"),
    ("crnfb.feedback.errors", "Errors"),
    ("crnfb.feedback.progress", "Progress bars"),
    ("crnfb.analysis.pipeline", "One call for the whole analysis"),
    ("crnfb.analysis.results", "The results object and report.json"),
    ("crnfb.analysis.summary", "The report's summary: text, Markdown, HTML"),
    ("crnfb.analysis.fixedpoints", "Quasi-static fixed points"),
    ("crnfb.analysis.linearise", "Loop fixed point and linearisation"),
    ("crnfb.analysis.stability", "Closed-loop stability"),
    ("crnfb.analysis.frequency", "Frequency responses"),
    ("crnfb.analysis.margins", "Gain and phase margins, eps_crit"),
    ("crnfb.analysis.disturbance", "Disturbance rejection"),
    ("crnfb.analysis.validation", "Validation against the nonlinear loop"),
    ("crnfb.analysis.noise", "Linear noise approximation"),
    ("crnfb.analysis.thermo", "Thermodynamic costs"),
    ("crnfb.analysis.tradeoffs", "Dissipation trade-offs"),
    ("crnfb.analysis.symbolic", "Symbolic loop"),
    ("crnfb.analysis.plots", "Figures"),
    ("crnfb.analysis.report", "crnfb report"),
    ("crnfb.analysis.sweep", "crnfb sweep"),
]

SECTION_ENTRIES = {"Parameters", "Returns", "Raises", "Attributes", "Yields", "Other Parameters", "Warns"}


def tracked_files() -> set[str] | None:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(out.stdout.split())


def module_available(name: str, tracked: set[str] | None) -> bool:
    rel = name.removeprefix("crnfb.").replace(".", "/") + ".py"   # installed as crnfb.<folder>
    if not (ROOT / rel).exists():
        return False
    return tracked is None or rel in tracked


def md_inline(text: str) -> str:
    text = re.sub(r":(?:func|class|meth|mod|attr|data|exc):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def split_sections(doc: str) -> list[tuple[str, list[str]]]:
    """``[(header or "", lines)]`` of a numpy docstring."""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.strip() and set(nxt.strip()) == {"-"} and len(nxt.strip()) >= len(line.strip()) - 1:
            out.append((line.strip(), []))
            i += 2
            continue
        out[-1][1].append(line)
        i += 1
    return out


def render_prose(lines: list[str]) -> list[str]:
    """Paragraphs; ``::`` literal blocks, doctests and indented blocks become fenced code."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i].strip())
                i += 1
            out += ["```python", *block, "```", ""]
            continue
        if line.startswith("    ") and (not out or out[-1] == "" or out[-1].endswith(":")):
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i][4:] if lines[i].startswith("    ") else "")
                i += 1
            while block and not block[-1].strip():
                block.pop()
            if out and out[-1].endswith("::"):
                out[-1] = out[-1][:-1]
            out += ["", "```text", *block, "```", ""]
            continue
        out.append(md_inline(line.rstrip()))
        i += 1
    return out


def render_entries(lines: list[str]) -> list[str]:
    out: list[str] = []
    cur: list[str] | None = None
    for line in lines:
        if not line.strip():
            continue
        if not line.startswith(" "):
            if cur is not None:
                out.append(" ".join(cur))
            head = line.strip()
            if " : " in head:
                name, typ = head.split(" : ", 1)
                cur = [f"- **{md_inline(name.strip())}** (*{md_inline(typ.strip())}*)"]
            else:
                cur = [f"- **{md_inline(head)}**"]
            first = True
        else:
            text = md_inline(line.strip())
            if cur is None:
                cur = ["-"]
            cur.append(("— " if first else "") + text)
            first = False
    if cur is not None:
        out.append(" ".join(cur))
    return out


def render_doc(doc: str | None) -> list[str]:
    if not doc:
        return ["*(no docstring)*", ""]
    out: list[str] = []
    for head, lines in split_sections(doc):
        if head:
            out += ["", f"**{head}**", ""]
            if head in SECTION_ENTRIES:
                out += render_entries(lines)
            elif head == "Examples":
                out += render_prose(lines) if any(">>>" in l for l in lines) else \
                    ["```python", *inspect.cleandoc("\n".join(lines)).splitlines(), "```"]
            else:
                out += render_prose(lines)
        else:
            out += render_prose(lines)
    out.append("")
    return out


class _Shown:
    """A default value shown by a short, environment-independent text."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _short_default(v):
    if type(v).__module__ == "numpy" and hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
        return _Shown(f"<array of shape {v.shape}>")
    if inspect.isfunction(v) or inspect.isclass(v):
        return _Shown(v.__name__)
    return v


def signature(obj) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    params = [p.replace(default=_short_default(p.default)) if p.default is not p.empty else p
              for p in sig.parameters.values()]
    text = str(sig.replace(parameters=params))
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def public_names(mod) -> list[str]:
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, o in vars(mod).items() if not n.startswith("_")
                 and (inspect.isfunction(o) or inspect.isclass(o)) and getattr(o, "__module__", "") == mod.__name__]
    return [n for n in names if inspect.isfunction(getattr(mod, n, None)) or inspect.isclass(getattr(mod, n, None))]


def render_class(name: str, cls) -> list[str]:
    out = [f"### class `{name}`", "", f"```python\n{name}{signature(cls)}\n```", ""]
    out += render_doc(cls.__doc__)
    methods = []
    for mname, m in vars(cls).items():
        if mname.startswith("_"):
            continue
        is_prop = isinstance(m, (property, functools.cached_property))
        fn = m.fget if isinstance(m, property) else getattr(m, "func", m)
        if isinstance(m, (staticmethod, classmethod)):
            fn = m.__func__
        if not (inspect.isfunction(fn) or is_prop):
            continue
        doc = inspect.getdoc(fn) or ""
        first = md_inline(doc.split("\n\n")[0].replace("\n", " ")) if doc else ""
        kind = "property" if is_prop else "method"
        sig = "" if kind == "property" else signature(fn).replace("(self, ", "(").replace("(self)", "()")
        methods.append(f"- `{mname}{sig}`" + (f" ({kind})" if kind == "property" else "") + (f" — {first}" if first else ""))
    if methods:
        out += ["**Methods and properties**", "", *methods, ""]
    return out


def render_function(name: str, fn) -> list[str]:
    return [f"### `{name}`", "", f"```python\n{name}{signature(fn)}\n```", "", *render_doc(fn.__doc__)]


def render() -> str:
    sys.path.insert(0, str(ROOT))
    tracked = tracked_files()
    out = ["# API reference", "",
           "Generated from the docstrings by `python docs/gen_api.py` (do not edit by hand; the test suite "
           "checks that this page is up to date). The command line is described in [CLI reference](cli.md).", ""]
    toc = []
    body = []
    for modname, title in MODULES:
        if not module_available(modname, tracked):
            continue
        mod = importlib.import_module(modname)
        anchor = modname.replace(".", "")
        toc.append(f"- [`{modname}`](#{anchor}) — {title}")
        body += [f"## {modname}", ""]
        mdoc = inspect.getdoc(mod) or ""
        first = mdoc.split("\n\n")[0] if mdoc else ""
        body += [md_inline(" ".join(first.split())), ""]
        for name in public_names(mod):
            obj = getattr(mod, name)
            body += render_class(name, obj) if inspect.isclass(obj) else render_function(name, obj)
    text = "\n".join(out + toc + [""] + body)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/api.md differs from the docstrings")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print("docs/api.md is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
