"""One call for the whole analysis of a model, and the object that holds it.

:func:`analyse` runs every step of the stability report (docs/cli.md) on a
:class:`~crnfb.feedback.model.Model` and returns a :class:`Results`::

    from crnfb.feedback.modelfile import load_model
    from crnfb.analysis.results import analyse

    res = analyse(load_model("examples/birth_death.toml"), validate=False)
    print(res.summary())
    res.to_json("report.json")
    fig = res.plot_bode()

The core (learned fixed point, loop fixed point, linearisation, stability)
must succeed: a :class:`~crnfb.feedback.errors.ModelError` there is bad input.
Every other section (margins, disturbance, validation, thermodynamics,
trajectories) is guarded: if its module is not installed, or it reports a
limitation, its keys in ``report.json`` are ``null`` with a
``"<key>_reason"`` string beside them. ``report.json`` never holds NaN or
infinity: a non-finite number becomes ``null`` with a reason.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from crnfb.feedback.errors import ModelError
from crnfb.feedback.model import Model

#: Every key of ``report.json`` that docs/cli.md requires (dotted paths).
REQUIRED_KEYS: tuple[str, ...] = (
    "model.name", "model.species", "model.visible", "model.hidden", "model.conservation_laws",
    "model.state_count", "model.truncation_mass",
    "fixed_point.theta", "fixed_point.divergence", "fixed_point.gradient_norm",
    "fixed_point.bias", "fixed_point.optimum",
    "quasi_static.hessian_eigenvalues", "quasi_static.rates", "quasi_static.neutral_directions",
    "closed_loop.eigenvalues", "closed_loop.stable", "closed_loop.slowest_rate",
    "closed_loop.damping_ratio_min",
    "margins.gain_margin", "margins.phase_margin_deg", "margins.eps_crit",
    "disturbance.bandwidth", "disturbance.hinf_norm", "disturbance.step",
    "disturbance.step.rise_time", "disturbance.step.settling_time", "disturbance.step.overshoot_pct",
    "disturbance.lag_cost",
    "validation",
    "thermodynamics.fixed_point", "thermodynamics.fixed_point.free",
    "thermodynamics.fixed_point.clamped", "thermodynamics.fixed_point.learning",
    "thermodynamics.fixed_point.total", "thermodynamics.episode_total",
)

#: Scalar results (dotted ``report.json`` paths) that ``crnfb sweep`` tabulates.
SCALAR_KEYS: tuple[str, ...] = (
    "fixed_point.divergence", "fixed_point.bias", "fixed_point.gradient_norm",
    "quasi_static.slowest_rate",
    "closed_loop.stable", "closed_loop.slowest_rate", "closed_loop.damping_ratio_min",
    "margins.gain_margin", "margins.phase_margin_deg", "margins.eps_crit",
    "disturbance.bandwidth", "disturbance.hinf_norm",
    "disturbance.step.rise_time", "disturbance.step.settling_time", "disturbance.step.overshoot_pct",
    "thermodynamics.fixed_point.free", "thermodynamics.fixed_point.clamped",
    "thermodynamics.fixed_point.learning", "thermodynamics.fixed_point.total",
    "thermodynamics.episode_total",
)

#: Frequency grid of the disturbance definitions (docs/cli.md), rad per time unit.
OMEGA = np.logspace(-4, 3, 2000)


class Unavailable(Exception):
    """A section cannot be computed (module missing, or a stated limitation)."""


# ---------------------------------------------------------------------------------------------
# data objects the plots draw (never recomputed by the plotting functions)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FrequencyResponse:
    """Frequency responses of the linearised loop.

    Attributes
    ----------
    omega : ndarray (n_w,)
        Frequencies, rad per time unit.
    L : ndarray (n_w, k, k) complex
        Loop transfer broken at theta (on the kept, identifiable theta
        coordinates; ``k = 1`` for a single learned direction).
    S : ndarray (n_w, k, k) complex
        Sensitivity ``(I + L)^{-1}``.
    G_ae : ndarray (n_w, m) complex
        Closed-loop transfer from the environment weight ``a`` to the error
        ``e`` (all learned species).
    G_frozen : ndarray (n_w, m) complex
        The same with theta held fixed.
    source : str
        Which code computed it.
    """

    omega: np.ndarray
    L: np.ndarray
    S: np.ndarray
    G_ae: np.ndarray | None = None
    G_frozen: np.ndarray | None = None
    source: str = "crnfb.analysis.results"

    @property
    def siso(self) -> bool:
        return self.L.shape[1] == 1


@dataclass(frozen=True, eq=False)
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
    source: str = "crnfb.analysis.results"
    amplitude: float | None = None


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A learning episode: ``theta(t)`` (learned species) and ``D(t)`` in nats."""

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


