"""Disturbance rejection of the learning loop (docs/theory.md §5, docs/cli.md ``disturbance.*``).

The disturbance is the mixing weight ``a`` of ``Q = (1-a) Q_1 + a Q_2``
(``[environment.change]``). Definitions as implemented (docs/margins.md):

- ``bandwidth``: the first ``w`` on ``logspace(-4, 3, 2000)`` (log-log
  interpolated) where ``|G_ae(jw)| / |G_ae,frozen(jw)|`` reaches ``1/sqrt(2)``
  (Euclidean norms over the learned species; ``frozen``: theta held at the
  fixed point, so under equilibrium clamping ``G_ae,frozen`` is the
  feedthrough ``d m_c/d a``). For one identifiable direction this ratio is
  ``|S(jw)|``.
- ``hinf_norm``: ``sup_w |G_ae(jw)|_2`` on the analysis grid (including the
  limit ``w -> inf``, the feedthrough), refined with ``minimize_scalar``.
- ``step``: ``y(t) = v^T theta(t) / |v|^2`` for a unit step in ``a``, with
  ``v = d theta/d a`` the loop's own fixed-point derivative
  (``-C_theta Jr^{-1} Br``), so ``y -> 1``; ``control.step_info`` metrics
  (10-90 % rise, 2 % settling, overshoot in %). Dense python-control
  simulation for small loops, the package's ``integrate`` (``ReuseBDF``, sparse Jacobian) for large.
- ``dc_gain``: ``G_ae(0) = -C_e Jr^{-1} Br + D_e`` (perfect adaptation: zero).
- ``lag_cost``: for ``a(t) = a0 + a1 sin(w t)`` the period-mean excess
  divergence to second order, per ``a1^2``: ``Re(z^H H z) / 4`` with
  ``z(jw) = G_a->theta(jw) - d theta*_opt/d a``, ``theta*_opt(a)`` the exact
  quasi-static optimum (``H d theta*_opt = d m_Qt/d a``) and ``H`` the
  Hessian of ``D`` there. Limits: ``w -> 0`` gives the static term
  (``z(0) = d theta_loop/d a - d theta*_opt/d a``: zero under equilibrium
  clamping, the derivative of the clamping bias under dynamic clamping);
  ``w -> inf`` gives ``(d theta*/da)^T H (d theta*/da) / 4`` (no adaptation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crnfb.analysis.linear.frequency import BrokenLoop, LoopResponse, analysis_grid, dc_response, broken_loop, spec_grid
from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics import sizes

SPEC_POINTS = 2000
STEP_POINTS = 4000
ADAPTATION_TOL = 1e-8
LAG_POINTS = 30


@dataclass(frozen=True, kw_only=True)
class StepMetrics:
    """``control.step_info`` metrics of the normalised theta step response."""

    rise_time: float
    settling_time: float
    overshoot_pct: float
    peak_time: float
    t: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    method: str = "control.forced_response"

    def to_dict(self) -> dict:
        return {"rise_time": float(self.rise_time), "settling_time": float(self.settling_time),
                "overshoot_pct": float(self.overshoot_pct)}


@dataclass(frozen=True, kw_only=True)
class Disturbance:
    """Disturbance-rejection figures of one loop; every ``None`` has a reason beside it."""

    reason: str | None
    bandwidth: float | None = None
    bandwidth_reason: str | None = None
    hinf_norm: float | None = None
    hinf_frequency: float | None = None
    hinf_reason: str | None = None
    sensitivity_peak: float | None = None
    sensitivity_peak_frequency: float | None = None
    step: StepMetrics | None = None
    step_reason: str | None = None
    dc_gain: np.ndarray | None = None
    dc_frozen: np.ndarray | None = None
    lag_cost: np.ndarray | None = None
    lag_cost_reason: str | None = None
    lag_cost_static: float | None = None
    lag_cost_unadapted: float | None = None
    dtheta_loop: np.ndarray | None = None
    dtheta_opt: np.ndarray | None = None
    response: LoopResponse | None = field(default=None, repr=False)

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def dc_gain_norm(self) -> float | None:
        return None if self.dc_gain is None else float(np.linalg.norm(self.dc_gain))

    @property
    def perfect_adaptation(self) -> bool | None:
        """``|G_ae(0)| <= 1e-8 |G_ae,frozen(0)|``."""
        if self.dc_gain is None or self.dc_frozen is None:
            return None
        scale = max(float(np.linalg.norm(self.dc_frozen)), 1e-300)
        return bool(np.linalg.norm(self.dc_gain) <= ADAPTATION_TOL * scale)

    def sensitivity_curve(self, points: int = 60) -> list:
        """``[[w, sigma_max S(jw)], ...]`` subsampled to about ``points`` frequencies."""
        if self.response is None:
            return []
        R = self.response
        smax = np.linalg.svd(R.S, compute_uv=False)[:, 0]
        idx = np.unique(np.linspace(0, R.omega.size - 1, points).round().astype(int))
        return [[float(R.omega[i]), float(smax[i])] for i in idx]

    def to_dict(self) -> dict:
        def f(x):
            return None if x is None else float(x)

        def vec(v):
            return None if v is None else [float(x) for x in np.real(v)]

        if self.reason is not None:
            return {"available": False, "reason": self.reason, "bandwidth": None, "hinf_norm": None,
                    "step": _null_step(self.reason), "lag_cost": None, "bandwidth_reason": self.reason,
                    "hinf_norm_reason": self.reason, "step_reason": self.reason, "lag_cost_reason": self.reason}
        return {
            "available": True,
            "bandwidth": f(self.bandwidth),
            "bandwidth_reason": self.bandwidth_reason,
            "hinf_norm": f(self.hinf_norm),
            "hinf_frequency": (None if self.hinf_frequency is None or not np.isfinite(self.hinf_frequency)
                               else float(self.hinf_frequency)),
            "hinf_at_infinite_frequency": bool(self.hinf_frequency is not None
                                               and not np.isfinite(self.hinf_frequency)),
            "hinf_norm_reason": self.hinf_reason,
            "sensitivity_peak": f(self.sensitivity_peak),
            "sensitivity_peak_frequency": f(self.sensitivity_peak_frequency),
            "sensitivity": self.sensitivity_curve(),
            "step": _null_step(self.step_reason or "not computed") if self.step is None else self.step.to_dict(),
            "step_reason": self.step_reason,
            "dc_gain": vec(self.dc_gain),
            "dc_gain_norm": f(self.dc_gain_norm),
            "dc_gain_frozen_norm": None if self.dc_frozen is None else float(np.linalg.norm(self.dc_frozen)),
            "perfect_adaptation": self.perfect_adaptation,
            "lag_cost": None if self.lag_cost is None else [[float(w), float(c)] for w, c in self.lag_cost],
            "lag_cost_reason": self.lag_cost_reason,
            "lag_cost_static": f(self.lag_cost_static),
            "lag_cost_unadapted": f(self.lag_cost_unadapted),
            "dtheta_da_loop": vec(self.dtheta_loop),
            "dtheta_da_optimum": vec(self.dtheta_opt),
        }


# ---------------------------------------------------------------------------------------------
def _null_step(reason: str) -> dict:
    """The ``step`` section when no step response was computed: each metric null, with the reason."""
    out: dict = {}
    for k in ("rise_time", "settling_time", "overshoot_pct"):
        out[k] = None
        out[f"{k}_reason"] = reason
    return out


def optimum_derivative(model: Model, theta_opt: np.ndarray, a: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(d theta*_opt/d a, H)`` at the quasi-static optimum.

    ``grad D = <n>_pi - <n>_Qt(a)`` and ``Qt`` is linear in ``a``, so
    ``H d theta* = <n>_Qt(Q_2) - <n>_Qt(Q_1)``; solved on the identifiable
    subspace (minimum norm across flat directions; neutral components are
    irrelevant, ``H N = 0``).
    """
    H = model.hessian(theta_opt, a)
    th = model.full_theta(theta_opt)
    lsc = model.landscape
    dmc = (lsc.moments(th, model.q_change).mean_clamped - lsc.moments(th, model.q).mean_clamped)[model.learned]
    U = model.identifiable
    x = np.linalg.lstsq(U.T @ H @ U, U.T @ dmc, rcond=1e-10)[0]
    return U @ x, H


