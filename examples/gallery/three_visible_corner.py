"""Three visible species: the corner plot of the learned law against a bimodal environment.

Six tokens move between three visible species X, Y, Z and a hidden one H
(X <-> Y <-> Z <-> H <-> X). Whatever the learned energies, the law of the
counts is a multinomial; the environment is a mixture of two such laws (one
with the tokens mostly on X, one mostly on Z), so the best the network can
learn is one bump between the two. The distribution figure draws, for three
or more visible species, the three marginals on the diagonal and every
pair's joint marginal below it, with the environment's contours.
"""
import os
import tempfile
from itertools import product
from math import factorial
from pathlib import Path

import numpy as np

from crnfb.analysis import Distribution
from crnfb.analysis.reporting import plots
from crnfb.analysis.linear.fixedpoints import learned_fixed_point
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

N = 6


def multinomial(p):
    """The law of (x, y, z) when N tokens sit on X, Y, Z, H with probabilities p."""
    law = {}
    for x, y, z in product(range(N + 1), repeat=3):
        h = N - x - y - z
        if h >= 0:
            law[(x, y, z)] = factorial(N) / (factorial(x) * factorial(y) * factorial(z) * factorial(h)) * float(
                np.prod(np.power(p, [x, y, z, h])))
    return law


a, b = multinomial([0.6, 0.2, 0.1, 0.1]), multinomial([0.1, 0.2, 0.6, 0.1])
support = sorted(a)
probs = np.array([0.5 * a[s] + 0.5 * b[s] for s in support])
probs /= probs.sum()
species = "".join(f"[species.{s}]\nenergy = 0.0\nvisible = {'true' if s != 'H' else 'false'}\n\n" for s in "XYZH")
reactions = "".join(f'[[reactions]]\neq = "{l} <-> {r}"\n\n' for l, r in ("XY", "YZ", "ZH", "HX"))
text = (f'name = "three_visible"\n\n{species}{reactions}[initial]\nX = {N}\n\n[environment]\nfamily = "table"\n'
        f"support = {[list(s) for s in support]}\nprobs = {probs.tolist()}\n")
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "three_visible.toml"
    path.write_text(text)
    model = load_model(path)
fp = learned_fixed_point(model)
print("learned theta:", {n: round(float(v), 3) for n, v in zip(model.learned_names, fp.theta)},
      " D* =", round(float(fp.divergence), 4))
P = model.landscape.moments(model.full_theta(fp.theta)).P
names = [model.network.names[i] for i in model.network.visible]
fig = plots.distribution(Distribution(states=model.space.visible_states, P=P, Q=model.q, names=names))
plots.save(fig, out / "three_visible_corner.png")
