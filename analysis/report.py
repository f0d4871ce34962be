"""``crnfb report MODEL -o DIR``: the full stability report on disk.

Writes ``DIR/report.json`` (every docs/cli.md key), ``DIR/report.md`` (the
tables), ``DIR/report.html`` (self-contained: figures embedded as base64
PNG) and the figures ``bode.png``, ``step.png``, ``poles.png``,
``learning.png``, ``nyquist.png``, ``distribution.png``, ``lag_cost.png``.

Nothing is half-written: the model is loaded and analysed first (bad input
raises :class:`~crnfb.feedback.errors.ModelError`, exit 2, before any file
exists); the files go to a temporary directory next to ``DIR`` that is
renamed into place at the end. Exit code 1 when the loop is unstable or a
validation check failed (the report is still written), else 0.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from crnfb.analysis.pipeline import analyse
from crnfb.analysis.results import Results, Unavailable
from crnfb.analysis.summary import Figure
from crnfb.feedback.errors import ModelError
from crnfb.feedback.progress import progress_bar

FIGURES = ("bode", "step", "poles", "learning", "nyquist", "distribution", "lag_cost")

FIGURE_CAPTIONS = {
    "bode": "Bode plot of the loop transfer L (broken at θ) and the sensitivity S, with the reported "
            "crossover, phase margin and bandwidth marked.",
    "step": "Response of θ along dθ*/da to a unit step in the environment weight a (linearised loop; "
            "the full nonlinear loop's response to a small step, rescaled, when validation ran).",
    "poles": "Closed-loop eigenvalues, quasi-static rates −eig(E H) and the structural or flat modes "
             "removed before stability is judged.",
    "learning": "A learning episode from the file's energies: θ(t) and the excess divergence D(t) − D*.",
    "nyquist": "Nyquist plot of L(jω) near the critical point −1.",
    "distribution": "The learned law P(v) at the loop's fixed point against the environment Q(v).",
    "lag_cost": "Lag cost: period-mean excess divergence per a₁² for a(t) = a₀ + a₁ sin(ωt).",
}


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def make_figures(res: Results) -> dict:
    """``{name: Figure}`` for :data:`FIGURES`; a figure that cannot be drawn says why instead."""
    from crnfb.analysis import plots

    titles = {"bode": "Bode plot", "step": "Step response", "poles": "Pole map", "learning": "Learning",
              "nyquist": "Nyquist plot", "distribution": "Learned distribution", "lag_cost": "Lag cost"}
    makers = {"bode": res.plot_bode, "step": res.plot_step, "poles": res.plot_poles, "learning": res.plot_learning,
              "nyquist": res.plot_nyquist, "distribution": res.plot_distribution, "lag_cost": res.plot_lag_cost}
    out = {}
    for name in FIGURES:
        try:
            out[name] = makers[name]()
        except Unavailable as e:
            out[name] = plots.placeholder(titles[name], str(e))
    return out


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def write_report(res: Results, out_dir: str | os.PathLike, progress: bool = False) -> Path:
    """Write the whole report into ``out_dir`` atomically (temporary directory, then rename).

    An existing ``out_dir`` is replaced as a whole.
    """
    from crnfb.analysis import plots

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelError(f"output {out} exists and is not a directory")
    parent = out.absolute().parent
    summary = res.summary()
    figs = make_figures(res)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        images = {}
        items = list(figs.items())
        bar = progress_bar(len(items), "figures", progress)
        for name, fig in items:
            images[name] = plots.png_bytes(fig)
            (tmp / f"{name}.png").write_bytes(images[name])
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        res.to_json(tmp / "report.json")
        (tmp / "report.md").write_text(
            summary.as_markdown([Figure(n, FIGURE_CAPTIONS[n]) for n in FIGURES]), encoding="utf-8")
        (tmp / "report.html").write_text(
            summary.as_html([Figure(n, FIGURE_CAPTIONS[n], images[n]) for n in FIGURES]), encoding="utf-8")
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}-{int(time.time())}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def run_report_command(args) -> int:
    """``crnfb report MODEL -o DIR [--no-validate] [--seed N]`` (exit 0 / 1 / 2)."""
    from crnfb.feedback.modelfile import load_model

    model = load_model(args.model)
    out = Path(args.output)
    if out.exists() and not out.is_dir():   # fail before the (long) analysis
        raise ModelError(f"output {out} exists and is not a directory")
    res = analyse(model, validate=not getattr(args, "no_validate", False), seed=getattr(args, "seed", 0) or 0,
                  progress=True)
    out = write_report(res, args.output, progress=True)
    print(res.summary())
    print(f"wrote {out}/report.json, report.md, report.html and {len(FIGURES)} figures")
    if not res.stable:
        print("crnfb report: the learning loop is UNSTABLE at its fixed point (exit 1)", file=sys.stderr)
    if res.validation_failed:
        failed = [c.quantity for c in res.validation or [] if not c.passed]
        print(f"crnfb report: validation failed: {', '.join(map(str, failed))} (exit 1)", file=sys.stderr)
    return res.exit_code


__all__ = ["run_report_command", "write_report", "make_figures", "FIGURES", "FIGURE_CAPTIONS"]
