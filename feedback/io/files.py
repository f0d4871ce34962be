"""Writing outputs safely: one output rule for every command, atomic files and directories, the user's umask.

Every file ``crnfb`` writes goes through this module (docs/cli.md, "Output
files"). The rule, the same for every writing command:

* a command never writes over one of its own inputs (compared with
  :func:`os.path.samefile`, so a symlink or another spelling of the path is
  caught), not even with ``--force``;
* an existing file is replaced only with ``force`` (``--force``); without it
  the command stops before any work (exit 2) and, at the moment of writing,
  the file is put in place with :func:`os.link`, which never replaces a file
  that appeared meanwhile;
* a file is written to a temporary sibling and renamed (or linked) into
  place, so a reader never sees half a file and an interrupted run leaves
  the old one; permissions follow the user's umask (``mkstemp`` alone would
  give 0600);
* an output *directory* (``report -o DIR``) is recognised as ours only by
  its marker :data:`MARKER`, a JSON file listing every file crnfb wrote
  there with its SHA-256 (and the hash of the run's ``report.json``): only
  then, and only when it holds nothing else, is it replaced as a whole. A
  directory holding any other file is refused without ``force``; with
  ``force`` crnfb writes its files into it and removes only files the
  marker proves it wrote, never a file it did not write;
* temporary siblings left by a run that was killed (``kill -9``, power
  loss) are recognised by their name and marker and removed by the next run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import ModelError

#: JSON file inside every directory crnfb writes: the files it wrote there and their SHA-256.
MARKER = ".crnfb-output"
_MARKER_FORMAT = "crnfb-output/1"
_TMP = ".tmp-"
_OLD = ".old-"
#: errors of os.link on file systems without hard links: fall back to a checked os.replace
_NO_LINK = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}


class OutputError(ModelError):
    """The output path cannot be used (exit 2): an input, an existing file, not ours, not writable."""


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


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (symlinks, hard links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:   # one of them does not exist: compare the resolved paths
        return Path(a).absolute().resolve() == Path(b).absolute().resolve()


def _input_clash(path: Path, inputs: Iterable) -> str | None:
    for inp in inputs:
        if inp is not None and same_file(path, inp):
            return str(inp)
    return None


def check_output_file(path: str | os.PathLike, inputs: Iterable = (), force: bool = False,
                      flag: str = "-o") -> Path:
    """Apply the output rule to one file before any work (:class:`OutputError`, exit 2).

    Refused: a folder; one of ``inputs`` (even with ``force``); an existing
    file without ``force``; a path whose folder does not exist.
    """
    path = Path(path)
    clash = _input_clash(path, inputs)
    if clash is not None:
        raise OutputError(f"{flag} {path} is the input {clash} of this command; crnfb never writes over its "
                          "own input, not even with --force: name another output file")
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name")
    if os.path.lexists(path) and not force:
        raise OutputError(f"{flag} {path} exists; crnfb does not replace an existing file: pass --force to "
                          "replace it, or name another file")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    return path


def clean_stale(target: Path) -> list[Path]:
    """Remove temporaries of ``target`` left by crnfb runs that no longer exist.

    Only siblings named ``.<name>.tmp-<pid>-*`` or ``.<name>.old-<pid>-*``
    whose process is gone are removed, and directories only when they hold
    :data:`MARKER` (so nothing crnfb did not make is touched).
    """
    target = Path(target).absolute()
    removed: list[Path] = []
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


# -- directories: the marker ---------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def marker_record(folder: Path) -> dict:
    """The marker of ``folder``'s regular files: ``{"format", "files": {name: sha256}, "report_sha256"}``."""
    files = {p.name: _sha256(p) for p in sorted(Path(folder).iterdir())
             if p.name != MARKER and p.is_file() and not p.is_symlink()}
    return {"format": _MARKER_FORMAT, "files": files, "report_sha256": files.get("report.json")}


