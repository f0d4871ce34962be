"""Thermodynamic costs of the learning loop (docs/theory.md §7).

Three parts, each in its own natural unit (kT per time unit):

``free``
    Schnakenberg entropy production of the free ensemble's master equation,
    **per copy**: ``sigma_f = sum_pairs (J+ - J-) ln(J+/J-)``, one pair per
    reaction and pair of states, ``J = p(x) W(x->x')``. Multiply by ``M_f``
    for the ensemble.
``clamped``
    Dynamic clamping only, **per copy**: the hidden-only reactions (one pair
    per reaction and pair of states, as for ``free``) plus the resets as a
    separate mechanism. The reset ``x -> x'`` fires at rate
    ``gamma r(x')`` (``r`` = :meth:`LearningNetwork.reset_target`); every
    ordered pair of clamped states is its own edge. Their all-to-all sum has
    the closed form (derivation in ``docs/thermodynamics.md``)::

        sigma_reset = gamma * [ (sum r) sum_x p ln(p/r) - (sum p) sum_x r ln(p/r) ]
                    = gamma * ( KL(p||r) + KL(r||p) )        (p, r normalised)

    i.e. ``gamma`` times the Jeffreys (symmetrised Kullback-Leibler)
    divergence between the clamped law and the reset target, O(n) instead of
    O(n^2). Multiply by ``M_c`` for the ensemble. Under
    ``clamping="equilibrium"`` there are no clamped dynamics and this part is
    ``None``.
``learning``
    Fuel-driven learning reactions, **per unit volume** (``lambda`` as
    concentrations): ``dmu * sum_i eps_i lambda_i (m_c,i + m_f,i)``.
    Multiply by ``Omega`` for the cell.

``total`` is ``free + clamped + learning`` (docs/cli.md; a sum of per-copy
and per-volume rates, kept because the interface fixes it) and
``total_ensemble = M_f*free + M_c*clamped + Omega*learning`` is the
dissipation rate of the whole cell.

Numerical zeros: probabilities are clipped at 0 and floored at ``floor``
(default ``1e-300``) so that states with vanishing probability contribute
negligibly instead of ``0 * ln 0`` artefacts; clamped states whose reset
target is exactly zero (visible part outside the current environment's
support) keep ``p = 0`` when ``p <= zero_tol``. A pair with exactly one
zero flux gives ``inf`` (an absolutely irreversible transition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from crnfb.feedback.dynamics.ensembles import EdgeList, LearningNetwork
from crnfb.feedback.dynamics.integrate import integrate, loop_system
from crnfb.feedback.model.signals import Constant
from crnfb.feedback.model.model import Model

if TYPE_CHECKING:
    from crnfb.analysis.analyses.globalbehaviour import Settling

FLOOR = 1e-300
ZERO_TOL = 1e-12
EPISODE_TOL = 1e-3

CLAMPED_EQUILIBRIUM_REASON = ("clamping='equilibrium' holds p_c = Qt(theta) by fiat: there are no clamped "
                              "dynamics, so no Schnakenberg entropy production is defined for that ensemble")

UNITS = {
    "free": "kT per time unit per free copy",
    "clamped": "kT per time unit per clamped copy",
    "learning": "kT per time unit per unit volume (lambda as concentrations)",
    "total": "kT per time unit (free + clamped + learning, each in its own unit; docs/cli.md)",
    "total_ensemble": "kT per time unit per cell (M_f*free + M_c*clamped + Omega*learning)",
    "episode_total": "kT (time integral of total over the episode)",
    "episode_total_ensemble": "kT per cell (time integral of total_ensemble)",
}


# -- Schnakenberg entropy production on an edge list --------------------------------------------------
def _pair_term(jp: np.ndarray, jm: np.ndarray) -> np.ndarray:
    """``(J+ - J-) ln(J+/J-)``, 0 where both vanish (or are equal), inf where only one does."""
    out = np.zeros(np.broadcast(jp, jm).shape)
    both = (jp > 0) & (jm > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[both] = (jp[both] - jm[both]) * (np.log(jp[both]) - np.log(jm[both]))
    out[(jp > 0) ^ (jm > 0)] = np.inf
    return out


@lru_cache(maxsize=64)
def _pairs_cached(src_b: bytes, dst_b: bytes, reac_b: bytes, fwd_b: bytes):
    src = np.frombuffer(src_b, dtype=np.int64)
    dst = np.frombuffer(dst_b, dtype=np.int64)
    reac = np.frombuffer(reac_b, dtype=np.int64)
    fwd = np.frombuffer(fwd_b, dtype=bool)
    return _pair_indices(src, dst, reac, fwd)


def _pair_indices(src, dst, reac, fwd):
    f = np.nonzero(fwd)[0]
    b = np.nonzero(~fwd)[0]
    n = int(max(src.max(initial=0), dst.max(initial=0))) + 1
    # key (reaction, from, to) of each forward edge and the matching (reaction, to, from) of backward ones
    kf = (reac[f] * n + src[f]) * n + dst[f]
    kb = (reac[b] * n + dst[b]) * n + src[b]
    of, ob = np.argsort(kf), np.argsort(kb)
    if kf.size != kb.size or not np.array_equal(kf[of], kb[ob]):
        raise ValueError("edge list is not made of forward/backward pairs of the same reaction")
    return f[of], b[ob]


def edge_pairs(edges: EdgeList) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fwd, bwd)``: ``edges[fwd[k]]`` is ``x -> x'`` and ``edges[bwd[k]]`` is ``x' -> x``
    of the same reaction (one mechanism per reaction and pair of states)."""
    if edges.src.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    src = np.ascontiguousarray(edges.src, dtype=np.int64)
    dst = np.ascontiguousarray(edges.dst, dtype=np.int64)
    reac = np.ascontiguousarray(edges.reaction, dtype=np.int64)
    fwd = np.ascontiguousarray(edges.forward, dtype=bool)
    return _pairs_cached(src.tobytes(), dst.tobytes(), reac.tobytes(), fwd.tobytes())


