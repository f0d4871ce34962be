"""Griffe extension for the API page: the package-dir mapping, read from pyproject.toml.

griffe (mkdocstrings' reader) finds a package by its folder and its
sub-packages by the folders below it, so it finds ``crnfb`` in ``src/crnfb``
but not ``crnfb.feedback`` (``feedback/``) or ``crnfb.analysis``
(``analysis/``), which ``[tool.setuptools.package-dir]`` maps there. When
griffe has loaded a package, this visits each folder the mapping puts under it,
file by file, with the module names the wheel installs (so relative imports
resolve to ``crnfb.feedback...``), and attaches it as a sub-package. Statically:
nothing is imported, no install and no link tree is needed (docs/decisions.md,
"Static analysis sees the installed names").
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parent.parent


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """pyproject's ``package-dir`` mapping: package name -> folder."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return {pkg: root / folder for pkg, folder in config["tool"]["setuptools"]["package-dir"].items()}


class PackageDirs(griffe.Extension):
    """Attach the folders ``package-dir`` maps below a loaded package as its sub-packages."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        mapped = {name: folder for name, folder in package_dirs().items() if name.startswith(pkg.path + ".")}
        for name in sorted(mapped, key=lambda n: n.count(".")):         # parents before their children
            parent_path, _, leaf = name.rpartition(".")
            parent = pkg if parent_path == pkg.path else pkg.get_member(parent_path[len(pkg.path) + 1:])
            module = _visit_folder(leaf, mapped[name], parent, loader)
            parent.set_member(leaf, module)
            loader.expand_exports(module)
            loader.expand_wildcards(module, external=False)


def _visit_file(name: str, path: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
    code = path.read_text(encoding="utf-8-sig")
    if loader.store_source:
        loader.lines_collection[path] = code.splitlines(keepends=False)
    return griffe.visit(name, filepath=path, code=code, extensions=loader.extensions, parent=parent,
                        docstring_parser=loader.docstring_parser, docstring_options=loader.docstring_options,
                        lines_collection=loader.lines_collection, modules_collection=loader.modules_collection)


def _visit_folder(name: str, folder: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
    """The package in ``folder`` (its ``__init__.py``) with its modules and sub-packages, as ``parent.name``."""
    package = _visit_file(name, folder / "__init__.py", parent, loader)
    for path in sorted(folder.iterdir()):
        if path.suffix == ".py" and path.name != "__init__.py":
            package.set_member(path.stem, _visit_file(path.stem, path, package, loader))
        elif path.is_dir() and (path / "__init__.py").is_file():
            package.set_member(path.name, _visit_folder(path.name, path, package, loader))
    return package
