"""Nothing lost: one output rule for every writing command (issue 22, deliverable 6; docs/cli.md "Output files").

Before: ``export m.toml --sbml m.toml`` replaced the model with SBML, ``simulate -o m.toml``
with CSV, ``export``/``simulate``/``convert`` overwrote any existing file, and ``report -o DIR``
deleted a user's files whenever ``DIR`` held a file named ``.crnfb-output``. Each test
checks the file it must not touch by its SHA-256 before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from crnfb.analysis.cli.entry import main
from crnfb.feedback.io.files import MARKER, OutputError, atomic_file, our_files

from conftest import EXAMPLES

E2 = EXAMPLES / "isomerisation.toml"   # 21 states: the cheapest model every command accepts


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


@pytest.fixture
def model(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "m.toml"
    shutil.copy(E2, p)
    return p


# -- over its own input: exit 2, even with --force, input intact -------------------------------------------------
def _over_input_commands(m: Path, tmp: Path) -> dict[str, list]:
    link = tmp / "link.toml"
    link.symlink_to(m)
    return {
        "simulate": ["simulate", m, "--level", "ode", "--t-end", "1", "-o", m],
        "simulate via symlink": ["simulate", m, "--level", "ode", "--t-end", "1", "-o", link],
        "simulate other spelling": ["simulate", m, "--level", "ode", "--t-end", "1", "-o", tmp / "." / "m.toml"],
        "export": ["export", m, "--sbml", m],
        "export --learning": ["export", m, "--learning", "--sbml", m],
        "report over the model": ["report", m, "--no-validate", "-o", m],
    }


@pytest.mark.parametrize("force", [False, True])
def test_no_command_writes_over_its_input(capsys, model, tmp_path, force):
    before = sha(model)
    for what, argv in _over_input_commands(model, tmp_path).items():
        rc, err = run(capsys, *argv, *(["--force"] if force else []))
        assert rc == 2, (what, err)
        assert "Traceback" not in err and err.count("\n") == 1, (what, err)
        assert sha(model) == before, what
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("link")) == ["m.toml"]


def test_convert_never_writes_over_its_input(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(E2), "--sbml", "m.xml"]) == 0
    src = tmp_path / "m.toml"          # an SBML file whose name ends in .toml: convert's input and -o
    shutil.copy(tmp_path / "m.xml", src)
    before = sha(src)
    capsys.readouterr()
    rc, err = run(capsys, "convert", src, "-o", src, "--visible", "X", "--force")
    assert rc == 2 and "input" in err and sha(src) == before


@pytest.mark.parametrize("cmd", ["sweep", "report"])
def test_directory_commands_never_write_over_an_input_inside(capsys, tmp_path, monkeypatch, cmd):
    """A model file named like one of the command's outputs, inside the output directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    inside = tmp_path / "d" / ("sweep.json" if cmd == "sweep" else "report.json")
    shutil.copy(E2, inside)
    before = sha(inside)
    extra = ["--param", "eps=0.1", "--workers", "1"] if cmd == "sweep" else ["--no-validate"]
    rc, err = run(capsys, cmd, inside, *extra, "-o", "d", "--force")
    assert rc == 2 and "input" in err, err
    assert sha(inside) == before and sorted(p.name for p in (tmp_path / "d").iterdir()) == [inside.name]


# -- over an existing file: exit 2 without --force, replaced with it ----------------------------------------------
def _file_commands(m: Path, out: Path) -> dict[str, list]:
    return {"simulate": ["simulate", m, "--level", "ode", "--t-end", "1", "--points", "3", "-o", out],
            "export": ["export", m, "--sbml", out]}


@pytest.mark.parametrize("cmd", ["simulate", "export", "convert"])
def test_existing_file_needs_force(capsys, model, tmp_path, cmd):
    out = tmp_path / ("env.toml" if cmd == "convert" else "precious.txt")
    out.write_text("an environment file the user wrote\n")
    before = sha(out)
    if cmd == "convert":
        assert main(["export", str(model), "--sbml", "m.xml"]) == 0
        argv = ["convert", tmp_path / "m.xml", "-o", out, "--visible", "X"]
    else:
        argv = _file_commands(model, out)[cmd]
    capsys.readouterr()
    rc, err = run(capsys, *argv)
    assert rc == 2 and "--force" in err and str(out.name) in err and err.count("\n") == 1, err
    assert sha(out) == before
    rc, err = run(capsys, *argv, "--force")
    assert rc == 0, err
    text = out.read_text()
    assert text != "an environment file the user wrote\n"
    assert {"simulate": "time,", "export": "<sbml", "convert": "[[reactions]]"}[cmd] in text
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]     # no temporaries left


