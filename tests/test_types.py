"""The package type-checks: mypy over every module under its installed ``crnfb.*`` name, zero errors.

``tools/typecheck.py`` hands mypy each file of ``src/crnfb``, ``feedback/`` and
``analysis/`` with the module name pyproject's ``package-dir`` gives it, so the
check needs no install of the package and no link tree (docs/decisions.md,
"Static analysis sees the installed names"). mypy is in the ``test`` extra.
A cold run takes about a minute on a shared two-core machine (mypy reads
numpy's and matplotlib's stubs), hence ``slow``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPECHECK = ROOT / "tools" / "typecheck.py"


def _typecheck_module():
    """``tools/typecheck.py`` as a module (``tools/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("crnfb_typecheck", TYPECHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_module_is_checked_under_its_installed_name():
    """The file list mypy gets covers every module of the three folders, named as the wheel installs it."""
    files = _typecheck_module().module_files()
    names = set(files.values())
    assert len(names) == len(files)                          # no module twice
    for pkg, folder in (("crnfb", "src/crnfb"), ("crnfb.feedback", "feedback"), ("crnfb.analysis", "analysis")):
        for path in (ROOT / folder).rglob("*.py"):
            assert files[path].startswith(pkg), (path, files[path])
    assert {"crnfb", "crnfb.feedback", "crnfb.feedback.io.sbml", "crnfb.feedback.io.sbml.importer",
            "crnfb.analysis", "crnfb.analysis.reporting.pipeline"} <= names


@pytest.mark.slow
def test_mypy_reports_no_error(tmp_path):
    """Not skipped without mypy: the test extra installs it, and a missing checker fails here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    r = subprocess.run([sys.executable, str(TYPECHECK), "--cache-dir", str(tmp_path / "mypy_cache")],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    out = r.stdout + r.stderr
    print(out)
    assert r.returncode == 0 and "Success: no issues found" in r.stdout, out[-6000:]
