"""Imports run one way: ``crnfb.feedback`` (the system) never imports ``crnfb.analysis``.

Walks the AST of every module under ``feedback/`` (no import is executed), so
imports inside functions and under ``TYPE_CHECKING`` count too. Also: no import
cycles inside the package, and no module reads another module's underscore names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FEEDBACK = Path(__file__).resolve().parents[1] / "feedback"


def _imports_analysis(node: ast.AST) -> str | None:
    """The offending module text if ``node`` imports the analysis package, else None."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            top = alias.name.split(".")
            if top[0] == "analysis" or top[:2] == ["crnfb", "analysis"]:
                return alias.name
    elif isinstance(node, ast.ImportFrom):
        mod = node.module or ""
        parts = mod.split(".") if mod else []
        if node.level == 0:
            if parts[:1] == ["analysis"] or parts[:2] == ["crnfb", "analysis"]:
                return mod
            if parts == ["crnfb"] and any(a.name == "analysis" for a in node.names):
                return "crnfb.analysis"
        elif node.level >= 2:  # from ..analysis import x  /  from .. import analysis
            if parts[:1] == ["analysis"] or (not parts and any(a.name == "analysis" for a in node.names)):
                return "." * node.level + mod
    elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
            "import_module", "__import__"):
        arg = node.args[0] if node.args else None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "analysis" in arg.value.split("."):
            return arg.value
    return None


def _offences(source: str) -> list[str]:
    return [f"line {n.lineno}: {bad}" for n in ast.walk(ast.parse(source))
            if (bad := _imports_analysis(n)) is not None]


@pytest.mark.parametrize("path", sorted(FEEDBACK.rglob("*.py")), ids=lambda p: str(p.relative_to(FEEDBACK)))
def test_feedback_never_imports_analysis(path):
    assert not _offences(path.read_text(encoding="utf-8")), path


@pytest.mark.parametrize("source", [
    "import crnfb.analysis.linear.linearise", "from crnfb.analysis.linear.linearise import linearise",
    "from crnfb import analysis", "from ..analysis import stability", "from .. import analysis",
    "import analysis", "from analysis.cli import main",
    "def f():\n    from crnfb.analysis import x\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crnfb.analysis.linear.linearise import LinearLoop\n",
    "import importlib\nimportlib.import_module('crnfb.analysis.cli.report')",
])
def test_the_walk_catches_every_form(source):
    assert _offences(source)


@pytest.mark.parametrize("source", [
    "from .ensembles import LearningNetwork", "import crnfb.feedback.model.model", "from crnfb.feedback import x",
    "from .analysis_tools import y", "import numpy.linalg",
])
def test_the_walk_passes_other_imports(source):
    assert not _offences(source)


# -- no import cycles inside the package ---------------------------------------------------------
ROOT = FEEDBACK.parent


