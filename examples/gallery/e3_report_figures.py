"""E3 hidden scaffold: a fast drop of D and slow learning along flat directions, 11 loci.

Run: python examples/gallery/e3_report_figures.py   (figures go to $CRNFB_GALLERY_OUT, default gallery-out/)
"""
import os
from pathlib import Path

from crnfb import analyse, load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

res = analyse(load_model("examples/hidden_scaffold.toml"), validate=False)
res.plot_learning().savefig(out / "e3_learning.png", dpi=120)      # log time axis: both time scales
res.plot_poles().savefig(out / "e3_poles.png", dpi=120)
res.plot_nyquist().savefig(out / "e3_nyquist.png", dpi=120)        # 11 characteristic loci
res.plot_distribution().savefig(out / "e3_distribution.png", dpi=120)
print(f"stable: {res.stable}; slowest rate {res.stability.slowest_rate:.3g}; figures in {out}")