def schnakenberg(edges: EdgeList, rates: np.ndarray, p: np.ndarray) -> float:
    """``sum_pairs (J+ - J-) ln(J+/J-)`` with ``J_e = p[src_e] rate_e`` (= docs/theory.md's half-sum over ordered pairs)."""
    if edges.src.size == 0:
        return 0.0
    f, b = edge_pairs(edges)
    J = p[edges.src] * rates
    return float(np.sum(_pair_term(J[f], J[b])))


def _regular(p: np.ndarray, floor: float) -> np.ndarray:
    return np.maximum(np.asarray(p, float), floor) if floor > 0 else np.clip(np.asarray(p, float), 0.0, None)


def free_entropy_production(net: LearningNetwork, p_f: np.ndarray, theta: np.ndarray,
                            floor: float = FLOOR) -> float:
    """Schnakenberg entropy production of the free ensemble, per copy (kT per time unit)."""
    p = _regular(p_f, floor)
    return schnakenberg(net.edges, net.edges.rates(net.theta_full(theta)), p)


def reset_entropy_production(p: np.ndarray, r: np.ndarray, gamma: float) -> float:
    """Entropy production of the all-to-all resets ``x -> x'`` at rate ``gamma r(x')``, per copy.

    Closed form of ``(1/2) sum_{x != x'} (p(x) g r(x') - p(x') g r(x)) ln[p(x) r(x') / (p(x') r(x))]``::

        g * [ (sum r) sum_x p ln(p/r) - (sum p) sum_x r ln(p/r) ]

    (self-resets ``x -> x`` contribute zero). States where ``p = r = 0``
    take no part; a state with exactly one of them zero makes the sum
    infinite (a one-way reset), provided another state carries the other law.
    """
    p = np.asarray(p, float)
    r = np.asarray(r, float)
    live = (p > 0) | (r > 0)
    p, r = p[live], r[live]
    if p.size <= 1:
        return 0.0
    if np.any((p > 0) ^ (r > 0)):
        return float("inf")
    phi = np.log(p) - np.log(r)
    val = gamma * (r.sum() * np.dot(p, phi) - p.sum() * np.dot(r, phi))
    return float(max(val, 0.0))


