"""``crnfb export`` and ``crnfb convert``: the command-line side of SBML (docs/cli.md, docs/sbml.md).

The library (:mod:`crnfb.feedback.sbml`) raises :class:`ValueError`-style
errors and :class:`~crnfb.feedback.sbml.SBMLExportWarning`; this module
prints the warnings on stderr and lets :class:`~crnfb.feedback.errors.ModelError`
reach :func:`crnfb.analysis.cli.main`, which maps it to exit 2.
"""

from __future__ import annotations

import sys
import warnings

from crnfb.feedback.modelfile import load_model
from crnfb.feedback.sbml import SBMLExportWarning, learning_sbml, model_sbml, write_sbml

__all__ = ["run_export_command"]


def _print_export_warnings(caught) -> None:
    for w in caught:
        if issubclass(w.category, SBMLExportWarning):
            print(f"crnfb export: warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def run_export_command(args) -> int:
    """``crnfb export MODEL --sbml FILE [--learning]`` (docs/cli.md).

    Export warnings (equilibrium clamping, unreachable hidden states) go to
    stderr; :class:`~crnfb.feedback.errors.ModelError` propagates (exit 2).
    """
    model = load_model(args.model)
    learning = bool(getattr(args, "learning", False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SBMLExportWarning)
        text = learning_sbml(model) if learning else model_sbml(model)
    _print_export_warnings(caught)
    out = write_sbml(text, args.sbml)
    what = "learning network" if learning else "model network"
    print(f"wrote {what} of '{model.name}' to {out}")
    return 0
