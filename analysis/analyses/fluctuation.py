"""Learning in a random environment: the mean cost of tracking it (docs/theory.md §5a).

The mixing weight ``a(t)`` of ``Q = (1-a) Q_1 + a Q_2`` is a stationary
Markov chain (:class:`crnfb.feedback.model.randomenv.MarkovEnvironment`). The loop
is linearised at the fixed point of the mean environment ``Q(abar)``; for
each learning rate (all of ``eps`` scaled by one factor ``g``) the predicted
mean cost in nats is

- ``tracking = (1/2) int Re(z^H H z) S_a(w) dw / 2pi`` with ``z(jw)`` the
  transfer from ``a`` to ``theta - theta*_opt(a)`` and ``H`` the Hessian of
  ``D`` at the optimum. Computed exactly (no quadrature) by one Lyapunov
  equation: the chain's centred indicator vector ``e(t)`` has the linear
  dynamics ``de = G^T e dt + dM`` (``M`` a martingale with
  ``d<M>/dt = Q_e = -(G^T diag(pi) + diag(pi) G)``), so ``e`` has the
  chain's autocovariance, ``a - abar = l^T e``, and the loop driven by ``e``
  is one linear system whose stationary covariance gives ``E[z z^T]``.
  :func:`tracking_spectral` evaluates the frequency integral itself (an
  independent check, used by the tests);
- ``noise = (1/2) tr(H Sigma_theta)`` with ``Sigma_theta`` the LNA covariance
  (:func:`crnfb.analysis.analyses.noise.parameter_noise`);
- ``bias``: ``D(theta_loop) - D(theta_opt)`` at ``abar`` (zero under
  equilibrium clamping);
- ``dissipation``: the cell's dissipation rate at the fixed point
  (``M_f free + M_c clamped + Omega learning``, kT per time unit;
  :func:`crnfb.analysis.analyses.thermo.fixed_point_dissipation`).

``eps_opt`` minimises ``total = tracking + noise + bias`` over stable
learning rates; ``eps_crit`` is :func:`crnfb.analysis.analyses.margins.critical_rates` (every rate
times the critical factor ``g_crit``, per species when the rates differ).
The linear range is judged per level: the exact excess divergence of an
unadapted model (theta at ``theta*_opt(abar)``) in the environment of that
level against its second-order value ``(1/2) (l - abar)^2 v^T H v``
(``v = d theta*_opt/d a``). Above :data:`LINEAR_TOL` relative error the
prediction is flagged out of range and no ``eps_opt`` is reported.

Validation (:func:`validate_ssa`, :func:`validate_ode`) runs the exact SSA
with the environment switching inside the simulation (one seeded Markov path
per replicate) and the infinite-ensemble ODE driven by sampled paths.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import integrate, optimize, stats

from crnfb.analysis.analyses.disturbance import optimum_derivative
from crnfb.analysis.linear.fixedpoints import learned_fixed_point, loop_fixed_point
from crnfb.analysis.linear.linearise import LinearLoop, linearise
from crnfb.analysis.analyses.margins import CriticalRates, critical_rates, rates_value
from crnfb.analysis.analyses.noise import NoStationaryCovariance, lyapunov, parameter_noise
from crnfb.analysis.reporting.summary import Summary, Table
from crnfb.feedback.dynamics.integrate import MAX_STEPS, loop_system
from crnfb.feedback.dynamics.integrate import integrate as integrate_loop    # scipy's integrate is imported too
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.randomenv import MarkovEnvironment
from crnfb.feedback.model.model import Model

__all__ = ["FluctuationResult", "fluctuation", "analyse_fluctuation", "report_section", "tracking_cost", "tracking_spectral", "linear_range",
           "excess_divergence", "cost_refusal", "estimated_seconds", "BUDGET_SECONDS", "validate_ssa", "validate_ode", "LINEAR_TOL",
           "NO_RANDOM_ENVIRONMENT"]

#: Largest relative error of the second-order (quadratic) cost of a jump that still counts as linear.
LINEAR_TOL = 0.1
#: Default learning-rate factors around the model's eps (log grid).
FACTORS = np.logspace(-2, 2, 41)


# ---------------------------------------------------------------------------------------------
# the tracking term
# ---------------------------------------------------------------------------------------------
def _theta_positions(loop: LinearLoop) -> np.ndarray:
    from crnfb.analysis.analyses.margins import theta_positions as pos

    return pos(loop)


def _chain_system(env: MarkovEnvironment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A_e, Q_e, l)``: centred-indicator dynamics, martingale diffusion, levels.

    ``A_e = G^T - pi 1^T`` moves the zero mode of ``G^T`` (direction ``pi``,
    which ``e`` never visits: ``1^T e = 0``) to ``-1`` so the Lyapunov equation
    is regular; on ``1^T e = 0`` it acts as ``G^T``.
    """
    G = env.generator
    pi = env.stationary
    K = pi.size
    A = G.T - np.outer(pi, np.ones(K))
    Q = -(G.T @ np.diag(pi) + np.diag(pi) @ G)
    return A, 0.5 * (Q + Q.T), env.level_array