@dataclass(frozen=True, eq=False)
class Distribution:
    """Learned ``P(v)`` at the loop's fixed point against the environment ``Q(v)``."""

    states: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    names: list


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _progress_enabled(flag: bool) -> bool:
    return bool(flag) and sys.stderr.isatty() and not os.environ.get("CI")


def _find(module: str, names: tuple[str, ...]) -> Callable:
    """First callable among ``names`` in ``module``; :class:`Unavailable` if none."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise Unavailable(f"{module} is not available in this installation") from None
        raise
    for n in names:
        f = getattr(mod, n, None)
        if callable(f):
            return f
    raise Unavailable(f"{module} has no {names[0]}()")


def _invoke(f: Callable, pool: dict, *positional):
    """Call ``f`` with ``positional`` and any keyword it accepts from ``pool``."""
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return f(*positional)
    params = list(sig.parameters.values())
    kw = {}
    for p in params[len(positional):]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in pool:
            kw[p.name] = pool[p.name]
    return f(*positional, **kw)


def _as_dict(obj) -> Any:
    if obj is None:
        return None
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(obj)
    return obj


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


def get_path(d: dict, path: str, default=KeyError):
    """``d["a"]["b"]`` for ``path = "a.b"`` (``default`` if missing, KeyError if not given)."""
    cur = d
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            if default is KeyError:
                raise KeyError(path)
            return default
    return cur


def _first(d: dict | None, *keys, default=None):
    if not isinstance(d, dict):
        return default
    for k in keys:
        if k in d:
            return d[k]
    return default


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Results:
    """Everything :func:`analyse` computed for one model.

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
    margins, disturbance : object or None
        Result objects of :mod:`crnfb.analysis.margins` / :mod:`crnfb.analysis.disturbance`.
    validation : list or None
        Checks of :func:`crnfb.analysis.validation.validate`.
    thermodynamics : dict or None
        :func:`crnfb.analysis.thermo.thermodynamics_report`.
    frequency : FrequencyResponse or None
    step : StepResponse or None
    trajectory : Trajectory or None
    distribution : Distribution or None
    reasons : dict
        Dotted key -> why that part of the report is null.
    timings : dict
        Seconds per step.
    """

    model: Model
    optimum: Any = None
    fixed_point: Any = None
    loop: Any = None
    stability: Any = None
    margins: Any = None
    disturbance: Any = None
    validation: list | None = None
    thermodynamics: dict | None = None
    frequency: FrequencyResponse | None = None
    step: StepResponse | None = None
    trajectory: Trajectory | None = None
    distribution: Distribution | None = None
    reasons: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    seed: int = 0
    extra: dict = field(default_factory=dict)

    # -- verdicts ---------------------------------------------------------------------
    @property
    def stable(self) -> bool:
        return bool(self.stability is not None and self.stability.stable)

    @property
    def validation_failed(self) -> bool:
        return bool(self.validation) and any(c.get("passed") is False for c in self._validation_dicts())

    @property
    def exit_code(self) -> int:
        """0 if stable and every validation check passed, else 1 (docs/cli.md)."""
        return 0 if self.stable and not self.validation_failed else 1

    def _validation_dicts(self) -> list[dict]:
        return [_plain(_as_dict(c)) for c in (self.validation or [])]

    # -- report.json ------------------------------------------------------------------------
    def _margins_dict(self) -> dict:
        d = _plain(_as_dict(self.margins)) if self.margins is not None else {}
        out = dict(d) if isinstance(d, dict) else {}
        why = self.reasons.get("margins", "margins were not computed")
        for k in ("gain_margin", "phase_margin_deg", "eps_crit"):
            out.setdefault(k, None)
            if out[k] is None and not out.get(f"{k}_reason"):
                # the margins module may name the reason without the unit suffix (phase_margin_reason)
                alt = out.get(k.removesuffix("_deg") + "_reason")
                out[f"{k}_reason"] = alt or (why if self.margins is None else
                                             "not available (crnfb.analysis.margins gave no reason)")
        if out.get("crossover_frequency") is None and isinstance(out.get("gain_crossover_frequency"), (int, float)):
            out["crossover_frequency"] = out["gain_crossover_frequency"]   # the margins module's own value
        if "crossover_frequency" not in out and self.frequency is not None and self.frequency.siso:
            wc = crossover_frequency(self.frequency)
            out["crossover_frequency"] = wc
            if wc is None:
                out["crossover_frequency_reason"] = "|L(jw)| does not cross 1 on the frequency grid"
        return out

    def _disturbance_dict(self) -> dict:
        d = _plain(_as_dict(self.disturbance)) if self.disturbance is not None else {}
        out = dict(d) if isinstance(d, dict) else {}
        why = self.reasons.get("disturbance") or out.get("reason") or (
            "the disturbance analysis was not computed" if self.disturbance is None
            else "not available (crnfb.analysis.disturbance gave no reason)")
        for k in ("bandwidth", "hinf_norm", "lag_cost"):
            out.setdefault(k, None)
            if out[k] is None and not out.get(f"{k}_reason"):
                out[f"{k}_reason"] = why
        step = out.get("step")
        if not isinstance(step, dict):
            step = {}
            if not out.get("step_reason"):
                out["step_reason"] = why
        for k in ("rise_time", "settling_time", "overshoot_pct"):
            step.setdefault(k, None)
            if step[k] is None and not step.get(f"{k}_reason"):
                step[f"{k}_reason"] = out.get("step_reason") or why
        out["step"] = step
        return out

    def _thermo_dict(self) -> dict:
        d = _plain(self.thermodynamics) if self.thermodynamics is not None else {}
        out = dict(d) if isinstance(d, dict) else {}
        why = self.reasons.get("thermodynamics", "the thermodynamic accounting was not computed")
        fp = out.get("fixed_point")
        if not isinstance(fp, dict):
            fp = {}
            out.setdefault("fixed_point_reason", why)
        for k in ("free", "clamped", "learning", "total"):
            fp.setdefault(k, None)
            if fp[k] is None and not fp.get(f"{k}_reason"):
                fp[f"{k}_reason"] = ("clamped ensemble is not simulated under equilibrium clamping"
                                     if k == "clamped" and self.model.learning.clamping == "equilibrium" else why)
        out["fixed_point"] = fp
        out.setdefault("episode_total", None)
        if out["episode_total"] is None and not out.get("episode_total_reason"):
            out["episode_total_reason"] = why
        return out

    def to_dict(self) -> dict:
        """``report.json`` as plain Python (every docs/cli.md key; no NaN)."""
        m = self.model
        info = m.summary()
        names = m.learned_names
        model = {k: info[k] for k in ("name", "species", "visible", "hidden", "conservation_laws",
                                      "state_count", "truncation_mass")}
        model.update(learned=names, reactions=info["reactions"], clamping=m.learning.clamping,
                     eps=dict(zip(names, map(float, m.eps))), gamma=float(m.learning.gamma),
                     dmu=float(m.learning.dmu), environment_tail_mass=info["environment_tail_mass"],
                     source=m.source)
        fp, opt, st = self.fixed_point, self.optimum, self.stability
        model["truncation_mass_at_fixed_point"] = float(m.space.truncation_mass(m.full_theta(fp.theta)))
        fixed = {
            "theta": dict(zip(names, map(float, fp.theta))),
            "divergence": float(fp.divergence),
            "gradient_norm": float(fp.gradient_norm),
            "bias": float(fp.bias),
            "residual": float(fp.residual),
            "optimum": {**opt.to_dict(names)},
        }
        qs_rates = np.asarray(st.quasi_static_rates, float)
        quasi = {
            "species": names,
            "hessian_eigenvalues": [float(x) for x in opt.hessian_eigenvalues],
            "rates": [float(x) for x in qs_rates],
            "slowest_rate": float(np.min(qs_rates[qs_rates > 0])) if np.any(qs_rates > 0) else None,
            "neutral_directions": [[float(v) for v in col] for col in m.neutral.T],
            "flat_directions": int(opt.flat.size),
        }
        if quasi["slowest_rate"] is None:
            quasi["slowest_rate_reason"] = "no positive quasi-static rate (flat landscape)"
        closed = _plain(st.to_dict())
        if not st.eigenvalues.size:
            closed["slowest_rate"] = None
            closed["slowest_rate_reason"] = "no identifiable closed-loop mode left after removing structural zeros"
        closed["reduced_states"] = int(self.loop.n_reduced)
        out = {
            "model": model,
            "fixed_point": fixed,
            "quasi_static": quasi,
            "closed_loop": closed,
            "margins": self._margins_dict(),
            "disturbance": self._disturbance_dict(),
            "validation": self._validation_dicts() if self.validation is not None else None,
            "thermodynamics": self._thermo_dict(),
            "verdict": {"stable": self.stable, "validation_failed": self.validation_failed,
                        "exit_code": self.exit_code},
            "meta": {"seed": int(self.seed), "timings_s": {k: round(float(v), 4) for k, v in self.timings.items()},
                     "package": _package_version()},
        }
        if self.validation is None:
            out["validation_reason"] = self.reasons.get("validation", "validation was not run")
        for k, v in self.extra.items():
            out.setdefault(k, v)
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

    # -- text -------------------------------------------------------------------------------
    def summary(self) -> str:
        """A compact text table of the main results (statsmodels-like)."""
        d = self.to_dict()
        W = 78
        def f(x, fmt=".4g", unit=""):
            if x is None:
                return "n/a"
            if isinstance(x, bool):
                return "yes" if x else "NO"
            if isinstance(x, float) and abs(x) < 1e-13:
                x = 0.0   # round-off around an exact zero
            return f"{x:{fmt}}{unit}"
        def why(path):
            head, _, last = path.rpartition(".")
            sec = get_path(d, head, {}) if head else d
            r = sec.get(f"{last}_reason") if isinstance(sec, dict) else None
            return r
        mo, fp, qs, cl = d["model"], d["fixed_point"], d["quasi_static"], d["closed_loop"]
        mg, di, th = d["margins"], d["disturbance"], d["thermodynamics"]
        theta = ", ".join(f"{k}={v:.4g}" for k, v in fp["theta"].items())
        eig = cl["eigenvalues"][:1]
        eig_s = ", ".join(f"{re:.3g}{im:+.3g}j" if abs(im) > 1e-6 * math.hypot(re, im) else f"{re:.4g}"
                          for re, im in eig) or "-"
        lines = ["=" * W, f"{'crn-feedback stability report':^{W}}", "=" * W]
        pairs = [
            ("Model", mo["name"], "Clamping", mo["clamping"]),
            ("Species", _short_list(mo["species"]), "States", str(mo["state_count"])),
            ("Visible", _short_list(mo["visible"]) or "-", "Learned", _short_list(mo["learned"])),
            ("eps", _short_list([f"{v:g}" for v in mo["eps"].values()]), "gamma / dmu",
             f"{mo['gamma']:g} / {mo['dmu']:g} kT"),
        ]
        for a, b, c, e in pairs:
            lines.append(f"{a + ':':<16}{b:<23}{c + ':':<16}{e:<23}".rstrip())
        lines.append("-" * W)
        if len(theta) > W - 23:
            theta = theta[:W - 27].rsplit(", ", 1)[0] + ", ..."
        lines.append(f"{'Fixed point':<16}theta: {theta}")
        pairs = [
            ("D(Q||P)", f(fp["divergence"], ".4g", " nats"), "bias", f(fp["bias"], ".3g", " nats")),
            ("|grad D|", f(fp["gradient_norm"], ".2g"), "optimum kind", fp["optimum"]["kind"]),
            ("QS slowest", f(qs.get("slowest_rate"), ".4g", " /t"), "neutral dirs", str(len(qs["neutral_directions"]))),
            ("Stable", f(cl["stable"]), "slowest rate", f(cl["slowest_rate"], ".4g", " /t")),
            ("damping min", f(cl["damping_ratio_min"], ".3g"), "slowest eig", eig_s[:23]),
            ("gain margin", f(mg["gain_margin"], ".4g"), "phase margin", f(mg["phase_margin_deg"], ".1f", " deg")),
            ("eps_crit", f(mg["eps_crit"], ".4g"), "crossover", f(mg.get("crossover_frequency"), ".3g", " rad/t")),
            ("bandwidth", f(di["bandwidth"], ".3g", " rad/t"), "H-inf norm", f(di["hinf_norm"], ".4g")),
            ("step rise", f(di["step"]["rise_time"], ".3g", " t"), "settling 2%", f(di["step"]["settling_time"], ".3g", " t")),
            ("overshoot", f(di["step"]["overshoot_pct"], ".3g", " %"), "lag cost pts",
             str(len(di["lag_cost"])) if di.get("lag_cost") else "n/a"),
        ]
        for a, b, c, e in pairs:
            lines.append(f"{a + ':':<16}{b:<23}{c + ':':<16}{e:<23}".rstrip())
        lines.append("-" * W)
        if d["validation"] is None:
            lines.append(f"{'Validation:':<16}{d.get('validation_reason', 'not run')}"[:W])
        else:
            n = len(d["validation"])
            ok = sum(1 for c in d["validation"] if c.get("passed"))
            bad = sum(1 for c in d["validation"] if c.get("passed") is False)
            lines.append(f"{'Validation:':<16}{ok} of {n} checks passed, {n - ok - bad} not made"
                         + ("  <-- FAILED" if bad else ""))
            for c in d["validation"]:
                if c.get("passed") is False:
                    lines.append(f"{'':16}failed: {c.get('quantity')}: predicted {f(c.get('predicted'))}, "
                                 f"simulated {f(c.get('simulated'))}"[:W])
        tfp = th["fixed_point"]
        lines.append(f"{'Dissipation:':<16}total {f(tfp['total'], '.4g')} kT/t  (free {f(tfp['free'], '.3g')}, "
                     f"clamped {f(tfp['clamped'], '.3g')}, learning {f(tfp['learning'], '.3g')})"[:W])
        lines.append(f"{'Episode:':<16}{f(th['episode_total'], '.4g', ' kT')}")
        missing = [p for p in ("margins.eps_crit", "disturbance.bandwidth", "thermodynamics.episode_total")
                   if get_path(d, p, None) is None and why(p)]
        if missing:
            lines.append("-" * W)
            import textwrap
            for p in missing:
                lines.extend(textwrap.wrap(f"note: {p} n/a: {why(p)}", W, subsequent_indent="      "))
        lines.append("=" * W)
        return "\n".join(lines)

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.summary()

    # -- plots (matplotlib imported lazily by crnfb.analysis.plots) ----------------------------------
    def _need(self, attr: str, what: str):
        obj = getattr(self, attr)
        if obj is None:
            raise Unavailable(f"no {what}: {self.reasons.get(attr, 'not computed')}")
        return obj

    def plot_bode(self):
        """Bode plot of L and S with the reported margins marked (:func:`crnfb.analysis.plots.bode`)."""
        from crnfb.analysis import plots
        d = self.to_dict()
        return plots.bode(self._need("frequency", "frequency response"), d["margins"], d["disturbance"])

    def plot_nyquist(self):
        from crnfb.analysis import plots
        return plots.nyquist(self._need("frequency", "frequency response"), self.to_dict()["margins"])

    def plot_step(self):
        from crnfb.analysis import plots
        return plots.step(self._need("step", "step response"), self.to_dict()["disturbance"]["step"])

    def plot_poles(self):
        from crnfb.analysis import plots
        return plots.poles(self.stability, self.model.learned_names)

    def plot_learning(self):
        from crnfb.analysis import plots
        return plots.learning(self._need("trajectory", "learning trajectory"))

    def plot_distribution(self):
        from crnfb.analysis import plots
        return plots.distribution(self._need("distribution", "distribution"))

    def plot_lag_cost(self):
        from crnfb.analysis import plots
        return plots.lag_cost(self.to_dict()["disturbance"])


def _short_list(items, width: int = 22) -> str:
    """``"a, b, c"`` cut to ``width`` characters with a count when cut: ``"a, b, ... (13)"``."""
    text = ", ".join(map(str, items))
    if len(text) <= width:
        return text
    tail = f", ... ({len(items)})"
    head = text[:width - len(tail)].rsplit(", ", 1)[0]
    return head + tail


def _package_version() -> str:
    from crnfb import __version__  # at call time: crnfb imports this module
    return __version__


def crossover_frequency(fr: FrequencyResponse) -> float | None:
    """Gain crossover of a single-direction loop: first ``|L(jw)| = 1`` (log-interpolated)."""
    mag = np.abs(fr.L[:, 0, 0])
    w = fr.omega
    idx = np.nonzero((mag[:-1] >= 1.0) & (mag[1:] < 1.0))[0]
    if not idx.size:
        return None
    i = idx[0]
    lm0, lm1 = np.log(mag[i]), np.log(mag[i + 1])
    t = lm0 / (lm0 - lm1) if lm0 != lm1 else 0.0
    return float(np.exp(np.log(w[i]) + t * (np.log(w[i + 1]) - np.log(w[i]))))


# ---------------------------------------------------------------------------------------------
# own computations for the figures (linear algebra on the reduced loop)
# ---------------------------------------------------------------------------------------------
def _theta_block(loop) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into the reduced state) of the plant states and of the kept theta coordinates."""
    net = loop.net
    base = net.n_f + net.n_c
    t_idx = np.nonzero(loop.rest >= base)[0]
    p_idx = np.nonzero(loop.rest < base)[0]
    return p_idx, t_idx


