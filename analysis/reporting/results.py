"""The results of one stability analysis, and ``report.json``.

:func:`crnfb.analysis.reporting.pipeline.analyse` (also ``crnfb.analyse``) runs the analysis
and returns a :class:`Results`::

    from crnfb import analyse, load_model

    res = analyse(load_model("examples/birth_death.toml"), validate=False)
    print(res.summary())
    res.to_json("report.json")
    fig = res.plot_bode()

Each section's result object supplies its own ``*_reason`` strings; a
section that could not be computed at all has its keys ``null`` with the
pipeline's reason beside them. ``report.json`` never holds NaN or infinity:
a non-finite number becomes ``null`` with a reason (docs/cli.md).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from crnfb.analysis.reporting import sections
from crnfb.analysis.reporting.figures import notebook_html
from crnfb.analysis.reporting.section import null_keys
from crnfb.analysis.reporting.summary import Summary, build_summary
from crnfb.feedback.errors import Unavailable
from crnfb.feedback.model.model import Model

if TYPE_CHECKING:  # imported for the annotations only: keeps `import crnfb` light
    from matplotlib.figure import Figure

    from crnfb.analysis.analyses.disturbance import Disturbance
    from crnfb.analysis.linear.fixedpoints import StationaryPoint
    from crnfb.analysis.analyses.fluctuation import FluctuationResult
    from crnfb.analysis.linear.frequency import LoopResponse
    from crnfb.analysis.linear.linearise import LinearLoop
    from crnfb.analysis.linear.fixedpoints import LoopFixedPoint
    from crnfb.analysis.analyses.margins import Margins
    from crnfb.analysis.linear.stability import Stability
    from crnfb.analysis.analyses.validation import Check

__all__ = ["REQUIRED_KEYS", "SCALAR_KEYS", "Unavailable", "StepResponse", "LearningCurve",
           "Distribution", "Results", "get_path", "analyse"]

#: Every key of ``report.json`` that docs/cli.md requires (dotted paths).
REQUIRED_KEYS: tuple[str, ...] = (
    "model.name", "model.species", "model.visible", "model.hidden", "model.conservation_laws",
    "model.state_count", "model.truncation_mass",
    "fixed_point.theta", "fixed_point.divergence", "fixed_point.gradient_norm",
    "fixed_point.bias", "fixed_point.optimum",
    "quasi_static.hessian_eigenvalues", "quasi_static.rates", "quasi_static.neutral_directions",
    "closed_loop.eigenvalues", "closed_loop.stable", "closed_loop.slowest_rate",
    "closed_loop.damping_ratio_min", "closed_loop.zero_tolerance", "closed_loop.neutral_modes",
    "closed_loop.flat_mode_count", "closed_loop.marginal", "closed_loop.slowest_error_bound",
    "margins.gain_margin", "margins.phase_margin_deg", "margins.eps_crit",
    "disturbance.bandwidth", "disturbance.hinf_norm", "disturbance.step",
    "disturbance.step.rise_time", "disturbance.step.settling_time", "disturbance.step.overshoot_pct",
    "disturbance.lag_cost",
    "validation",
) + tuple(f"{s.key}.{k}" for s in sections.SECTIONS for k in s.required)

#: Scalar results (dotted ``report.json`` paths) that ``crnfb sweep`` tabulates.
SCALAR_KEYS: tuple[str, ...] = (
    "fixed_point.divergence", "fixed_point.bias", "fixed_point.gradient_norm",
    "quasi_static.slowest_rate",
    "closed_loop.stable", "closed_loop.slowest_rate", "closed_loop.damping_ratio_min",
    "margins.gain_margin", "margins.phase_margin_deg", "margins.eps_crit",
    "disturbance.bandwidth", "disturbance.hinf_norm",
    "disturbance.step.rise_time", "disturbance.step.settling_time", "disturbance.step.overshoot_pct",
) + tuple(f"{s.key}.{k}" for s in sections.SECTIONS for k in s.scalars)

#: The keys of each section that must be present (``null`` with a reason when the section is missing).
_SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "margins": ("gain_margin", "phase_margin_deg", "eps_crit", "crossover_frequency"),
    "disturbance": ("bandwidth", "hinf_norm", "lag_cost"),
    "step": ("rise_time", "settling_time", "overshoot_pct"),
}


# ---------------------------------------------------------------------------------------------
# data objects the plots draw (never recomputed by the plotting functions)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class StepResponse:
    """Response of theta along ``dtheta*/da`` to a unit step in the environment weight ``a``.

    ``y`` is normalised so that the quasi-static prediction settles at 1.
    ``t_nonlinear``/``y_nonlinear`` hold the full nonlinear simulation of
    the same step (small amplitude, rescaled per unit ``a``) when it ran.
    """

    t: np.ndarray
    y: np.ndarray
    direction: np.ndarray
    t_nonlinear: np.ndarray | None = None
    y_nonlinear: np.ndarray | None = None
    source: str = "crnfb.analysis.analyses.disturbance"
    amplitude: float | None = None
    nonlinear_reason: str | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class LearningCurve:
    """A learning episode as the learning figure draws it: ``theta(t)`` (learned species), ``D(t)``
    in nats, and the levels it converges to. (A simulation's full record is
    :class:`crnfb.feedback.dynamics.integrate.Trajectory`.)

    ``reason`` says why the ensemble-level ODE was not used (then ``source``
    is the quasi-static flow). ``outcome``, ``t_settled``, ``converged``: whether
    learning converged (docs/theory.md §4a) and when it settled, for the figure's mark.
    ``sensitivity``: the diagonal of the Hessian of ``D`` at the loop's fixed point (nats per unit
    θ², one per learned species), given when the figure names a few of many parameters
    (:func:`crnfb.analysis.reporting.plots.learning_named`: the most sensitive are those of largest curvature).
    """

    t: np.ndarray
    theta: np.ndarray
    D: np.ndarray
    names: list
    source: str = "quasi-static flow"
    theta_star: np.ndarray | None = None
    D_star: float | None = None
    theta_end: np.ndarray | None = None
    target_label: str = "optimum θ*"
    bias: float | None = None
    reason: str | None = None
    outcome: str | None = None
    t_settled: float | None = None
    converged: bool | None = None
    sensitivity: np.ndarray | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Distribution:
    """Learned ``P(v)`` at the loop's fixed point against the environment ``Q(v)``."""

    states: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    names: list


