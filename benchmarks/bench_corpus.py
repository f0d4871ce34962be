"""The bigger generated corpus (tests/corpus.py, ``kind="bench"``): ``crnfb report`` of every network.

For each network: its shape, state count, learned parameters, exit code, wall time, the
timings of each report stage (``meta.timings_s``), failed sections, and the validation
checks made / not made / failed. Prints a table, the distribution of report times per stage
(median, 90th percentile, max) and writes ``benchmarks/results/corpus.csv``.

    python benchmarks/bench_corpus.py --per-shape 8 --timeout 600
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from corpus import corpus  # noqa: E402  (the test suite's generator, one definition)

STAGES = ("fixed point", "linearisation", "stability", "margins", "disturbance", "learning episode",
          "frequency response", "step response", "learning trajectory", "thermodynamics", "validation",
          "global behaviour")


#: The CSV's columns before the per-stage timings.
FIELDS = ["network", "shape", "clamping", "learned", "visible", "states", "exit", "wall_s", "stderr",
          "checks_made", "checks_not_made", "checks_failed", "failed_sections"]


def _failed(d) -> list[str]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in _failed(v)]
    if isinstance(d, list):
        return [x for v in d for x in _failed(v)]
    return [d] if isinstance(d, str) and d.startswith("failed:") else []


def run_one(net, crnfb: Path, tmp: Path, timeout: float) -> dict:
    model = tmp / f"{net.name}.toml"
    model.write_text(net.text, encoding="utf-8")
    out = tmp / net.name
    t0 = time.perf_counter()
    try:
        r = subprocess.run([str(crnfb), "report", str(model), "-o", str(out), "--seed", "1"],
                           capture_output=True, text=True, timeout=timeout)
        code, err = r.returncode, r.stderr.strip().splitlines()[-1:] or [""]
    except subprocess.TimeoutExpired:
        code, err = "timeout", [f"no report within {timeout:.0f} s"]
    row = {"network": net.name, "shape": net.shape, "clamping": net.clamping, "learned": len(net.learned),
           "visible": len(net.visible), "exit": code, "wall_s": round(time.perf_counter() - t0, 2),
           "stderr": err[0][:160]}
    rep_path = out / "report.json"
    if rep_path.exists():
        rep = json.loads(rep_path.read_text(encoding="utf-8"))
        row["states"] = rep["model"]["state_count"]
        row.update({f"t_{k}": rep["meta"]["timings_s"].get(k) for k in STAGES})
        checks = rep["validation"] or []
        row["checks_made"] = sum(c["passed"] is not None for c in checks)
        row["checks_not_made"] = sum(c["passed"] is None for c in checks)
        row["checks_failed"] = sum(c["passed"] is False for c in checks)
        row["failed_sections"] = "; ".join(x[:80] for x in _failed(rep))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-shape", type=int, default=8, help="networks per shape")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per report")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "corpus.csv"))
    args = ap.parse_args()
    crnfb = Path(sys.executable).with_name("crnfb")
    rows = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # one row written (and flushed) per network: an interrupted run keeps what it measured
    with tempfile.TemporaryDirectory() as d, open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS + [f"t_{k}" for k in STAGES])
        w.writeheader()
        for net in corpus("bench", per_shape=args.per_shape):
            row = run_one(net, crnfb, Path(d), args.timeout)
            rows.append(row)
            w.writerow(row)
            f.flush()
            print(f"{row['network']:<22} {str(row.get('states', '-')):>7} states  L={row['learned']:<3} "
                  f"exit {row['exit']!s:<7} {row['wall_s']:>8.1f} s  made {row.get('checks_made', '-')}"
                  f" / not made {row.get('checks_not_made', '-')} / failed {row.get('checks_failed', '-')}"
                  f"  {row.get('failed_sections', '') or row['stderr'] if row['exit'] not in (0,) else ''}",
                  flush=True)
    print(f"\n{'stage':<22} {'median s':>9} {'p90 s':>9} {'max s':>9}")
    for k in ("wall_s",) + tuple(f"t_{s}" for s in STAGES):
        v = np.array([r[k] for r in rows if r.get(k) is not None], float)
        if v.size:
            print(f"{k:<22} {np.median(v):>9.2f} {np.percentile(v, 90):>9.2f} {v.max():>9.2f}")
    print(f"\nexit codes: { {c: sum(str(r['exit']) == c for r in rows) for c in sorted({str(r['exit']) for r in rows})} }"
          .replace("'", ""))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