def frequency_response(loop, omega: np.ndarray = OMEGA) -> FrequencyResponse:
    """``L``, ``S``, ``G_ae`` and the frozen ``G_ae`` on ``omega`` from the reduced loop.

    ``L(s) = -(1/s) [A_tp (sI - A_pp)^{-1} A_pt + A_tt]`` is the loop
    broken at theta (plant states ``p``, kept theta coordinates ``t`` of the
    reduced Jacobian); ``S = (I + L)^{-1}``. ``G_ae`` is evaluated with
    python-control's state-space frequency response (Hessenberg, slycot).
    """
    import control

    Jr, Br = loop.dense()
    p_idx, t_idx = _theta_block(loop)
    App, Apt = Jr[np.ix_(p_idx, p_idx)], Jr[np.ix_(p_idx, t_idx)]
    Atp, Att = Jr[np.ix_(t_idx, p_idx)], Jr[np.ix_(t_idx, t_idx)]
    k = t_idx.size
    s = 1j * omega
    if p_idx.size:
        plant = control.ss(App, Apt, -Atp, -Att)
        P = np.asarray(plant.frequency_response(omega).complex)
        P = P.reshape(k, k, omega.size)
    else:
        P = np.repeat(-Att[:, :, None], omega.size, axis=2).astype(complex)
    L = np.moveaxis(P, 2, 0) / s[:, None, None]
    I = np.eye(k)
    S = np.linalg.inv(I[None] + L)
    Ce = loop.output("e").toarray()
    De = loop.feedthrough("e")
    G = np.asarray(control.ss(Jr, Br[:, None], Ce, De[:, None]).frequency_response(omega).complex)
    G = G.reshape(Ce.shape[0], omega.size).T
    Jf, Bf = Jr.copy(), Br.copy()
    Jf[t_idx, :] = 0.0
    Bf[t_idx] = 0.0
    Gf = np.asarray(control.ss(Jf, Bf[:, None], Ce, De[:, None]).frequency_response(omega).complex)
    Gf = Gf.reshape(Ce.shape[0], omega.size).T
    return FrequencyResponse(omega, L, S, G, Gf, "crnfb.analysis.results.frequency_response")