def bandwidth(omega: np.ndarray, ratio: np.ndarray, refine=None) -> tuple[float | None, str | None]:
    """First crossing of ``1/sqrt(2)`` from below, log-log interpolated (``refine(w)``: exact, by ``brentq``)."""
    thr = 1.0 / np.sqrt(2.0)
    ok = np.isfinite(ratio) & (ratio > 0)
    if not ok.any():
        return None, "the frozen response a -> e vanishes on the grid"
    if ok[0] and ratio[0] >= thr:
        return None, (f"|G_ae|/|G_ae,frozen| is already {ratio[0]:.3g} >= 1/sqrt(2) at w = {omega[0]:.3g}: "
                      "no rejection band on the grid")
    for i in range(1, omega.size):
        if ok[i] and ok[i - 1] and ratio[i] >= thr > ratio[i - 1]:
            lr0, lr1 = np.log(ratio[i - 1]), np.log(ratio[i])
            if refine is not None:
                from scipy.optimize import brentq

                u = brentq(lambda u: np.log(refine(np.exp(u))) - np.log(thr), np.log(omega[i - 1]),
                           np.log(omega[i]), xtol=1e-12)
                return float(np.exp(u)), None
            t = (np.log(thr) - lr0) / (lr1 - lr0)
            return float(np.exp(np.log(omega[i - 1]) + t * (np.log(omega[i]) - np.log(omega[i - 1])))), None
    return None, (f"|G_ae|/|G_ae,frozen| stays below 1/sqrt(2) up to w = {omega[-1]:.3g} "
                  f"(max {np.nanmax(ratio):.3g})")