# ---------------------------------------------------------------------------------------------
# plain JSON: numpy to Python, non-finite to null with a reason
# ---------------------------------------------------------------------------------------------
def _plain(x):
    """Convert numpy and other containers to plain Python (non-finite kept for :func:`_clean`)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    if isinstance(x, (complex, np.complexfloating)):
        return [float(x.real), float(x.imag)]
    if hasattr(x, "to_dict"):
        return _plain(x.to_dict())
    return x


def _describe_nonfinite(v: float) -> str:
    if math.isnan(v):
        return "not a number (the computation did not give a value)"
    return "infinite" if v > 0 else "minus infinity"


def _has_nonfinite(x) -> bool:
    if isinstance(x, float):
        return not math.isfinite(x)
    if isinstance(x, list):
        return any(_has_nonfinite(v) for v in x)
    return False


def _clean_list(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, list):
        return [_clean_list(v) for v in x]
    if isinstance(x, dict):
        return _clean(x)
    return x


def _clean(d: dict) -> dict:
    """Replace non-finite floats by ``None`` with a ``<key>_reason`` beside them (recursively)."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = _clean(v)
        elif isinstance(v, float) and not math.isfinite(v):
            out[k] = None
            out.setdefault(f"{k}_reason", _describe_nonfinite(v))
        elif isinstance(v, list):
            if _has_nonfinite(v):
                out.setdefault(f"{k}_reason", "non-finite entries replaced by null")
            out[k] = _clean_list(v)
        else:
            out[k] = v
    # a reason given by a producer wins over the generic one
    for k in list(out):
        if k.endswith("_reason") and k in d and isinstance(d[k], str):
            out[k] = d[k]
    return out