def quasi_static_direction(model: Model, theta: np.ndarray) -> np.ndarray:
    """``dtheta*/da`` on the learning leaf: ``E U (U^T H E U)^+ U^T (m_c(Q_2) - m_c(Q_1))``."""
    U = model.identifiable
    EU = model.eps[:, None] * U
    H = model.hessian(theta)
    lsc = model.landscape
    th = model.full_theta(theta)
    dm = (lsc.moments(th, model.q_change).mean_clamped - lsc.moments(th, model.q).mean_clamped)[model.learned]
    dx = np.linalg.lstsq(U.T @ H @ EU, U.T @ dm, rcond=1e-10)[0]
    return EU @ dx


def linear_step(loop, direction: np.ndarray, t_end: float, n: int = 600) -> StepResponse:
    """Exact (matrix-exponential) response of ``direction . theta / |direction|^2`` to a unit step in ``a``."""
    from scipy.linalg import expm

    Jr, Br = loop.dense()
    Ct = loop.output("theta").toarray()
    t = np.linspace(0.0, t_end, n)
    dt = t[1] - t[0]
    r = Jr.shape[0]
    M = np.zeros((r + 1, r + 1))
    M[:r, :r] = Jr * dt
    M[:r, r] = Br * dt
    Phi = expm(M)
    A_d, B_d = Phi[:r, :r], Phi[:r, r]
    x = np.zeros(r)
    c = direction @ Ct / max(float(direction @ direction), 1e-300)
    y = np.empty(n)
    for i in range(n):
        y[i] = c @ x
        x = A_d @ x + B_d
    return StepResponse(t, y, direction, source="crnfb.analysis.results.linear_step")


