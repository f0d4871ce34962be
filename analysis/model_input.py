"""The model argument of every subcommand: a model file, or SBML / Antimony with an environment file (docs/cli.md).

``crnfb check|fit|report|simulate|sweep|export MODEL`` read ``MODEL`` through
:func:`model_input` (one place): a model file (TOML, docs/model-file.md) as
it is, or an SBML (``.xml``, ``.sbml``) or Antimony (``.ant``) file together
with ``--visible X[,Y]`` (optional ``--learn A,B``) and ``--environment-file
ENV.toml``, converted in memory the way ``crnfb convert`` does
(:func:`crnfb.feedback.sbml.load_sbml_model`). Every error is a
:class:`~crnfb.feedback.errors.ModelError` (exit 2).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crnfb.feedback.errors import ModelError
from crnfb.feedback.model import Model

__all__ = ["ModelInput", "model_input", "load_cli_model", "names_option", "add_model_options", "add_unit_options",
           "unit_options", "locate_error",
           "check_learned_truncation", "input_paths"]


@dataclass(frozen=True)
class ModelInput:
    """A loaded model argument.

    Attributes
    ----------
    model : Model
    text : str
        The model-file text the model was parsed from (for SBML, the text
        built in memory); sweeps hash it and send it to their workers.
    source : str
        What the model came from (``MODEL`` or ``MODEL + ENV.toml``).
    units : str or None
        SBML/Antimony: the unit rule applied (one line, docs/sbml.md "Units").
    """

    model: Model
    text: str
    source: str
    units: str | None = None


def names_option(text: str | None, flag: str) -> list[str] | None:
    """Species names of a comma-separated option (``--visible X,Y``); None if the option is absent."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ModelError(f"{flag} needs species names, e.g. {flag} X,Y", key=flag)
    return names


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model argument and its SBML/Antimony options, the same on every subcommand."""
    parser.add_argument("model", help="model file (.toml), or SBML (.xml, .sbml) / Antimony (.ant) with "
                        "--visible and --environment-file")
    parser.add_argument("--visible", default=None,
                        help="SBML/Antimony model: visible species, comma-separated: X[,Y]")
    parser.add_argument("--learn", default=None,
                        help="SBML/Antimony model: learned species, comma-separated (default: all)")
    parser.add_argument("--environment-file", default=None, metavar="ENV.toml",
                        help="SBML/Antimony model: TOML file with [environment] (and optionally [learning], "
                             "[truncation], [ensembles], [initial]) as in a model file")
    add_unit_options(parser)


def add_unit_options(parser: argparse.ArgumentParser) -> None:
    """``--volume`` and ``--copies-per-unit``: the unit rule of an SBML model (docs/sbml.md, "Units")."""
    parser.add_argument("--volume", default=None, metavar="V",
                        help="SBML/Antimony model: the compartment volume V in the file's volume unit (default: "
                             "the file's compartment size)")
    parser.add_argument("--copies-per-unit", default=None, metavar="U",
                        help="SBML/Antimony model: copies per substance unit, N = c*V*U = n*U (default 1/V: "
                             "one copy per unit concentration)")


def unit_options(args) -> dict:
    """``volume`` / ``copies_per_unit`` keyword arguments of the unit options, checked (ModelError naming the flag)."""
    from crnfb.feedback.sbml.units import check_unit_option
    return {"volume": check_unit_option(getattr(args, "volume", None), "--volume"),
            "copies_per_unit": check_unit_option(getattr(args, "copies_per_unit", None), "--copies-per-unit")}


def model_input(args) -> ModelInput:
    """Load ``args.model`` (a model file, or SBML/Antimony with ``--visible`` and ``--environment-file``).

    Raises
    ------
    ModelError
        A TOML model with ``--visible`` / ``--learn`` / ``--environment-file``,
        an SBML/Antimony model without ``--visible`` or ``--environment-file``,
        and every error of the importer and the model-file parser (naming
        the SBML element, Antimony line or environment-file key).
    """
    from crnfb.feedback.modelfile import load_model
    from crnfb.feedback.sbml import is_sbml_source, load_sbml_model
    from crnfb.feedback.sbml.convert import units_line

    path = str(args.model)
    visible, learn = getattr(args, "visible", None), getattr(args, "learn", None)
    env = getattr(args, "environment_file", None)
    if not is_sbml_source(path):
        given = [f for f, v in (("--visible", visible), ("--learn", learn), ("--environment-file", env),
                                ("--volume", getattr(args, "volume", None)),
                                ("--copies-per-unit", getattr(args, "copies_per_unit", None))) if v is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise ModelError(f"{' and '.join(given)} {verb} to SBML (.xml, .sbml) and Antimony (.ant) models only; "
                             f"a model file holds its own species roles and [environment]: drop "
                             f"{'them' if len(given) > 1 else 'it'}", file=path, key=given[0])
        model = load_model(path)
        return ModelInput(model, Path(path).read_text(encoding="utf-8"), path)
    missing = [f for f, v in (("--visible X[,Y]", visible), ("--environment-file ENV.toml", env)) if v is None]
    if missing:
        raise ModelError(f"is SBML/Antimony, which holds the network but not the learning problem: add "
                         f"{' and '.join(missing)} (a TOML file with the [environment] table, and optionally "
                         "[learning], [truncation], [ensembles], of docs/model-file.md), or convert it once with "
                         f"crnfb convert {path} -o model.toml --visible X", file=path,
                         key=missing[0].split()[0])
    units = unit_options(args)
    model, text = load_sbml_model(path, names_option(visible, "--visible"), names_option(learn, "--learn"), env,
                                  **units)
    return ModelInput(model, text, f"{path} + {env}", units_line(text))


def input_paths(args) -> tuple[str, ...]:
    """The files a command reads (the model and, for SBML/Antimony, the environment file): never an output."""
    return tuple(str(p) for p in (getattr(args, "model", None), getattr(args, "environment_file", None))
                 if p is not None)


def load_cli_model(args) -> Model:
    """The :class:`Model` of :func:`model_input`."""
    return model_input(args).model


def locate_error(args, e: ModelError) -> ModelError:
    """An error raised after loading an SBML model, under a key of the environment file, names that file.

    (Errors of the parser are located by :func:`crnfb.feedback.sbml.load_sbml_model`
    already; this covers the later checks of a subcommand, e.g. ``export --learning``
    refusing ``[learning] clamping = "equilibrium"``.)
    """
    from crnfb.feedback.sbml.convert import environment_owns

    env = getattr(args, "environment_file", None)
    if env is None or e.file != f"{args.model} + {env}" or not environment_owns(e.key, env):
        return e
    return ModelError(e.message, file=str(env), key=e.key, line=e.line)


def check_learned_truncation(model: Model, theta=None, source: str | None = None) -> float:
    """The one truncation policy of ``check``, ``fit``, ``report``, ``simulate`` and ``sweep``.

    The stationary mass outside the truncation box at the learned fixed point
    (the gradient flow's end from the file's energies, docs/theory.md §1)
    must not exceed the model's ``[truncation] tol``: above it every command
    refuses with the same message (exit 2), naming the file, the mass, the
    tolerance and what to change. Models without truncated species pass
    without a fit.

    Parameters
    ----------
    model : Model
    theta : ndarray or None
        The learned point if the caller has it (``fit``); else it is computed.
    source : str or None
        The model argument, named in the message.

    Returns
    -------
    float
        The truncation mass at the learned point.

    Raises
    ------
    TruncationError
        Mass above ``tol`` (key ``truncation.n_max``).
    """
    from crnfb.analysis.fixedpoints import learned_fixed_point
    from crnfb.feedback.errors import TruncationError

    if not _truncated(model):
        return 0.0
    if theta is None:
        try:
            theta = learned_fixed_point(model).theta
        except (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError):
            return float("nan")   # no learned point to judge: the commands that need one say why (fit: exit 1)
    mass = float(model.space.check_truncation(model.full_theta(theta), np.inf))   # overflow: its own message
    tol = float(model.truncation_tol)
    if not mass <= tol:
        bounds = dict(zip(model.space.network.names, model.space.bounds.tolist()))
        raise TruncationError(
            f"the truncation box {bounds} drops stationary mass {mass:.3g} at the learned fixed point > "
            f"[truncation] tol = {tol:g}: the learned law does not fit in the box; raise [truncation] n_max "
            "(the box's max) or, if that mass is acceptable, raise [truncation] tol",
            key="truncation.n_max", file=source)
    return mass


def _truncated(model: Model) -> bool:
    """Whether any box bound can drop mass (a model without a truncated species has nothing to check)."""
    return bool(np.any(model.space.truncated))
