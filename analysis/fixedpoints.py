"""Stationary points of the quasi-static learning problem (docs/theory.md §3).

The gradient flow ``dtheta/dt = -E grad D`` moves ``theta`` inside
``theta0 + range(E U)`` (``U``: identifiable basis), so the neutral invariant
``N^T E^{-1} theta`` keeps its initial value. The fixed point reached from
the file's energies is found by integrating that flow until the gradient
is small (so the basin is the flow's, not Newton's) and polishing with a
trust-region Newton method on D (``scipy.optimize.minimize(method="trust-exact")``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import minimize, root

from crnfb.feedback.landscape import identifiable_basis
from crnfb.feedback.model import Model

KIND_TOL = 1e-8


@dataclass(frozen=True)
class StationaryPoint:
    """A stationary point of ``D(Q||P_theta)`` in learned coordinates.

    Attributes
    ----------
    theta : ndarray
        Learned parameters.
    divergence : float
        ``D`` in nats.
    gradient_norm : float
    hessian_eigenvalues : ndarray
        On the identifiable subspace, ascending (flat ones included).
    flat : ndarray
        Eigenvalues counted as flat (``|lambda| <= tol * max|lambda|``).
    kind : str
        ``"minimum"``, ``"saddle"`` or ``"maximum"`` (flat directions ignored).
    converged : bool
    """

    theta: np.ndarray
    divergence: float
    gradient_norm: float
    hessian_eigenvalues: np.ndarray
    kind: str
    converged: bool = True
    flat: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self, names: list[str]) -> dict:
        return {
            "theta": dict(zip(names, map(float, self.theta))),
            "divergence": float(self.divergence),
            "gradient_norm": float(self.gradient_norm),
            "hessian_eigenvalues": [float(x) for x in self.hessian_eigenvalues],
            "kind": self.kind,
            "flat_directions": int(self.flat.size),
            "converged": bool(self.converged),
        }


def classify(model: Model, theta: np.ndarray, a: float = 0.0, tol: float = KIND_TOL) -> StationaryPoint:
    """Evaluate D, gradient norm and Hessian signature at ``theta``."""
    U = model.identifiable
    H = model.hessian(theta, a)
    ev = np.sort(np.linalg.eigvalsh(U.T @ H @ U)) if U.shape[1] else np.zeros(0)
    scale = max(np.max(np.abs(ev)) if ev.size else 0.0, 1e-300)
    flat_mask = np.abs(ev) <= tol * scale
    live = ev[~flat_mask]
    if live.size == 0 or (live > 0).all():
        kind = "minimum"
    elif (live < 0).all():
        kind = "maximum"
    else:
        kind = "saddle"
    g = model.gradient(theta, a)
    return StationaryPoint(np.asarray(theta, float), model.divergence(theta, a), float(np.linalg.norm(g)),
                           ev, kind, True, ev[flat_mask])


def _reduced(model: Model, theta_start: np.ndarray, a: float):
    """D, gradient and Hessian as functions of x with theta = theta_start + E U x."""
    EU = model.eps[:, None] * model.identifiable

    def th(x):
        return theta_start + EU @ x

    return (th, lambda x: model.divergence(th(x), a), lambda x: EU.T @ model.gradient(th(x), a),
            lambda x: EU.T @ model.hessian(th(x), a) @ EU)


def _newton_polish(model: Model, th, g, h, x: np.ndarray, a: float, gtol: float,
                   maxiter: int = 20) -> np.ndarray:
    """Newton steps on the gradient until ``|grad D| <= gtol`` (accepted only while it shrinks).

    Near the minimum, D changes by less than its rounding error (``|grad|^2 / H``
    below ``1e-16 D``), so the trust-region polish stops with "bad approximation"
    at ``|grad| ~ 1e-8`` whenever D is of order one; Newton on the gradient
    does not look at D and converges quadratically from there.
    """
    gn = np.linalg.norm(model.gradient(th(x), a))
    for _ in range(maxiter):
        if gn <= gtol:
            break
        step = np.linalg.lstsq(h(x), -g(x), rcond=None)[0]
        xn = x + step
        gnn = np.linalg.norm(model.gradient(th(xn), a))
        if not np.isfinite(gnn) or gnn >= gn:
            break
        x, gn = xn, gnn
    return x


def learned_fixed_point(model: Model, theta_start: np.ndarray | None = None, a: float = 0.0,
                        gtol: float = 1e-10, flow_gtol: float = 1e-3) -> StationaryPoint:
    """The fixed point the quasi-static flow reaches from ``theta_start`` (default: the file's).

    Integrates ``dtheta/dt = -E grad D`` (stiff solver, Hessian as Jacobian)
    until ``|grad| < flow_gtol`` relative to its initial size, then polishes
    with trust-region Newton to ``|grad| < gtol``.
    """
    theta_start = model.theta0 if theta_start is None else np.asarray(theta_start, float)
    U = model.identifiable
    k = U.shape[1]
    if k == 0:
        return classify(model, theta_start, a)
    E = model.eps / model.eps.max()  # the path of the flow depends only on eps ratios
    EU = E[:, None] * U
    g0 = np.linalg.norm(model.gradient(theta_start, a))

    # the flow in x with theta = theta_start + E U x: U^T E U dx/dt = -U^T E grad D
    def rhs(t, x):
        return -np.linalg.solve(U.T @ EU, U.T @ (E * model.gradient(theta_start + EU @ x, a)))

    def jac(t, x):
        Hr = model.hessian(theta_start + EU @ x, a)
        return -np.linalg.solve(U.T @ EU, U.T @ (E[:, None] * Hr) @ EU)

    def small(t, x):
        return np.linalg.norm(model.gradient(theta_start + EU @ x, a)) - flow_gtol * max(g0, 1e-12)

    small.terminal = True
    x = np.zeros(k)
    if g0 > gtol:
        sol = solve_ivp(rhs, (0.0, 1e7), x, method="BDF", jac=jac, events=small, rtol=1e-6, atol=1e-9)
        x = sol.y[:, -1]
    theta_flow = theta_start + EU @ x
    # polish in the model's own E U coordinates (same affine leaf)
    th, f, g, h = _reduced(model, theta_flow, a)
    try:
        x = minimize(f, np.zeros(k), jac=g, hess=h, method="trust-exact",
                     options={"gtol": gtol, "maxiter": 500}).x
    except (ValueError, np.linalg.LinAlgError):
        # trust-exact's Cholesky fails (inf/NaN shift) on a near-singular indefinite Hessian, e.g.
        # next to a continuum of minima (chain A <-> B <-> X, A and B learned: D depends on
        # theta_A, theta_B only through ln(e^theta_A + e^theta_B)); Newton from the flow's point
        x = np.zeros(k)
    x = _newton_polish(model, th, g, h, x, a, gtol)
    theta = th(x)
    pt = classify(model, theta, a)
    conv = pt.gradient_norm <= max(100 * gtol, 1e-8)
    return StationaryPoint(pt.theta, pt.divergence, pt.gradient_norm, pt.hessian_eigenvalues, pt.kind, conv,
                           pt.flat)


def stationary_points(model: Model, starts: int = 10, seed: int = 0, spread: float = 3.0,
                      a: float = 0.0) -> list[StationaryPoint]:
    """The learned fixed point first, then every distinct stationary point found.

    From ``starts`` random points on the initial leaf (``theta0 + E U x``,
    ``x ~ N(0, spread^2)``) it runs both a minimisation (finds minima) and a
    Newton root search on the gradient (finds saddles too); points are kept
    when the gradient vanishes and merged when closer than 1e-5.
    """
    first = learned_fixed_point(model, a=a)
    found = [first]
    rng = np.random.default_rng(seed)
    th, f, g, h = _reduced(model, model.theta0, a)
    k = model.identifiable.shape[1]
    scale = spread / model.eps.max()
    for _ in range(starts):
        x0 = rng.normal(0.0, scale, k)
        cands = []
        try:
            cands.append(minimize(f, x0, jac=g, hess=h, method="trust-exact",
                                  options={"gtol": 1e-10, "maxiter": 500}).x)
        except (ValueError, np.linalg.LinAlgError):  # near-singular Hessian (see learned_fixed_point)
            pass
        try:
            cands.append(root(g, x0, jac=h, method="hybr", options={"xtol": 1e-12}).x)
        except (ValueError, np.linalg.LinAlgError):
            pass
        for x in cands:
            theta = th(x)
            if not np.all(np.isfinite(theta)):
                continue
            pt = classify(model, theta, a)
            if pt.gradient_norm > 1e-7:
                continue
            if any(np.linalg.norm(pt.theta - q.theta) < 1e-5 * (1 + np.linalg.norm(q.theta)) for q in found):
                continue
            found.append(pt)
    return found


def quasi_static_rates(model: Model, theta: np.ndarray, a: float = 0.0) -> np.ndarray:
    """Eigenvalues of ``E H`` on the identifiable subspace, ascending (docs/theory.md §3)."""
    H = model.hessian(theta, a)
    Ue = identifiable_basis(model.neutral, len(model.learned), model.eps)
    s = np.sqrt(model.eps)
    M = Ue.T @ (s[:, None] * H * s[None, :]) @ Ue
    return np.sort(np.linalg.eigvalsh(M))


def quasi_static_trajectory(model: Model, t_end: float, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate the quasi-static flow ``dtheta/dt = -E grad D`` from the file's energies.

    Returns
    -------
    t : ndarray (n,)
    theta : ndarray (n, k)
        Learned parameters.
    D : ndarray (n,)
        ``D(Q || P_theta(t))`` in nats.
    """
    E = model.eps

    def rhs(t, th):
        return -E * model.gradient(th)

    def jac(t, th):
        return -E[:, None] * model.hessian(th)

    t = np.linspace(0.0, t_end, n)
    sol = solve_ivp(rhs, (0.0, t_end), model.theta0, method="BDF", jac=jac, t_eval=t, rtol=1e-7, atol=1e-10)
    theta = sol.y.T
    return sol.t, theta, np.array([model.divergence(th) for th in theta])
