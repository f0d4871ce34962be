"""E1 in a random environment: the best learning rate, predicted and simulated.

The target of the birth-death example switches at random (a telegraph,
rates 0.1 each way) between Poisson(5) and Poisson(6) (examples/birth_death_telegraph.toml).
Slow learning lags behind the switches (tracking); fast learning makes
theta noisy (100 free copies, Omega = 100). The lines are the predicted mean
excess divergence and its parts (docs/theory.md §5a); the red points are the
exact SSA with the environment switching inside the simulation (95 %
intervals over replicates); the squares the switching-driven ODE's tracking
term. Short runs, so the intervals are wider than in the test suite.
"""
import os
from pathlib import Path

import numpy as np

from crnfb.analysis.analyses.fluctuation import fluctuation, validate_ode, validate_ssa
from crnfb.analysis.reporting.plots import fluctuation as plot_fluctuation
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

model = load_model("examples/birth_death_telegraph.toml")
res = fluctuation(model, factors=np.logspace(-1.5, 1.5, 17))
checks = []
for i, e in enumerate(res.eps_opt * np.logspace(-1, 1, 5)):
    t_end = float(np.clip(20.0 / (e * 5.5), 600.0, 1200.0))      # longer where learning is slow
    checks += validate_ssa(res, model, [e], t_end=t_end, burn_in=50.0, replicates=3, seed=10 * i, dt=1.0)
checks += validate_ode(res, model, list(res.eps_opt * np.array([0.1, 1.0, 10.0])), t_end=300.0, burn_in=50.0,
                       paths=3, seed=1, dt=0.5)
res = res.with_validation(checks)
print(res.summary())
for c in checks:
    print(f"{c['quantity']:70s} predicted {c['predicted']:.4g}  simulated {c['simulated']:.4g} "
          f"[{c['ci'][0]:.4g}, {c['ci'][1]:.4g}]  passed {c['passed']}")
fig = plot_fluctuation(res)
fig.savefig(out / "e1_random_environment.png", dpi=150)
