"""The chain with dynamic clamping past eps_crit (docs/global.md): a supercritical Hopf bifurcation.

The report's learning episode at the file's eps (factor 1) converges; at
eps_crit (the gain margin) a pair of eigenvalues crosses the imaginary axis
with a negative first Lyapunov coefficient, so past it the loop oscillates on
a small stable orbit whose amplitude grows like sqrt(eps/eps_crit - 1): the
normal form's curve, the orbits continued by Newton-Picard shooting and the
attractor long ODE runs reach (docs/theory.md §4c). Drawn as the report's
global.png (the safe-factor search is left out to keep this short). About
two minutes on two cores.

Run: python examples/gallery/chain_telegraph_hopf.py   (figures go to $CRNFB_GALLERY_OUT, default gallery-out/)
"""
import os
from pathlib import Path

from crnfb.analysis import analyse
from crnfb.analysis.analyses.bifurcation import bifurcation
from crnfb.analysis.reporting.plots import global_outcome
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

model = load_model("examples/chain_telegraph.toml")
res = analyse(model, validate=False)                    # the episode at the file's eps, margins
mg = res.margins
b = bifurcation(res.loop, mg.gain_margin, mg.critical_frequency)
g = res.to_dict()["global"]
g["bifurcation"] = b.to_dict(model.learned_names, model.eps)
print(f"{b.hopf.kind}: l1 = {b.hopf.l1:.4g}, frequency {b.hopf.omega:.4g}, eps_crit factor {b.hopf.factor:.4g}")
for c in b.checks:
    print(f"  {c['what']}: predicted {c['predicted']:.5g}, measured {c['measured']:.5g}, passed {c['passed']}")
eps = dict(zip(model.learned_names, map(float, model.eps)))
global_outcome(g, eps).savefig(out / "chain_telegraph_hopf.png", dpi=120)