def clamped_entropy_production(net: LearningNetwork, p_c: np.ndarray, theta: np.ndarray, a: float = 0.0,
                               floor: float = FLOOR, zero_tol: float = ZERO_TOL) -> tuple[float, float] | None:
    """``(hidden, reset)`` entropy production of the clamped ensemble per copy; ``None`` under equilibrium clamping."""
    if not net.dynamic:
        return None
    r = net.reset_target(a)
    p = np.clip(np.asarray(p_c, float), 0.0, None)
    off = r <= 0
    p = np.where(off & (p <= zero_tol), 0.0, p)
    if floor > 0:
        p = np.where(off & (p == 0.0), 0.0, np.maximum(p, floor))
    he = net.hidden_edges
    hidden = schnakenberg(he, he.rates(net.theta_full(theta)), p)
    return hidden, reset_entropy_production(p, r, net.gamma)


def learning_dissipation(net: LearningNetwork, x: np.ndarray, a: float = 0.0, dmu: float | None = None) -> float:
    """``dmu * sum_i eps_i lambda_i (m_c,i + m_f,i)`` per unit volume (kT per time unit)."""
    dmu = net.model.learning.dmu if dmu is None else dmu
    _, _, theta = net.split(x)
    m_f, m_c = net.means(x, a)
    return float(dmu * np.sum(net.eps * np.exp(theta) * (m_c + m_f)))


# -- all parts at one loop state -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Dissipation:
    """Dissipation rates by part at one loop state (kT per time unit; units in :data:`UNITS`).

    ``clamped`` is ``clamped_hidden + clamped_reset``, or ``None`` (with
    ``clamped_reason``) under equilibrium clamping.
    """

    free: float
    clamped: float | None
    learning: float
    clamped_hidden: float | None = None
    clamped_reset: float | None = None
    M_f: float = 1.0
    M_c: float = 1.0
    omega: float = 1.0
    clamped_reason: str | None = None

    @property
    def total(self) -> float:
        """``free + clamped + learning`` (docs/cli.md; mixed units, see module docstring)."""
        return self.free + (self.clamped or 0.0) + self.learning

    @property
    def total_ensemble(self) -> float:
        """``M_f*free + M_c*clamped + Omega*learning``: the whole cell."""
        return self.M_f * self.free + self.M_c * (self.clamped or 0.0) + self.omega * self.learning

    def ensemble(self) -> dict:
        """Per-ensemble scaled parts (kT per time unit per cell)."""
        return {"free": self.M_f * self.free,
                "clamped": None if self.clamped is None else self.M_c * self.clamped,
                "learning": self.omega * self.learning,
                "total": self.total_ensemble}

    def to_dict(self) -> dict:
        """JSON-ready: ``free, clamped, learning, total, total_ensemble`` (+ parts, reasons); no inf/NaN."""
        parts = {"free": self.free, "clamped": self.clamped, "learning": self.learning, "total": self.total,
                 "total_ensemble": self.total_ensemble,
                 "clamped_hidden": self.clamped_hidden, "clamped_reset": self.clamped_reset}
        out: dict[str, float | str | None] = {k: json_number(v) for k, v in parts.items()}
        if self.clamped is None:
            out["clamped_reason"] = self.clamped_reason or CLAMPED_EQUILIBRIUM_REASON
            out["clamped_hidden_reason"] = out["clamped_reset_reason"] = out["clamped_reason"]
        for k, v in list(out.items()):
            if v is None and not k.endswith("_reason") and f"{k}_reason" not in out:
                out[f"{k}_reason"] = "infinite: a transition with a one-way flux (a zero probability on one side)"
        return out


def json_number(v):
    """``v`` as a float for ``report.json``: ``None`` for ``None`` and for a value that is not finite."""
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def dissipation(net: LearningNetwork, x: np.ndarray, a: float = 0.0, floor: float = FLOOR,
                dmu: float | None = None) -> Dissipation:
    """All dissipation parts at loop state ``x = (p_f, p_c, theta)``."""
    p_f, p_c, theta = net.split(np.asarray(x, float))
    ens = net.model.ensembles
    free = free_entropy_production(net, p_f, theta, floor)
    cl = clamped_entropy_production(net, p_c, theta, a, floor)
    learn = learning_dissipation(net, x, a, dmu)
    if cl is None:
        return Dissipation(free=free, clamped=None, learning=learn, clamped_hidden=None, clamped_reset=None,
                           M_f=ens.free, M_c=ens.clamped, omega=ens.omega, clamped_reason=CLAMPED_EQUILIBRIUM_REASON)
    return Dissipation(free=free, clamped=cl[0] + cl[1], learning=learn, clamped_hidden=cl[0], clamped_reset=cl[1],
                       M_f=ens.free, M_c=ens.clamped, omega=ens.omega)


