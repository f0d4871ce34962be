"""One loader for every model format: a model file, or SBML / Antimony with an environment file.

:func:`load_model` (``crnfb.load_model``) reads

* a model file (TOML, docs/model-file.md) as it is
  (:func:`crnfb.feedback.io.modelfile.load_model`), and
* an SBML (``.xml``, ``.sbml``) or Antimony (``.ant``, ``.antimony``) file
  together with ``visible`` (the visible species) and ``environment`` (the
  path of a TOML file with ``[environment]`` and optionally ``[learning]``,
  ``[truncation]``, ``[ensembles]``, ``[initial]``), converted in memory the
  way ``crnfb convert`` does (:func:`crnfb.feedback.io.sbml.load_sbml_model`)
  and parsed by the model-file parser, so every check of a model file
  applies (docs/sbml.md).

The format is chosen by the file's ending (:data:`~crnfb.feedback.io.modelfile.SBML_SUFFIXES`).
The command line reads its model argument through :func:`read_model_source`
with its flag names (``crnfb.analysis.cli.model_input``): one dispatch for
Python and the CLI. libsbml is imported only for an SBML/Antimony file, and
nothing in any file is evaluated as code. Every error is a
:class:`~crnfb.feedback.errors.ModelError` naming the file and the key (the
keyword argument, or on the command line the flag).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..model.model import Model
from .modelfile import is_sbml_source
from .modelfile import load_model as load_model_file

__all__ = ["load_model", "read_model_source", "ModelSource", "OptionNames", "PYTHON_NAMES", "species_names",
           "unit_values"]


@dataclass(frozen=True)
class ModelSource:
    """A loaded model and where it came from.

    Attributes
    ----------
    model : Model
    text : str
        The model-file text the model was parsed from (for SBML/Antimony, the
        text built in memory); sweeps hash it and send it to their workers.
    source : str
        What the model came from (``MODEL`` or ``MODEL + ENV.toml``).
    units : str or None
        SBML/Antimony: the unit rule applied (one line, docs/sbml.md "Units").
    """

    model: Model
    text: str
    source: str
    units: str | None = None


_OPTIONS = ("visible", "learn", "environment", "volume", "copies_per_unit")


@dataclass(frozen=True)
class OptionNames:
    """How error messages name the SBML/Antimony options (keyword arguments here, flags on the command line).

    Attributes
    ----------
    names : dict
        Option -> its name, also the error's key (``"visible"`` or ``"--visible"``).
    add : dict
        ``visible`` / ``environment`` -> what to add when it is missing.
    examples : dict
        Option -> a right value, quoted when a value is wrong.
    """

    names: dict = field(default_factory=dict)
    add: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)


#: The names of :func:`load_model`'s keyword arguments.
PYTHON_NAMES = OptionNames(
    names={o: o for o in _OPTIONS},
    add={"visible": "visible=['X']", "environment": "environment='ENV.toml'"},
    examples={"visible": "visible=['X', 'Y']", "learn": "learn=['A', 'B']", "volume": "volume=1.0",
              "copies_per_unit": "copies_per_unit=1.0"})


def load_model(path: str | os.PathLike, *, visible=None, learn=None, environment: str | os.PathLike | None = None,
               volume: float | None = None, copies_per_unit: float | None = None) -> Model:
    """Read a model file (TOML), or an SBML / Antimony file with its learning problem beside it.

    Parameters
    ----------
    path : str or path-like
        A model file (``.toml``, docs/model-file.md), or an SBML (``.xml``,
        ``.sbml``) or Antimony (``.ant``, ``.antimony``) file.
    visible : list of str, or str, optional
        SBML/Antimony only, required: the visible species (a string is read
        as comma-separated names, ``"X,Y"``, as ``--visible`` is).
    learn : list of str, or str, optional
        SBML/Antimony only: the learned species (default: all).
    environment : str or path-like, optional
        SBML/Antimony only, required: path of the environment file, a TOML
        file with ``[environment]`` (and optionally ``[learning]``,
        ``[truncation]``, ``[ensembles]``, ``[initial]``) as in a model file.
    volume, copies_per_unit : float, optional
        SBML/Antimony only: the unit rule (docs/sbml.md "Units"), as
        ``--volume`` and ``--copies-per-unit``.

    Returns
    -------
    Model
        For SBML/Antimony, the model ``crnfb convert`` plus the environment
        file's tables would give, built in memory (nothing is written).

    Raises
    ------
    ModelError
        A model file with any of the SBML/Antimony options (key: the first
        one given); an SBML/Antimony file without ``visible`` or
        ``environment`` (key: the missing one); and every error of the
        importer and the model-file parser, naming the SBML element, the
        Antimony line or the environment file's key.

    Examples
    --------
    >>> import crnfb
    >>> m = crnfb.load_model("examples/birth_death.toml")
    >>> m = crnfb.load_model("bd.xml", visible=["X"], environment="env.toml")  # doctest: +SKIP
    """
    return read_model_source(path, visible=visible, learn=learn, environment=environment, volume=volume,
                             copies_per_unit=copies_per_unit).model


def read_model_source(path, *, visible=None, learn=None, environment=None, volume=None, copies_per_unit=None,
                      names: OptionNames = PYTHON_NAMES) -> ModelSource:
    """:func:`load_model` with the model text, its source and the unit rule; ``names``: how errors name options."""
    path = str(path)
    given = {"visible": visible, "learn": learn, "environment": environment, "volume": volume,
             "copies_per_unit": copies_per_unit}
    if not is_sbml_source(path):
        _refuse_options(path, [o for o in _OPTIONS if given[o] is not None], names)
        model = load_model_file(path)
        return ModelSource(model, Path(path).read_text(encoding="utf-8"), path)
    return _read_sbml(path, given, names)


def _refuse_options(path: str, given: list[str], names: OptionNames) -> None:
    """A model file holds its own species roles and environment: SBML/Antimony options on it are an error."""
    if not given:
        return
    shown = [names.names[o] for o in given]
    verb = "applies" if len(shown) == 1 else "apply"
    raise ModelError(f"{' and '.join(shown)} {verb} to SBML (.xml, .sbml) and Antimony (.ant) models only; "
                     f"a model file holds its own species roles and [environment]: drop "
                     f"{'them' if len(shown) > 1 else 'it'}", file=path, key=shown[0])


def _read_sbml(path: str, given: dict, names: OptionNames) -> ModelSource:
    """An SBML/Antimony file with ``visible`` and ``environment``, converted in memory."""
    missing = [o for o in ("visible", "environment") if given[o] is None]
    if missing:
        raise ModelError(f"is SBML/Antimony, which holds the network but not the learning problem: add "
                         f"{' and '.join(names.add[o] for o in missing)} (a TOML file with the [environment] "
                         "table, and optionally [learning], [truncation], [ensembles], of docs/model-file.md), "
                         f"or convert it once with crnfb convert {path} -o model.toml --visible X", file=path,
                         key=names.names[missing[0]])
    env = given["environment"]
    if not isinstance(env, (str, os.PathLike)):
        raise ModelError(f"must be the path of an environment file (TOML with [environment]), got "
                         f"{type(env).__name__}, e.g. {names.add['environment']}", file=path,
                         key=names.names["environment"])
    from .sbml.convert import load_sbml_model, units_line

    units = unit_values(given["volume"], given["copies_per_unit"], names)
    model, text = load_sbml_model(path, species_names(given["visible"], "visible", names),
                                  species_names(given["learn"], "learn", names), env, **units)
    return ModelSource(model, text, f"{path} + {env}", units_line(text))


def unit_values(volume, copies_per_unit, names: OptionNames = PYTHON_NAMES) -> dict:
    """``volume`` / ``copies_per_unit`` as positive finite floats (None stays None), ModelError naming the option."""
    from .sbml.units import check_unit_option

    return {o: check_unit_option(v, names.names[o], names.examples.get(o))
            for o, v in (("volume", volume), ("copies_per_unit", copies_per_unit))}


def species_names(value, option: str = "visible", names: OptionNames = PYTHON_NAMES) -> list[str] | None:
    """Species names of an option: a list of names, or one comma-separated string (``"X,Y"``); None if absent.

    Raises
    ------
    ModelError
        No names, or a name that is not a string (key: the option's name).
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        items = [value]
    bad = [n for n in items if not isinstance(n, str)]
    out = [n.strip() for n in items if isinstance(n, str) and n.strip()]
    flag = names.names[option]
    if bad or not out:
        got = f", got {bad[0]!r}" if bad else ""
        raise ModelError(f"{flag} needs species names, e.g. {names.examples[option]}{got}", key=flag)
    return out