def tracking_cost(loop: LinearLoop, env: MarkovEnvironment, gain: float = 1.0,
                  derivative: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, np.ndarray]:
    """``(tracking, E[z z^T])`` at learning rates ``gain * eps`` (module docstring).

    The loop state ``x`` (reduced coordinates, :class:`LinearLoop`) obeys
    ``dx/dt = Jr(g) x + Br(g) (a - abar)`` where ``g`` scales the theta rows
    (exact: eps enters the loop only there). With the chain's ``e``:
    ``z = C_theta x - v l^T e``, ``v = d theta*_opt/d a``.
    """
    model = loop.net.model
    fp = loop.fixed_point
    v, H = derivative or optimum_derivative(model, fp.optimum.theta, fp.a)
    Jr = loop.Jr.toarray()
    Br = np.asarray(loop.Br, float).copy()
    pos = _theta_positions(loop)
    Jr[pos] *= gain
    Br[pos] *= gain
    Ae, Qe, lv = _chain_system(env)
    n, K = Jr.shape[0], lv.size
    A = np.block([[Jr, np.outer(Br, lv)], [np.zeros((K, n)), Ae]])
    Q = np.zeros((n + K, n + K))
    Q[n:, n:] = Qe
    S = lyapunov(A, Q)
    Ct = loop.output("theta").toarray()
    Cz = np.hstack([Ct, -np.outer(v, lv)])
    Z = Cz @ S @ Cz.T
    return 0.5 * float(np.trace(H @ Z)), 0.5 * (Z + Z.T)


