"""Soak test of the issue-22 "done when": ``crnfb report`` of a large scaffold N times, on a loaded machine.

Each run gets a timeout; a run "passes" when it exits 0 within it with nothing on stderr
(no worker traceback, no native-library message). ``--load K`` starts K CPU-burning processes
for the duration. Prints a table and writes ``benchmarks/results/soak.csv``.

    python benchmarks/bench_soak.py -n 20 --load 2 --timeout 900
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"scaffold": ROOT / "examples" / "scaffold_T40_K20.toml"}


def _burn() -> None:               # a background CPU load
    while True:
        pass


def _variant(tmp: Path) -> Path:
    """The scaffold with other hidden-unit energies (the issue's variant)."""
    text = MODELS["scaffold"].read_text().splitlines()
    out, k = [], 0
    for line in text:
        if line.startswith("energy = 0.0"):
            k += 1
            line = f"energy = {0.1 * (k % 5) - 0.2:.1f}"
        out.append(line)
    path = tmp / "scaffold_energies.toml"
    path.write_text("\n".join(out) + "\n")
    return path


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20, help="runs per model")
    ap.add_argument("--load", type=int, default=0, help="CPU-burning background processes")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    ap.add_argument("--variant", action="store_true", help="also the scaffold with other energies")
    args = ap.parse_args()
    crnfb = Path(sys.executable).with_name("crnfb")
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    rows = []
    res = ROOT / "benchmarks" / "results"
    res.mkdir(exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            models = dict(MODELS, **({"energies": _variant(tmp)} if args.variant else {}))
            for name, path in models.items():
                for i in range(args.n):
                    out = tmp / f"{name}-{i}"
                    t0 = time.perf_counter()
                    try:
                        r = subprocess.run([str(crnfb), "report", str(path), "-o", str(out)], capture_output=True,
                                           text=True, timeout=args.timeout, env=dict(os.environ, CI="1"))
                        code, err = r.returncode, r.stderr
                    except subprocess.TimeoutExpired as e:
                        code, err = "timeout", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
                    row = dict(model=name, run=i, seconds=round(time.perf_counter() - t0, 1), exit=code,
                               stderr_empty=not err.strip(), stderr_head=err.strip()[:200].replace("\n", " | "))
                    rows.append(row)
                    print(f"{name:9s} {i:3d} {row['seconds']:8.1f} s  exit {code!s:7s} stderr empty: {row['stderr_empty']}",
                          flush=True)
                    _write(res / "soak.csv", rows)   # after every run: an interrupted soak keeps its rows
    finally:
        for b in burners:
            b.kill()
            b.join()
    ok = sum(r["exit"] == 0 and r["stderr_empty"] for r in rows)
    print(f"{ok}/{len(rows)} runs exited 0 with an empty stderr (load {args.load}, timeout {args.timeout:g} s)")
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
