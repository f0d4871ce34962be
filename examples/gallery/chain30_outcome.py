"""The 30-copy chain at eps = 0.63 (docs/global.md): the outcome of learning against the factor on eps.

The report's safe-factor search runs the nonlinear loop from the file's
energies at several factors of eps; each run is one marker (converged,
relaxation oscillation or lost) at its late-time amplitude of
theta - theta_fp, with the gain margin (eps_crit) and the safe factor as
vertical lines: the report's global.png. About a minute on two cores.

Run: python examples/gallery/chain30_outcome.py   (figures go to $CRNFB_GALLERY_OUT, default gallery-out/)
"""
import os
from pathlib import Path

from crnfb.analysis import analyse
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

model = load_model("examples/chain30.toml")                 # eps = 0.3 in the file
model = model.with_learning(eps=model.eps * 0.63 / 0.3)     # the worked example's eps = 0.63
res = analyse(model, validate=False, safe_factor=True)      # the safe factor without the other checks
g = res.to_dict()["global"]
print(f"safe factor {g['safe_factor']:.4g} (eps {g['safe_eps']['A']:.4g}), gain margin {g['gain_margin']:.4g}")
for run in g["safe_factor_runs"]:
    amp = "n/a" if run["amplitude"] is None else f"{run['amplitude']:.3g} kT"
    print(f"  factor {run['factor']:.4g}: {run['mechanism'] or '-'}, amplitude {amp} ({run['how']})")
res.plot_global().savefig(out / "chain30_outcome.png", dpi=120)