def quasi_static_trajectory(model: Model, theta_star: np.ndarray, t_end: float, n: int = 400) -> Trajectory:
    """Integrate the quasi-static flow ``dtheta/dt = -E grad D`` from the file's energies."""
    from scipy.integrate import solve_ivp

    E = model.eps

    def rhs(t, th):
        return -E * model.gradient(th)

    def jac(t, th):
        return -E[:, None] * model.hessian(th)

    t = np.linspace(0.0, t_end, n)
    sol = solve_ivp(rhs, (0.0, t_end), model.theta0, method="BDF", jac=jac, t_eval=t, rtol=1e-7, atol=1e-10)
    theta = sol.y.T
    D = np.array([model.divergence(th) for th in theta])
    return Trajectory(sol.t, theta, D, model.learned_names, "quasi-static flow (docs/theory.md §3)",
                      np.asarray(theta_star, float), float(model.divergence(theta_star)))


def episode_time(model: Model, stab, factor: float = 1.15, loop: bool = True) -> float:
    """Time for the slowest mode to shrink by 1e-3 (docs/theory.md §4), a little beyond.

    ``loop=True``: the closed loop's slowest rate when it is stable (the
    ensemble-level ODE); else, or with ``loop=False``, the slowest
    quasi-static rate (the gradient flow).
    """
    if loop and stab.eigenvalues.size and stab.stable and stab.slowest_rate > 0:
        r = stab.slowest_rate
    else:
        rates = [r for r in np.asarray(stab.quasi_static_rates, float) if r > 0]
        r = min(rates) if rates else 1.0
    return float(factor * np.log(1e3) / r)


