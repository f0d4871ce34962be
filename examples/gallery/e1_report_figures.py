"""E1 birth-death: the whole analysis in three lines, then two of its figures.

Run: python examples/gallery/e1_report_figures.py   (figures go to $CRNFB_GALLERY_OUT, default gallery-out/)
"""
import os
from pathlib import Path

from crnfb.analysis import analyse
from crnfb.feedback.io.modelfile import load_model

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

res = analyse(load_model("examples/birth_death.toml"), validate=False)
print(res.summary())

res.plot_bode().savefig(out / "e1_bode.png", dpi=120)
res.plot_step().savefig(out / "e1_step.png", dpi=120)
d = res.to_dict()
print("phase margin (deg):", d["margins"]["phase_margin_deg"], " bandwidth:", d["disturbance"]["bandwidth"])
