"""What happens past the critical learning rate: the bifurcation at ``eps_crit`` (docs/theory.md §4c).

At ``eps_crit`` (every learning rate times the gain margin ``g_c``) an
eigenvalue pair of the reduced loop Jacobian crosses the imaginary axis. The
fixed point does not move with ``eps`` (only the theta rows of the vector
field scale), so the crossing is a Hopf bifurcation when the pair is complex
and simple, and its type is the sign of the first Lyapunov coefficient
``l1`` (Kuznetsov's formula, from the analytic second and third derivatives
of the mass-action vector field, :meth:`LearningNetwork.rhs_derivative`):
``l1 < 0`` supercritical (a small stable orbit is born above ``eps_crit``,
amplitude ``~ sqrt(eps/eps_crit - 1)``), ``l1 > 0`` subcritical (an unstable
orbit exists below ``eps_crit``; above it the loop leaves for a far attractor).

:func:`hopf_point`
    The crossing's type, ``l1``, the crossing speed and the normal form's
    prediction of the orbit (amplitude coefficient per learned parameter, period).
:func:`periodic_orbit`
    The periodic orbit at one factor of ``eps`` by shooting (Newton-Picard
    on the period map; each map evaluation is a stiff ODE run with the
    analytic sparse Jacobian); :func:`continue_orbit` follows it in ``eps``.
:func:`ode_orbit`
    The attractor the ODE reaches from next to the fixed point: amplitude and
    period measured on the trajectory (the independent check).
:func:`bifurcation`
    All of it for the report's ``global.bifurcation`` key.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import linalg, sparse
from scipy.sparse.linalg import eigs, splu

from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.analysis.analyses.margins import CriticalRates, scaled_jacobian
from crnfb.analysis.linear.stability import spectral_scale, zero_tolerance
from crnfb.feedback.dynamics.ensembles import LearningNetwork
from crnfb.feedback.model.signals import Constant
from crnfb.feedback.dynamics.integrate import SimulationError, WorkLimitError, integrate, loop_system, state_atol
from crnfb.feedback.numerics import sizes

__all__ = ["HopfPoint", "Orbit", "Bifurcation", "hopf_point", "periodic_orbit", "continue_orbit", "ode_orbit",
           "bifurcation", "PROBE_STEPS"]

#: Relative distances above eps_crit (supercritical) or below it (subcritical) where orbits are computed.
PROBE_STEPS = (0.02, 0.05)
#: Newton-Picard: Newton on the modes the period map contracts by less than this factor (at most this many).
PICARD_RHO = 0.3
MAX_NEWTON_MODES = 3
#: ODE tolerances of the orbit runs (the shooting residual is this small relative to the orbit).
RTOL, ATOL = 1e-9, 1e-13


@dataclass(frozen=True, kw_only=True)
class HopfPoint:
    """The crossing at ``eps_crit``.

    Attributes
    ----------
    kind : str
        ``"supercritical Hopf"``, ``"subcritical Hopf"``, ``"degenerate Hopf"``
        (``l1`` within round-off of 0), ``"real crossing"`` (a real eigenvalue:
        fold or transcritical, the Hopf analysis does not apply) or
        ``"zero-Hopf"`` (a zero eigenvalue beside the pair: does not apply).
    factor : float          ``g_c = eps_crit / eps``
    omega : float           ``Im lambda`` of the crossing pair (rad per time unit)
    l1 : float or None      first Lyapunov coefficient (Kuznetsov's normalisation, ``<q, q> = 1``)
    speed : float or None   ``d Re lambda / d g`` at ``g_c`` (transversality: must not vanish)
    amplitude : ndarray or None
        Normal-form amplitude coefficient ``K_i`` per learned parameter:
        ``theta_i`` oscillates with half peak-to-peak ``K_i sqrt(|g / g_c - 1|)``.
    q : ndarray or None     critical eigenvector (full loop coordinates, ``<q, q> = 1`` reduced)
    q_reduced, p_reduced : ndarray or None  right and left eigenvectors in the reduced coordinates (``<p, q> = 1``)
    reason : str or None    why ``l1`` is not computed
    """

    kind: str
    factor: float
    omega: float
    l1: float | None
    speed: float | None
    amplitude: np.ndarray | None
    q: np.ndarray | None = field(default=None, repr=False)
    q_reduced: np.ndarray | None = field(default=None, repr=False)
    p_reduced: np.ndarray | None = field(default=None, repr=False)
    reason: str | None = None

    @property
    def period(self) -> float:
        return 2.0 * math.pi / self.omega if self.omega > 0 else math.inf

    @property
    def side(self) -> float:
        """+1 where the small orbit lives above ``eps_crit`` (supercritical), -1 below (subcritical)."""
        return 1.0 if (self.l1 or 0.0) < 0 else -1.0

    def normal_form(self) -> NormalForm:
        """The normal-form data the orbit continuation uses (every field set for a supercritical Hopf);
        ValueError where they were not computed (a real crossing, a zero-Hopf or degenerate point)."""
        if (self.l1 is None or self.speed is None or self.amplitude is None or self.q is None
                or self.q_reduced is None or self.p_reduced is None):
            raise ValueError(f"the {self.kind} at factor {self.factor:g} has no normal form ({self.reason})")
        return NormalForm(self.l1, self.speed, self.amplitude, self.q, self.q_reduced, self.p_reduced)


class NormalForm(NamedTuple):
    """:class:`HopfPoint`'s normal-form fields, none of them None."""

    l1: float
    speed: float
    amplitude: np.ndarray
    q: np.ndarray
    q_reduced: np.ndarray
    p_reduced: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Orbit:
    """A periodic orbit (or the attractor a run reached) at ``factor`` times the file's ``eps``.

    ``amplitude``: half peak-to-peak of each learned theta; ``period`` in time
    units; ``how``: ``"shooting"`` (Newton-Picard, ``residual`` its final
    relative residual) or ``"ODE"`` (measured on a long run); ``x0`` a point on
    it (full loop coordinates).
    """

    factor: float
    amplitude: np.ndarray
    period: float
    how: str
    residual: float | None = None
    x0: np.ndarray | None = field(default=None, repr=False)
    reason: str | None = None


# -- the crossing --------------------------------------------------------------------------------------
def _critical_pair(A: sparse.csr_matrix, omega: float) -> tuple[complex, np.ndarray, np.ndarray, np.ndarray]:
    """``(lambda, q, p, others)``: eigenvalue next to ``i omega``, right and left eigenvectors, the rest of the
    spectrum near the axis (dense) or the next few eigenvalues (Arnoldi)."""
    r = A.shape[0]
    if r <= sizes.BIFURCATION_DENSE_EIG_LIMIT:
        w, vl, vr = linalg.eig(A.toarray(), left=True, right=True)
        i = int(np.argmin(np.abs(w - 1j * omega)))
        others = np.delete(w, [i, int(np.argmin(np.abs(w + 1j * omega)))])
        return complex(w[i]), vr[:, i], vl[:, i], others
    Ac = A.astype(complex)
    w, vr = eigs(Ac, k=4, sigma=1j * omega)
    i = int(np.argmin(np.abs(w - 1j * omega)))
    wl, vl = eigs(Ac.conj().T.tocsc(), k=1, sigma=np.conj(w[i]))
    return complex(w[i]), vr[:, i], vl[:, 0], np.delete(w, i)


def _forms(loop: LinearLoop, g: float):
    """``(B, C)``: second and third derivatives of the reduced vector field at factor ``g``."""
    net, x = loop.net, loop.fixed_point.x
    a = loop.fixed_point.a
    scale = np.ones(net.n_states)
    scale[net.n_f + net.n_c:] = g
    V, rest = loop.V, loop.rest

    def form(*ys):
        return (scale * net.rhs_derivative(x, [V @ y for y in ys], a))[rest]

    return (lambda u, v: form(u, v)), (lambda u, v, w: form(u, v, w))


def _lyapunov(A, q: np.ndarray, p: np.ndarray, omega: float, B, C) -> float:
    """Kuznetsov's first Lyapunov coefficient (Elements of Applied Bifurcation Theory, eq. 3.20)."""
    r = A.shape[0]
    I = sparse.identity(r, format="csc")
    h11 = splu(A.tocsc().astype(complex)).solve(B(q, q.conj()).astype(complex))
    h20 = splu((2j * omega * I - A).tocsc().astype(complex)).solve(B(q, q).astype(complex))
    c = np.vdot(p, C(q, q, q.conj())) - 2.0 * np.vdot(p, B(q, h11)) + np.vdot(p, B(q.conj(), h20))
    return float(c.real / (2.0 * omega))


def hopf_point(loop: LinearLoop, factor: float, omega: float) -> HopfPoint:
    """Classify the crossing at ``factor = eps_crit / eps`` (``omega``: the crossing frequency from margins).

    The tolerance that calls an eigenvalue zero (or real) is the stability
    analysis' one (:func:`crnfb.analysis.linear.stability.zero_tolerance`), so the
    classification agrees with the verdict.
    """
    A = scaled_jacobian(loop, factor)
    lam, q, p, others = _critical_pair(A, omega)
    tol = zero_tolerance(np.append(others, lam), spectral_scale(A))
    if abs(lam.imag) <= tol:
        return HopfPoint(kind="real crossing", factor=factor, omega=0.0, l1=None, speed=None, amplitude=None,
                         reason="a real eigenvalue crosses (fold or transcritical): the Hopf analysis does not apply")
    near = others[np.abs(others) <= tol]
    if near.size:
        return HopfPoint(kind="zero-Hopf", factor=factor, omega=abs(lam.imag), l1=None, speed=None, amplitude=None,
                         reason=(f"a zero eigenvalue ({near[0]:.3g}) beside the crossing pair: the Hopf analysis "
                                 "does not apply (codimension two)"))
    omega = abs(lam.imag)
    if lam.imag < 0:
        q, p = q.conj(), p.conj()
    q = q / np.linalg.norm(q)
    p = p / np.conj(np.vdot(p, q))            # <p, q> = 1
    B, C = _forms(loop, factor)
    l1 = _lyapunov(A, q, p, omega, B, C)
    speed = float(np.vdot(p, scaled_jacobian(loop, factor + 1.0) @ q - A @ q).real)   # A is affine in g
    Vq = loop.V @ q
    th = Vq[loop.net.n_f + loop.net.n_c:]
    # normal form z' = (mu + i omega) z + c1 z|z|^2 with Re c1 = omega l1: |z|^2 = -mu / (omega l1)
    K = 2.0 * np.abs(th) * math.sqrt(abs(speed * factor / (omega * l1))) if l1 != 0 else None
    small = abs(l1) * omega <= tol * max(1.0, float(np.max(np.abs(th))))
    kind = "degenerate Hopf" if small else ("supercritical Hopf" if l1 < 0 else "subcritical Hopf")
    return HopfPoint(kind=kind, factor=float(factor), omega=float(omega), l1=float(l1), speed=speed, amplitude=K,
                     q=Vq, q_reduced=q, p_reduced=p)


# -- orbits ------------------------------------------------------------------------------------------------
def _flow(net: LearningNetwork, x0: np.ndarray, t_eval: np.ndarray,
          max_steps: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    system = loop_system(net, Constant(float(0.0)))
    t, Y, _ = integrate(system, x0, t_eval, rtol=RTOL, atol=state_atol(net, ATOL, ATOL), progress=False,
                        desc="orbit", max_steps=max_steps)
    return np.asarray(t), np.asarray(Y)


def _theta(net: LearningNetwork, Y: np.ndarray) -> np.ndarray:
    return Y[:, net.n_f + net.n_c:]


def _dominant_basis(A: sparse.csr_matrix, hopf: HopfPoint, period: float) -> np.ndarray:
    """Orthonormal real basis of the modes the period map contracts least (``|exp(lambda T)| >= PICARD_RHO``),
    the critical pair always included: where Newton-Picard takes Newton steps."""
    vecs = [hopf.normal_form().q_reduced]
    if A.shape[0] <= sizes.BIFURCATION_DENSE_EIG_LIMIT:
        w, v = linalg.eig(A.toarray())
        keep = np.argsort(-w.real)[:MAX_NEWTON_MODES]
        vecs += [v[:, i] for i in keep if np.exp(w[i].real * period) >= PICARD_RHO]
    else:
        w, v = eigs(A.astype(complex), k=min(MAX_NEWTON_MODES, A.shape[0] - 2), sigma=0.0)
        vecs += [v[:, i] for i in range(w.size) if np.exp(w[i].real * period) >= PICARD_RHO]
    Z = np.column_stack([x for v in vecs for x in (v.real, v.imag) if np.linalg.norm(x) > 0])
    Q, R = np.linalg.qr(Z)
    return Q[:, np.abs(np.diag(R)) > 1e-8 * np.abs(R).max()]


def periodic_orbit(loop: LinearLoop, hopf: HopfPoint, factor: float, x_guess: np.ndarray, period_guess: float,
                   tol: float = 1e-4, maxiter: int = 25, deadline: float | None = None) -> Orbit:
    """The periodic orbit at ``factor`` by Newton-Picard shooting from a guess.

    Newton-Picard (Lust, Roose, Spence, Champneys, SIAM J. Sci. Comput. 19, 1998)
    splits the reduced coordinates into ``Z``, the modes the period map
    contracts least (the critical pair and every mode with ``|exp(lambda T)|
    >= PICARD_RHO``, :func:`_dominant_basis`), and its complement. On ``Z``
    Newton solves ``Z^T (y(T) - y0) = 0`` and the phase condition
    ``Im <p, y0> = 0`` for the coordinates and the period (``dy(T)/dT =
    f(y(T))`` exactly, one finite-difference run per mode); on the complement,
    which the period map contracts, ``y0`` takes the map's value (Picard).
    Converged when ``|y(T) - y0|`` is below ``tol`` times the orbit's size
    (the period runs' own accuracy is about 1e-5 of it). Stops between
    iterations at ``deadline`` (``time.monotonic()``).
    """
    model = loop.net.model.with_learning(eps=loop.net.eps * factor)
    net = LearningNetwork(model)
    x_fp, V, rest = loop.fixed_point.x, loop.V, loop.rest
    Z = _dominant_basis(scaled_jacobian(loop, factor), hopf, period_guess)
    y0 = (x_guess - x_fp)[rest]
    c, w, T = Z.T @ y0, y0 - Z @ (Z.T @ y0), float(period_guess)
    p_reduced = hopf.normal_form().p_reduced
    phase = np.conj(p_reduced) @ Z

    def period_map(y, T):
        t, Y = _flow(net, x_fp + V @ y, np.array([0.0, T]))
        if t[-1] < T:
            raise SimulationError("the run stopped before one period")
        return (Y[-1] - x_fp)[rest], Y[-1]

    res = math.inf
    try:
        for _ in range(maxiter):
            y = Z @ c + w
            Phi, X = period_map(y, T)
            size = max(float(np.linalg.norm(y)), 1e-300)
            res = float(np.linalg.norm(Phi - y)) / size
            if res <= tol:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise SimulationError("stopped by the global searches' time budget (--global-budget)")
            h = 1e-7 * size
            D = np.column_stack([(period_map(y + h * Z[:, j], T)[0] - Phi) / h for j in range(Z.shape[1])])
            M = np.block([[Z.T @ D - np.eye(Z.shape[1]), (Z.T @ net.rhs(X)[rest])[:, None]],
                          [phase.imag[None, :], np.zeros((1, 1))]])
            step = np.linalg.solve(M, -np.append(Z.T @ (Phi - y), (phase @ c).imag + np.vdot(p_reduced, w).imag))
            c, T = c + step[:-1], T + step[-1]
            w = Phi - Z @ (Z.T @ Phi)
            if not 0.2 * period_guess < T < 5.0 * period_guess:
                raise SimulationError(f"the period left [0.2, 5] times the guess ({T:.4g})")
    except (SimulationError, WorkLimitError, np.linalg.LinAlgError, FloatingPointError) as e:
        return Orbit(factor=float(factor), amplitude=np.full(loop.net.k, np.nan), period=math.nan, how="shooting",
                     residual=None, x0=None, reason=f"shooting failed: {type(e).__name__}: {str(e)[:120]}")
    if res > tol:
        return Orbit(factor=float(factor), amplitude=np.full(loop.net.k, np.nan), period=math.nan, how="shooting",
                     residual=res, x0=None,
                     reason=f"shooting did not converge in {maxiter} iterations (relative residual {res:.2g})")
    x0 = x_fp + V @ (Z @ c + w)
    _, Y = _flow(net, x0, np.linspace(0.0, T, 401))
    return Orbit(factor=float(factor), amplitude=np.ptp(_theta(net, Y), axis=0) / 2.0, period=float(T),
                 how="shooting", residual=res, x0=x0)


def _guess(hopf: HopfPoint, loop: LinearLoop, factor: float) -> np.ndarray:
    """A point on the normal form's orbit at ``factor``: ``x* + 2 Re(q z)``, ``z`` real."""
    nf = hopf.normal_form()
    z = math.sqrt(abs(nf.speed * (factor - hopf.factor) / (hopf.omega * nf.l1)))
    return loop.fixed_point.x + 2.0 * (nf.q * z).real


def continue_orbit(loop: LinearLoop, hopf: HopfPoint, steps=PROBE_STEPS,
                   deadline: float | None = None) -> list[Orbit]:
    """Natural-parameter continuation of the Hopf orbit in ``eps``: factors ``g_c (1 + side * s)``.

    The first orbit starts from the normal form's guess, each further one
    from the previous orbit (its amplitude scaled by the square-root law).
    """
    out, prev = [], None
    for s in steps:
        f = hopf.factor * (1.0 + hopf.side * s)
        if prev is None or prev.reason:
            guess, T = _guess(hopf, loop, f), hopf.period
        else:
            grow = math.sqrt(s / prev_s)
            guess, T = loop.fixed_point.x + grow * (prev.x0 - loop.fixed_point.x), prev.period
        if deadline is not None and time.monotonic() > deadline:
            break
        prev, prev_s = periodic_orbit(loop, hopf, f, guess, T, deadline=deadline), s
        out.append(prev)
    return out


def ode_orbit(loop: LinearLoop, hopf: HopfPoint, factor: float, start: np.ndarray, periods: float,
              measure: int = 4) -> Orbit:
    """The attractor reached from ``start`` at ``factor``: a run of ``periods`` normal-form periods, the last
    ``measure`` periods measured (amplitude: half peak-to-peak; period: mean spacing of the upward
    crossings of the first learned theta through its mean)."""
    model = loop.net.model.with_learning(eps=loop.net.eps * factor)
    net = LearningNetwork(model)
    T0 = hopf.period
    t_end = periods * T0
    # output 400 points per period in the measured tail (peak sampling error 1 - cos(pi/400) = 3e-5)
    grid = np.union1d(np.linspace(0.0, t_end - measure * T0, int(periods) + 1),
                      np.linspace(t_end - measure * T0, t_end, 400 * measure + 1))
    t, Y = _flow(net, start, grid, max_steps=int(1000 * periods) + 20000)
    if t[-1] < t_end:
        return Orbit(factor=float(factor), amplitude=np.full(net.k, np.nan), period=math.nan, how="ODE",
                     reason="the run stopped early")
    tail = t >= t_end - measure * T0
    th = _theta(net, Y)[tail]
    tt = t[tail]
    u = th[:, 0] - th[:, 0].mean()
    up = np.nonzero((u[:-1] < 0) & (u[1:] >= 0))[0]
    cross = tt[up] - u[up] * (tt[up + 1] - tt[up]) / (u[up + 1] - u[up])
    period = float(np.mean(np.diff(cross))) if cross.size >= 2 else math.nan
    return Orbit(factor=float(factor), amplitude=np.ptp(th, axis=0) / 2.0, period=period, how="ODE", x0=Y[-1])


# -- the report's entry -------------------------------------------------------------------------------------
#: Relative accuracy of a measured amplitude or period: output sampling (3e-5), the shooting residual
#: (1e-4) and what is left of the approach to the orbit (e^-10 of the start's distance).
MEASURE_TOL = 1e-3
#: The ODE runs at least this many normal-form periods, and 10 of the orbit's radial time constants.
MIN_PERIODS = 40


@dataclass(frozen=True, kw_only=True)
class Bifurcation:
    """The crossing at ``eps_crit``, the orbit continued past it, and the ODE checks.

    ``orbits``: shooting (Newton-Picard) at ``g_c (1 + s)`` for ``s`` in
    :data:`PROBE_STEPS` (supercritical only); ``ode``: the attractor an ODE run
    from the normal form's orbit reaches at the same factors; ``checks``: the
    normal form's amplitude and period against the ODE (extrapolated to
    ``eps_crit`` from the two factors) and the shooting against the ODE.
    ``orbit_reason``: why orbits were not computed (None when they were).
    """

    hopf: HopfPoint
    orbits: tuple[Orbit, ...] = ()
    ode: tuple[Orbit, ...] = ()
    checks: tuple[dict, ...] = ()
    orbit_reason: str | None = None

    def to_dict(self, names: list[str], eps: np.ndarray) -> dict:
        h = self.hopf
        f = lambda x: None if x is None or not np.isfinite(x) else float(x)  # noqa: E731
        per = lambda a: None if a is None else {n: f(v) for n, v in zip(names, a)}  # noqa: E731
        crit = CriticalRates(learned=tuple(names), eps=eps, factor=h.factor)
        out: dict[str, object] = {
               "type": h.kind, "factor": f(h.factor), "eps_crit": per(crit.eps_crit), "frequency": f(h.omega),
               "period": f(h.period) if h.omega > 0 else None, "first_lyapunov_coefficient": f(h.l1),
               "crossing_speed": f(h.speed), "amplitude_coefficient": per(h.amplitude),
               "meaning": ("the crossing at eps_crit: supercritical Hopf (first Lyapunov coefficient < 0, a "
                           "stable orbit of half peak-to-peak amplitude_coefficient * sqrt(eps/eps_crit - 1) in "
                           "theta above eps_crit) or subcritical (> 0, an unstable orbit below eps_crit); "
                           "docs/theory.md 4c")}
        if h.reason:
            out["reason"] = h.reason
        orbit = lambda o: {"factor": o.factor, "amplitude": per(o.amplitude), "period": f(o.period),  # noqa: E731
                           "how": o.how, "residual": f(o.residual), "reason": o.reason}
        out["orbits"] = [orbit(o) for o in self.orbits + self.ode]
        out["checks"] = list(self.checks)
        if self.orbit_reason:
            out["orbits_reason"] = self.orbit_reason
        return out


def _extrapolated(steps, values) -> tuple[float, float]:
    """Leading coefficient at ``s -> 0`` of ``values(s) = c0 (1 + c1 s)`` from two steps, and the
    size of the first-order correction at the smaller step (relative): the check's tolerance."""
    (s1, s2), (v1, v2) = steps, values
    c0 = (v1 * s2 - v2 * s1) / (s2 - s1)
    return c0, abs(v1 - c0) / abs(c0)


def _checks(hopf: HopfPoint, orbits, ode) -> tuple[dict, ...]:
    """Normal form vs ODE (extrapolated to eps_crit) and shooting vs ODE at each factor."""
    steps = [abs(o.factor / hopf.factor - 1.0) for o in ode]
    amplitude = hopf.normal_form().amplitude
    i = int(np.argmax(amplitude))
    out = []
    if len(ode) == 2 and all(np.isfinite(o.amplitude[i]) and np.isfinite(o.period) for o in ode):
        c0, corr = _extrapolated(steps, [o.amplitude[i] ** 2 / s for o, s in zip(ode, steps)])
        want = amplitude[i] ** 2
        tol = corr + 2 * MEASURE_TOL
        out.append({"what": "amplitude^2 / (eps/eps_crit - 1) at eps_crit: normal form vs ODE (extrapolated)",
                    "predicted": float(want), "measured": float(c0), "tolerance": float(tol),
                    "passed": bool(abs(c0 - want) <= tol * abs(want))})
        p0, corr = _extrapolated(steps, [o.period for o in ode])
        tol = corr + MEASURE_TOL
        out.append({"what": "period at eps_crit: 2 pi / omega vs ODE (extrapolated)", "predicted": float(hopf.period),
                    "measured": float(p0), "tolerance": float(tol),
                    "passed": bool(abs(p0 - hopf.period) <= tol * hopf.period)})
    for o, d in zip(orbits, ode):
        ok = o.reason is None and d.reason is None
        rel = float(abs(o.amplitude[i] - d.amplitude[i]) / abs(d.amplitude[i])) if ok else None
        out.append({"what": f"orbit amplitude at factor {o.factor:.6g}: shooting vs ODE",
                    "predicted": _finite(o.amplitude[i]), "measured": _finite(d.amplitude[i]),
                    "tolerance": 2 * MEASURE_TOL, "passed": None if rel is None else bool(rel <= 2 * MEASURE_TOL),
                    **({} if ok else {"reason": o.reason or d.reason})})
    return tuple(out)


def _finite(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def bifurcation(loop: LinearLoop, factor: float, omega: float, orbits: bool = True,
                deadline: float | None = None) -> Bifurcation:
    """Classify the crossing at ``factor`` (the gain margin) and, with ``orbits``, continue the
    supercritical orbit past it and check it against the ODE (stops between runs at ``deadline``,
    a ``time.monotonic()`` value)."""
    hopf = hopf_point(loop, factor, omega)
    if not orbits:
        return Bifurcation(hopf=hopf,
                           orbit_reason="not computed (validation off: --no-validate, validate=False or quick)")
    if hopf.kind != "supercritical Hopf":
        reasons = {"subcritical Hopf": "the orbit born at eps_crit is unstable and lies below it; above eps_crit the "
                                       "loop leaves for a far attractor (the safe factor's runs show which)"}
        return Bifurcation(hopf=hopf,
                           orbit_reason="not computed: " + reasons.get(hopf.kind, f"no orbit for a {hopf.kind}"))
    shot = continue_orbit(loop, hopf, PROBE_STEPS, deadline)
    ode = []
    for s in PROBE_STEPS[:len(shot)]:
        if deadline is not None and time.monotonic() > deadline:
            break
        f = hopf.factor * (1.0 + s)
        mu = hopf.normal_form().speed * hopf.factor * s
        ode.append(ode_orbit(loop, hopf, f, _guess(hopf, loop, f), max(MIN_PERIODS, 10.0 / (2 * mu * hopf.period))))
    done = len(ode) == len(PROBE_STEPS) and not any("time budget" in (o.reason or "") for o in shot)
    why = None if done else "stopped by the global searches' time budget (--global-budget)"
    return Bifurcation(hopf=hopf, orbits=tuple(shot), ode=tuple(ode), checks=_checks(hopf, shot, ode), orbit_reason=why)