def tracking_spectral(loop: LinearLoop, env: MarkovEnvironment, gain: float = 1.0,
                      derivative=None) -> float:
    """The same term as the frequency integral ``(1/2) int Re(z^H H z) S_a dw / 2pi`` (adaptive quadrature).

    ``z(jw) = G_a->theta(jw) - v`` from :class:`crnfb.analysis.linear.frequency.BrokenLoop`
    at the scaled learning rates; the integrand is even in ``w``, and
    ``w = tan(u)`` maps ``[0, inf)`` to ``[0, pi/2)``.
    """
    from crnfb.analysis.linear.frequency import broken_loop

    model = loop.net.model
    fp = loop.fixed_point
    v, H = derivative or optimum_derivative(model, fp.optimum.theta, fp.a)
    blocks = broken_loop(loop).scaled(gain)

    def f(u):
        w = math.tan(u)
        z = blocks.response([w]).G_atheta[0] - v
        return float(np.real(z.conj() @ H @ z)) * float(env.psd([w])[0]) / math.cos(u) ** 2

    val, _ = integrate.quad(f, 0.0, 0.5 * math.pi, limit=400, epsabs=0.0, epsrel=1e-9)
    return 0.5 * 2.0 * val / (2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# linear range
# ---------------------------------------------------------------------------------------------
def linear_range(model: Model, env: MarkovEnvironment, optimum=None, tol: float = LINEAR_TOL) -> dict:
    """Second-order accuracy of the cost of each level's jump (module docstring)."""
    abar = env.mean
    opt = optimum or learned_fixed_point(model, a=abar)
    v, H = optimum_derivative(model, opt.theta, abar)
    rows = []
    for lv in env.levels:
        quad = 0.5 * (lv - abar) ** 2 * float(v @ H @ v)
        if quad <= 0:
            rows.append({"level": lv, "exact": 0.0, "quadratic": 0.0, "rel_error": 0.0})
            continue
        best = learned_fixed_point(model, theta_start=opt.theta, a=lv)
        exact = model.divergence(opt.theta, lv) - best.divergence
        rows.append({"level": float(lv), "exact": float(exact), "quadratic": float(quad),
                     "rel_error": float(abs(exact - quad) / quad)})
    worst = max(r["rel_error"] for r in rows)
    jump = max(abs(lv - abar) for lv in env.levels)
    out = {"a_mean": float(abar), "max_jump": float(jump), "levels": rows, "max_rel_error": float(worst),
           "tolerance": float(tol), "in_range": bool(worst <= tol)}
    if not out["in_range"]:
        out["reason"] = (f"the jump to a = {rows[int(np.argmax([r['rel_error'] for r in rows]))]['level']:g} "
                         f"(|a - abar| = {jump:.3g}) leaves the second-order regime: the quadratic cost of an "
                         f"unadapted model is off by {100 * worst:.3g} % (> {100 * tol:g} %); the predicted "
                         "costs do not hold there")
    return out


# ---------------------------------------------------------------------------------------------
# the result object
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class FluctuationResult:
    """Predicted mean costs of learning in a random environment, per learning-rate factor.

    Every learning rate is scaled by one factor ``g`` (``g * eps``); the
    factor is the axis. With equal rates a factor is a learning rate
    (``g * eps[0]``); with different rates ``eps_opt``/``eps_crit`` are
    per-species (:func:`crnfb.analysis.analyses.margins.rates_value`).

    Attributes
    ----------
    environment : MarkovEnvironment
    learned : tuple of str       the learned species
    eps : ndarray (k,)           the model's learning rates
    factor : ndarray (n,)        the scale factors ``g`` of ``eps``
    tracking, noise, bias, total : ndarray (n,)   nats (NaN-free; ``stable`` marks valid points)
    dissipation : ndarray (n,)   kT per time unit per cell at the fixed point
    stable : ndarray (n,) bool
    g_opt : float or None        factor of least ``total`` (None with ``eps_opt_reason``)
    critical : CriticalRates     ``eps_crit`` and its factor ``g_crit``
                                 (:func:`crnfb.analysis.analyses.margins.critical_rates`)
    pareto : ndarray (n,) bool   points not dominated in (total, dissipation)
    linear : dict                :func:`linear_range`
    validation : tuple of dict   SSA / ODE checks (report ``validation`` entries)
    """

    environment: MarkovEnvironment
    learned: tuple
    eps: np.ndarray
    factor: np.ndarray
    tracking: np.ndarray
    noise: np.ndarray
    bias: np.ndarray
    total: np.ndarray
    dissipation: np.ndarray
    stable: np.ndarray
    g_opt: float | None
    eps_opt_reason: str | None
    eps_opt_parts: dict | None
    critical: CriticalRates
    pareto: np.ndarray
    linear: dict
    noise_reason: str | None = None
    validation: tuple = field(default=())

    def with_validation(self, checks) -> "FluctuationResult":
        import dataclasses

        return dataclasses.replace(self, validation=tuple(checks))

    @property
    def valid(self) -> bool:
        return bool(self.linear.get("in_range", False))

    @property
    def uniform(self) -> bool:
        """Every learned species has the same learning rate (a factor is then a learning rate)."""
        return bool(np.all(self.eps == self.eps[0]))

    def rates_at(self, g: float | None):
        """``g * eps`` as report.json gives it: a number when the rates are equal, else ``{species: rate}``."""
        return None if g is None else rates_value(self.learned, self.eps, float(g) * self.eps)

    @property
    def nominal_eps(self):
        return self.rates_at(1.0)

    @property
    def eps_opt(self):
        return self.rates_at(self.g_opt)

    @property
    def g_crit(self) -> float | None:
        return self.critical.factor

    @property
    def eps_crit(self):
        return self.critical.value

    @property
    def eps_crit_reason(self) -> str | None:
        return self.critical.reason

    @property
    def eps_grid(self) -> np.ndarray:
        """(n, k): the learning rates at each point."""
        return np.outer(self.factor, self.eps)

    @property
    def axis(self) -> np.ndarray:
        """The x axis: the learning rate ``g * eps[0]`` when the rates are equal, else the factor ``g``."""
        return self.factor * self.eps[0] if self.uniform else self.factor

    def axis_at(self, g: float | None) -> float | None:
        return None if g is None else float(g) * (float(self.eps[0]) if self.uniform else 1.0)

    @property
    def axis_label(self) -> str:
        return "learning rate  ε  (κ)" if self.uniform else "learning-rate factor  (× ε)"

    def _factor_text(self, g: float) -> str:
        return "" if self.uniform else f" (factor {g:.4g})"

    def to_dict(self) -> dict:
        """The ``fluctuation`` section of report.json (no NaN: unstable points have null costs)."""
        def val(x, ok):
            return float(x) if ok and np.isfinite(x) else None

        pts = []
        for i in range(self.factor.size):
            ok = bool(self.stable[i])
            p = {"eps": self.rates_at(self.factor[i]), "factor": float(self.factor[i]),
                 "tracking": val(self.tracking[i], ok), "noise": val(self.noise[i], ok),
                 "bias": val(self.bias[i], ok), "total": val(self.total[i], ok),
                 "dissipation": val(self.dissipation[i], True), "pareto": bool(self.pareto[i])}
            if not ok:
                p["reason"] = "the loop is unstable at this eps (above eps_crit): no stationary cost"
            pts.append(p)
        out = {"environment": self.environment.to_dict(), "units": {
            "cost": "nats (mean excess divergence over the instantaneous optimum)",
            "dissipation": "kT per time unit per cell (M_f free + M_c clamped + Omega learning)"},
            "nominal_eps": self.nominal_eps, "points": pts, "eps_opt": self.eps_opt, "g_opt": self.g_opt,
            "eps_crit": self.eps_crit, "g_crit": self.g_crit,
            "eps_opt_over_eps_crit": (None if self.g_opt is None or self.g_crit is None
                                      else self.g_opt / self.g_crit),
            "at_eps_opt": self.eps_opt_parts, "linear_range": self.linear, "valid": self.valid,
            "validation": [dict(c) for c in self.validation]}
        if self.g_opt is None:
            out["eps_opt_reason"] = out["g_opt_reason"] = self.eps_opt_reason
        if self.g_crit is None:
            out["eps_crit_reason"] = out["g_crit_reason"] = self.eps_crit_reason
        if out["eps_opt_over_eps_crit"] is None:
            out["eps_opt_over_eps_crit_reason"] = self.eps_opt_reason or self.eps_crit_reason
        if self.noise_reason:
            out["noise_reason"] = self.noise_reason
        return out

    def summary(self) -> Summary:
        """The predicted costs on the grid, ``eps_opt`` and ``eps_crit`` as a
        :class:`~crnfb.analysis.reporting.summary.Summary` (``str()`` of it is the text; ``as_markdown()``, ``as_html()`` as for a report)."""
        env = self.environment
        head = "eps" if self.uniform else "factor"
        rows = []
        for i, x in enumerate(self.axis):
            if self.stable[i]:
                rows.append(tuple(f"{v:.4g}" for v in (x, self.tracking[i], self.noise[i], self.bias[i],
                                                       self.total[i], self.dissipation[i])))
            else:
                rows.append((f"{x:.4g}", "unstable", "", "", "", ""))
        grid = Table(title="Predicted mean excess divergence (nats) and dissipation (kT per time)",
                     header=(head, "tracking", "noise", "bias", "total", "dissipation"), rows=tuple(rows))
        opt = (f"eps_opt = {_rates_text(self.eps_opt)}{self._factor_text(self.g_opt)}"
               if self.g_opt is not None else f"eps_opt: none ({self.eps_opt_reason})")
        crit = (f"eps_crit = {_rates_text(self.eps_crit)}{self._factor_text(self.g_crit)}"
                if self.g_crit is not None else f"eps_crit: none ({self.eps_crit_reason})")
        verdict = f"{opt}; {crit}" + ("" if self.valid else f". OUT OF LINEAR RANGE: {self.linear.get('reason')}")
        notes = (f"random environment: {env.n_levels} levels {list(env.levels)}, abar = {env.mean:.4g}, "
                 f"var a = {env.variance:.4g}, correlation time {env.correlation_time:.4g}",)
        return Summary(title="Learning in a random environment", verdict=verdict, ok=bool(self.valid), tables=(grid,),
                       notes=notes)


def _rates_text(v, spec: str = ".4g") -> str:
    """A learning rate (number) or per-species rates (dict) in one line."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {x:{spec}}" for k, x in v.items()) + "}"
    return f"{v:{spec}}"


# ---------------------------------------------------------------------------------------------
# the prediction
# ---------------------------------------------------------------------------------------------
class _Evaluator:
    """Costs at one scale factor of eps, sharing the linearisation at ``abar``."""

    def __init__(self, model: Model, env: MarkovEnvironment):
        self.model = model
        self.env = env
        abar = env.mean
        self.abar = abar
        self.optimum = learned_fixed_point(model, a=abar)
        self.fp = loop_fixed_point(model, a=abar, optimum=self.optimum)
        self.loop = linearise(model, a=abar, fixed_point=self.fp)
        self.derivative = optimum_derivative(model, self.optimum.theta, abar)
        self.noise_reason: str | None = None

    def model_at(self, g: float) -> Model:
        return self.model.with_learning(eps=tuple(float(e) * g for e in self.model.eps))

    def __call__(self, g: float) -> dict:
        from crnfb.analysis.analyses.margins import jacobian_modes
        from crnfb.analysis.analyses.thermo import fixed_point_dissipation

        loop = self.loop
        Jr = loop.Jr.toarray()
        Jr[_theta_positions(loop)] *= g
        stable = jacobian_modes(Jr, loop.flat_count).stable     # the one zero tolerance (docs/theory.md §5)
        mg = self.model_at(g)
        loop_g = linearise(mg, a=self.abar, fixed_point=self.fp)
        diss = fixed_point_dissipation(mg, loop_g).total_ensemble
        out = {"factor": g, "stable": stable, "dissipation": float(diss), "bias": float(self.fp.bias)}
        if not stable:
            return dict(out, tracking=np.nan, noise=np.nan, total=np.nan)
        tr, _ = tracking_cost(loop, self.env, g, self.derivative)
        H = self.derivative[1]
        try:
            nz = 0.5 * float(np.trace(H @ parameter_noise(mg, loop=loop_g).covariance))
        except ValueError as e:       # no stationary covariance
            self.noise_reason, nz = str(e), np.nan
        tot = tr + nz + float(self.fp.bias)
        return dict(out, tracking=float(tr), noise=float(nz), total=float(tot))


def _pareto(cost: np.ndarray, diss: np.ndarray, ok: np.ndarray) -> np.ndarray:
    mask = np.zeros(cost.size, bool)
    for i in np.nonzero(ok)[0]:
        dominated = ok & (cost <= cost[i]) & (diss <= diss[i]) & ((cost < cost[i]) | (diss < diss[i]))
        mask[i] = not dominated.any()
    return mask


def fluctuation(model: Model, env: MarkovEnvironment | None = None, factors=None, *,
                refine: bool = True) -> FluctuationResult:
    """Predicted mean costs over learning rates ``factor * eps`` (module docstring).

    Parameters
    ----------
    model : Model
        Needs ``[environment.change]``; ``env`` defaults to its
        ``[environment.fluctuation]``.
    env : MarkovEnvironment or None
    factors : array or None
        Scale factors of the model's eps (default ``logspace(-2, 2, 41)``).
    refine : bool
        Locate ``eps_opt`` between grid points (bounded scalar minimisation in ``log eps``).
    """
    env = env or model.fluctuation
    if env is None:
        raise ModelError("no random environment: add [environment.fluctuation] (levels, rates)",
                         key="environment.fluctuation", file=model.source)
    if model.change is None:
        raise ModelError("a random environment needs [environment.change] (Q_2)", key="environment.change",
                         file=model.source)
    ev = _Evaluator(model, env)
    factors = FACTORS if factors is None else np.asarray(factors, float)
    rows = [ev(float(g)) for g in factors]
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    crit = critical_rates(ev.loop)
    lin = linear_range(model, env, ev.optimum)
    ok = col["stable"].astype(bool) & np.isfinite(col["total"])
    g_opt, reason, parts = None, None, None
    if not lin["in_range"]:
        reason = "not reported: " + lin["reason"]
    elif ok.sum() < 3:
        reason = "fewer than three stable learning rates on the grid"
    else:
        idx = np.nonzero(ok)[0]
        i = idx[int(np.argmin(col["total"][idx]))]
        if i in (idx[0], idx[-1]):
            side = "smallest" if i == idx[0] else "largest stable"
            reason = (f"the total cost is lowest at the {side} learning rate of the grid "
                      f"(eps = {_rates_text(rates_value(crit.learned, crit.eps, factors[i] * crit.eps), '.3g')})"
                      ": no interior minimum")
        else:
            g_opt = float(factors[i])
            if refine:
                r = optimize.minimize_scalar(lambda lg: ev(float(np.exp(lg)))["total"],
                                             bounds=(np.log(factors[i - 1]), np.log(factors[i + 1])),
                                             method="bounded", options={"xatol": 1e-4})
                g_opt = float(np.exp(r.x))
            best = ev(g_opt)
            parts = {k: float(best[k]) for k in ("tracking", "noise", "bias", "total", "dissipation")}
    return FluctuationResult(
        environment=env, learned=crit.learned, eps=crit.eps, factor=factors, tracking=col["tracking"],
        noise=col["noise"], bias=col["bias"], total=col["total"], dissipation=col["dissipation"],
        stable=col["stable"].astype(bool), g_opt=g_opt, eps_opt_reason=reason, eps_opt_parts=parts, critical=crit,
        pareto=_pareto(col["total"], col["dissipation"], ok), linear=lin, noise_reason=ev.noise_reason)


# ---------------------------------------------------------------------------------------------
# validation against simulation
# ---------------------------------------------------------------------------------------------
def excess_divergence(model: Model, theta: np.ndarray, a: np.ndarray, optimum_d: dict[float, float]) -> np.ndarray:
    """``D(Q(a_t) || P_theta_t) - min_theta D(Q(a_t) || P_theta)`` for many times at once.

    ``theta`` (T, k) learned parameters, ``a`` (T,) levels; ``optimum_d`` maps
    each level to its optimal divergence.
    """
    from scipy.special import logsumexp

    sp = model.space
    T = theta.shape[0]
    full = np.tile(model.network.theta0, (T, 1))
    full[:, model.learned] = theta
    lw = full @ sp.states.T.astype(float) - sp.log_factorial[None, :]
    lw -= logsumexp(lw, axis=1, keepdims=True)
    nv = sp.visible_states.shape[0]
    vi = sp.visible_index
    top = np.full((T, nv), -np.inf)
    for v in range(nv):
        cols = vi == v
        if cols.any():
            top[:, v] = logsumexp(lw[:, cols], axis=1)
    out = np.empty(T)
    for lv in np.unique(a):
        m = a == lv
        q = model.q_at(float(lv))
        s = q > 0
        out[m] = (q[s] * (np.log(q[s]) - top[np.ix_(m, s)])).sum(axis=1) - optimum_d[float(lv)]
    return out


def _optimum_d(model: Model, env: MarkovEnvironment, start) -> dict[float, float]:
    return {float(lv): float(learned_fixed_point(model, theta_start=start, a=lv).divergence) for lv in env.levels}


def _ci(values: np.ndarray) -> tuple[float, float]:
    n = values.size
    m = float(values.mean())
    h = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return m, h


def ssa_cost(model: Model, env: MarkovEnvironment, t_end: float, burn_in: float, replicates: int, seed: int,
             dt: float, theta_start: np.ndarray, optimum_d: dict, threads: int = 2) -> dict:
    """Time-averaged excess divergence of the SSA, one independent Markov path per replicate.

    Replicate ``r`` uses ``SeedSequence(seed).spawn(replicates)[r]``: its first
    child draws the environment path, its second seeds the SSA.
    """
    from crnfb.feedback.dynamics.ssa import simulate_ssa

    n_points = int(math.ceil(t_end / dt)) + 1
    seqs = np.random.SeedSequence(int(seed)).spawn(int(replicates))

    def run(r):
        s_env, s_ssa = seqs[r].spawn(2)
        path = env.path(t_end, np.random.default_rng(s_env))
        tr = simulate_ssa(model, t_end, n_points, int(s_ssa.generate_state(1)[0]), 1, a_signal=path,
                          progress=False, theta_start=theta_start, threads=1)
        keep = tr.t >= burn_in
        th = tr.theta[0, keep]
        if not np.all(np.isfinite(th)):
            return np.nan, int(tr.events[0])
        return float(excess_divergence(model, th, tr.a[keep], optimum_d).mean()), int(tr.events[0])

    with ThreadPoolExecutor(max_workers=max(1, int(threads))) as ex:
        res = list(ex.map(run, range(int(replicates))))
    vals = np.array([r[0] for r in res])
    vals = vals[np.isfinite(vals)]
    if vals.size < 2:
        raise RuntimeError("fewer than two SSA replicates kept every parameter species alive; raise omega")
    m, h = _ci(vals)
    return {"mean": m, "half_width": h, "replicates": int(vals.size), "events": int(sum(r[1] for r in res)),
            "values": vals.tolist()}


def validate_ssa(result: FluctuationResult, model: Model, factors, *, t_end: float, burn_in: float,
                 replicates: int = 8, seed: int = 0, dt: float | None = None, tolerance: float = 0.1,
                 threads: int = 2) -> list[dict]:
    """Predicted total cost against the SSA at the given learning-rate factors ``g`` (every rate times ``g``;
    report ``validation`` entries).

    ``passed`` when ``|simulated - predicted| <= half-width + tolerance * predicted``
    (95 % Student-t interval over replicates, widened by the neglected
    higher-order terms). Outside the linear range ``passed`` is null.
    """
    env = result.environment
    ev = _Evaluator(model, env)
    opt_d = _optimum_d(model, env, ev.optimum.theta)
    tau = min(env.correlation_time, 1.0)
    dt = dt or tau / 4.0
    out = []
    for i, g in enumerate(np.asarray(factors, float)):
        g = float(g)
        pred = ev(g)
        mg = ev.model_at(g)
        sim = ssa_cost(mg, env, t_end, burn_in, replicates, seed + i, dt, ev.fp.theta, opt_d, threads)
        entry = {"quantity": f"fluctuation mean excess divergence at eps = {_rates_text(result.rates_at(g))} (SSA)",
                 "predicted": float(pred["total"]), "simulated": sim["mean"],
                 "rel_error": abs(sim["mean"] - pred["total"]) / abs(pred["total"]),
                 "tolerance": tolerance, "ci": [sim["mean"] - sim["half_width"], sim["mean"] + sim["half_width"]],
                 "replicates": sim["replicates"], "t_end": t_end, "burn_in": burn_in, "events": sim["events"],
                 "seed": seed + i, "eps": result.rates_at(g), "factor": g}
        if result.valid and pred["stable"]:
            entry["passed"] = bool(abs(sim["mean"] - pred["total"]) <= sim["half_width"] + tolerance * pred["total"])
        else:
            entry["passed"] = None
            entry["reason"] = result.linear.get("reason") or "the loop is unstable at this eps"
        out.append(entry)
    return out


def ode_path(net, x0: np.ndarray, path, t_out: np.ndarray, rtol: float = 1e-7, atol: float = 1e-10) -> np.ndarray:
    """Loop states of the infinite-ensemble ODE under a piecewise-constant path, at ``t_out``.

    The package's front end :func:`crnfb.feedback.dynamics.integrate.integrate` on
    :func:`~crnfb.feedback.dynamics.integrate.loop_system` (the field of
    :func:`crnfb.feedback.dynamics.integrate.simulate`), with a fresh start at every
    switch, so no step straddles a jump of ``a``. LSODA with the analytic (densified)
    Jacobian: on these loops of a few hundred states it is as fast as BDF over the
    thousands of switches a time average needs, and it is the method this check was
    written with. The work limit is per piece (the path, not the user, sets their number).
    """
    t_out = np.asarray(t_out, float)
    breaks = path.breakpoints(float(t_out[0]), float(t_out[-1]))
    _, X, _ = integrate_loop(loop_system(net, path), x0, t_out, breakpoints=breaks, method="LSODA", rtol=rtol,
                             atol=atol, progress=False, max_steps=MAX_STEPS * (1 + len(breaks)))
    return X


def linear_path_cost(loop: LinearLoop, gain: float, derivative, abar: float, path, t_out: np.ndarray,
                     offset: np.ndarray | None = None) -> np.ndarray:
    """``(1/2) z^T H z`` of the *linearised* loop driven by ``path``, at ``t_out`` (exact propagation).

    With ``offset`` ``b`` (the clamping bias ``theta_loop - theta_opt`` at ``abar``)
    it returns ``(1/2) z^T H z + b^T H z``: the excess over the bias to the
    same order, whose extra term has mean zero (``E z = 0``) but follows the
    path's ``a - abar`` (it is the bias moving with ``a``).

    In the modal coordinates of ``Jr(g) = V diag(lam) V^-1`` (``Jr`` is
    diagonalisable for the loops met so far; a defective ``Jr`` would need the
    matrix exponential) a piece with constant ``a`` is solved exactly:
    ``y(t+h) = e^{lam h} y + (e^{lam h} - 1)/lam b (a - abar)``.
    Independent of the closed form (Lyapunov / frequency integral): it samples the
    chain and propagates the linear ODE.
    """
    v, H = derivative
    Jr = loop.Jr.toarray()
    Br = np.asarray(loop.Br, float).copy()
    pos = _theta_positions(loop)
    Jr[pos] *= gain
    Br[pos] *= gain
    lam, V = np.linalg.eig(Jr)
    b = np.linalg.solve(V, Br.astype(complex))
    Ct = loop.output("theta").toarray() @ V
    # piece by piece: y(t) = yss + e^{lam (t - t0)} (y(t0) - yss), yss = -b (a - abar) / lam
    edges = [float(t_out[0]), *path.breakpoints(float(t_out[0]), float(t_out[-1])), float(t_out[-1])]
    Y = np.empty((t_out.size, lam.size), complex)
    y = np.zeros(lam.size, complex)
    Y[0] = y
    j = 1
    for lo, hi in zip(edges[:-1], edges[1:]):
        yss = -b * (float(path(0.5 * (lo + hi))) - abar) / lam
        n = int(np.searchsorted(t_out, hi, side="right")) - j
        if n > 0:
            Y[j:j + n] = yss + np.exp(np.outer(t_out[j:j + n] - lo, lam)) * (y - yss)
            j += n
        y = yss + np.exp(lam * (hi - lo)) * (y - yss)
    z = np.real(Y @ Ct.T) - np.outer(path(t_out) - abar, v)
    out = 0.5 * np.einsum("ti,ij,tj->t", z, H, z)
    return out if offset is None else out + z @ (H @ offset)


def ode_tracking(model: Model, env: MarkovEnvironment, t_end: float, burn_in: float, paths: int, seed: int,
                 dt: float, evaluator: "_Evaluator", gain: float, optimum_d: dict, long_paths: int = 8,
                 long_factor: float = 50.0) -> dict:
    """Mean tracking cost of the infinite-ensemble ODE driven by sampled paths.

    The ODE's mean excess divergence minus the bias is estimated with a
    control variate that does not involve the prediction:
    ``E[N] = E[N - L] + E[L]``, where ``N`` is the ODE's time-averaged
    excess (minus the bias) and ``L`` that of the linearised loop *on the
    same path* (:func:`linear_path_cost`); ``E[N - L]`` comes from the
    ``paths`` paired runs (small variance: it is the nonlinear correction),
    ``E[L]`` from ``long_paths`` independent linear runs ``long_factor``
    times longer. The 95 % half-widths of the two parts add in quadrature.
    Path ``i`` is drawn from ``SeedSequence(seed).spawn(...)``; runs start at
    the loop's fixed point for ``abar`` and drop ``burn_in``.
    """
    from crnfb.feedback.dynamics.ensembles import LearningNetwork

    net = LearningNetwork(model)
    ev = evaluator
    t_out = np.linspace(0.0, t_end, int(math.ceil(t_end / dt)) + 1)
    keep = t_out >= burn_in
    base = net.n_f + net.n_c
    seqs = np.random.SeedSequence(int(seed)).spawn(int(paths) + int(long_paths))
    nl, lin = [], []
    for s in seqs[:paths]:
        path = env.path(t_end, np.random.default_rng(s))
        X = ode_path(net, ev.fp.x, path, t_out)
        nl.append(float(excess_divergence(model, X[keep, base:], path(t_out[keep]), optimum_d).mean())
                  - ev.fp.bias)
        lin.append(float(linear_path_cost(ev.loop, gain, ev.derivative, ev.abar, path, t_out,
                                          ev.fp.theta - ev.optimum.theta)[keep].mean()))
    t_long = burn_in + long_factor * (t_end - burn_in)
    t_l = np.linspace(0.0, t_long, int(math.ceil(t_long / dt)) + 1)
    long = [float(linear_path_cost(ev.loop, gain, ev.derivative, ev.abar,
                                   env.path(t_long, np.random.default_rng(s)), t_l)[t_l >= burn_in].mean())
            for s in seqs[paths:]]
    d = np.array(nl) - np.array(lin)
    md, hd = _ci(d)
    ml, hl = _ci(np.array(long))
    mn, hn = _ci(np.array(nl))
    return {"mean": md + ml, "half_width": math.hypot(hd, hl), "paths": int(paths), "long_paths": int(long_paths),
            "nonlinear_correction": md, "nonlinear_correction_half_width": hd, "linear_mean": ml,
            "linear_half_width": hl, "plain_mean": mn, "plain_half_width": hn, "values": nl}


def validate_ode(result: FluctuationResult, model: Model, factors, *, t_end: float, burn_in: float,
                 paths: int = 3, seed: int = 0, dt: float | None = None, tolerance: float = 0.1) -> list[dict]:
    """Predicted tracking term against the switching-driven ODE at the given learning-rate factors ``g``
    (report ``validation`` entries).

    The simulated value is the control-variate estimate of :func:`ode_tracking`
    (``plain_mean``/``plain_ci``: the ODE's own time average without it).

    ``passed`` when ``|simulated - predicted| <= half-width + tolerance * predicted``.
    """
    env = result.environment
    ev = _Evaluator(model, env)
    opt_d = _optimum_d(model, env, ev.optimum.theta)
    dt = dt or min(env.correlation_time, 1.0) / 4.0
    out = []
    for i, g in enumerate(np.asarray(factors, float)):
        g = float(g)
        tr_pred, _ = tracking_cost(ev.loop, env, g, ev.derivative)
        sim = ode_tracking(ev.model_at(g), env, t_end, burn_in, paths, seed + i, dt, ev, g, opt_d)
        h = sim["half_width"]
        entry = {"quantity": f"fluctuation tracking term at eps = {_rates_text(result.rates_at(g))} "
                             "(switching-driven ODE)",
                 "predicted": float(tr_pred), "simulated": sim["mean"],
                 "rel_error": abs(sim["mean"] - tr_pred) / abs(tr_pred), "tolerance": tolerance,
                 "ci": [sim["mean"] - h, sim["mean"] + h], "paths": sim["paths"], "t_end": t_end,
                 "nonlinear_correction": sim["nonlinear_correction"], "plain_mean": sim["plain_mean"],
                 "plain_ci": [sim["plain_mean"] - sim["plain_half_width"], sim["plain_mean"] + sim["plain_half_width"]],
                 "burn_in": burn_in, "seed": seed + i, "eps": result.rates_at(g), "factor": g}
        if result.valid:
            entry["passed"] = bool(abs(sim["mean"] - tr_pred) <= h + tolerance * tr_pred)
        else:
            entry["passed"] = None
            entry["reason"] = result.linear.get("reason")
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------
# the report section
# ---------------------------------------------------------------------------------------------
#: Why a model has no fluctuation analysis (the report's ``fluctuation.reason``).
NO_RANDOM_ENVIRONMENT = ("the model has no [environment.fluctuation] (a random environment); add levels and rates "
                         "to predict the cost of tracking it")
#: Event budget per SSA replicate of the report's check (about a second each at ~15 M events/CPU-s).
REPORT_MAX_EVENTS = 1.5e7


def _not_made(quantity: str, reason: str) -> dict:
    return {"quantity": quantity, "predicted": None, "simulated": None, "rel_error": None, "tolerance": None,
            "passed": None, "reason": reason}


def report_checks(result: FluctuationResult, model: Model, seed: int = 0, quick: bool = False) -> list[dict]:
    """The report's checks at ``eps_opt`` (else the file's eps): SSA total cost and ODE tracking term.

    Budgets: SSA 4 replicates of at most :data:`REPORT_MAX_EVENTS` events;
    ODE 3 paths of 20 correlation times of the chain plus burn-in. Checks
    not made (quick mode, out of the linear range, unstable) are listed with
    ``passed: null`` and the reason.
    """
    from crnfb.analysis.analyses.noise import event_rate

    g = result.g_opt if result.g_opt is not None else 1.0
    e = _rates_text(result.rates_at(g))
    q_ssa = f"fluctuation mean excess divergence at eps = {e} (SSA)"
    q_ode = f"fluctuation tracking term at eps = {e} (switching-driven ODE)"
    if not result.valid:
        return [_not_made(q, result.linear["reason"]) for q in (q_ssa, q_ode)]
    if quick:
        why = "not run in quick mode (crnfb sweep); run crnfb report for the simulation checks"
        return [_not_made(q, why) for q in (q_ssa, q_ode)]
    ev = _Evaluator(model, result.environment)
    if not ev(g)["stable"]:
        return [_not_made(q, "the loop is unstable at this eps") for q in (q_ssa, q_ode)]
    mg = ev.model_at(g)
    loop_g = linearise(mg, a=ev.abar, fixed_point=ev.fp)
    try:
        pred = parameter_noise(mg, loop=loop_g)
    except NoStationaryCovariance as e:       # a stated limitation (flat modes, large loop), not a crash
        return [_not_made(q, str(e)) for q in (q_ssa, q_ode)]
    tau = max(result.environment.correlation_time, 1.0 / pred.slowest_rate)
    burn = 5.0 * tau
    t_end = burn + min(400.0 * tau, REPORT_MAX_EVENTS / event_rate(pred))
    checks = validate_ssa(result, model, [g], t_end=t_end, burn_in=burn, replicates=4, seed=seed,
                          dt=tau / 5.0)
    checks += validate_ode(result, model, [g], t_end=burn + 20.0 * tau, burn_in=burn, paths=3, seed=seed,
                           dt=tau / 10.0)
    return checks


def analyse_fluctuation(model: Model, validate: bool = True, seed: int = 0, quick: bool = False,
                        factors=None) -> FluctuationResult:
    """The report's fluctuation analysis: predictions over eps and (``validate``) :func:`report_checks`.

    ``quick`` (``crnfb sweep``): 17 learning rates instead of 41, no simulation checks.
    """
    if model.fluctuation is None:
        raise ModelError(NO_RANDOM_ENVIRONMENT, key="environment.fluctuation")
    factors = (np.union1d(np.logspace(-2, 2, 17), [1.0]) if quick else FACTORS) if factors is None else factors
    r = fluctuation(model, factors=factors)
    if validate:
        r = r.with_validation(report_checks(r, model, seed, quick))
    return r


#: CPU seconds the fluctuation section may take before it is refused with its estimate.
BUDGET_SECONDS = 120.0
#: CPU seconds per (order)^3 of one dense Lyapunov solve (measured: 0.57 s at order 641, one core).
_LYAP_SECONDS = 2.2e-9


def _order(model: Model) -> int:
    """Order of the tracking Lyapunov equation: the reduced loop (about two copy ensembles and theta) + K levels."""
    return 2 * int(model.space.size) + len(model.learned) + _levels(model)


def _levels(model: Model) -> int:
    """Levels of the model's random environment (ValueError without one)."""
    if model.fluctuation is None:
        raise ValueError("the model has no random environment ([environment.fluctuation])")
    return model.fluctuation.n_levels


def estimated_seconds(model: Model, factors=None) -> float:
    """Estimated CPU time of :func:`fluctuation`: one dense Lyapunov solve per grid factor and ~25 more for eps_opt."""
    n_eval = (len(FACTORS) if factors is None else len(np.atleast_1d(factors))) + 25
    return n_eval * _LYAP_SECONDS * float(_order(model)) ** 3


def cost_refusal(model: Model, factors=None) -> str | None:
    """Why the section is not computed (its estimated cost is above :data:`BUDGET_SECONDS`), or None."""
    cost = estimated_seconds(model, factors)
    if cost <= BUDGET_SECONDS:
        return None
    return (f"not computed: about {cost:.3g} CPU s estimated (a dense Lyapunov solve of order {_order(model)} per "
            f"learning rate, {_levels(model)} levels), above the budget of {BUDGET_SECONDS:g} s; "
            "use fewer levels")


def report_section(model: Model, validate: bool = True, seed: int = 0, quick: bool = False,
                   factors=None) -> tuple[dict, FluctuationResult | None]:
    """``(section, result)``: the ``fluctuation`` section of report.json (docs/cli.md) and its result.

    Without ``[environment.fluctuation]`` the section says so
    (``available: false`` with a reason) and the result is ``None``.
    """
    if model.fluctuation is None:
        return {"available": False, "reason": NO_RANDOM_ENVIRONMENT}, None
    refusal = cost_refusal(model, factors)
    if refusal is not None:
        return {"available": False, "reason": refusal}, None
    r = analyse_fluctuation(model, validate, seed, quick, factors)
    return dict(r.to_dict(), available=True), r
