"""Writing outputs safely: atomic files and directories, the user's umask, no lost files.

Every file ``crnfb`` writes goes through this module (docs/cli.md, "Output
files"):

* a file is written to a temporary sibling and renamed into place, so a
  reader never sees half a file and an interrupted run leaves the old one;
* permissions follow the user's umask (``mkstemp`` alone would give 0600);
* an output *directory* is replaced only when a previous ``crnfb`` run wrote
  it (it holds :data:`MARKER`), or with ``force``; anything else, and the
  working directory or one of its parents, is refused;
* temporary siblings left by a run that was killed (``kill -9``, power
  loss) are recognised by their name and marker and removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ModelError

#: File inside every directory crnfb writes; only such directories are replaced.
MARKER = ".crnfb-output"
_TMP = ".tmp-"
_OLD = ".old-"


class OutputError(ModelError):
    """The output path cannot be used (exit 2): not a directory, not ours, not writable."""


def umask() -> int:
    """The process umask (read without changing it for longer than two calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_default(path: Path, directory: bool = False) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(target: Path) -> list[Path]:
    """Remove temporaries of ``target`` left by crnfb runs that no longer exist.

    Only siblings named ``.<name>.tmp-<pid>-*`` or ``.<name>.old-<pid>-*``
    whose process is gone are removed, and directories only when they hold
    :data:`MARKER` (so nothing crnfb did not make is touched).
    """
    target = Path(target).absolute()
    removed = []
    parent = target.parent
    if not parent.is_dir():
        return removed
    for p in parent.glob(f".{target.name}.*"):
        rest = p.name[len(target.name) + 1:]
        for tag in (_TMP, _OLD):
            if not rest.startswith(tag):
                continue
            pid = rest[len(tag):].split("-", 1)[0]
            if not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if p.is_dir() and not p.is_symlink():
                if (p / MARKER).exists():
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
            elif p.is_file():
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def check_output_dir(out: str | os.PathLike, force: bool = False) -> Path:
    """Refuse an output directory crnfb must not replace (:class:`OutputError`).

    Allowed: a path that does not exist, an empty directory, a directory a
    previous crnfb run wrote (it holds :data:`MARKER`), or any directory with
    ``force``. Never the working directory or one of its parents.
    """
    out = Path(out)
    full = out.absolute().resolve()
    cwd = Path.cwd().resolve()
    if full == cwd or full in cwd.parents or str(out) in ("", ".", ".."):
        raise OutputError(f"output directory {str(out)!r} is the working directory or holds it; "
                          "crnfb replaces its output directory as a whole, so name a new one, e.g. -o report")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f"output {out} exists and is not a directory; name a new directory")
    if out.is_dir() and not force and any(out.iterdir()) and not (out / MARKER).exists():
        raise OutputError(f"output directory {out} exists and was not written by crnfb (no {MARKER} in it); "
                          "crnfb replaces its output directory as a whole: name a new one, or pass --force "
                          "to replace it")
    parent = full.parent
    while not parent.exists() and parent != parent.parent:   # the first ancestor that exists is created in
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in {parent} (permission denied); choose another output directory")
    return out


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then swap it into place.

    Yields the temporary directory; on normal exit the marker is written and
    it replaces ``out`` (the old one is removed only after the swap); on any
    exception, including an interrupt, it is removed and ``out`` is untouched.
    """
    out = check_output_dir(out, force)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {parent}: {e.strerror}") from None
    clean_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP}{os.getpid()}-", dir=parent))
    try:
        (tmp / MARKER).write_text("written by crnfb; crnfb replaces this directory on its next run\n",
                                  encoding="utf-8")
        _chmod_default(tmp / MARKER)
        _chmod_default(tmp, directory=True)
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_OLD}{os.getpid()}-", dir=parent))
            os.rename(out, old / "d")
            (old / MARKER).touch()
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kw) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it into place on success.

    The folder must exist. The file gets the user's default permissions (``0666 & ~umask``).
    """
    path = Path(path)
    folder = path.absolute().parent
    if not folder.is_dir():   # a typo in a folder name should not create folders
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise OutputError(f"output {path} is a directory; name a file")
    clean_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP}{os.getpid()}-", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, mode, **open_kw) as fh:
            yield fh
        _chmod_default(Path(tmp))
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror}") from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_file(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    with atomic_file(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    return Path(path)


__all__ = ["MARKER", "OutputError", "atomic_dir", "atomic_file", "check_output_dir", "clean_stale",
           "umask", "write_bytes", "write_text"]