def test_no_clobber_at_the_moment_of_writing(tmp_path):
    """A file that appears between the check and the write is not replaced (os.link, not os.replace)."""
    path = tmp_path / "out.csv"
    with pytest.raises(OutputError, match="--force"):
        with atomic_file(path, overwrite=False) as fh:
            fh.write("ours\n")
            path.write_text("theirs\n")      # another process creates it meanwhile
    assert path.read_text() == "theirs\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    with atomic_file(path, overwrite=True) as fh:
        fh.write("ours\n")
    assert path.read_text() == "ours\n"


def test_sweep_files_it_did_not_write_need_force(capsys, model, tmp_path):
    (tmp_path / "s").mkdir()
    png = tmp_path / "s" / "sweep.png"
    png.write_bytes(b"a figure the user made")
    argv = ["sweep", model, "--param", "eps=0.05,0.1", "--workers", "1", "-o", "s"]
    rc, err = run(capsys, *argv)
    assert rc == 2 and "--force" in err and png.read_bytes() == b"a figure the user made"
    rc, err = run(capsys, *argv, "--force")
    assert rc == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    rc, err = run(capsys, *argv)            # ours now (fingerprint): resumes without --force
    assert rc == 0, err


# -- report -o DIR: the marker names the run's files by hash --------------------------------------------------------
def test_report_directory_rule(capsys, model, tmp_path):
    argv = ["report", model, "--no-validate", "-o", "rep"]
    rep = tmp_path / "rep"
    assert main([str(a) for a in argv]) == 0
    marker = json.loads((rep / MARKER).read_text())
    on_disk = {p.name: sha(p) for p in rep.iterdir() if p.name != MARKER}
    assert marker["files"] == on_disk and marker["report_sha256"] == on_disk["report.json"]
    assert our_files(rep) == on_disk
    assert main([str(a) for a in argv]) == 0               # wholly ours: replaced without --force
    (rep / "notes.txt").write_text("my notes")               # a user's file beside ours
    capsys.readouterr()
    rc, err = run(capsys, *argv)
    assert rc == 2 and "notes.txt" in err and "--force" in err
    rc, err = run(capsys, *argv, "--force")
    assert rc == 0, err
    assert (rep / "notes.txt").read_text() == "my notes"    # kept even with --force
    assert our_files(rep).keys() == on_disk.keys()
    (rep / "notes.txt").unlink()
    with open(rep / "report.md", "a") as fh:               # the user edited one of ours: no longer ours
        fh.write("\nmy comment\n")
    rc, err = run(capsys, *argv)
    assert rc == 2 and "report.md" in err


@pytest.mark.parametrize("fake", ["", "written by crnfb\n", "forged"])
def test_fake_marker_is_refused(capsys, model, tmp_path, fake):
    d = tmp_path / "d"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    if fake == "forged":    # valid JSON that lists the user's file with another hash
        fake = json.dumps({"format": "crnfb-output/1", "files": {"thesis.tex": "0" * 64}, "report_sha256": None})
    (d / MARKER).write_text(fake)
    rc, err = run(capsys, "report", model, "--no-validate", "-o", "d")
    assert rc == 2 and "thesis.tex" in err and "--force" in err
    assert (d / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in d.iterdir()) == sorted([MARKER, "thesis.tex"])


def test_forced_report_keeps_the_user_files(capsys, model, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / MARKER).write_text("")              # the bare name that used to be enough to delete everything
    (d / "thesis.tex").write_text("years of work")
    rc, err = run(capsys, "report", model, "--no-validate", "-o", "d", "--force")
    assert rc == 0, err
    assert (d / "thesis.tex").read_text() == "years of work"
    assert "report.json" in our_files(d) and "thesis.tex" not in our_files(d)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert os.path.isfile(d / "report.html")
