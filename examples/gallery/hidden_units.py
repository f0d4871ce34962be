"""Hidden units earn their keep: E3 (hidden scaffold) against E2 on the same bimodal target.

E2 (X <-> Y, total 20) can only learn a binomial; E3's scaffold mixes
binomials and matches the bimodal environment (docs/theory.md §8).
"""
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from crnfb.analysis.linear.fixedpoints import learned_fixed_point
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

fig = Figure(figsize=(6.8, 4.2), layout="constrained")
ax = fig.add_subplot()
model = load_model("examples/isomerisation_bimodal.toml")
x = model.space.visible_states[:, 0]
ax.bar(x, model.q, color="#ced4da", label="environment Q (bimodal)")
for name, style in (("isomerisation_bimodal", "s--"), ("hidden_scaffold", "o-")):
    m = load_model(f"examples/{name}.toml")
    fp = learned_fixed_point(m)
    P = m.landscape.moments(m.full_theta(fp.theta)).P
    xs = m.space.visible_states[:, 0]
    ax.plot(xs, P, style, ms=4, label=f"{m.name}: D = {fp.divergence:.4f} nats")
    print(f"{m.name:24s} D(Q||P) = {fp.divergence:.6f} nats  ({fp.kind})")
ax.set_xlabel("copy number of X")
ax.set_ylabel("probability")
ax.legend()
ax.set_title("Learned laws on a bimodal target")
fig.savefig(out / "hidden_units.png", dpi=120)