def _step(loop: LinearLoop, v: np.ndarray, rate: float,
          blocks: BrokenLoop | None = None) -> tuple[StepMetrics | None, str | None]:
    """Normalised step response along ``v`` and its ``control.step_info`` metrics (or a reason).

    Up to :data:`crnfb.feedback.numerics.sizes.STEP_DENSE_LIMIT` reduced states from the dense reduced loop; above,
    from the closed loop through the plant's verified reduced model when there is one
    (:meth:`crnfb.analysis.linear.frequency.BrokenLoop.closed_loop_model`), else by integrating the sparse
    reduced loop.
    """
    import control

    c = np.asarray(loop.output("theta").T @ v).ravel() / float(v @ v)
    B = loop.Br.astype(float)
    n = loop.n_reduced
    dense = n <= sizes.STEP_DENSE_LIMIT
    sys = control.ss(loop.Jr.toarray(), B[:, None], c[None, :], 0.0) if dense else None
    method = "control.forced_response"
    rom = None if dense or blocks is None else blocks.rom
    model = None if rom is None or blocks is None else blocks.closed_loop_model()    # None exactly without rom
    if model is not None and rom is not None:
        A_m, B_m, C_m = model
        sys = control.ss(A_m, B_m, (v / float(v @ v))[None, :] @ C_m, 0.0)
        dense = True
        method = (f"control.forced_response on the closed loop through the plant's reduced model "
                  f"(order {rom.order}, relative error {rom.error:.1g})")
    elif not dense:
        method = "crnfb.feedback.dynamics.integrate.integrate with ReuseBDF"

    def simulate(t_end: float):
        T = np.linspace(0.0, t_end, STEP_POINTS)
        if dense:
            return T, np.asarray(control.forced_response(sys, T, np.ones_like(T)).outputs).ravel()
        from crnfb.feedback.dynamics.integrate import integrate

        # reduced coordinates: the full Jacobian's theta border (dense rows and columns) fills in
        # far more under LU than the reduced one's pivot rows (measured on the T = 40 scaffold)
        Jr = loop.Jr.tocsc()
        # the package's front end with ReuseBDF (docs/benchmarks.md (a)); the constant matrix Jr as
        # the Jacobian (SciPy then never re-evaluates it); SimulationError (a RuntimeError) on failure
        _, Y, _ = integrate(lambda lo, hi: ((lambda t, x: Jr @ x + B), Jr), np.zeros(n), T,
                            rtol=1e-8, atol=1e-12, progress=False)
        return T, Y @ c

    def reached(y):
        # step_info indexes the first sample at 10 % and 90 % of the final value: both must exist
        return bool(np.all(np.isfinite(y)) and np.any(y >= 0.9))

    t_end = 20.0 / rate
    for _ in range(4):
        T, y = simulate(t_end)
        if reached(y):
            s = control.step_info(y, T, yfinal=1.0)
            if np.isfinite(s["SettlingTime"]) and s["SettlingTime"] < 0.8 * t_end:
                break
        t_end *= 4.0
    if not reached(y):
        return None, (f"the step response along d theta/d a reaches {np.nanmax(y):.3g} of its final value "
                      f"by t = {T[-1]:.3g} (slowest rate {rate:.3g})")
    rise = s["RiseTime"]
    above = np.nonzero(y >= 0.9)[0]
    i90 = int(above[0])
    if i90 < 200:  # resolve the rise on a finer grid
        T2, y2 = simulate(max(2.0 * T[max(i90, 1)], 10 * T[1]))
        if reached(y2):
            rise = control.step_info(y2, T2, yfinal=1.0)["RiseTime"]
    return StepMetrics(rise_time=float(rise), settling_time=float(s["SettlingTime"]),
                       overshoot_pct=float(s["Overshoot"]), peak_time=float(s["PeakTime"]), t=T, y=y,
                       method=method), None


