"""Sixty learned parameters: the learning figure names five and draws the rest in grey.

One token walks on a ring of 60 species with chords (examples/token_walk.py);
every species' energy is learned and only A0_0 is visible, its target
binomial(1, 0.3). The learning figure of the report names the slowest
parameters to settle and those that move most, in turn (5 in all, each
labelled with why), and draws the other 55 as thin grey lines
(docs/gallery.md, "Fifty to two hundred learned parameters").
"""
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))      # examples/, for token_walk

from token_walk import token_toml  # noqa: E402

from crnfb.analysis.reporting import plots  # noqa: E402
from crnfb.analysis.linear.fixedpoints import learned_fixed_point  # noqa: E402
from crnfb.analysis.linear.linearise import linearise  # noqa: E402
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.reporting.pipeline import episode_section, trajectory_section  # noqa: E402
from crnfb.analysis.linear.stability import stability  # noqa: E402
from crnfb.feedback.io.modelfile import load_model  # noqa: E402

out = Path(os.environ.get("CRNFB_GALLERY_OUT", "gallery-out"))
out.mkdir(parents=True, exist_ok=True)

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "walk60.toml"
    path.write_text(token_toml([(60, 1)], name="walk60"))
    model = load_model(path)
optimum = learned_fixed_point(model)
fp = loop_fixed_point(model, optimum=optimum)
stab = stability(linearise(model, fixed_point=fp))
curve = trajectory_section(model, optimum, fp, stab, episode_section(model, fp, stab, True))
fig = plots.learning(curve)
print(len(model.learned_names), "learned parameters; named:", fig.crnfb["named"], fig.crnfb["why"])
plots.save(fig, out / "walk_many_parameters.png")
