"""The model argument of every subcommand: a model file, or SBML / Antimony with an environment file (docs/cli.md).

``crnfb check|fit|report|simulate|sweep|export MODEL`` read ``MODEL`` through
:func:`model_input` (one place): a model file (TOML, docs/model-file.md) as
it is, or an SBML (``.xml``, ``.sbml``) or Antimony (``.ant``) file together
with ``--visible X[,Y]`` (optional ``--learn A,B``) and ``--environment-file
ENV.toml``, converted in memory the way ``crnfb convert`` does. The loading is
``crnfb.load_model``'s (:func:`crnfb.feedback.io.loading.read_model_source`,
one dispatch for Python and the command line); this module names the
options by their flags. Every error is a
:class:`~crnfb.feedback.errors.ModelError` (exit 2).
"""

from __future__ import annotations

import argparse

import numpy as np

from crnfb.feedback.errors import ModelError
from crnfb.feedback.io.loading import ModelSource, OptionNames, read_model_source, species_names, unit_values
from crnfb.feedback.model.model import Model

__all__ = ["ModelInput", "CLI_NAMES", "model_input", "load_cli_model", "names_option", "add_model_options",
           "add_unit_options", "unit_options", "locate_error", "check_learned_truncation", "input_paths"]


#: A loaded model argument: the model, its model-file text, its source and the SBML unit rule.
ModelInput = ModelSource

#: How the loader's errors name the options on the command line (the flags).
CLI_NAMES = OptionNames(
    names={"visible": "--visible", "learn": "--learn", "environment": "--environment-file", "volume": "--volume",
           "copies_per_unit": "--copies-per-unit"},
    add={"visible": "--visible X[,Y]", "environment": "--environment-file ENV.toml"},
    examples={"visible": "--visible X,Y", "learn": "--learn X,Y", "volume": "--volume 1",
              "copies_per_unit": "--copies-per-unit 1"})


def names_option(text: str | None, flag: str) -> list[str] | None:
    """Species names of a comma-separated option (``--visible X,Y``); None if the option is absent."""
    return species_names(text, flag.lstrip("-"), CLI_NAMES)


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
    return unit_values(getattr(args, "volume", None), getattr(args, "copies_per_unit", None), CLI_NAMES)


def model_input(args) -> ModelInput:
    """Load ``args.model`` (a model file, or SBML/Antimony with ``--visible`` and ``--environment-file``).

    The one loader of every format, :func:`crnfb.feedback.io.loading.read_model_source`
    (``crnfb.load_model``), with the errors naming the flags.

    Raises
    ------
    ModelError
        A TOML model with ``--visible`` / ``--learn`` / ``--environment-file``,
        an SBML/Antimony model without ``--visible`` or ``--environment-file``,
        and every error of the importer and the model-file parser (naming
        the SBML element, Antimony line or environment-file key).
    """
    return read_model_source(args.model, visible=getattr(args, "visible", None), learn=getattr(args, "learn", None),
                             environment=getattr(args, "environment_file", None),
                             volume=getattr(args, "volume", None),
                             copies_per_unit=getattr(args, "copies_per_unit", None), names=CLI_NAMES)


def input_paths(args) -> tuple[str, ...]:
    """The files a command reads (the model and, for SBML/Antimony, the environment file): never an output."""
    return tuple(str(p) for p in (getattr(args, "model", None), getattr(args, "environment_file", None))
                 if p is not None)


def load_cli_model(args) -> Model:
    """The :class:`Model` of :func:`model_input`."""
    return model_input(args).model


def locate_error(args, e: ModelError) -> ModelError:
    """An error raised after loading an SBML model, under a key of the environment file, names that file.

    (Errors of the parser are located by :func:`crnfb.feedback.io.sbml.load_sbml_model`
    already; this covers the later checks of a subcommand, e.g. ``export --learning``
    refusing ``[learning] clamping = "equilibrium"``.)
    """
    from crnfb.feedback.io.sbml.convert import environment_owns

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
    from crnfb.analysis.linear.fixedpoints import learned_fixed_point
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
