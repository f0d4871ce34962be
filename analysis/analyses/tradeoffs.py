"""Trade-offs between dissipation and performance (docs/theory.md §7).

For each parameter point (``eps``, ``gamma``, ``M``, ``dmu``, ...)
:func:`point_metrics` puts the dissipation at the learned fixed point
(:mod:`crnfb.analysis.analyses.thermo`) beside the loop's performance:

- convergence: the slowest closed-loop rate (:func:`crnfb.analysis.linear.stability.stability`),
- tracking bandwidth (:mod:`crnfb.analysis.analyses.disturbance`),
- bias: the excess divergence of the loop's fixed point over the true
  optimum (``loop_fixed_point(...).bias``, non-zero under dynamic clamping),
- parameter noise: RMS of the LNA stationary fluctuation of theta on the
  identifiable subspace (:mod:`crnfb.analysis.analyses.noise`).

:func:`sweep` runs a serial grid on the sweep engine
(:func:`crnfb.analysis.analyses.grids.sweep_grid`) and returns a :class:`TradeoffResult`
with Pareto marking (non-dominated: lower dissipation, higher rate and
bandwidth, lower bias and noise); :func:`crnfb.analysis.reporting.plots.tradeoffs` draws it.
The parallel ``crnfb sweep`` (``crnfb.analysis.cli.sweep``) runs the same engine and adds
:func:`point_metrics` as its ``metrics.*`` columns.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from crnfb.analysis.analyses.context import Analysis
from crnfb.analysis.analyses.disturbance import bandwidth as bandwidth_from_ratio
from crnfb.analysis.analyses.disturbance import disturbance
from crnfb.analysis.linear.frequency import SPEC_OMEGA, broken_loop
from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.analysis.analyses.noise import parameter_noise
from crnfb.analysis.analyses.grids import ALIASES, PARAMS, ParamSpec, apply_params, build_grid, sweep_grid
from crnfb.feedback.model.model import Model

#: sense of each performance metric (``min``: lower is better)
OBJECTIVES = {"slowest_rate": "max", "bandwidth": "max", "bias": "min", "noise": "min"}

#: the dissipation columns (kT per time unit); ``dissipation_ensemble`` is the default cost
COSTS = ("dissipation_ensemble", "dissipation_total", "dissipation_learning", "dissipation_clamped",
         "dissipation_free")

LABELS = {
    "dissipation_ensemble": "dissipation rate of the cell  (kT·κ)",
    "dissipation_total": "dissipation rate, free + clamped + learning  (kT·κ)",
    "dissipation_learning": "learning dissipation per unit volume  (kT·κ)",
    "dissipation_clamped": "clamped-ensemble dissipation per copy  (kT·κ)",
    "dissipation_free": "free-ensemble dissipation per copy  (kT·κ)",
    "slowest_rate": "convergence rate (slowest closed-loop rate)  (κ)",
    "bandwidth": "tracking bandwidth  (rad·κ)",
    "bias": "bias: excess divergence at the fixed point  (nats)",
    "noise": "parameter noise: RMS of theta (LNA)  (dimensionless)",
    "episode_total": "dissipation of a learning episode  (kT)",
}

TITLES = {"slowest_rate": "cost of convergence", "bandwidth": "cost of tracking", "bias": "cost of accuracy",
          "noise": "cost of precision"}

PARAM_LABELS = {"eps": r"learning rate $\varepsilon$", "gamma": r"reset rate $\gamma$",
                "dmu": r"fuel $\Delta\mu$ (kT)", "M": "ensemble size $M$", "M_f": "free copies $M_f$",
                "M_c": "clamped copies $M_c$", "free": "free copies $M_f$", "clamped": "clamped copies $M_c$",
                "omega": r"volume $\Omega$"}


# -- parameters ------------------------------------------------------------------------------------------------
def apply_param(model: Model, name: str, value) -> Model:
    """Copy of ``model`` with one sweep parameter set (:func:`crnfb.analysis.analyses.grids.apply_params`).

    ``eps`` (every learned species; ``eps.SPECIES`` one of them), ``gamma``,
    ``dmu``, ``kappa``; ``M`` sets both ensemble sizes, ``free``/``clamped``
    (alias ``M_f``/``M_c``) one of them, ``omega`` the volume.
    """
    name = ALIASES.get(name, name)
    if name not in PARAMS and not name.startswith("eps."):
        raise ValueError(f"unknown sweep parameter {name!r}; choose from {', '.join(PARAMS)}")
    return apply_params(model, {name: value})


# -- performance columns ------------------------------------------------------------------------------------------
def _bandwidth(model: Model, loop: LinearLoop, stable: bool = True) -> tuple[float | None, str | None]:
    """``disturbance.bandwidth`` as :func:`crnfb.analysis.analyses.disturbance.disturbance` defines it (docs/cli.md).

    For a stable loop only the gain ratio on the docs/cli.md grid is computed
    (:meth:`~crnfb.analysis.linear.frequency.BrokenLoop.response` on ``SPEC_OMEGA``
    and :func:`crnfb.analysis.analyses.disturbance.bandwidth`), as ``disturbance()``
    does, without its step response and lag cost. An unstable loop, or one
    the change does not disturb, gets the full section's reason.
    """
    if model.change is None:
        return None, "the model has no [environment.change]: the disturbance direction is zero"
    if stable:
        blocks = broken_loop(loop)
        if blocks.has_disturbance:
            R = blocks.response(SPEC_OMEGA)
            return bandwidth_from_ratio(R.omega, R.gain_ratio)
    res = disturbance(loop)
    return res.bandwidth, res.bandwidth_reason or res.reason


def _noise(model: Model, loop: LinearLoop) -> tuple[float | None, str | None]:
    """RMS of the LNA stationary fluctuation of theta on the identifiable subspace.

    From :func:`crnfb.analysis.analyses.noise.parameter_noise` (``identifiable_covariance``,
    neutral random walk split off): ``sqrt(trace(U^T Sigma_theta U))``.
    """
    try:
        pred = parameter_noise(model, loop=loop)
    except ValueError as exc:     # the stated limitation: no stationary fluctuation of an unstable loop
        return None, str(exc)
    cov = np.atleast_2d(np.asarray(pred.identifiable_covariance, float))
    return float(np.sqrt(max(np.trace(cov), 0.0))), None


# -- one point ---------------------------------------------------------------------------------------------------
def point_metrics(model: Model | Analysis, *, episode: bool = False, bandwidth: bool = True, noise: bool = True,
                  reasons: dict | None = None) -> dict:
    """Scalar trade-off metrics of one model (floats; ``None`` where unavailable).

    Keys: the parameters (``eps`` = largest learning rate, ``gamma``, ``dmu``,
    ``M_f``, ``M_c``, ``omega``), dissipation at the fixed point
    (``dissipation_free``, ``_clamped``, ``_learning``, ``_total``,
    ``_ensemble``; kT per time unit, units in :data:`crnfb.analysis.analyses.thermo.UNITS`),
    ``slowest_rate``, ``quasi_static_rate`` (1/time), ``stable`` (1.0/0.0),
    ``bias``, ``divergence`` (nats), ``bandwidth`` (rad/time), ``noise``,
    and with ``episode=True`` ``episode_total`` (kT). ``bandwidth=False`` /
    ``noise=False`` skip those columns (the frequency sweep is the costly
    part of a point). Pass a dict as ``reasons`` to receive why each
    ``None`` is missing. ``model`` may be the point's
    :class:`~crnfb.analysis.analyses.context.Analysis` (a sweep point's report): its
    fixed point, loop and stability are then read, not found again.
    """
    from crnfb.analysis.analyses import thermo

    an = model if isinstance(model, Analysis) else Analysis(model)
    model = an.model
    why = {} if reasons is None else reasons
    lrn, ens = model.learning, model.ensembles
    out: dict = {"eps": float(np.max(model.eps)), "gamma": float(lrn.gamma), "dmu": float(lrn.dmu),
                 "free": float(ens.free), "clamped": float(ens.clamped), "omega": float(ens.omega)}
    loop = an.loop
    fp = loop.fixed_point
    d = thermo.dissipation(loop.net, fp.x, fp.a)
    num = thermo.json_number
    out.update({"dissipation_free": num(d.free), "dissipation_clamped": num(d.clamped),
                "dissipation_learning": num(d.learning), "dissipation_total": num(d.total),
                "dissipation_ensemble": num(d.total_ensemble)})
    if d.clamped is None:
        why["dissipation_clamped"] = thermo.CLAMPED_EQUILIBRIUM_REASON
    st = an.stability
    out["slowest_rate"] = float(st.slowest_rate) if np.isfinite(st.slowest_rate) else None
    if out["slowest_rate"] is None:
        why["slowest_rate"] = "no closed-loop eigenvalue left after removing structural zeros"
    qs = st.quasi_static_rates
    out["quasi_static_rate"] = float(np.min(qs)) if qs.size else None
    out["stable"] = 1.0 if st.stable else 0.0
    out["bias"] = float(fp.bias)
    out["divergence"] = float(fp.divergence)
    out["bandwidth"], r = _bandwidth(model, loop, bool(st.stable)) if bandwidth else (None, "not computed")
    if r:
        why["bandwidth"] = r
    out["noise"], r = _noise(model, loop) if noise else (None, "not computed")
    if r:
        why["noise"] = r
    if episode:
        try:
            ep = thermo.episode(model, loop)
            out["episode_total"] = num(ep.total)
            out["episode_duration"] = float(ep.duration)
            if not ep.reached:
                why["episode_total"] = "time limit reached before the 1e-3 criterion"
        except Exception as exc:  # noqa: BLE001
            out["episode_total"] = out["episode_duration"] = None
            why["episode_total"] = f"episode integration failed: {exc}"
    return out


# -- Pareto ------------------------------------------------------------------------------------------------------
def pareto_mask(values: np.ndarray, senses: list[str], rtol: float = 1e-9) -> np.ndarray:
    """Non-dominated rows of ``values`` (n, k); ``senses[j]`` is ``"min"`` or ``"max"``.

    A row is dominated if another is at least as good in every column and
    strictly better in one. Differences within ``rtol`` times a column's
    largest magnitude count as ties (a saturated rate that differs by
    round-off does not make a costlier point non-dominated). Rows with a
    NaN are never on the front.
    """
    V = np.asarray(values, float).copy()
    if V.ndim == 1:
        V = V[:, None]
    for j, s in enumerate(senses):
        if s == "max":
            V[:, j] = -V[:, j]
        elif s != "min":
            raise ValueError(f"sense must be 'min' or 'max', got {s!r}")
    ok = np.all(np.isfinite(V), axis=1)
    mask = ok.copy()
    idx = np.nonzero(ok)[0]
    W = V[idx]
    if W.size == 0:
        return mask
    tol = rtol * np.max(np.abs(W), axis=0)
    for a, i in enumerate(idx):
        le = np.all(W <= W[a] + tol, axis=1)
        lt = np.any(W < W[a] - tol, axis=1)
        if np.any(le & lt):
            mask[i] = False
    return mask


@dataclass(kw_only=True)
class TradeoffResult:
    """A sweep's table: one row per parameter point.

    Attributes
    ----------
    params : list[str]          swept parameters (columns of their own)
    rows : list[dict]           :func:`point_metrics` of each point
    reasons : dict[str, str]    why a column is (partly) missing
    cost : str                  the dissipation column minimised in the Pareto marking
    objectives : dict           metric -> "min"/"max" used in the overall front
    pareto : ndarray[bool]      non-dominated in (cost, objectives)
    model_name : str
    """

    params: list[str]
    rows: list[dict]
    reasons: dict = field(default_factory=dict)
    cost: str = "dissipation_ensemble"
    objectives: dict = field(default_factory=dict)
    pareto: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    model_name: str = ""

    def __post_init__(self):
        if not self.objectives:
            self.objectives = {m: s for m, s in OBJECTIVES.items() if self.complete(m) and not self.constant(m)}
        if self.pareto.size != len(self.rows):
            self.pareto = self.front()

    @property
    def columns(self) -> list[str]:
        cols = list(self.params)
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def column(self, name: str) -> np.ndarray:
        """A column as floats (NaN where missing)."""
        return np.array([np.nan if r.get(name) is None else float(r[name]) for r in self.rows])

    def complete(self, name: str) -> bool:
        """Whether the column ``name`` is finite at every point."""
        v = self.column(name)
        return v.size > 0 and bool(np.all(np.isfinite(v)))

    def constant(self, name: str) -> bool:
        """Whether the column ``name`` is the same at every point (to 1e-12 relative)."""
        v = self.column(name)
        return bool(np.all(np.isfinite(v))) and np.ptp(v) <= 1e-12 * max(np.max(np.abs(v)), 1e-300)

    def front(self, *metrics: str) -> np.ndarray:
        """Pareto mask for the cost and the given metrics (default: :attr:`objectives`)."""
        metrics = metrics or tuple(self.objectives)
        cols = [self.cost] + list(metrics)
        senses = ["min"] + [OBJECTIVES.get(m, "min") for m in metrics]
        return pareto_mask(np.column_stack([self.column(c) for c in cols]), senses)

    def to_csv(self, path=None) -> str:
        """CSV text (parameters first, then metrics, then ``pareto``); written to ``path`` if given."""
        cols = self.columns + ["pareto"]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r, p in zip(self.rows, self.pareto):
            w.writerow([("" if r.get(c) is None else repr(float(r[c]))) if c != "pareto" else int(bool(p))
                        for c in cols])
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    @classmethod
    def from_csv(cls, path, params: list[str] | None = None, cost: str = "dissipation_ensemble",
                 model_name: str = "") -> "TradeoffResult":
        """Read a table written by :meth:`to_csv` (``params``: default the first column)."""
        with open(path, encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = [{k: (None if v == "" else float(v)) for k, v in r.items() if k != "pareto"} for r in reader]
            names = list(reader.fieldnames or [])
        return cls(params=list(params) if params else names[:1], rows=rows, reasons={}, cost=cost,
                   model_name=model_name)

    def to_dict(self) -> dict:
        return {"model": self.model_name, "params": list(self.params), "cost": self.cost,
                "objectives": dict(self.objectives), "rows": [dict(r) for r in self.rows],
                "pareto": [bool(p) for p in self.pareto], "reasons": dict(self.reasons)}


def sweep(model: Model, *, cost: str = "dissipation_ensemble", episode: bool = False, bandwidth: bool = True,
          noise: bool = True, progress=None, **grid) -> TradeoffResult:
    """Serial sweep over the product of the given parameter values.

    Example: ``sweep(model, eps=np.logspace(-3, 0, 20))`` or
    ``sweep(model, gamma=[0.1, 1, 10], M=[100, 1000])``. Parameters as in
    :func:`apply_param`; ``episode``, ``bandwidth``, ``noise`` as in
    :func:`point_metrics`. ``progress`` is called with ``(i, n)`` after each point.
    The points run on the sweep engine of ``crnfb sweep``
    (:func:`crnfb.analysis.analyses.grids.sweep_grid`): one analysis per point.
    """
    if not grid:
        raise ValueError("give at least one parameter to sweep, e.g. eps=[...]")
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}")
    names = list(grid)
    for n in names:
        if ALIASES.get(n, n) not in PARAMS:
            raise ValueError(f"unknown sweep parameter {n!r}; choose from {', '.join(PARAMS)}")
    specs = [ParamSpec(ALIASES.get(n, n), tuple(np.atleast_1d(np.asarray(grid[n], float)))) for n in names]
    points = build_grid(specs)          # the grid of crnfb sweep: first parameter varying slowest
    rows: list[dict] = []
    reasons: dict[str, str] = {}

    def evaluate(an: Analysis) -> dict:
        why: dict = {}
        row = point_metrics(an, episode=episode, bandwidth=bandwidth, noise=noise, reasons=why)
        for k, v in why.items():        # the first point's reason for a column stands for the table
            reasons.setdefault(k, v)
        return row

    for i, (point, row) in enumerate(sweep_grid(model, points, evaluate)):
        for n, spec in zip(names, specs):       # the names as given (an alias stays a column of its own)
            row[n] = float(point[spec.name])
        rows.append(row)
        if progress:
            progress(i + 1, len(points))
    return TradeoffResult(params=names, rows=rows, reasons=reasons, cost=cost, model_name=model.name)


def birth_death_front(model: Model, rate) -> np.ndarray:
    """Analytic Pareto front of E1 (``0 <-> X``, equilibrium clamping): cheapest cell dissipation for a rate.

    The mean and theta couple through ``s^2 + kappa s + kappa eps mu``
    (docs/theory.md §8), so the slowest rate ``r <= kappa/2`` needs
    ``eps = r (kappa - r) / (kappa mu)``, and at the fixed point
    (``lambda = m_c = m_f = mu``) the cell dissipates
    ``Omega * 2 dmu eps mu^2 = 2 dmu mu Omega r (1 - r/kappa)``. Rates above
    ``kappa/2`` are unreachable (NaN).
    """
    r = np.asarray(rate, float)
    kappa = float(model.network.kappa[0])
    vis = model.space.visible_states[:, 0].astype(float)
    mu = float(np.dot(model.q, vis))
    out = 2.0 * model.learning.dmu * mu * model.ensembles.omega * r * (1.0 - r / kappa)
    return np.where((r >= 0) & (r <= kappa / 2 * (1 + 1e-12)), out, np.nan)


__all__ = ["OBJECTIVES", "TradeoffResult", "apply_param", "birth_death_front", "pareto_mask", "point_metrics", "sweep"]