def _loop_parts(model: Model, loop=None):
    """``(net, fixed_point)`` from a LinearLoop, a LoopFixedPoint or nothing."""
    from crnfb.analysis.linear.linearise import LinearLoop
    from crnfb.analysis.linear.fixedpoints import LoopFixedPoint, loop_fixed_point
    if isinstance(loop, LinearLoop):
        return loop.net, loop.fixed_point
    net = LearningNetwork(model)
    if isinstance(loop, LoopFixedPoint):
        return net, loop
    if loop is not None:
        raise TypeError(f"loop must be a LinearLoop, a LoopFixedPoint or None, got {type(loop).__name__}")
    return net, loop_fixed_point(model, net)


def fixed_point_dissipation(model: Model, loop=None) -> Dissipation:
    """Dissipation by part at the learned fixed point of the full loop (biased under dynamic clamping)."""
    net, fp = _loop_parts(model, loop)
    return dissipation(net, fp.x, fp.a)


# -- maintenance cost ----------------------------------------------------------------------------------------
def maintenance_cost(model: Model, *, eps=None, gamma: float | None = None, free: int | None = None,
                     clamped: int | None = None, omega: float | None = None, dmu: float | None = None,
                     loop=None) -> dict:
    """Steady cost of keeping the learned state: learning futile cycle + sensing through the resets.

    At the fixed point ``m_c = m_f = m`` and ``p_f = pi(theta)`` (free part
    zero), so the futile cycle is ``2 dmu sum_i eps_i lambda_i m_i`` per unit
    volume (linear in ``eps`` and ``dmu``; ``theta`` at the fixed point does
    not depend on ``eps``) and the sensing cost is the clamped ensemble's
    hidden + reset entropy production (depends on ``gamma`` only through the
    clamped law; ``gamma J(p_c || r)`` for the resets). Ensemble sizes only
    scale: ``Omega`` for the cycle, ``clamped`` (``M_c``) for sensing.

    Keyword arguments override the model's settings (``eps`` scalar or per
    learned species). Returns a dict of floats (``None`` with a reason where
    undefined).
    """
    changes = {k: v for k, v in (("eps", eps), ("gamma", gamma), ("dmu", dmu)) if v is not None}
    if changes:
        model = model.with_learning(**changes)
        if set(changes) - {"dmu"}:
            loop = None      # eps (leaf, per-species ratios) and gamma (bias) move the fixed point
    ens = model.ensembles
    sizes = {"free": free if free is not None else ens.free,
             "clamped": clamped if clamped is not None else ens.clamped,
             "omega": omega if omega is not None else ens.omega}
    if any(v is not None for v in (free, clamped, omega)):
        from crnfb.feedback.model.model import Ensembles
        model = model.replace(ensembles=Ensembles(int(sizes["free"]), int(sizes["clamped"]), float(sizes["omega"])))
    if loop is not None:
        from crnfb.analysis.linear.linearise import LinearLoop
        loop = loop.fixed_point if isinstance(loop, LinearLoop) else loop   # the network is rebuilt for this model
    d = fixed_point_dissipation(model, loop)
    out = {
        "eps": [float(e) for e in model.eps], "gamma": float(model.learning.gamma),
        "dmu": float(model.learning.dmu), "free": int(sizes["free"]), "clamped": int(sizes["clamped"]),
        "omega": float(sizes["omega"]),
        "learning_cycle": json_number(d.learning),
        "learning_cycle_cell": json_number(sizes["omega"] * d.learning),
        "sensing": json_number(d.clamped),
        "sensing_hidden": json_number(d.clamped_hidden),
        "sensing_reset": json_number(d.clamped_reset),
        "sensing_ensemble": None if d.clamped is None else json_number(sizes["clamped"] * d.clamped),
        "free_residual": json_number(d.free),
        "total_cell": json_number(d.total_ensemble),
    }
    if d.clamped is None:
        for k in ("sensing", "sensing_hidden", "sensing_reset", "sensing_ensemble"):
            out[f"{k}_reason"] = CLAMPED_EQUILIBRIUM_REASON
    return out


