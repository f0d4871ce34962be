"""Two visible species (examples/dimer.toml): the learned joint law and its marginals.

A + B <-> C with C hidden and B + C conserved: theta_B + theta_C is a
neutral direction, reported and removed, never called unstable.
"""
import os
from pathlib import Path

from crnfb.analysis.reporting import plots
from crnfb.analysis.linear.fixedpoints import learned_fixed_point
from crnfb.analysis import Distribution
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

model = load_model("examples/dimer.toml")
fp = learned_fixed_point(model)
print("learned theta:", dict(zip(model.learned_names, fp.theta.round(4))))
print("neutral directions (columns):", model.neutral.round(4).T.tolist())
P = model.landscape.moments(model.full_theta(fp.theta)).P
names = [model.network.names[i] for i in model.network.visible]
fig = plots.distribution(Distribution(states=model.space.visible_states, P=P, Q=model.q, names=names))
plots.save(fig, out / "dimer_distribution.png")
