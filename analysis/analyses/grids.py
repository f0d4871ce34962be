"""Parameter grids of a sweep and the one sweep engine (docs/cli.md, ``crnfb sweep``).

The ``--param`` specifications (:func:`parse_param`), their product grid
(:func:`build_grid`), one grid point applied to a model (:func:`apply_params`)
and the engine that runs a grid (:func:`sweep_grid`): each point's parameters
applied, one :class:`~crnfb.analysis.analyses.context.Analysis` built (each
derived quantity computed once), and the caller's evaluator turning it into a
row. The engine is pure (no files, no processes); its two front ends are
:func:`crnfb.analysis.cli.sweep.run_sweep` (``crnfb sweep``: CSV, resume,
process pool or Dask, progress) and :func:`crnfb.analysis.analyses.tradeoffs.sweep`
(the Python API: a :class:`~crnfb.analysis.analyses.tradeoffs.TradeoffResult`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from crnfb.analysis.analyses.context import Analysis
from crnfb.analysis.linear.fixedpoints import NoFixedPoint
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.model import Ensembles, Model

__all__ = ["ALIASES", "DEFAULT_POINTS", "FLUCTUATION_PARAMS", "INTEGER_PARAMS", "PARAMS", "POINT_ERRORS",
           "ParamSpec", "PointEvaluator", "apply_params", "build_grid", "grid_point_row", "parse_param", "sweep_grid"]


PARAMS = ("eps", "gamma", "dmu", "kappa", "free", "clamped", "M", "omega", "switching", "k_01", "k_10")
FLUCTUATION_PARAMS = ("switching", "k_01", "k_10")
INTEGER_PARAMS = ("free", "clamped", "M")
ALIASES = {"M_f": "free", "M_c": "clamped"}
DEFAULT_POINTS = 10


@dataclass(frozen=True)
class ParamSpec:
    """One swept parameter: ``name``, its grid ``values`` and ``scale`` (``log10``, ``lin`` or ``list``)."""

    name: str
    values: tuple[float, ...]
    scale: str = "lin"


def _number(text: str, spec: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ModelError(f"--param {spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(v):
        raise ModelError(f"--param {spec!r}: {what} must be finite, got {text!r}")
    return v


def _range_grid(spec: str, parts: list[str]) -> tuple[list[float], str, float, float]:
    """``START:STOP[:N][:scale]`` as (values, scale, START, STOP); linear unless ``log10``."""
    scale = "lin"
    if parts[-1] in ("log10", "log", "lin", "linear"):
        scale = "log10" if parts[-1] in ("log10", "log") else "lin"
        parts = parts[:-1]
    if len(parts) not in (2, 3):
        raise ModelError(f"--param {spec!r}: expected START:STOP:N[:log10|lin]")
    start = _number(parts[0], spec, "START")
    stop = _number(parts[1], spec, "STOP")
    if len(parts) == 3:
        n = _number(parts[2], spec, "N")
        if n != int(n) or n < 1:
            raise ModelError(f"--param {spec!r}: N must be a whole number >= 1, got {parts[2]!r}")
        n = int(n)
    else:
        n = DEFAULT_POINTS
    if n > 100000:
        raise ModelError(f"--param {spec!r}: N = {n} points is too many (at most 100000)")
    if scale == "log10":
        if start <= 0 or stop <= 0:
            raise ModelError(f"--param {spec!r}: a log10 grid needs START and STOP > 0")
        return np.logspace(np.log10(start), np.log10(stop), n).tolist(), scale, start, stop
    return np.linspace(start, stop, n).tolist(), scale, start, stop


def parse_param(spec: str, model: Model | None = None) -> ParamSpec:
    """Parse ``NAME=START:STOP:N[:log10|lin]`` (or ``NAME=V``, ``NAME=V1,V2,...``).

    Raises
    ------
    ModelError
        Unknown name, malformed grid, non-positive values on a log grid or
        for a positive parameter, non-integer ensemble sizes.
    """
    if "=" not in spec:
        raise ModelError(f"--param {spec!r}: expected NAME=START:STOP:N[:log10|lin], e.g. eps=0.01:1:20:log10")
    name, _, grid = spec.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    base = name.split(".", 1)[0]
    if base not in PARAMS:
        raise ModelError(f"--param {spec!r}: unknown parameter {name!r}; sweepable: {', '.join(PARAMS)} "
                         "(eps.SPECIES for one learning rate)")
    if "." in name:
        if base != "eps":
            raise ModelError(f"--param {spec!r}: only eps takes a species (eps.X)")
        if model is not None and name.split(".", 1)[1] not in model.learned_names:
            raise ModelError(f"--param {spec!r}: {name.split('.', 1)[1]!r} is not a learned species; learned: "
                             f"{', '.join(model.learned_names)}")
    if base in FLUCTUATION_PARAMS and model is not None:
        fl = model.fluctuation
        if fl is None:
            raise ModelError(f"--param {spec!r}: the model has no [environment.fluctuation] to switch")
        if base != "switching" and fl.n_levels != 2:
            raise ModelError(f"--param {spec!r}: k_01/k_10 are the rates of a two-level telegraph; this chain "
                             f"has {fl.n_levels} levels (use switching=... to scale all its rates)")
    grid = grid.strip()
    if not grid:
        raise ModelError(f"--param {spec!r}: no values after '='")
    parts = grid.split(":")
    if "," in grid or len(parts) == 1:
        if ":" in grid:
            raise ModelError(f"--param {spec!r}: give either a list V1,V2,... or START:STOP:N[:scale]")
        items = [x.strip() for x in grid.split(",")]
        if "" in items:
            raise ModelError(f"--param {spec!r}: empty entry in the list (two commas or a trailing comma); "
                             "give V1,V2,... with a number between every pair of commas")
        values = [_number(x, spec, "value") for x in items]
        scale = "list"
    else:
        values, scale, start, stop = _range_grid(spec, parts)
    if not values:
        raise ModelError(f"--param {spec!r}: no values")
    if base in INTEGER_PARAMS:
        given = values if scale == "list" else [start, stop]   # interior points of a range are rounded
        frac = [v for v in given if v != int(v)]
        if frac:
            raise ModelError(f"--param {spec!r}: ensemble sizes must be whole numbers >= 1 ({base} = {frac[0]!r})")
        rounded = [float(round(v)) for v in values]
        if any(v < 1 for v in rounded):
            raise ModelError(f"--param {spec!r}: ensemble sizes must be whole numbers >= 1")
        values = list(dict.fromkeys(rounded))
    if any(v <= 0 for v in values):
        raise ModelError(f"--param {spec!r}: {base} must be > 0 at every grid point")
    return ParamSpec(name, tuple(float(v) for v in values), scale)


def build_grid(specs: list[ParamSpec]) -> list[dict]:
    """The product grid, first parameter varying slowest; each point ``{name: value}``."""
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ModelError(f"--param: a parameter is given twice ({', '.join(names)})")
    if any("." in n for n in names) and "eps" in names:
        raise ModelError("--param: eps and eps.SPECIES together are ambiguous")
    grids = np.meshgrid(*[np.array(s.values) for s in specs], indexing="ij")
    return [{n: float(g.flat[i]) for n, g in zip(names, grids)} for i in range(grids[0].size)]


def apply_params(model: Model, point: Mapping[str, float]) -> Model:
    """Copy of ``model`` with the sweep parameters of ``point`` set."""
    learning: dict = {}
    ens = {"free": model.ensembles.free, "clamped": model.ensembles.clamped, "omega": model.ensembles.omega}
    eps = list(map(float, model.eps))
    eps_set = False
    net = model.network
    fluct = None
    for name, v in point.items():
        if name == "eps":
            eps = [float(v)] * len(eps)
            eps_set = True
        elif name.startswith("eps."):
            eps[model.learned_names.index(name[4:])] = float(v)
            eps_set = True
        elif name in ("gamma", "dmu"):
            learning[name] = float(v)
        elif name == "kappa":
            net = replace(net, reactions=tuple(replace(r, kappa=r.kappa * float(v)) for r in net.reactions))
        elif name in ("free", "clamped"):
            ens[name] = int(round(v))
        elif name == "M":
            ens["free"] = ens["clamped"] = int(round(v))
        elif name == "omega":
            ens["omega"] = float(v)
        elif name in FLUCTUATION_PARAMS:
            fluct = _switched(fluct if fluct is not None else model.fluctuation, name, float(v))
        else:  # pragma: no cover - parse_param rejects these
            raise ModelError(f"unknown sweep parameter {name!r}")
    if eps_set:
        learning["eps"] = tuple(eps)
    m = model
    if net is not model.network:
        m = m.replace(network=net)
    if learning:
        m = m.with_learning(**learning)
    if fluct is not None:
        m = m.replace(fluctuation=fluct)
    if (ens["free"], ens["clamped"], ens["omega"]) != (model.ensembles.free, model.ensembles.clamped,
                                                       model.ensembles.omega):
        m = m.replace(ensembles=Ensembles(int(ens["free"]), int(ens["clamped"]), ens["omega"]))
    return m


def _switched(fl, name: str, v: float):
    """The random environment with one sweep parameter applied."""
    if fl is None:
        raise ModelError(f"--param {name}: the model has no [environment.fluctuation]")
    if name == "switching":
        return fl.scaled(v)
    R = [list(r) for r in fl.rates]
    i, j = (0, 1) if name == "k_01" else (1, 0)
    R[i][j] = v
    return fl.with_rates(R)


# -- the sweep engine ------------------------------------------------------------------------------------------
#: What a front end makes of one point's analysis: its row of scalars.
PointEvaluator = Callable[[Analysis], dict]

#: Why a point has no analysis: its parameters make no valid model (``ModelError``), or the quasi-static flow
#: reaches no isolated fixed point to linearise at (``NoFixedPoint``).
POINT_ERRORS: tuple[type[Exception], ...] = (ModelError, NoFixedPoint)


def grid_point_row(model: Model, point: Mapping[str, float], evaluate: PointEvaluator) -> dict:
    """The row of one grid point: ``evaluate`` of the one :class:`Analysis` of ``model`` at ``point``.

    Parameters
    ----------
    model : Model
        The base model (unchanged; :func:`apply_params` copies it).
    point : mapping
        Sweep parameter name -> value (as :func:`build_grid` makes them).
    evaluate : callable
        ``Analysis -> dict``; every quantity it reads from the analysis is
        computed once, however many columns use it.
    """
    return evaluate(Analysis(apply_params(model, point)))


def sweep_grid(model: Model, points: Iterable[Mapping[str, float]], evaluate: PointEvaluator, *,
               on_error: Callable[[Exception], dict] | None = None) -> Iterator[tuple[dict, dict]]:
    """The sweep engine: ``(point, row)`` for each point in order (:func:`grid_point_row`).

    Parameters
    ----------
    model : Model
        The base model.
    points : iterable of mappings
        The grid (:func:`build_grid`), or a part of it (a worker's one point).
    evaluate : callable
        ``Analysis -> dict``, the front end's columns.
    on_error : callable or None
        Turns a point's :data:`POINT_ERRORS` into its row (``crnfb sweep`` records
        the failure and goes on); None: the error propagates.

    Yields
    ------
    tuple of dict
        The point (a plain dict) and its row.
    """
    for point in points:
        try:
            row = grid_point_row(model, point, evaluate)
        except POINT_ERRORS as exc:
            if on_error is None:
                raise
            row = on_error(exc)
        yield dict(point), row
