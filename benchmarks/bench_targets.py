"""The cost targets of "any network a researcher brings": full reports of the shapes that were slow.

Cases (docs/benchmarks.md, "Cost targets"):

- ``walk53``: one token on a 53-species reaction graph (53 states, 53 learned; ``examples/token_walk.py 53``);
- ``walk200``: two token walks of 200 and 5 species (1,000 states, 205 learned; ``token_walk.py 200 5``);
- ``three_visible``: ``examples/three_visible_scaffold.toml`` (16,184 states, 10 learned, three visible
  species binding one scaffold four at a time).

Each report runs as ``crnfb report`` in a fresh process (``OPENBLAS_NUM_THREADS=1``) with a timeout; the
table gives the exit code, wall and CPU seconds, the peak resident memory and the report's own per-stage
times (``meta.timings_s``), and ``results/targets.csv`` keeps them::

    python benchmarks/bench_targets.py                       # all three, with validation
    python benchmarks/bench_targets.py --cases walk53 --no-validate
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from token_walk import token_toml  # noqa: E402  (the example generator, one definition)

CASES = {
    "walk53": lambda: token_toml([(53, 1)], name="walk53"),
    "walk200": lambda: token_toml([(200, 1), (5, 1)], name="walk200"),
    "three_visible": lambda: (ROOT / "examples" / "three_visible_scaffold.toml").read_text(encoding="utf-8"),
}
STAGES = ("fixed point", "linearisation", "stability", "margins", "disturbance", "learning episode",
          "frequency response", "step response", "learning trajectory", "thermodynamics", "validation",
          "global behaviour")


def run_case(name: str, tmp: Path, timeout: float, validate: bool) -> dict:
    model = tmp / f"{name}.toml"
    model.write_text(CASES[name](), encoding="utf-8")
    out = tmp / name
    cmd = [str(Path(sys.executable).with_name("crnfb")), "report", str(model), "-o", str(out)]
    cmd += [] if validate else ["--no-validate"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        code = r.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = {"case": name, "validate": validate, "exit": code, "wall_s": round(time.perf_counter() - t0, 1),
           "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
           "peak_mib": round(after.ru_maxrss / 1024, 0)}
    rep = out / "report.json"
    if rep.exists():
        d = json.loads(rep.read_text(encoding="utf-8"))
        row["states"] = d["model"]["state_count"]
        row.update({f"t_{k}": round(v, 1) for k, v in d["meta"]["timings_s"].items()})
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per report")
    ap.add_argument("--no-validate", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "targets.csv"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in args.cases.split(","):
            row = run_case(name, Path(d), args.timeout, not args.no_validate)
            rows.append(row)
            stages = ", ".join(f"{s} {row[f't_{s}']}" for s in STAGES if row.get(f"t_{s}") is not None)
            print(f"{name:<14} exit {row['exit']!s:<8} {row['wall_s']:>8.1f} s wall {row['cpu_s']:>8.1f} s CPU "
                  f"{row['peak_mib']:>7.0f} MiB | {stages}", flush=True)
            keys = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("t_"), k))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", newline="", encoding="utf-8") as f:     # after every case
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
