"""A chain with lag (examples/chain.toml): root locus in eps and the critical learning rate.

The learning signal reaches the visible X through two slow isomerisations;
scaling eps up moves a complex pair into the right half plane at eps_crit.
"""
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.stability import stability
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

model = load_model("examples/chain.toml")
eps = np.logspace(-2.5, 0, 26)
fig = Figure(figsize=(6.4, 4.6), layout="constrained")
ax = fig.add_subplot()
slowest = []
for e in eps:
    st = stability(linearise(model.with_learning(eps=float(e))))
    ev = st.eigenvalues[:4]
    slowest.append(-st.slowest_rate)
    ax.scatter(ev.real, ev.imag, c=np.full(ev.size, np.log10(e)), cmap="viridis", vmin=-2.5, vmax=0, s=12)
# first eps on the grid where the slowest mode's real part is positive, refined by bisection
i = int(np.argmax(np.array(slowest) > 0))
lo, hi = eps[i - 1], eps[i]
for _ in range(30):
    mid = np.sqrt(lo * hi)
    if stability(linearise(model.with_learning(eps=float(mid)))).stable:
        lo = mid
    else:
        hi = mid
print(f"eps_crit (bisection on the closed-loop spectrum) = {hi:.5g}")
try:
    from crnfb.analysis.analyses.margins import margins
    m = margins(linearise(model)).to_dict()
    print(f"eps_crit (crnfb.analysis.analyses.margins)                     = {m['eps_crit']:.5g}")
except ImportError:
    pass
ax.axvline(0, color="k", lw=0.8)
ax.set_xlim(-0.45, 0.3)
ax.set_xlabel("Re s  (κ)")
ax.set_ylabel("Im s  (rad·κ)")
sm = ax.collections[0]
fig.colorbar(sm, ax=ax, label="log10 ε")
ax.set_title(f"chain: slowest closed-loop modes as ε grows  (ε_crit ≈ {hi:.3g})")
fig.savefig(out / "chain_root_locus.png", dpi=120)
