"""Imports run one way: ``crnfb.feedback`` (the system) never imports ``crnfb.analysis``.

Walks the AST of every module under ``feedback/`` (no import is executed), so
imports inside functions and under ``TYPE_CHECKING`` count too.
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
    "import crnfb.analysis.linearise", "from crnfb.analysis.linearise import linearise",
    "from crnfb import analysis", "from ..analysis import stability", "from .. import analysis",
    "import analysis", "from analysis.cli import main",
    "def f():\n    from crnfb.analysis import x\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from crnfb.analysis.linearise import LinearLoop\n",
    "import importlib\nimportlib.import_module('crnfb.analysis.report')",
])
def test_the_walk_catches_every_form(source):
    assert _offences(source)


@pytest.mark.parametrize("source", [
    "from .ensembles import LearningNetwork", "import crnfb.feedback.model", "from crnfb.feedback import x",
    "from .analysis_tools import y", "import numpy.linalg",
])
def test_the_walk_passes_other_imports(source):
    assert not _offences(source)