def _slowest(loop: LinearLoop) -> tuple[complex, bool]:
    """The slowest eigenvalue without the flat modes, and the verdict of the one zero tolerance
    (:func:`crnfb.analysis.linear.stability.loop_modes`)."""
    from crnfb.analysis.linear.stability import loop_modes

    split = loop_modes(loop)
    return complex(split.rest[0]), split.stable


def disturbance(loop: LinearLoop, *, blocks: BrokenLoop | None = None, omega=None,
                lag_points: int = LAG_POINTS) -> Disturbance:
    """Disturbance-rejection figures of a linearised loop (module docstring)."""
    model = loop.net.model
    if model.change is None:
        return Disturbance(reason="the model has no [environment.change]: the disturbance direction is zero")
    blocks = blocks or broken_loop(loop)
    if not blocks.has_disturbance:
        return Disturbance(reason="[environment.change] leaves the clamped means unchanged: the disturbance "
                                  "direction is zero")
    slow, stable = _slowest(loop)
    rate = -slow.real
    dc = dc_response(loop, "e")
    dc_frozen = blocks.open_loop([0.0])[1][0]
    v = dc_response(loop, "theta")
    fp = loop.fixed_point
    dth_opt, H = optimum_derivative(model, fp.optimum.theta, fp.a)
    z0 = v - dth_opt
    static = 0.25 * float(z0 @ H @ z0)
    unadapted = 0.25 * float(dth_opt @ H @ dth_opt)
    if not stable:
        why = f"the loop is unstable at the given eps (max Re eig = {slow.real:.3g})"
        return Disturbance(reason=None, bandwidth_reason=why, hinf_reason=why, step_reason=why, dc_gain=dc,
                           dc_frozen=dc_frozen, lag_cost_reason=why, lag_cost_static=static,
                           lag_cost_unadapted=unadapted, dtheta_loop=v, dtheta_opt=dth_opt)

    omega = analysis_grid(blocks, (rate,)) if omega is None else np.asarray(omega, float)
    grid = spec_grid(blocks)
    omega = np.union1d(omega, grid)
    R = blocks.response(omega)

    # bandwidth on the INTERFACE grid (large plants: its every 7th point, crossing refined exactly)
    spec = np.isin(R.omega, grid)
    refine = None if grid.size == SPEC_POINTS else (lambda w: float(blocks.response([w]).gain_ratio[0]))
    bw, bw_reason = bandwidth(R.omega[spec], R.gain_ratio[spec], refine)

    # H-infinity norm of a -> e
    g = np.linalg.norm(R.G_ae, axis=1)
    w_peak, peak = _refine_extremum(lambda w: float(np.linalg.norm(blocks.response([w]).G_ae[0])), R.omega, g)
    h_inf_limit = float(np.linalg.norm(blocks.D_a))
    if h_inf_limit > peak:
        w_peak, peak = float("inf"), h_inf_limit

    smax = np.linalg.svd(R.S, compute_uv=False)[:, 0]
    w_s, s_peak = _refine_extremum(lambda w: float(np.linalg.svd(blocks.response([w]).S[0], compute_uv=False)[0]),
                                   R.omega, smax)

    # step along the loop's fixed-point derivative
    if float(v @ v) > 0:
        try:
            step, step_reason = _step(loop, v, rate, blocks)
        except RuntimeError as e:
            step, step_reason = None, str(e)
    else:
        step, step_reason = None, "d theta/d a is zero: the step does not move theta"

    # lag cost over the loop's band
    lo = min(rate, bw or rate, abs(slow)) / 100.0
    hi = max(rate, bw or rate, abs(slow)) * 100.0
    wl = np.logspace(np.log10(lo), np.log10(hi), lag_points)
    z = blocks.response(wl).G_atheta - dth_opt[None, :]
    cost = 0.25 * np.real(np.einsum("wi,ij,wj->w", z.conj(), H, z))
    lag = np.column_stack([wl, cost])

    return Disturbance(reason=None, bandwidth=bw, bandwidth_reason=bw_reason, hinf_norm=peak, hinf_frequency=w_peak,
                       sensitivity_peak=s_peak, sensitivity_peak_frequency=w_s, step=step, step_reason=step_reason,
                       dc_gain=dc, dc_frozen=dc_frozen, lag_cost=lag, lag_cost_static=static,
                       lag_cost_unadapted=unadapted, dtheta_loop=v, dtheta_opt=dth_opt, response=R)


def _refine_extremum(fun, omega, values):
    from crnfb.analysis.analyses.margins import refine_extremum as refine

    return refine(fun, omega, values, True)


__all__ = ["bandwidth", "Disturbance", "disturbance", "optimum_derivative", "StepMetrics"]