def _modules() -> dict[str, Path]:
    """``crnfb.feedback...`` and ``crnfb.analysis...`` module names -> files."""
    out = {}
    for pkg in ("feedback", "analysis"):
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            out["crnfb." + ".".join(parts)] = p
    return out


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:`` (annotations only: never executed, so never a cycle)."""
    skip = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and getattr(n.test, "id", getattr(n.test, "attr", None)) == "TYPE_CHECKING":
            skip.update(id(m) for m in ast.walk(n))
    return skip


def import_graph(mods: dict[str, Path], sources: dict[str, str] | None = None) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (module level or inside functions; relative
    imports resolved; ``from pkg import sub`` is an edge to ``pkg.sub`` when that is a module)."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(sources[name] if sources else path.read_text(encoding="utf-8"))
        skip = _type_checking_only(tree)
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for n in ast.walk(tree):
            if id(n) in skip:
                continue
            if isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                if n.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - (n.level - 1)]
                    mod = ".".join(base + ([n.module] if n.module else []))
                else:
                    mod = n.module or ""
                subs = [f"{mod}.{a.name}" for a in n.names if f"{mod}.{a.name}" in mods]
                targets = subs + ([mod] if len(subs) < len(n.names) else [])
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``) or None (depth-first search, colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := visit(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (c := visit(u)):
            return c
    return None


def test_no_import_cycles_even_through_imports_inside_functions():
    """Imports run one way inside each package too: no module imports (at module level or inside a
    function) a module that imports it back, directly or through others."""
    cycle = find_cycle(import_graph(_modules()))
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("sources,cyclic", [
    ({"crnfb.analysis.a": "from crnfb.analysis import b\n", "crnfb.analysis.b": "def f():\n    from . import a\n"},
     True),
    ({"crnfb.analysis.a": "from crnfb.analysis.b import x\n",
      "crnfb.analysis.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crnfb.analysis.a import y\n"},
     False),
    ({"crnfb.analysis.a": "import crnfb.analysis.b\n", "crnfb.analysis.b": "import crnfb.analysis.c\n",
      "crnfb.analysis.c": "from .a import z\n"}, True),
])
def test_the_cycle_search_finds_cycles(sources, cyclic):
    mods = {m: Path(m.replace(".", "/") + ".py") for m in sources}
    assert (find_cycle(import_graph(mods, sources)) is not None) == cyclic


# -- no module reads another module's underscore names -------------------------------------------
def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _inside(pkg: str, target: str) -> bool:
    """Whether ``target``'s underscore parts are all private to a package ``pkg`` lies in (a private module
    such as ``crnfb.feedback.io.sbml._libsbml`` is for its own package's modules)."""
    parts = target.split(".")
    return all((pkg + ".").startswith(".".join(parts[:i]) + ".") for i, p in enumerate(parts) if _private(p))


def private_imports(source: str, name: str, is_package: bool = False) -> list[str]:
    """Where module ``name`` reads an underscore name of another ``crnfb`` module: ``from crnfb.x import _y``
    (absolute or relative), ``import crnfb.x._y``, or ``m._y`` on a name ``m`` it imported from ``crnfb``."""
    pkg = name if is_package else name.rsplit(".", 1)[0]
    tree = ast.parse(source)
    out, imported = [], set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg.split(".")[:len(pkg.split(".")) - (n.level - 1)]
                mod = ".".join(base + ([n.module] if n.module else []))
            else:
                mod = n.module or ""
            if mod.split(".")[0] != "crnfb":
                continue
            if not _inside(pkg, mod):
                out.append(f"line {n.lineno}: {mod}")
            for a in n.names:
                if _private(a.name) and not _inside(pkg, f"{mod}.{a.name}"):
                    out.append(f"line {n.lineno}: {mod}.{a.name}")
                imported.add(a.asname or a.name)
        elif isinstance(n, ast.Import):
            for a in n.names:
                if a.name.split(".")[0] == "crnfb":
                    if not _inside(pkg, a.name):
                        out.append(f"line {n.lineno}: {a.name}")
                    imported.add(a.asname or "crnfb")
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and _private(n.attr):
            chain, v = [n.attr], n.value
            while isinstance(v, ast.Attribute):
                chain.append(v.attr)
                v = v.value
            if isinstance(v, ast.Name) and v.id in imported:
                out.append(f"line {n.lineno}: {'.'.join([v.id, *reversed(chain)])}")
    return out


def _all_modules() -> dict[str, Path]:
    """Every module of the package (``crnfb`` itself included) -> its file."""
    return {**_modules(), "crnfb": ROOT / "src" / "crnfb" / "__init__.py"}


@pytest.mark.parametrize("name", sorted(_all_modules()))
def test_no_module_imports_another_modules_underscore_names(name):
    """A name another module needs is public (no underscore, in ``__all__``, with a docstring)."""
    path = _all_modules()[name]
    assert not private_imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py"), path