# ---------------------------------------------------------------------------------------------
# analyse
# ---------------------------------------------------------------------------------------------
_MARGIN_FUNCS = ("margins", "stability_margins", "compute_margins", "loop_margins", "analyse_margins")
_DIST_FUNCS = ("disturbance", "disturbance_rejection", "analyse_disturbance", "compute_disturbance")
_FREQ_FUNCS = ("loop_frequency_response", "frequency_response", "loop_responses")
_VALID_FUNCS = ("validate",)
_THERMO_FUNCS = ("thermodynamics_report",)
_SIM_FUNCS = ("simulate", "simulate_ode", "ode_trajectory", "trajectory")


def analyse(model: Model, validate: bool = True, seed: int = 0, progress: bool = False,
            quick: bool = False, figures: bool = True) -> Results:
    """Run the full stability analysis of ``model``.

    Parameters
    ----------
    model : Model
        The learning problem (e.g. from :func:`crnfb.feedback.modelfile.load_model`).
    validate : bool
        Run the nonlinear-simulation checks (:mod:`crnfb.analysis.validation`).
    seed : int
        Seed for the stochastic parts (validation).
    progress : bool
        Show a progress bar on stderr (only on a terminal, never when ``CI`` is set).
    quick : bool
        Cheaper settings where a section offers them: the short validation
        (:func:`crnfb.analysis.validation.validate` ``quick=True``) and a looser
        integration of the thermodynamic episode (used by ``crnfb sweep``).
    figures : bool
        Also compute the data the figures draw (frequency responses, step
        response, learning trajectory, distributions). ``crnfb sweep`` turns
        this off: the scalar results do not need them.

    Returns
    -------
    Results

    Raises
    ------
    ModelError
        The model cannot be analysed (bad input).
    """
    from crnfb.analysis.fixedpoints import learned_fixed_point
    from crnfb.analysis.linearise import linearise, loop_fixed_point
    from crnfb.analysis.stability import stability
    from crnfb.analysis.validation import with_consistency

    res = Results(model=model, seed=int(seed))
    steps = (["fixed point", "linearisation", "stability", "margins", "disturbance"]
             + (["frequency response", "step response", "learning trajectory"] if figures else [])
             + ["thermodynamics"] + (["validation"] if validate else []))
    bar = None
    if _progress_enabled(progress):
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(steps), desc="analysis", unit="step", file=sys.stderr, leave=False)
        except ImportError:  # pragma: no cover
            bar = None

    def tick(name: str):
        if bar is not None:
            bar.update(1)

    def timed(name: str, fn: Callable, section: str | None = None, core: bool = False):
        if bar is not None:
            bar.set_postfix_str(name)      # the step now running
        t0 = time.perf_counter()
        try:
            return fn()
        except Unavailable as e:
            res.reasons[section or name] = str(e)
        except ModelError as e:
            if core:
                raise
            res.reasons[section or name] = f"limitation: {e}"
        except NotImplementedError as e:
            res.reasons[section or name] = f"not implemented: {e}"
        except Exception as e:  # a section's bug must not lose the rest of the report
            if core:
                raise
            msg = f"{type(e).__name__}: {e}"
            warnings.warn(f"{section or name} failed ({msg}); its keys are null in the report", RuntimeWarning,
                          stacklevel=2)
            res.reasons[section or name] = f"failed: {msg}"
        finally:
            res.timings[name] = time.perf_counter() - t0
            tick(name)
        return None

    try:
        res.optimum = timed("fixed point", lambda: learned_fixed_point(model), core=True)
        fp = loop_fixed_point(model, optimum=res.optimum)
        res.fixed_point = fp
        res.loop = timed("linearisation", lambda: linearise(model, fixed_point=fp), core=True)
        res.stability = timed("stability", lambda: stability(res.loop), core=True)
        pool = {"model": model, "loop": res.loop, "stab": res.stability, "stability": res.stability,
                "fixed_point": fp, "seed": int(seed), "quick": quick, "optimum": res.optimum}

        def freq():
            try:
                fq = importlib.import_module("crnfb.analysis.frequency")
            except ModuleNotFoundError:
                fq = None
            if fq is not None and callable(getattr(fq, "loop_blocks", None)):
                r = fq.loop_blocks(res.loop).response(OMEGA)
                return FrequencyResponse(np.asarray(r.omega), np.asarray(r.L), np.asarray(r.S),
                                         np.asarray(r.G_ae), np.asarray(r.G_frozen), "crnfb.analysis.frequency")
            return frequency_response(res.loop)

        res.margins = timed("margins", lambda: _invoke(_find("crnfb.analysis.margins", _MARGIN_FUNCS), pool, res.loop),
                            "margins")
        res.disturbance = timed("disturbance",
                                lambda: _invoke(_find("crnfb.analysis.disturbance", _DIST_FUNCS), pool, res.loop),
                                "disturbance")
        if figures:
            resp = getattr(res.disturbance, "response", None)
            if resp is not None and all(hasattr(resp, a) for a in ("omega", "L", "S", "G_ae", "G_frozen")):
                # the responses the disturbance figures were computed from (a superset of the spec grid)
                res.frequency = FrequencyResponse(np.asarray(resp.omega), np.asarray(resp.L), np.asarray(resp.S),
                                                  np.asarray(resp.G_ae), np.asarray(resp.G_frozen),
                                                  "crnfb.analysis.disturbance")
                tick("frequency response")
            else:
                res.frequency = timed("frequency response", freq, "frequency")
        else:
            res.reasons["frequency"] = "not computed (figures=False)"
        t_ep = episode_time(model, res.stability)

        def step():
            if not res.stability.stable:
                raise Unavailable("the loop is unstable at the given eps: the step response diverges "
                                  f"(slowest rate {res.stability.slowest_rate:.3g})")
            sm = getattr(res.disturbance, "step", None)
            d_loop = getattr(res.disturbance, "dtheta_loop", None)
            if sm is not None and getattr(sm, "t", None) is not None and d_loop is not None:
                # the very series the reported step metrics were computed from
                sr = StepResponse(np.asarray(sm.t, float), np.asarray(sm.y, float), np.asarray(d_loop, float),
                                  source="crnfb.analysis.disturbance")
            else:
                d = quasi_static_direction(model, res.optimum.theta)
                if not np.any(d):
                    raise Unavailable("the environment change does not move the optimum (dtheta*/da = 0)")
                rate = res.stability.slowest_rate if res.stability.stable else None
                t_end = min(12.0 / rate, 2.0 * t_ep) if rate else 2.0 * t_ep
                sr = linear_step(res.loop, d, t_end)
            if validate:
                try:
                    sr = _nonlinear_step(model, fp, sr)
                except Unavailable as e:
                    res.reasons["step_nonlinear"] = str(e)
                except (ModelError, RuntimeError, ValueError) as e:
                    res.reasons["step_nonlinear"] = f"nonlinear step simulation failed: {e}"
            return sr

        if figures:
            res.step = timed("step response", step, "step")

        def traj():
            try:
                sim = _find("crnfb.feedback.simulate", _SIM_FUNCS)
            except Unavailable:
                sim = None
            if sim is not None:
                try:
                    out = _trajectory_from_sim(_invoke(sim, dict(pool, t_end=3.0 * t_ep, until_episode_end=True,
                                                                  points=401), model), model, res.optimum, fp)
                    if out is not None:
                        return out
                except (TypeError, ModelError, NotImplementedError) as e:
                    res.reasons["trajectory_simulator"] = f"ODE simulator not used: {e}"
            return quasi_static_trajectory(model, res.optimum.theta, episode_time(model, res.stability, loop=False))

        if figures:
            res.trajectory = timed("learning trajectory", traj, "trajectory")
            th = res.fixed_point.theta
            mo = model.landscape.moments(model.full_theta(th))
            vis = model.network.visible
            res.distribution = Distribution(model.space.visible_states, mo.P, model.q,
                                            [model.network.names[i] for i in vis])
        res.thermodynamics = timed("thermodynamics", lambda: _invoke(
            _find("crnfb.analysis.thermo", _THERMO_FUNCS), pool, model), "thermodynamics")
        if validate:
            res.validation = timed("validation", lambda: list(_invoke(
                _find("crnfb.analysis.validation", _VALID_FUNCS), pool, model)), "validation")
        else:
            res.reasons["validation"] = "not run (validate=False / --no-validate)"
        res.validation = with_consistency(res.validation, res.to_dict())  # verdict vs the numbers
    finally:
        if bar is not None:
            bar.close()
    return res


