"""The package installs under one root, ``crnfb`` (docs/decisions.md, "One root").

A distribution named ``analysis`` on the package index installs a top-level
``analysis`` module, and users keep folders called ``analysis/`` or
``feedback/`` in their own projects. Neither may shadow ours: with such
folders first on ``sys.path`` (and crashing on import), every command and
the public API still work.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
E1 = ROOT / "examples" / "birth_death.toml"


def _shadowing_folders(tmp_path: Path) -> dict:
    for name in ("analysis", "feedback"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def test_user_folders_named_analysis_or_feedback_do_not_shadow_the_package(tmp_path):
    env = _shadowing_folders(tmp_path)
    code = ("import crnfb, crnfb.analysis.cli.entry, crnfb.feedback.io.sbml\n"
            f"m = crnfb.load_model({str(E1)!r})\n"
            "res = crnfb.analyse(m, validate=False, figures=False)\n"
            "import math; assert abs(res.fixed_point.theta[0] - math.log(5)) < 1e-6\n"
            "print('crnfb ok')\n"
            "import analysis\n")          # the user's own module is still theirs to import
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert "crnfb ok" in r.stdout, r.stderr[-2000:]
    assert "the user's own analysis was imported" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "crnfb.analysis.cli", "check", str(E1)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "detailed balance holds" in r.stdout


def test_no_module_imports_the_bare_top_level_names():
    """Every import of our own code is ``crnfb.``-rooted or relative."""
    import ast
    bad = []
    for folder in ("feedback", "analysis", "src/crnfb"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                         else [])
                bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("analysis", "feedback")]
    assert not bad, bad


def test_the_crnfb_script_is_the_cli_packages_main():
    """``[project.scripts]`` names the entry module; ``from crnfb.analysis.cli import main`` is the same function."""
    import tomllib

    from crnfb.analysis.cli import main
    from crnfb.analysis.cli.entry import main as entry_main
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["crnfb"]
    module, _, func = script.partition(":")
    assert main is entry_main and (module, func) == ("crnfb.analysis.cli.entry", "main")


#: Public dataclasses of crnfb.analysis whose fields may be given by position, and why.
POSITIONAL_OK = {
    "Analysis": "one argument, the model: Analysis(model)",
    "ParamSpec": "a parsed --param option, (name, values)",
    "NoisePlan": "the noise check's internal plan, built in one place",
    "SparseDiffusion": "an operator built in one place, not a result",
    "LinearLoop": "the linearised system, built by linearise() only",
    "BrokenLoop": "the loop broken at theta, built by split_at_theta() only",
    "SymmetricPlant": "the plant in detailed-balance coordinates, built by symmetric_plant() only",
}


def test_result_values_are_built_by_keyword():
    """Issue 19, deliverable 4: a result dataclass with many fields (Margins has 25) is built by keyword
    only, so that a reordered or added field cannot shift the others silently."""
    import dataclasses
    import importlib
    import pkgutil

    import crnfb.analysis as A

    positional = []
    for info in pkgutil.walk_packages(A.__path__, "crnfb.analysis."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name, None)
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == mod.__name__
                    and not all(f.kw_only for f in dataclasses.fields(obj) if f.init)):
                positional.append(name)
    assert sorted(positional) == sorted(POSITIONAL_OK)
