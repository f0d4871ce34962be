"""The package as users get it: sdist and wheel, ``twine check``, a fresh venv, the README's command; citation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _build_requirements_met() -> bool:
    """Whether this environment has every ``[build-system] requires`` at a matching version."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        req = Requirement(spec)
        try:
            if not req.specifier.contains(version(req.name), prereleases=True):
                return False
        except PackageNotFoundError:
            return False
    return True


def _pip_has_python_option() -> bool:
    """Whether this environment's pip can install into another interpreter (``--python``, pip >= 22.3)."""
    from importlib.metadata import version

    from packaging.version import Version
    return Version(version("pip")) >= Version("22.3")


def _modules(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.py")}


def _package_folders() -> dict[str, Path]:
    """``{installed package path "crnfb/feedback/io/sbml": source folder}`` from pyproject's packages and package-dir."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool["package-dir"]
    out = {}
    for pkg in tool["packages"]:
        base = max((m for m in mapping if pkg == m or pkg.startswith(m + ".")), key=len)
        out[pkg.replace(".", "/")] = ROOT / mapping[base] / pkg[len(base):].lstrip(".").replace(".", "/")
    return out


def test_every_package_folder_is_installed():
    """A sub-package on disk (a folder with ``__init__.py``) that pyproject's ``packages`` misses would be left
    out of the wheel without any error."""
    listed = {folder.resolve() for folder in _package_folders().values()}
    on_disk = {p.parent.resolve() for top in ("src/crnfb", "feedback", "analysis")
               for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts}
    assert on_disk == listed, (sorted(map(str, on_disk - listed)), sorted(map(str, listed - on_disk)))


def test_version_changelog_and_citation_agree_and_cff_is_valid():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    import crnfb
    assert crnfb.__version__ == VERSION            # read from the installed metadata, not a second copy
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    schema = json.loads((ROOT / "tests" / "data" / "cff" / "schema-1.2.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(cff)
    assert cff["cff-version"] == "1.2.0" and str(cff["version"]) == VERSION
    log = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in log and f"## [{VERSION}] - {cff['date-released']}" in log
    with pytest.raises(jsonschema.ValidationError):          # the schema does reject a broken file
        jsonschema.Draft7Validator(schema).validate({**cff, "authors": []})


@pytest.mark.slow
def test_wheel_builds_passes_twine_installs_in_a_fresh_venv_and_runs(tmp_path):
    pytest.importorskip("build", reason="'build' is not installed (test extra)")
    pytest.importorskip("twine", reason="'twine' is not installed (test extra)")
    dist = tmp_path / "dist"
    # sdist first, then the wheel built from the unpacked sdist (build's default): the sdist must suffice.
    # The build backend of this environment when it satisfies [build-system] requires (no download; .ci/run
    # upgrades setuptools), else an isolated build environment from the package index.
    isolation = ["--no-isolation"] if _build_requirements_met() else []
    r = subprocess.run([sys.executable, "-m", "build", *isolation, "--outdir", str(dist), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel = dist / f"crn_feedback-{VERSION}-py3-none-any.whl"
    sdist = dist / f"crn_feedback-{VERSION}.tar.gz"
    assert wheel.exists() and sdist.exists(), sorted(p.name for p in dist.iterdir())
    r = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    # the wheel: the packages pyproject lists (crnfb/, crnfb/feedback/, ...), every module of their folders,
    # and nothing else
    packages = _package_folders()
    names = zipfile.ZipFile(wheel).namelist()
    info = f"crn_feedback-{VERSION}.dist-info/"
    assert all(n.startswith(("crnfb/", info)) for n in names), [n for n in names if not n.startswith(("crnfb/", info))]
    assert {n.rsplit("/", 1)[0] for n in names if n.startswith("crnfb/")} == set(packages)
    assert {"crnfb", "crnfb/feedback", "crnfb/analysis"} <= set(packages)
    for pkg, folder in packages.items():
        assert {n.rsplit("/", 1)[1] for n in names if n.rsplit("/", 1)[0] == pkg} == _modules(folder), pkg
    assert f"{info}licenses/LICENSE" in names
    # the sdist: what the build needs, the licence, changelog, citation and examples; not the test suite
    top = f"crn_feedback-{VERSION}/"
    members = {m[len(top):] for m in tarfile.open(sdist).getnames() if m.startswith(top)}
    need = {"pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "CITATION.cff", "examples/birth_death.toml"} \
        | {(folder / m).relative_to(ROOT).as_posix() for folder in packages.values() for m in _modules(folder)}
    assert need <= members, sorted(need - members)
    assert not any(m.startswith(("tests/", "tools/")) for m in members)

    # a fresh venv, the wheel and its dependencies (no editable install; pip's cache is reused), the README's
    # command from there. Speed, not a weaker check: the venv gets no pip of its own (ensurepip took most of
    # this test's time), this environment's pip installs into it (pip >= 22.3, --python), and pip does not
    # byte-compile the dependencies (the report run below imports what it needs).
    venv = tmp_path / "venv"
    outer_pip = _pip_has_python_option()
    subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if outer_pip else []), str(venv)],
                   check=True, timeout=120)
    bin_ = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    pip = [sys.executable, "-m", "pip", "--python", str(bin_ / "python")] if outer_pip else \
        [str(bin_ / "python"), "-m", "pip"]
    r = subprocess.run([*pip, "install", "--quiet", "--no-compile", str(wheel)],
                       capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([str(bin_ / "python"), "-c", "import crnfb; print(crnfb.__file__); print(crnfb.__version__)"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    where, version = r.stdout.split()
    assert Path(where).is_relative_to(venv) and version == VERSION
    out = tmp_path / "report-e1"
    r = subprocess.run([str(bin_ / "crnfb"), "report", str(ROOT / "examples" / "birth_death.toml"), "-o", str(out),
                        "--no-validate"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    d = json.loads((out / "report.json").read_text())
    assert d["meta"]["package"] == VERSION and d["closed_loop"]["stable"] is True
    assert d["fixed_point"]["theta"]["X"] == pytest.approx(math.log(5.0), abs=1e-6)   # E1: ln of the mean