@pytest.mark.parametrize("source", [
    "from crnfb.analysis.analyses.margins import _modes",
    "from crnfb.analysis.analyses.margins import critical_rates, _theta_positions as pos",
    "def f():\n    from crnfb.analysis.linear.frequency import _shifted_lu\n",
    "from ..linear.frequency import _shifted_lu", "from ..reporting import _helper",
    "from crnfb.analysis.analyses import thermo\nnum = thermo._json_number\n",
    "import crnfb.analysis.analyses.thermo as T\nT._json_number(1)\n",
    "import crnfb.feedback.io.sbml._libsbml",
    "from crnfb.feedback.io.sbml._libsbml import COMPARTMENT",
])
def test_the_private_import_check_catches_every_form(source):
    assert private_imports(source, "crnfb.analysis.analyses.tradeoffs")


@pytest.mark.parametrize("source,name", [
    ("from crnfb.analysis.analyses.margins import critical_rates, theta_positions", "crnfb.analysis.analyses.x"),
    ("from ._libsbml import COMPARTMENT", "crnfb.feedback.io.sbml.export"),
    ("from . import _libsbml", "crnfb.feedback.io.sbml.export"),
    ("from crnfb.feedback.io.sbml._libsbml import COMPARTMENT", "crnfb.feedback.io.sbml.importer"),
    ("from ..errors import check_number as _number", "crnfb.feedback.io.modelfile"),
    ("from crnfb.feedback.model.model import Model\nModel.__name__\n", "crnfb.analysis.analyses.x"),
    ("import numpy as np\nnp._NoValue\n", "crnfb.analysis.analyses.x"),
    ("from crnfb.feedback.model import randomenv\nrandomenv.__all__\n", "crnfb.analysis.analyses.x"),
])
def test_the_private_import_check_passes_public_names(source, name):
    assert not private_imports(source, name)


# -- the sub-packages' order: the data flow of docs/architecture.md -------------------------------------
#: Each package's sub-packages (and top-level modules) in the order data flows through them: a module
#: imports only from its own sub-package or an earlier one.
SUBPACKAGE_ORDER = {
    "feedback": ["errors", "numerics", "model", "dynamics", "io"],
    "analysis": ["linear", "analyses", "reporting", "cli"],
}
#: The documented exceptions (docs/architecture.md, "Two packages, one direction"): the atomic writers of
#: ``io.files`` serve the simulators' CSV outputs, and the fluctuation analysis returns a ``Summary``
#: (plain values that import nothing).
BACK_EDGES = {
    ("crnfb.feedback.dynamics.integrate", "crnfb.feedback.io.files"),
    ("crnfb.feedback.dynamics.ssa", "crnfb.feedback.io.files"),
    ("crnfb.analysis.analyses.fluctuation", "crnfb.analysis.reporting.summary"),
}


def _rank(module: str) -> tuple[str, int] | None:
    """``(package, position of its sub-package)`` of a module; None for a package's own ``__init__``."""
    parts = module.split(".")
    if len(parts) < 3:
        return None
    order = SUBPACKAGE_ORDER[parts[1]]
    assert parts[2] in order, f"{module}: sub-package {parts[2]!r} is not in SUBPACKAGE_ORDER"
    return parts[1], order.index(parts[2])


def test_subpackages_import_in_the_order_of_the_data_flow():
    """No module imports (anywhere, functions included) from a later sub-package of its package than its
    own, except the documented back-edges; and every documented back-edge still exists (else remove it)."""
    graph = import_graph(_modules())
    edges = {(a, b) for a, targets in graph.items() for b in targets}
    late = sorted((a, b) for a, b in edges
                  if (ra := _rank(a)) and (rb := _rank(b)) and ra[0] == rb[0] and rb[1] > ra[1])
    assert set(late) <= BACK_EDGES, [e for e in late if e not in BACK_EDGES]
    assert BACK_EDGES <= set(late), sorted(BACK_EDGES - set(late))
