"""Type-check the package with mypy, each file under its installed name.

    python tools/typecheck.py [mypy options]      # from anywhere; exit status 0: no error

The package installs ``crnfb.feedback`` from ``feedback/`` and ``crnfb.analysis``
from ``analysis/`` (``[tool.setuptools.package-dir]`` in pyproject.toml). mypy
names a file by the folders above it (``feedback/model/model.py`` would be
``feedback.model.model``) and cannot follow the import hook of setuptools' editable
install, so ``mypy -p crnfb`` finds nothing. This script reads the mapping from
pyproject.toml and hands mypy every file with its ``crnfb.*`` name (mypy's
``BuildSource``), so that imports between the modules resolve to the repository's
own files, whatever the install (editable, strict editable, none). The options are
pyproject's ``[tool.mypy]``; the arguments are passed on to mypy (for example
``--cache-dir``). docs/decisions.md, "Static analysis sees the installed names".
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """pyproject's ``package-dir`` mapping: package name -> folder, longest name first."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    mapping = config["tool"]["setuptools"]["package-dir"]
    return {pkg: root / mapping[pkg] for pkg in sorted(mapping, key=len, reverse=True)}


def module_files(root: Path = ROOT) -> dict[Path, str]:
    """Every ``.py`` file of the package -> its installed module name (a file under a folder
    that is mapped on its own gets that folder's name)."""
    modules: dict[Path, str] = {}
    for pkg, folder in package_dirs(root).items():
        for path in sorted(folder.rglob("*.py")):
            if path in modules or "__pycache__" in path.parts:
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            modules[path] = ".".join((pkg, *parts[:-1 if parts[-1] == "__init__" else None]))
    return modules


def main(argv: list[str] | None = None) -> int:
    from mypy import build
    from mypy.errors import CompileError
    from mypy.main import process_options
    from mypy.modulefinder import BuildSource

    files = module_files()
    args = ["--config-file", str(ROOT / "pyproject.toml"), *(sys.argv[1:] if argv is None else argv)]
    _, options = process_options([*args, *map(str, files)])
    sources = [BuildSource(str(path), name) for path, name in files.items()]
    t0 = time.perf_counter()
    try:
        messages = build.build(sources, options).errors
    except CompileError as error:          # a blocking error (syntax, a module found twice)
        messages = error.messages
    errors = [m for m in messages if ": error:" in m]
    if messages:
        print("\n".join(messages))
    n_files = len({m.split(":", 1)[0] for m in errors})
    print(f"Found {len(errors)} errors in {n_files} files" if errors else "Success: no issues found",
          f"(checked {len(sources)} source files in {time.perf_counter() - t0:.1f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