def our_files(folder: str | os.PathLike) -> dict[str, str] | None:
    """``{name: sha256}`` of the files a crnfb run wrote in ``folder`` and that are unchanged; None if no valid marker.

    A marker is valid when it is our JSON format and its ``report_sha256``
    (if any) is the hash it lists for ``report.json``; a listed file whose
    content changed since (edited by the user) is not ours any more.
    """
    try:
        rec = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
        files = rec["files"]
        ok = (rec.get("format") == _MARKER_FORMAT and isinstance(files, dict)
              and rec.get("report_sha256") == files.get("report.json"))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    if not ok:
        return None
    folder = Path(folder)
    return {n: h for n, h in files.items() if isinstance(n, str) and "/" not in n and (folder / n).is_file()
            and not (folder / n).is_symlink() and _sha256(folder / n) == h}


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """Names in ``folder`` that no crnfb run provably wrote (everything, without a valid marker)."""
    folder = Path(folder)
    ours = our_files(folder)
    if ours is None:   # no marker, or one crnfb did not write (a bare file of that name is not enough)
        return sorted(p.name for p in folder.iterdir())
    return sorted(p.name for p in folder.iterdir() if p.name not in ours and p.name != MARKER)


def check_output_dir(out: str | os.PathLike, force: bool = False, inputs: Iterable = (),
                     names: Iterable[str] = ()) -> Path:
    """Refuse an output directory crnfb must not replace (:class:`OutputError`).

    Allowed: a path that does not exist, an empty directory, a directory
    holding only files a previous crnfb run wrote (its :data:`MARKER` lists
    them with their hashes), or, with ``force``, any directory (its other
    files are kept). Never the working directory or one of its parents, nor
    a directory that is one of ``inputs`` or would put one of the file
    ``names`` it writes over one of ``inputs``.
    """
    out = Path(out)
    full = out.absolute().resolve()
    cwd = Path.cwd().resolve()
    if full == cwd or full in cwd.parents or str(out) in ("", ".", ".."):
        raise OutputError(f"output directory {str(out)!r} is the working directory or holds it; "
                          "crnfb replaces its output directory as a whole, so name a new one, e.g. -o report")
    clash = _input_clash(out, inputs)
    if clash is not None:
        raise OutputError(f"output {out} is the input {clash} of this command; crnfb never writes over its own "
                          "input, not even with --force: name a new directory")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputError(f"output {out} exists and is not a directory; name a new directory")
    clash = next((n for n in names if _input_clash(out / n, inputs) is not None), None)
    if clash is not None:
        raise OutputError(f"{out / clash} is an input of this command; crnfb never writes over its own input, "
                          "not even with --force: name a new directory")
    if out.is_dir() and not force:
        other = foreign_files(out)
        if other:
            shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
            raise OutputError(f"output directory {out} holds files crnfb did not write ({shown}); crnfb replaces "
                              "its output directory as a whole: name a new one, or pass --force to write into it "
                              "(files crnfb did not write are kept)")
    parent = full.parent
    while not parent.exists() and parent != parent.parent:   # the first ancestor that exists is created in
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in {parent} (permission denied); choose another output directory")
    return out


