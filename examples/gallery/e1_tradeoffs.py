"""E1 birth-death: what convergence, tracking, accuracy and precision cost in dissipation.

A serial sweep of the learning rate (:func:`crnfb.analysis.analyses.tradeoffs.sweep`),
its Pareto fronts (:func:`crnfb.analysis.reporting.plots.tradeoffs`), and on
the convergence panel the analytic E1 front ``2 Δμ μ Ω r (1 - r/κ)`` and on
the noise panel the learning shot-noise floor ``1/sqrt(Ω μ)``
(docs/thermodynamics.md). Makes ``docs/img/tradeoffs_e1.png``.

Run: python examples/gallery/e1_tradeoffs.py   (figures go to $CRNFB_GALLERY_OUT, default gallery-out/;
     CRNFB_TRADEOFF_POINTS sets the number of learning rates, 21 for the docs figure)
"""
import os
from pathlib import Path

import numpy as np

from crnfb import load_model
from crnfb.analysis.reporting.plots import tradeoffs as plot_tradeoffs
from crnfb.analysis.analyses.tradeoffs import birth_death_front, sweep

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)
points = int(os.environ.get("CRNFB_TRADEOFF_POINTS", "7"))

model = load_model("examples/birth_death.toml")
res = sweep(model, eps=np.geomspace(1e-3, 1.0, points))
res.to_csv(out / "tradeoffs_e1.csv")
fig = plot_tradeoffs(res)

# the analytic front on the convergence panel: rates up to kappa/2 (critical damping)
ax = fig.axes[0]
kappa = float(model.network.kappa[0])
rate = np.geomspace(np.nanmin(res.column("slowest_rate")), kappa / 2, 200)
(front,) = ax.plot(rate, birth_death_front(model, rate), "--", color="0.2", lw=1.0, zorder=5,
                   label=r"analytic: $2\Delta\mu\,\mu\,\Omega\, r(1-r/\kappa)$")
ax.axvline(kappa / 2, color="0.5", ls=":", lw=1.0)
ax.annotate(r"$r \leq \kappa/2$", (kappa / 2, np.nanmin(res.column(res.cost))), xytext=(-4, 4),
            textcoords="offset points", ha="right", va="bottom", fontsize="small", color="0.3")
ax.legend(handles=list(ax.get_legend().legend_handles) + [front], loc="upper left", frameon=False,
          fontsize="small")

# the learning shot-noise floor on the noise panel
noise_axes = [a for a in fig.axes if a.get_xlabel().startswith("parameter noise")]
if noise_axes:
    axn = noise_axes[0]
    vis = model.space.visible_states[:, 0].astype(float)
    floor = 1.0 / np.sqrt(model.ensembles.omega * float(np.dot(model.q, vis)))
    line = axn.axvline(floor, color="0.3", ls="--", lw=1.0, label=r"learning shot noise $1/\sqrt{\Omega\mu}$")
    axn.legend(handles=list(axn.get_legend().legend_handles) + [line], loc="lower right", frameon=False,
               fontsize="small")
fig.savefig(out / "tradeoffs_e1.png", dpi=200)
print(f"{points} learning rates; wrote {out / 'tradeoffs_e1.png'}")