STEP_AMPLITUDE = 0.01


def _nonlinear_step(model: Model, fp, sr: StepResponse, amplitude: float = STEP_AMPLITUDE) -> StepResponse:
    """Overlay the full nonlinear loop's response to a small step in ``a`` (per unit ``a``)."""
    sim = _find("crnfb.feedback.simulate", ("simulate",))
    from crnfb.feedback.signals import Step
    tr = sim(model, float(sr.t[-1]), signal=Step(0.0, amplitude, 0.0), x0=fp.x, points=121)
    d = sr.direction
    y = (np.asarray(tr.theta) - fp.theta) @ d / (float(d @ d) * amplitude)
    return StepResponse(sr.t, sr.y, d, np.asarray(tr.t), y, sr.source, amplitude)


def _trajectory_from_sim(out, model: Model, optimum, fp=None) -> Trajectory | None:
    """Read ``t``, ``theta``, ``D`` from a simulator result (object or dict)."""
    def get(name):
        if isinstance(out, dict):
            return out.get(name)
        return getattr(out, name, None)
    t, theta = get("t"), get("theta")
    if t is None or theta is None:
        return None
    t = np.asarray(t, float)
    theta = np.asarray(theta, float)
    if theta.ndim == 1:
        theta = theta[:, None]
    if theta.shape[0] != t.size and theta.shape[1] == t.size:
        theta = theta.T
    D = get("D")
    D = np.asarray(D, float) if D is not None else np.array([model.divergence(x) for x in theta])
    return Trajectory(t, theta, D, model.learned_names, "ensemble-level ODE (crnfb.feedback.simulate)",
                      np.asarray(optimum.theta, float), float(optimum.divergence),
                      None if fp is None else np.asarray(fp.theta, float), "loop's fixed point",
                      None if fp is None else float(fp.bias))