def _write_marker(folder: Path, record: dict) -> None:
    (folder / MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    _chmod_default(folder / MARKER)


def _swap_in(tmp: Path, out: Path, parent: Path) -> None:
    """Replace ``out`` (absent, empty or wholly ours) by ``tmp`` as a whole."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_OLD}{os.getpid()}-", dir=parent))
        os.rename(out, old / "d")
        (old / MARKER).touch()
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def _merge_into(tmp: Path, out: Path, record: dict, inputs: Iterable) -> None:
    """``--force`` on a directory with files crnfb did not write: put ours in, keep theirs.

    Each file is renamed into place on its own (atomic per file); files an
    earlier run provably wrote and this run does not are removed; nothing else is.
    """
    for name in record["files"]:
        if _input_clash(out / name, inputs) is not None:
            raise OutputError(f"{out / name} is an input of this command; crnfb never writes over its own input, "
                              "not even with --force: name a new directory")
    old = our_files(out) or {}
    for name in record["files"]:
        if (out / name).is_dir() and not (out / name).is_symlink():
            raise OutputError(f"{out / name} is a folder crnfb did not write; name a new output directory")
        os.replace(tmp / name, out / name)
    for name in old:
        if name not in record["files"]:
            (out / name).unlink(missing_ok=True)
    _write_marker(out, record)
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike, force: bool = False, inputs: Iterable = ()) -> Iterator[Path]:
    """Build a directory in a temporary sibling, then put it in place.

    Yields the temporary directory; on normal exit the marker (every file
    written and its SHA-256) is written and the directory replaces ``out``
    when ``out`` is absent, empty or wholly ours; with ``force`` and files
    crnfb did not write in ``out``, ours are renamed in one by one and theirs
    are kept. On any exception, including an interrupt, the temporary
    directory is removed and ``out`` is untouched.
    """
    inputs = tuple(inputs)
    out = check_output_dir(out, force, inputs)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {parent}: {e.strerror}") from None
    clean_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_TMP}{os.getpid()}-", dir=parent))
    try:
        (tmp / MARKER).write_text("partial: being written by crnfb\n", encoding="utf-8")  # clean_stale's sign
        _chmod_default(tmp, directory=True)
        yield tmp
        (tmp / MARKER).unlink()
        record = marker_record(tmp)
        _write_marker(tmp, record)
        if out.is_dir() and foreign_files(out):   # only reached with force (check_output_dir)
            _merge_into(tmp, out, record, inputs)
        else:
            _swap_in(tmp, out, parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- files ----------------------------------------------------------------------------------------------
def _put_in_place(tmp: str, path: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``path``; without ``overwrite`` never replace an existing ``path`` (link, no clobber)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path} exists; crnfb does not replace an existing file: pass --force to replace it, "
                          "or name another file") from None
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        if os.path.lexists(path):   # no hard links here: check, then rename (a narrow race, stated in docs/cli.md)
            raise OutputError(f"{path} exists; crnfb does not replace an existing file: pass --force to replace "
                              "it, or name another file") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", *, overwrite: bool = True, inputs: Iterable = (),
                **open_kw) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; put it in place on success.

    The folder must exist. The file gets the user's default permissions
    (``0666 & ~umask``). ``overwrite=False`` never replaces an existing
    ``path`` (:class:`OutputError`); a ``path`` that is one of ``inputs`` is
    always refused.
    """
    path = Path(path)
    folder = path.absolute().parent
    if not folder.is_dir():   # a typo in a folder name should not create folders
        raise OutputError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise OutputError(f"output {path} is a directory; name a file")
    clash = _input_clash(path, inputs)
    if clash is not None:
        raise OutputError(f"{path} is the input {clash}; crnfb never writes over its own input: name another file")
    clean_stale(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP}{os.getpid()}-", dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, mode, **open_kw) as fh:
            yield fh
        _chmod_default(Path(tmp))
        _put_in_place(tmp, path, overwrite)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise OutputError(f"cannot write {path}: {e.strerror}") from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True, inputs: Iterable = ()) -> Path:
    """Atomically write ``data`` to ``path`` (:func:`atomic_file`)."""
    with atomic_file(path, "wb", overwrite=overwrite, inputs=inputs) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True, inputs: Iterable = ()) -> Path:
    """Atomically write UTF-8 ``text`` to ``path`` (:func:`atomic_file`)."""
    with atomic_file(path, "w", overwrite=overwrite, inputs=inputs, encoding="utf-8", newline="") as fh:
        fh.write(text)
    return Path(path)


__all__ = ["MARKER", "OutputError", "atomic_dir", "atomic_file", "check_output_dir", "check_output_file",
           "clean_stale", "foreign_files", "marker_record", "our_files", "same_file", "umask", "write_bytes",
           "write_text"]