# -- trajectories and episodes ------------------------------------------------------------------------------
def dissipation_along(net: LearningNetwork, t: np.ndarray, X: np.ndarray, a: float = 0.0,
                      floor: float = FLOOR) -> dict[str, np.ndarray]:
    """Dissipation parts at each column of ``X`` (loop states, shape ``(n_states, len(t))``).

    Returns arrays ``t, free, clamped, clamped_hidden, clamped_reset, learning,
    total, total_ensemble`` (clamped parts NaN under equilibrium clamping).
    """
    keys = ("free", "clamped", "clamped_hidden", "clamped_reset", "learning", "total", "total_ensemble")
    out = {k: np.empty(len(t)) for k in keys}
    for j in range(len(t)):
        d = dissipation(net, X[:, j], a, floor)
        for k in keys:
            v = getattr(d, k)
            out[k][j] = np.nan if v is None else v
    out["t"] = np.asarray(t, float)
    return out


@dataclass(frozen=True, kw_only=True)
class Episode:
    """Dissipation of one learning episode (docs/theory.md §4a: start -> settled within 1e-3 of the initial distance).

    Attributes
    ----------
    duration : float           time at which the episode ended (the trajectory entered the band for good)
    reached : bool             whether learning converged (settled within 1e-3 of the initial distance for
                               3 slowest time constants; else ``duration`` = the time limit)
    free, clamped, learning    time integrals of each part (kT per copy / per copy / per unit volume);
                               ``clamped`` None under equilibrium clamping
    total : float              integral of ``total`` (docs/cli.md ``episode_total``)
    total_ensemble : float     integral of ``total_ensemble`` (kT per cell)
    quadrature_error : float   |Simpson - trapezoid| estimate on ``total``
    trace : dict               the dissipation parts along the trajectory (:func:`dissipation_along`)
    theta_target : ndarray     the loop fixed point the distance is measured from
    theta_end : ndarray        theta when the episode ended
    """

    duration: float
    reached: bool
    free: float
    clamped: float | None
    learning: float
    total: float
    total_ensemble: float
    quadrature_error: float
    theta_target: np.ndarray
    theta_end: np.ndarray | None = None
    trace: dict = field(repr=False, default_factory=dict)
    source: str = "crnfb.feedback.dynamics.integrate.integrate"
    path_t: np.ndarray | None = field(default=None, repr=False)      # output times
    path_theta: np.ndarray | None = field(default=None, repr=False)  # learned theta there (len(t), k)
    settling: Settling | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out = {"duration": float(self.duration), "reached": bool(self.reached), "free": json_number(self.free),
               "clamped": json_number(self.clamped), "learning": json_number(self.learning),
               "total": json_number(self.total), "total_ensemble": json_number(self.total_ensemble),
               "quadrature_error": json_number(self.quadrature_error), "tolerance": EPISODE_TOL,
               "integrator": self.source,
               "end": ("distance of theta to theta_fp in the Hessian metric of D (flat directions excluded) "
                       "below 1e-3 of its initial size for good (it stays there for 3 slowest closed-loop "
                       "time constants; docs/theory.md §4a), theta_fp the loop's fixed point (biased under "
                       "dynamic clamping)")}
        if self.settling is not None:
            out["settled_at"] = self.settling.t_settled
            out["simulated_until"] = float(self.settling.t[-1])
        if self.clamped is None:
            out["clamped_reason"] = CLAMPED_EQUILIBRIUM_REASON
        return out


