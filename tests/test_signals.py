"""Signals that always work (issue 22): METIS must not leave SA_RESTART on Python's handlers, and
``crnfb report`` stops on SIGTERM/SIGINT at any moment with exit 143/130, no process left behind
and no partial output (docs/decisions.md, "Processes and signals")."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from crnfb.feedback.numerics.sparselu import nested_dissection

ROOT = Path(__file__).resolve().parent.parent
SA_RESTART = 0x10000000     # <asm-generic/signal-defs.h> (x86, arm, generic Linux)


class _Sigaction(ctypes.Structure):
    # glibc's struct sigaction on Linux: handler, 1024-bit mask, flags, restorer
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * (1024 // (8 * ctypes.sizeof(ctypes.c_ulong)))),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]


def _action(sig: int) -> tuple[int, int]:
    sa = _Sigaction()
    assert ctypes.CDLL(None).sigaction(int(sig), None, ctypes.byref(sa)) == 0
    return sa.handler or 0, sa.flags


def _path_graph(n: int) -> sparse.csr_matrix:
    return sparse.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1]).tocsr()


def test_an_ordering_leaves_pythons_handlers_as_they_were():
    """Raw pymetis re-installs SIGTERM's handler with SA_RESTART (GKlib's BSD signal()); through
    crnfb's nested_dissection the handler and its flags are the ones Python installed."""
    import pymetis

    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        before = _action(signal.SIGTERM)
        assert not before[1] & SA_RESTART
        G = _path_graph(10)
        pymetis.nested_dissection(pymetis.CSRAdjacency(adj_starts=G.indptr, adjacent=G.indices))
        raw = _action(signal.SIGTERM)
        assert raw[1] & SA_RESTART, "pymetis no longer sets SA_RESTART: the guard is still harmless"
        signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM))     # back to Python's flags
        perm = nested_dissection(_path_graph(10))
        assert sorted(perm) == list(range(10))
        assert _action(signal.SIGTERM) == before
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------------
# crnfb report, interrupted
# ------------------------------------------------------------------------------------------------
def _chain(tmp_path: Path) -> Path:
    """examples/chain.toml with 32 copies: 561 states, above the plant size (500) whose margins use a
    reduced model built on METIS orders, and the validation's ODE runs go to the parallel workers."""
    text = (ROOT / "examples" / "chain.toml").read_text()
    text = re.sub(r"(?m)^A = 10$", "A = 32", text)
    text = re.sub(r"(?m)^n = 10$", "n = 32", text)
    path = tmp_path / "chain32.toml"
    path.write_text(text)
    return path


def _group(pgid: int) -> list[str]:
    """Processes (zombies included) in process group ``pgid``."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                out.append(f"{d.name} {fields[0]}")
    return out


def _children(pid: int) -> int:
    n = 0
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                n += int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            except OSError:
                continue
    return n


def _catches_sigterm(pid: int) -> bool:
    try:
        caught = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("SigCgt"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                             (signal.SIGINT, 130, "interrupted (SIGINT)")])
def test_report_stops_at_every_moment(tmp_path, sig, code, name):
    model = _chain(tmp_path)
    """Moments: 1 s after the CLI installed its SIGTERM handler (loading, the fixed point), the first validation workers running (after the
    margins' METIS orders: SA_RESTART would block the wait for them), and 3 s later."""
    env = dict(os.environ, CRNFB_WORKERS="2", OPENBLAS_NUM_THREADS="1")
    for moment in ("early", "workers", "workers+3s"):
        out = tmp_path / "out"
        proc = subprocess.Popen([str(Path(sys.executable).with_name("crnfb")), "report", str(model), "-o", str(out)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                cwd=tmp_path, start_new_session=True)
        sent = first = ready = None
        try:
            deadline = time.monotonic() + 300
            while sent is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
                if ready is None and _catches_sigterm(proc.pid):
                    ready = time.monotonic()      # the CLI has installed its handler: imports done
                if first is None and _children(proc.pid):
                    first = time.monotonic()      # the validation's ODE runs are in the workers
                due = {"early": ready and ready + 1, "workers": first, "workers+3s": first and first + 3}[moment]
                if due is not None and time.monotonic() >= due:
                    proc.send_signal(sig)
                    sent = time.monotonic()
            stdout, stderr = (b.decode() for b in proc.communicate(timeout=60))
            elapsed = time.monotonic() - (sent or 0)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert sent is not None, f"{moment}: never reached ({stderr[-300:]!r})"
        assert proc.returncode == code, f"{moment}: exit {proc.returncode}: {stderr[-500:]!r}"
        assert elapsed < 10, f"{moment}: {elapsed:.1f} s to stop"      # "within a few seconds", on a loaded machine
        assert (stdout, stderr) == ("", f"crnfb report: {name}; temporary files removed\n")
        assert _group(proc.pid) == [], f"{moment}: left behind"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["chain32.toml"], f"{moment}: partial output"
