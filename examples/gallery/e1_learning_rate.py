"""E1 birth-death: closed-loop rate against the learning rate, with the closed form of docs/theory.md.

The mean and theta couple through s^2 + kappa s + kappa eps mu (equilibrium
clamping): the loop speeds up with eps until the two roots meet at
eps = kappa / (4 mu), then becomes oscillatory with decay rate kappa / 2.
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

model = load_model("examples/birth_death.toml")
mu, kappa = 5.0, 1.0
eps = np.logspace(-3, 0, 13)
rates, damping = [], []
for e in eps:
    st = stability(linearise(model.with_learning(eps=float(e))))
    rates.append(st.slowest_rate)
    damping.append(st.damping_ratio_min)
    print(f"eps = {e:8.4f}   slowest rate = {st.slowest_rate:.5f}   damping = {st.damping_ratio_min:.3f}")

fine = np.logspace(-3, 0, 400)
disc = kappa ** 2 - 4 * kappa * fine * mu
closed = np.where(disc > 0, (kappa - np.sqrt(np.clip(disc, 0, None))) / 2, kappa / 2)

fig = Figure(figsize=(6.4, 4.2), layout="constrained")
ax = fig.add_subplot()
ax.loglog(fine, closed, color="#adb5bd", lw=4, label="closed form  s² + κs + κεμ")
ax.loglog(eps, rates, "o", color="#1f5fa8", label="crnfb: slowest closed-loop rate")
ax.loglog(fine, fine * mu, "--", color="#2b8a3e", lw=1, label="quasi-static rate εμ")
ax.axvline(kappa / (4 * mu), color="#495057", ls=":", lw=1)
ax.set_xlabel("learning rate ε  (κ)")
ax.set_ylabel("slowest rate  (κ)")
ax.set_ylim(5e-4, 2)
ax.legend()
ax.set_title("E1: learning speeds up with ε until the loop rings")
fig.savefig(out / "e1_learning_rate.png", dpi=120)
assert np.allclose(rates, np.interp(eps, fine, closed), rtol=1e-3)