def _integrate(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Composite Simpson on a non-uniform grid (scipy) and its difference to the trapezoid rule."""
    from scipy.integrate import simpson, trapezoid
    good = np.isfinite(y)
    if not good.all():
        return float("nan"), float("nan")
    s = float(simpson(y, x=t))
    return s, abs(s - float(trapezoid(y, x=t)))


def _piece_steps(net: LearningNetwork, rtol: float, atol: float, substeps: int) -> Callable:
    """A piece runner (:func:`crnfb.analysis.analyses.globalbehaviour.settle`) on the package's
    :func:`~crnfb.feedback.dynamics.integrate.integrate` with SciPy's own BDF (no Newton-matrix reuse),
    output on the solver's steps subdivided ``substeps`` times: the cross-check of the default runner
    (ReuseBDF on a log grid) with another solver and other samples, the same vector field."""
    system = loop_system(net, Constant(0.0))

    def piece(x, t_eval, stop):
        t, Y, stats = integrate(system, x, t_eval, method="BDF", rtol=rtol, atol=atol, stop=stop,
                                progress=False, desc="episode", substeps=substeps)
        return t, Y, stats.t_stop is not None

    return piece


def episode(model: Model, loop=None, tol: float = EPISODE_TOL, t_max: float | None = None,
            rtol: float = 1e-8, atol: float = 1e-12, integrator: str = "auto", points: int = 3000,
            substeps: int = 4, rate: float | None = None) -> Episode:
    """Integrate the loop from the episode start and the dissipation along it until the episode ends.

    The loop starts at :meth:`LearningNetwork.initial_state` (theta0,
    ``p_f = pi(theta0)``, ``p_c`` its stationary law at theta0) and runs
    until it has *settled* (:func:`crnfb.analysis.analyses.globalbehaviour.settle`):
    ``|W^T (theta - theta_fp)|`` has fallen to ``tol`` times its initial
    value and stayed there for 3 slowest closed-loop time constants (``W``
    the Hessian metric of ``D`` on its curved directions,
    :func:`crnfb.analysis.analyses.globalbehaviour.settle_metric`; ``theta_fp`` the loop's fixed point: the state
    the flow actually approaches; biased under dynamic clamping), or until
    ``t_max``. The episode ends when the trajectory entered the band for
    good; the dissipation rates are evaluated along the trajectory and
    integrated by Simpson's rule up to that end (to ``t_max`` when learning
    did not converge).

    Both integrators run the package's front end
    :func:`crnfb.feedback.dynamics.integrate.integrate` on the loop's field
    (:func:`~crnfb.feedback.dynamics.integrate.loop_system`, analytic sparse
    Jacobian, the episode's end located by Brent's method on the dense output).
    ``integrator``: ``"simulate"`` uses ReuseBDF on a log-spaced output grid
    of ``points`` times (dense early, where the free ensemble's fast transient
    lives); ``"steps"`` uses SciPy's BDF with output on its own steps
    subdivided ``substeps`` times (a cross-check); ``"auto"`` takes the first. ``rate``: the
    slowest closed-loop rate at the fixed point when the caller has it (the
    report's stability section), else computed here by linearising.
    """
    from crnfb.analysis.analyses.globalbehaviour import piece_simulate, settle, time_limit

    if integrator not in ("auto", "simulate", "steps"):
        raise ValueError(f"integrator must be 'auto', 'simulate' or 'steps', got {integrator!r}")
    net, fp = _loop_parts(model, loop)
    U = model.identifiable
    x0 = net.initial_state()
    th_star = fp.theta
    d0 = float(np.linalg.norm(U.T @ (model.theta0 - th_star)))
    parts0 = dissipation(net, x0)
    if d0 == 0.0:
        z = 0.0
        return Episode(duration=0.0, reached=True, free=z, clamped=None if parts0.clamped is None else z, learning=z,
                       total=z, total_ensemble=z, quadrature_error=0.0, theta_target=th_star, theta_end=th_star,
                       trace={}, source="none (theta0 is the fixed point)")
    rate = _slowest_rate(model, fp) if rate is None else float(rate)
    t_max = time_limit(rate, model.eps) if t_max is None else t_max
    if integrator == "steps":
        piece, source = (_piece_steps(net, rtol, atol, substeps),
                         "crnfb.feedback.dynamics.integrate.integrate (BDF, solver steps)")
    else:
        piece, source = piece_simulate(net, rtol, atol), "crnfb.feedback.dynamics.integrate.integrate"
    run = settle(model, net, x0, th_star, rate, piece=piece, tol=tol, t_max=t_max, points=points)
    k = net.n_f + net.n_c
    tt, XX = run.t, run.X
    end = tt.size if run.t_settled is None else int(np.searchsorted(tt, run.t_settled, side="right"))
    tr = dissipation_along(net, tt[:end], XX[:, :end])
    res = {key: _integrate(tt[:end], tr[key]) for key in ("free", "learning", "total", "total_ensemble")}
    clamped = _integrate(tt[:end], tr["clamped"])[0] if net.dynamic else None
    return Episode(duration=float(tt[end - 1]), reached=bool(run.converged), free=res["free"][0], clamped=clamped,
                   learning=res["learning"][0], total=res["total"][0], total_ensemble=res["total_ensemble"][0],
                   quadrature_error=res["total"][1], theta_target=th_star, theta_end=XX[k:, end - 1].copy(), trace=tr,
                   source=source, path_t=np.asarray(tt, float), path_theta=XX[k:].T.copy(), settling=run)


def _slowest_rate(model: Model, fp) -> float:
    """The slowest closed-loop rate at ``fp`` (the episode's time unit); NaN if it cannot be computed."""
    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.stability import stability
    try:
        return float(stability(linearise(model, fixed_point=fp)).slowest_rate)
    except Exception:  # noqa: BLE001 - only sets the hold time and the time limit
        return float("nan")


# -- the report section --------------------------------------------------------------------------------------
def episode_settings(quick: bool) -> dict:
    """Keyword arguments of :func:`episode` for the report (``quick``: looser, coarser; ``crnfb sweep``)."""
    return {"rtol": 1e-6, "atol": 1e-10, "points": 800} if quick else {}


#: ``report.json``'s ``thermodynamics.conventions``.
CONVENTIONS = ("Schnakenberg entropy production, one flux pair per mechanism (each reaction; each "
               "ordered reset pair separately). free and clamped per copy, learning per unit volume; "
               "total is their sum as docs/cli.md fixes it; total_ensemble scales them by M_f, M_c "
               "and Omega. See docs/thermodynamics.md.")


@dataclass(frozen=True, kw_only=True, eq=False)
class Thermodynamics:
    """The thermodynamics section of the report (docs/thermodynamics.md §5): :func:`thermodynamics`.

    Attributes
    ----------
    fixed_point : Dissipation
        Dissipation by part at the loop's fixed point.
    episode : Episode or None
        The learning episode's dissipation (None with ``episode_reason``).
    episode_reason : str or None
        Why there is no episode (not asked for, or its integration failed).
    maintenance : dict
        The steady cost of keeping the learned state (``report.json``'s ``thermodynamics.maintenance``).
    """

    fixed_point: Dissipation
    maintenance: dict
    episode: Episode | None = None
    episode_reason: str | None = None

    @property
    def episode_total(self) -> float | None:
        """Dissipation over the episode (kT; None when not computed or not finite)."""
        return None if self.episode is None else json_number(self.episode.total)

    def to_dict(self) -> dict:
        """The ``thermodynamics`` section of ``report.json`` (docs/cli.md; keys in :func:`thermodynamics`)."""
        d = self.fixed_point
        out: dict[str, Any] = {"fixed_point": d.to_dict(),
                               "fixed_point_ensemble": {k: json_number(v) for k, v in d.ensemble().items()}}
        if d.clamped is None:
            out["fixed_point_ensemble"]["clamped_reason"] = CLAMPED_EQUILIBRIUM_REASON
        out.update(self._episode_dict())
        out["maintenance"] = dict(self.maintenance)
        out["units"] = dict(UNITS)
        out["conventions"] = CONVENTIONS
        return out

    def _episode_dict(self) -> dict:
        ep = self.episode
        if ep is None:
            why = self.episode_reason or "not computed"
            return {"episode_total": None, "episode_total_reason": why,
                    "episode_total_ensemble": None, "episode_total_ensemble_reason": why}
        out = {"episode_total": json_number(ep.total), "episode_total_ensemble": json_number(ep.total_ensemble),
               "episode": ep.to_dict()}
        if not ep.reached:
            out["episode"]["warning"] = ("learning from the file's energies did not converge before the time "
                                         "limit (global.episode says how)")
        for k in ("episode_total", "episode_total_ensemble"):
            if out[k] is None:
                out[f"{k}_reason"] = "the integrand was not finite along the trajectory"
        return out


def thermodynamics(model, loop=None, with_episode: bool = True, quick: bool = False,
                   episode_result: Episode | None = None) -> Thermodynamics:
    """The thermodynamics section (docs/cli.md): dissipation at the fixed point and over the learning episode.

    ``model`` is a :class:`Model` or a linearised loop standing in for it
    (``thermodynamics(loop)``, as ``margins(loop)``).

    Its ``report.json`` part (:meth:`Thermodynamics.to_dict`) has the keys
    ``fixed_point {free, clamped, learning, total, total_ensemble, ...}``,
    ``fixed_point_ensemble`` (each part scaled to the cell), ``episode_total``,
    ``episode_total_ensemble``, ``episode`` (details), ``maintenance``,
    ``units``, ``conventions``. Unavailable numbers are ``None`` with a
    ``<key>_reason`` beside them. ``quick`` (``crnfb sweep``) integrates the
    episode with looser tolerances and a coarser output grid.
    ``episode_result``: an episode already integrated (the report shares one
    simulation of the learning episode between this section and the learning figure).
    """
    from crnfb.analysis.analyses.context import model_and_loop

    model, loop = model_and_loop(model, loop)
    net, fp = _loop_parts(model, loop)
    d = dissipation(net, fp.x, fp.a)
    ep = None
    why: str | None = "not computed (with_episode=False)"
    if with_episode:
        try:
            ep = episode_result if episode_result is not None else episode(model, fp, **episode_settings(quick))
            why = None
        except Exception as exc:  # noqa: BLE001 - the report stays valid, the reason says why
            why = f"episode integration failed: {exc}"
    return Thermodynamics(fixed_point=d, maintenance=_maintenance(model, net, fp, d), episode=ep, episode_reason=why)


def _maintenance(model: Model, net: LearningNetwork, fp, d: Dissipation) -> dict:
    """``thermodynamics.maintenance``: the learning futile cycle and the sensing cost at the fixed point."""
    m = model.learning
    lam = np.exp(fp.theta)
    m_f, m_c = net.means(fp.x, fp.a)
    out = {
        "learning_cycle": json_number(d.learning),
        "learning_cycle_formula": "dmu * sum_i eps_i lambda_i (m_c,i + m_f,i) = 2 dmu sum_i eps_i lambda_i m_i",
        "sensing": json_number(d.clamped),
        "lambda": {n: float(v) for n, v in zip(model.learned_names, lam)},
        "m_f": {n: float(v) for n, v in zip(model.learned_names, m_f)},
        "m_c": {n: float(v) for n, v in zip(model.learned_names, m_c)},
        "eps": [float(e) for e in model.eps], "gamma": float(m.gamma), "dmu": float(m.dmu),
        "free": int(model.ensembles.free), "clamped": int(model.ensembles.clamped),
        "omega": float(model.ensembles.omega),
    }
    if d.clamped is None:
        out["sensing_reason"] = CLAMPED_EQUILIBRIUM_REASON
    return out


def thermodynamics_report(model, loop=None, with_episode: bool = True, quick: bool = False,
                          episode_result: Episode | None = None) -> dict:
    """The ``thermodynamics`` section of ``report.json``: :func:`thermodynamics` (same arguments) as a dict."""
    return thermodynamics(model, loop, with_episode, quick, episode_result).to_dict()


__all__ = ["Dissipation", "Episode", "UNITS", "clamped_entropy_production", "dissipation", "dissipation_along",
           "edge_pairs", "episode", "fixed_point_dissipation", "free_entropy_production", "learning_dissipation",
           "maintenance_cost", "reset_entropy_production", "schnakenberg", "Thermodynamics", "thermodynamics",
           "thermodynamics_report", "json_number"]