def get_path(d: Mapping, path: str, default=KeyError):
    """``d["a"]["b"]`` for ``path = "a.b"`` (``default`` if missing, KeyError if not given)."""
    cur = d
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            if default is KeyError:
                raise KeyError(path)
            return default
    return cur


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class Results:
    """Everything :func:`crnfb.analysis.reporting.pipeline.analyse` computed for one model.

    Attributes
    ----------
    model : Model
    optimum : StationaryPoint
        The quasi-static fixed point (true optimum reached from the file's energies).
    fixed_point : LoopFixedPoint
        The fixed point of the full loop (biased under dynamic clamping).
    loop : LinearLoop
        The loop linearised there, structural zeros removed.
    stability : Stability
    margins : Margins or None
    disturbance : Disturbance or None
    validation : list of Check, or None
    frequency : LoopResponse or None
        The loop's frequency responses the Bode and Nyquist figures draw.
    step, trajectory, distribution :
        The data the other figures draw (``None`` when not computed).
    reasons : dict
        Section name -> why that section is missing.
    timings : dict
        Seconds per step.
    seed : int
    sections : dict
        The results of the registered sections (:data:`crnfb.analysis.reporting.sections.SECTIONS`) by key, also
        read as attributes: ``res.thermodynamics`` (a :class:`~crnfb.analysis.analyses.thermo.Thermodynamics`),
        ``res.fluctuation`` (a :class:`~crnfb.analysis.analyses.fluctuation.FluctuationResult`, costs of learning in
        the random environment), None when not computed; each section with a figure draws it with
        ``res.plot_<figure>()`` (``res.plot_fluctuation()``).
    global_behaviour : dict or None
        The ``global`` section: does learning from the file's energies converge,
        and the safe factor of eps (:func:`crnfb.analysis.analyses.globalbehaviour.global_report`).
    """

    model: Model
    optimum: StationaryPoint
    fixed_point: LoopFixedPoint
    loop: LinearLoop
    stability: Stability
    margins: Margins | None = None
    disturbance: Disturbance | None = None
    validation: list[Check] | None = None
    frequency: LoopResponse | None = None
    step: StepResponse | None = None
    trajectory: LearningCurve | None = None
    distribution: Distribution | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    sections: dict[str, object] = field(default_factory=dict)
    global_behaviour: dict | None = None

    # -- the registered sections: res.<key>, res.plot_<figure>() ----------------------------------
    def __getattr__(self, name: str):
        """A registered section's result (``res.thermodynamics``; None when not computed) or its figure's
        plot method (``res.plot_fluctuation``)."""
        if name.startswith("__") or name == "sections":       # not set yet (copy, unpickling)
            raise AttributeError(name)
        for sec in sections.SECTIONS:
            if name == sec.key:
                return self.sections.get(sec.key)
            if sec.figure is not None and name == f"plot_{sec.figure.name}":
                return partial(self.plot_section, sec.key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self):
        extra = [s.key for s in sections.SECTIONS]
        extra += [f"plot_{s.figure.name}" for s in sections.SECTIONS if s.figure is not None]
        return sorted(set(super().__dir__()) | set(extra))

    def plot_section(self, key: str, ax=None) -> Figure:
        """The figure of the registered section ``key`` (:class:`Unavailable` with the reason if it is missing)."""
        sec = sections.by_key(key)
        if sec.figure is None:
            raise ValueError(f"the report section {key!r} has no figure")
        return sec.figure.draw(self.need(key, f"{key} analysis"), ax=ax)

    # -- verdicts ---------------------------------------------------------------------
    @property
    def stable(self) -> bool:
        return bool(self.stability.stable)

    @property
    def validation_failed(self) -> bool:
        return any(c.passed is False for c in (self.validation or []))

    @property
    def learning_converged(self) -> bool | None:
        """Whether learning from the file's energies converged (None: the episode was not run)."""
        ep = (self.global_behaviour or {}).get("episode")
        return None if not ep else bool(ep["converged"])

    @property
    def internal_errors(self) -> dict[str, str]:
        """Sections that crashed (a bug, not the model's property): section -> ``"failed: ..."``."""
        return {k: v for k, v in self.reasons.items() if str(v).startswith("failed:")}

    @property
    def exit_code(self) -> int:
        """3 if a section crashed (the rest of the report stands, that section's keys are null);
        else 0 if stable, every validation check passed and learning from the file's energies
        converged, else 1 (docs/cli.md)."""
        if self.internal_errors:
            return 3
        ok = self.stable and not self.validation_failed and self.learning_converged is not False
        return 0 if ok else 1

    # -- report.json sections ----------------------------------------------------------------
    def _why(self, section: str, default: str) -> str:
        return self.reasons.get(section, default)

    def _model_dict(self) -> dict:
        m = self.model
        info = m.describe()
        names = m.learned_names
        out = {k: info[k] for k in ("name", "species", "visible", "hidden", "conservation_laws",
                                    "state_count", "truncation_mass")}
        out.update(learned=names, reactions=info["reactions"], clamping=m.learning.clamping,
                   eps=dict(zip(names, map(float, m.eps))), gamma=float(m.learning.gamma),
                   dmu=float(m.learning.dmu), environment_tail_mass=info["environment_tail_mass"],
                   source=m.source)
        out["truncation_mass_at_fixed_point"] = float(m.space.truncation_mass(m.full_theta(self.fixed_point.theta)))
        return out

    def _fixed_point_dict(self) -> dict:
        names, fp = self.model.learned_names, self.fixed_point
        return {"theta": dict(zip(names, map(float, fp.theta))), "divergence": float(fp.divergence),
                "gradient_norm": float(fp.gradient_norm), "bias": float(fp.bias), "residual": float(fp.residual),
                "optimum": self.optimum.to_dict(names)}

    def _quasi_static_dict(self) -> dict:
        opt, m = self.optimum, self.model
        rates = np.asarray(self.stability.quasi_static_rates, float)
        out = {
            "species": m.learned_names,
            "hessian_eigenvalues": [float(x) for x in opt.hessian_eigenvalues],
            "rates": [float(x) for x in rates],
            "slowest_rate": float(np.min(rates[rates > 0])) if np.any(rates > 0) else None,
            "neutral_directions": [[float(v) for v in col] for col in m.neutral.T],
            "flat_directions": int(opt.flat.size),
        }
        if out["slowest_rate"] is None:
            out["slowest_rate_reason"] = "no positive quasi-static rate (flat landscape)"
        return out

    def _closed_loop_dict(self) -> dict:
        st = self.stability
        out = _plain(st.to_dict())
        if not st.eigenvalues.size:
            out["slowest_rate"] = None
            out["slowest_rate_reason"] = "no identifiable closed-loop mode left after removing structural zeros"
        out["reduced_states"] = int(self.loop.n_reduced)
        return out

    def _margins_dict(self) -> dict:
        if self.margins is None:
            return null_keys(_SECTION_KEYS["margins"], self._why("margins", "margins were not computed"))
        return self.margins.to_dict()

    def _disturbance_dict(self) -> dict:
        if self.disturbance is None:
            why = self._why("disturbance", "the disturbance analysis was not computed")
            out = null_keys(_SECTION_KEYS["disturbance"], why)
            out["step"] = null_keys(_SECTION_KEYS["step"], why)
            out["step_reason"] = why
            return out
        return self.disturbance.to_dict()

    def _global_dict(self) -> dict:
        if self.global_behaviour is None:
            from crnfb.analysis.analyses.globalbehaviour import global_report
            why = self._why("global", "the global behaviour was not computed")
            return global_report(None, None, why, {}, None, None, episode_reason=why)
        return self.global_behaviour

    def to_dict(self) -> dict:
        """``report.json`` as plain Python (every docs/cli.md key; no NaN)."""
        out: dict[str, object] = {
            "model": self._model_dict(),
            "fixed_point": self._fixed_point_dict(),
            "quasi_static": self._quasi_static_dict(),
            "closed_loop": self._closed_loop_dict(),
            "margins": self._margins_dict(),
            "disturbance": self._disturbance_dict(),
            "validation": None if self.validation is None else [c.to_dict() for c in self.validation],
            **{sec.key: sec.part(self.sections.get(sec.key), self.reasons.get(sec.key)) for sec in sections.SECTIONS},
            "global": self._global_dict(),
            "verdict": {"stable": self.stable, "validation_failed": self.validation_failed,
                        "learning_converged": self.learning_converged, "exit_code": self.exit_code,
                        "internal_errors": sorted(self.internal_errors)},
            "meta": {"seed": int(self.seed), "timings_s": {k: round(float(v), 4) for k, v in self.timings.items()},
                     "package": _package_version()},
        }
        if self.validation is None:
            out["validation_reason"] = self._why("validation", "validation was not run")
        return _clean(_plain(out))

    def to_json(self, path: str | os.PathLike | None = None, indent: int = 2) -> str:
        """``report.json`` text (strict JSON: no NaN); written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def scalars(self) -> dict:
        """The scalar results (:data:`SCALAR_KEYS`) as a flat ``{dotted key: value}`` dict."""
        d = self.to_dict()
        out = {}
        for k in SCALAR_KEYS:
            v = get_path(d, k, None)
            out[k] = v if isinstance(v, (int, float, bool)) or v is None else None
        return out

    def summary(self) -> Summary:
        """The report's tables (:class:`~crnfb.analysis.reporting.summary.Summary`: ``print`` it, or
        ``.as_text()``, ``.as_markdown()``, ``.as_html()``)."""
        d = self.to_dict()
        tables = [sec.table(d[sec.key]) for sec in sections.SECTIONS]
        return build_summary(d, [t for t in tables if t is not None])

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.summary().as_text()

    # -- plots (matplotlib imported lazily by crnfb.analysis.reporting.plots) ----------------------------------
    def need(self, attr: str, what: str | None = None):
        """The figure data ``attr`` (``"frequency"``, ``"step"``, ...); :class:`Unavailable` with the reason if missing."""
        obj = getattr(self, attr)
        if obj is None:
            raise Unavailable(f"no {what or attr}: {self.reasons.get(attr, 'not computed')}")
        return obj

    def plot_bode(self, ax=None) -> Figure:
        """Bode plot of L and S with the reported margins marked (:func:`crnfb.analysis.reporting.plots.bode`)."""
        from crnfb.analysis.reporting import plots
        return plots.bode(self.need("frequency", "frequency response"), self.margins, self.disturbance, ax=ax)

    def plot_nyquist(self, ax=None) -> Figure:
        """Nyquist plot or characteristic loci (:func:`crnfb.analysis.reporting.plots.nyquist`)."""
        from crnfb.analysis.reporting import plots
        return plots.nyquist(self.need("frequency", "frequency response"), self.margins, ax=ax)

    def plot_step(self, ax=None) -> Figure:
        """Step response with the reported metrics (:func:`crnfb.analysis.reporting.plots.step`)."""
        from crnfb.analysis.reporting import plots
        metrics = self.disturbance.step if self.disturbance is not None else None
        return plots.step(self.need("step", "step response"), metrics, ax=ax)

    def plot_poles(self, ax=None) -> Figure:
        """Pole map (:func:`crnfb.analysis.reporting.plots.poles`)."""
        from crnfb.analysis.reporting import plots
        return plots.poles(self.stability, ax=ax)

    def plot_learning(self, ax=None) -> Figure:
        """A learning episode (:func:`crnfb.analysis.reporting.plots.learning`)."""
        from crnfb.analysis.reporting import plots
        return plots.learning(self.need("trajectory", "learning trajectory"), ax=ax)

    def plot_distribution(self, ax=None) -> Figure:
        """Learned P against Q (:func:`crnfb.analysis.reporting.plots.distribution`)."""
        from crnfb.analysis.reporting import plots
        return plots.distribution(self.need("distribution", "distribution"), ax=ax)

    def plot_lag_cost(self, ax=None) -> Figure:
        """Lag cost against frequency (:func:`crnfb.analysis.reporting.plots.lag_cost`)."""
        from crnfb.analysis.reporting import plots
        return plots.lag_cost(self.disturbance, ax=ax,
                              reason=self._why("disturbance", "the disturbance analysis was not computed"))

    def plot_global(self, ax=None) -> Figure:
        """Outcome of learning against the factor on eps (:func:`crnfb.analysis.reporting.plots.global_outcome`)."""
        from crnfb.analysis.reporting import plots
        return plots.global_outcome(self._global_dict(), dict(zip(self.model.learned_names, map(float, self.model.eps))), ax=ax)

    # -- Jupyter -----------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """Jupyter's rich display: the verdict, :meth:`summary` and the key figures inline.

        Rendered by :func:`crnfb.analysis.reporting.figures.notebook_html` with the captions and tables that
        ``report.html`` has.
        """
        return notebook_html(self)


def _package_version() -> str:
    from crnfb import __version__  # at call time: crnfb imports this module
    return __version__

