"""``crnfb report MODEL -o DIR``: the full stability report on disk.

Writes ``DIR/report.json`` (every docs/cli.md key), ``DIR/report.md`` (the
tables), ``DIR/report.html`` (self-contained: figures embedded as base64
PNG) and the figures :func:`crnfb.analysis.reporting.figures.report_figures` names: ``bode.png``,
``step.png``, ``poles.png``, ``learning.png``, ``global.png``, ``nyquist.png``, ``distribution.png``, ``lag_cost.png``, and ``fluctuation.png``
only when the model has a random environment (``[environment.fluctuation]``).

Nothing is half-written: the model is loaded and analysed first (bad input
raises :class:`~crnfb.feedback.errors.ModelError`, exit 2, before any file
exists); the files go to a temporary directory next to ``DIR`` that is
renamed into place at the end. Exit code 1 when the loop is unstable, learning
from the file's energies does not converge (docs/theory.md §4a) or a
validation check failed (the report is still written), else 0.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from crnfb.analysis.reporting.pipeline import analyse
from crnfb.analysis.reporting.figures import FIGURES, all_figures, caption, make_figures, report_figures
from crnfb.analysis.reporting.results import Results
from crnfb.analysis.reporting.summary import Figure
from crnfb.feedback.errors import ModelError
from crnfb.feedback.io.files import atomic_dir, check_output_dir
from crnfb.feedback.numerics.progress import progress_bar

# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def write_report(res: Results, out_dir: str | os.PathLike, progress: bool = False, force: bool = False,
                 inputs: tuple = ()) -> Path:
    """Write the whole report into ``out_dir`` atomically (:func:`crnfb.feedback.io.files.atomic_dir`).

    An existing ``out_dir`` is replaced as a whole only if it holds nothing
    but the files a previous report wrote (its marker lists them with their
    hashes); with ``force`` the report's files are written into any directory
    and the files crnfb did not write are kept. Anything else, and an
    ``out_dir`` among ``inputs``, raises :class:`~crnfb.feedback.io.files.OutputError`.
    """
    from crnfb.analysis.reporting import plots

    out = check_output_dir(out_dir, force, inputs, report_files())
    summary = res.summary()
    figs = make_figures(res)
    with atomic_dir(out, force, inputs) as tmp:
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
            summary.as_markdown([Figure(name=n, caption=caption(n)) for n in figs]), encoding="utf-8")
        (tmp / "report.html").write_text(
            summary.as_html([Figure(name=n, caption=caption(n), png=images[n]) for n in figs]), encoding="utf-8")
    return out


def report_files() -> tuple[str, ...]:
    """The names of the files :func:`write_report` writes (the marker aside)."""
    return ("report.json", "report.md", "report.html") + tuple(f"{n}.png" for n in all_figures())


def run_report_command(args) -> int:
    """``crnfb report MODEL -o DIR [--no-validate] [--seed N] [--noise-budget S] [--global-budget S]`` (exit 0-3)."""
    from crnfb.analysis.cli.model_input import check_learned_truncation, input_paths, load_cli_model

    force, inputs = bool(getattr(args, "force", False)), input_paths(args)
    check_output_dir(args.output, force, inputs, report_files())   # fail before loading and the (long) analysis
    model = load_cli_model(args)
    check_learned_truncation(model, source=args.model)   # the one truncation policy (docs/cli.md)
    budget = getattr(args, "noise_budget", None)
    if budget is not None and not (math.isfinite(budget) and budget >= 0):
        raise ModelError(f"--noise-budget must be a number of CPU seconds >= 0, got {budget!r}", key="--noise-budget")
    gbudget = getattr(args, "global_budget", None)
    if gbudget is not None and not (math.isfinite(gbudget) and gbudget >= 0):
        raise ModelError(f"--global-budget must be a number of seconds >= 0, got {gbudget!r}", key="--global-budget")
    res = analyse(model, validate=not getattr(args, "no_validate", False), seed=getattr(args, "seed", 0) or 0,
                  progress=True, noise_budget=budget, global_budget=gbudget)
    out = write_report(res, args.output, progress=True, force=force, inputs=inputs)
    print(res.summary())
    print(f"wrote {out}/report.json, report.md, report.html and {len(report_figures(res))} figures")
    if not res.stable:
        word = "MARGINAL (a real part within round-off of zero)" if res.stability.marginal else "UNSTABLE"
        print(f"crnfb report: the learning loop is {word} at its fixed point (exit 1)", file=sys.stderr)
    if res.stable and res.learning_converged is False and res.global_behaviour is not None:
        ep = res.global_behaviour["episode"]
        print(f"crnfb report: learning from the file's energies does not converge: {ep['mechanism_name']} "
              "(exit 1)", file=sys.stderr)
    if res.validation_failed:
        failed = [c.quantity for c in res.validation or [] if c.passed is False]
        print(f"crnfb report: validation failed: {', '.join(map(str, failed))} (exit 1)", file=sys.stderr)
    for key, why in res.internal_errors.items():
        print(f"crnfb report: internal error: section {key} failed ({why[len('failed: '):]}); the report was "
              "written with its keys null (exit 3; please report it)", file=sys.stderr)
    return res.exit_code


__all__ = ["run_report_command", "write_report", "report_files"]
