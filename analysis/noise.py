"""Linear noise approximation of the finite-ensemble learning loop (docs/theory.md §6).

The loop state ``x = (p_f, p_c, theta)`` of :class:`~crnfb.feedback.ensembles.LearningNetwork`
is, for ``M_f`` free and ``M_c`` clamped copies and parameter counts in
volume ``Omega``, a density-dependent jump process whose deterministic limit
is the loop ODE. Around the loop's fixed point its fluctuations obey the
Ornstein-Uhlenbeck equation ``d dx = J dx dt + B dW`` with ``J`` the loop
Jacobian (:func:`crnfb.analysis.linearise.linearise`) and the diffusion matrix
``B B^T = sum over channels (rate x jump jump^T)`` (docs/stochastic.md):

- free copy jump ``s -> s'`` (edge ``e``): rate ``M_f k_e p_f(s)``, jump
  ``(e_s' - e_s)/M_f``: ``(1/M_f) sum_e flux_e (e_s'-e_s)(e_s'-e_s)^T``;
- clamped hidden-only jumps: the same with ``M_c``;
- resets: a copy in ``c`` goes to ``c'`` at rate ``gamma r(c')``:
  ``(gamma/M_c) (diag(p_c) + diag(r) - p_c r^T - r p_c^T)``;
- learning: ``L_i`` is produced at rate ``eps_i Omega lambda_i m_c,i`` and
  degraded at rate ``eps_i Omega lambda_i m_f,i``, each event changing
  ``lambda_i`` by ``1/Omega``; so ``lambda_i`` diffuses with
  ``eps_i lambda_i (m_c,i + m_f,i)/Omega`` and, by Ito's formula for
  ``theta_i = ln lambda_i``, ``theta_i`` with
  ``eps_i (m_c,i + m_f,i) / (Omega lambda_i)`` (the Ito drift
  ``-diffusion/2`` is O(1/Omega) and shifts the mean, not the LNA
  covariance).

Every jump conserves each ensemble's probability, so the copy noise lies in
the invariant subspace of :class:`~crnfb.analysis.linearise.LinearLoop`. The
learning noise does not: a neutral direction ``n`` (``theta -> theta + n c``
changes no law) has zero drift, so its component is a random walk with no
stationary variance. It is split off along ``n`` (the projection
``P = I - N (W N)^{-1} W`` with ``W = (E^{-1} N)^T`` the loop's conserved
combinations) and its growth rate reported; the reduced covariance solves
``Jr S + S Jr^T + Dr = 0`` with ``Dr = (P D P^T)[rest, rest]`` (``J V = V Jr``)
and maps back as ``V S V^T``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, stats

from crnfb.analysis.linearise import LinearLoop, linearise, model_and_loop
from crnfb.analysis.noise_spectral import SparseDiffusion, spectral_covariance
from crnfb.analysis.stability import loop_modes
from crnfb.feedback.ensembles import EdgeList
from crnfb.feedback.model import Model

class NoStationaryCovariance(ValueError):
    """The linearised loop has no stationary covariance (unstable, an unexplained zero mode, or flat
    modes on the frequency-integral path): a reason for ``passed: null``, not a failure."""


MIN_SPAN = 20.0     # correlation times a noise check needs at least (after burn-in)
#: Reduced states up to which the covariance comes from dense Lyapunov solves (above: the
#: frequency integral of :mod:`crnfb.analysis.noise_spectral`, sparse solves only).
DENSE_LYAPUNOV_LIMIT = 400


def _edge_diffusion(edges: EdgeList, rates: np.ndarray, p: np.ndarray, offset: int, N: int,
                    size: float) -> sparse.coo_matrix:
    """``(1/size) sum_e flux_e (e_dst - e_src)(e_dst - e_src)^T`` placed at ``offset`` in an N x N matrix."""
    f = rates * p[edges.src] / size
    s = edges.src + offset
    d = edges.dst + offset
    rows = np.concatenate([s, d, s, d])
    cols = np.concatenate([s, d, d, s])
    vals = np.concatenate([f, f, -f, -f])
    return sparse.coo_matrix((vals, (rows, cols)), shape=(N, N))


def sparse_diffusion(loop: LinearLoop) -> dict[str, SparseDiffusion]:
    """The diffusion matrix's parts ``free``, ``clamped``, ``learning`` at the loop's fixed point,
    sparse (plus the resets' rank-two term): O(edges) memory at any size."""
    net = loop.net
    model = net.model
    ens = model.ensembles
    Mf, Mc, omega = float(ens.free), float(ens.clamped), float(ens.omega)
    fp = loop.fixed_point
    p_f, p_c, theta = net.split(fp.x)
    th = net.theta_full(theta)
    n = net.n_states
    free = SparseDiffusion(_edge_diffusion(net.edges, net.edges.rates(th), p_f, 0, n, Mf).tocsr())
    clamped = SparseDiffusion(sparse.csr_matrix((n, n)))
    if net.dynamic and net.n_c:
        he = net.hidden_edges
        r = net.reset_target(fp.a)
        sl = np.arange(net.n_f, net.n_f + net.n_c)
        c = net.gamma / Mc
        diag = sparse.coo_matrix((c * (p_c + r), (sl, sl)), shape=(n, n))
        u, v = np.zeros(n), np.zeros(n)
        u[sl], v[sl] = p_c, r
        clamped = SparseDiffusion((_edge_diffusion(he, he.rates(th), p_c, net.n_f, n, Mc) + diag).tocsr(),
                                  ((-c, u, v),))
    m_f, m_c = net.means(fp.x, fp.a)
    idx = np.arange(net.n_f + net.n_c, n)
    dl = model.eps * (m_c + m_f) / (omega * np.exp(theta))
    learning = SparseDiffusion(sparse.csr_matrix((dl, (idx, idx)), shape=(n, n)))
    return {"free": free, "clamped": clamped, "learning": learning}


def diffusion_matrix(loop: LinearLoop) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Full diffusion matrix ``B B^T`` at the loop's fixed point, and its parts.

    Returns ``(D, parts)`` with ``parts`` = ``{"free", "clamped", "learning"}``
    (dense, n x n; ``D`` is their sum; ``clamped`` is zero under equilibrium
    clamping, where the clamped ensemble is idealised as noise-free). Dense:
    for small loops; :func:`sparse_diffusion` gives the same parts sparse.
    """
    parts = {k: d.dense() for k, d in sparse_diffusion(loop).items()}
    return sum(parts.values()), parts


def lyapunov(A: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Solve ``A X + X A^T + Q = 0`` (python-control / slycot; SciPy as fallback); symmetrised."""
    try:
        import control
        X = np.asarray(control.lyap(A, Q))
    except Exception:  # slycot missing or a solver failure: Bartels-Stewart in SciPy
        from scipy.linalg import solve_continuous_lyapunov
        X = solve_continuous_lyapunov(A, -Q)
    return 0.5 * (X + X.T)


@dataclass(frozen=True, eq=False)
class NoisePrediction:
    """LNA of the learned parameters at the loop's fixed point.

    Attributes
    ----------
    theta : ndarray (k,)                  fixed point ``theta*``
    covariance : ndarray (k, k)           stationary covariance of theta, neutral random
                                          walk split off (the full covariance when there
                                          are no neutral directions)
    identifiable_basis : ndarray (k, d)   ``U`` (orthonormal, model.identifiable)
    identifiable_covariance : ndarray     ``U^T covariance U`` (d, d)
    parts : dict                          covariance from each noise source alone
                                          (``free``, ``clamped``, ``learning``; they sum to ``covariance``)
    neutral_directions : ndarray (k, m)   ``N``
    neutral_diffusion : ndarray (m, m)    d/dt Cov of the neutral coordinates ``c`` in
                                          ``theta = tangent + N c`` (random walk)
    neutral_drift : ndarray (m,)          d/dt E[c] from Ito's formula (``-G diag(D_theta)/2``):
                                          the neutral coordinates drift towards small
                                          ``lambda`` (``prod lambda^(n/eps)`` is a positive
                                          martingale), so parameter species go extinct
                                          on times ~ ``1/|drift|``
    slowest_rate : float                  ``-max Re eig(Jr)`` (correlation time ``1/rate``)
    sizes : tuple                         ``(M_f, M_c, Omega)``
    clamping : str
    method : str                          ``"dense Lyapunov"`` (up to :data:`DENSE_LYAPUNOV_LIMIT`
                                          reduced states) or ``"frequency integral"``
    quadrature_error : float or None      the frequency integral's error estimate (relative to
                                          ``sqrt(Sigma_ii Sigma_jj)``); None for the dense path
    """

    theta: np.ndarray
    covariance: np.ndarray
    identifiable_basis: np.ndarray
    identifiable_covariance: np.ndarray
    parts: dict
    neutral_directions: np.ndarray
    neutral_diffusion: np.ndarray
    neutral_drift: np.ndarray
    slowest_rate: float
    sizes: tuple
    clamping: str
    loop: LinearLoop | None = field(default=None, repr=False)
    method: str = "dense Lyapunov"
    quadrature_error: float | None = None

    @property
    def std(self) -> np.ndarray:
        """Standard deviations of the learned theta (diagonal of :attr:`covariance`)."""
        return np.sqrt(np.diag(self.covariance))

    def to_dict(self, names: list[str]) -> dict:
        return {
            "theta": dict(zip(names, map(float, self.theta))),
            "covariance": self.covariance.tolist(),
            "std": dict(zip(names, map(float, self.std))),
            "identifiable_covariance": self.identifiable_covariance.tolist(),
            "parts": {k: v.tolist() for k, v in self.parts.items()},
            "neutral_diffusion": self.neutral_diffusion.tolist(),
            "neutral_drift": self.neutral_drift.tolist(),
            "slowest_rate": float(self.slowest_rate),
            "sizes": {"free": self.sizes[0], "clamped": self.sizes[1], "omega": self.sizes[2]},
            "clamping": self.clamping,
            "method": self.method,
            "quadrature_error": None if self.quadrature_error is None else float(self.quadrature_error),
        }


def parameter_noise(model: Model | LinearLoop, clamping: str | None = None,
                    loop: LinearLoop | None = None) -> NoisePrediction:
    """Stationary LNA covariance of the learned theta for the model's ensemble sizes.

    Parameters
    ----------
    model : Model or LinearLoop
        ``model.ensembles`` gives ``M_f, M_c, Omega``; a linearised loop may stand in for it.
    clamping : str or None
        Override the model's clamping.
    loop : LinearLoop or None
        A linearisation to reuse (must match ``clamping``).
    """
    model, loop = model_and_loop(model, loop)
    loop = loop or linearise(model, clamping)
    net = loop.net
    k = net.k
    base = net.n_f + net.n_c
    N = model.neutral
    G = np.zeros((0, k))
    if N.shape[1]:
        W = (N / model.eps[:, None]).T
        G = np.linalg.solve(W @ N, W)             # c = G theta (neutral coordinates)
    rate = _slowest_rate(loop)
    diffusion = sparse_diffusion(loop)
    Dth = diffusion["learning"].S.diagonal()[base:]
    n_flat = int(loop_modes(loop).flat.size)
    if n_flat and loop.n_reduced > DENSE_LYAPUNOV_LIMIT:
        raise NoStationaryCovariance(
            f"the loop has {n_flat} flat mode(s) (lines of fixed points) and {loop.n_reduced} reduced states: the "
            f"frequency-integral covariance (above {DENSE_LYAPUNOV_LIMIT}) does not project them out")
    if loop.n_reduced <= DENSE_LYAPUNOV_LIMIT:
        cov_parts, method, err = _dense_parts(loop, {n: d.dense() for n, d in diffusion.items()}, G), \
            "dense Lyapunov", None
    else:
        spec = spectral_covariance(loop, diffusion, Dth, rate)
        cov_parts, method, err = spec.parts, "frequency integral", spec.error
    cov = sum(cov_parts.values())
    U = model.identifiable
    ens = model.ensembles
    sizes = (int(ens.free), int(ens.clamped), float(ens.omega))
    return NoisePrediction(loop.fixed_point.theta.copy(), cov, U, U.T @ cov @ U, cov_parts, N, G @ np.diag(Dth) @ G.T,
                           -0.5 * G @ Dth, rate, sizes, net.clamping, loop, method, err)


def _slowest_rate(loop: LinearLoop) -> float:
    """``-max Re eig(Jr)`` without the flat modes (:func:`~crnfb.analysis.stability.loop_modes`,
    the one zero tolerance); ValueError if the rest is not stable."""
    split = loop_modes(loop)
    if not split.stable:
        kind = "has an unexplained zero mode" if split.marginal else "is not stable"
        raise NoStationaryCovariance(f"the linearised loop {kind} (max Re eig = {split.abscissa:.3g}, zero tolerance "
                         f"{split.tolerance:.2g}): no stationary covariance")
    return -split.abscissa


def _flat_complement(Jr: np.ndarray, n_flat: int) -> tuple[np.ndarray, np.ndarray]:
    """``(B, P)`` for a reduced Jacobian with ``n_flat`` zero modes (lines of fixed points).

    ``R`` and ``Y`` span the right and left null spaces of ``Jr`` (the last
    singular vectors); ``P = I - R (Y^T R)^{-1} Y^T`` projects along the flat
    directions onto the invariant complement ``ker Y^T``, spanned by the
    orthonormal ``B``. On it ``B^T Jr B`` is stable and the Lyapunov equation
    has a unique solution (docs/theory.md §6).
    """
    from scipy.linalg import null_space

    u, _, vt = np.linalg.svd(Jr)
    R, Y = vt[-n_flat:].T, u[:, -n_flat:]
    P = np.eye(Jr.shape[0]) - R @ np.linalg.solve(Y.T @ R, Y.T)
    return null_space(Y.T), P


def _dense_parts(loop: LinearLoop, parts: dict[str, np.ndarray], G: np.ndarray) -> dict[str, np.ndarray]:
    """Each source's covariance of theta by a dense Lyapunov solve on the reduced loop
    (its neutral component projected off: ``P = I - N G``; its flat modes, if any, by
    :func:`_flat_complement`)."""
    net = loop.net
    n, base = net.n_states, net.n_f + net.n_c
    P = np.eye(n)
    if G.size:
        P[base:, base:] = np.eye(net.k) - loop.net.model.neutral @ G
    rest = loop.rest
    Jr = loop.Jr.toarray()
    Vt = loop.V.toarray()[base:]
    n_flat = int(loop_modes(loop).flat.size)
    B, Pf = _flat_complement(Jr, n_flat) if n_flat else (np.eye(Jr.shape[0]), np.eye(Jr.shape[0]))
    Jc = B.T @ Jr @ B

    def solve(Dfull):
        Dr = Pf @ (P @ Dfull @ P.T)[np.ix_(rest, rest)] @ Pf.T
        return Vt @ B @ lyapunov(Jc, B.T @ Dr @ B) @ B.T @ Vt.T

    return {name: solve(Dp) for name, Dp in parts.items()}


# -- validation against the SSA ------------------------------------------------------------------
def event_rate(prediction: NoisePrediction | LinearLoop) -> float:
    """Expected SSA events per unit time at the fixed point (all channels), from a prediction or its loop."""
    loop = prediction.loop if isinstance(prediction, NoisePrediction) else prediction
    net = loop.net
    model = net.model
    ens = model.ensembles
    p_f, p_c, theta = net.split(loop.fixed_point.x)
    th = net.theta_full(theta)
    rate = ens.free * float(np.sum(net.edges.rates(th) * p_f[net.edges.src]))
    if net.dynamic:
        he = net.hidden_edges
        rate += ens.clamped * (float(np.sum(he.rates(th) * p_c[he.src])) + net.gamma)
    m_f, m_c = net.means(loop.fixed_point.x, loop.fixed_point.a)
    rate += float(np.sum(model.eps * ens.omega * np.exp(theta) * (m_c + m_f)))
    return rate


def _checked_coordinates(pred: NoisePrediction, th: np.ndarray,
                         names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Sampled coordinates, their predicted variances and labels: the identifiable ``U^T theta``
    when neutral directions exist (no stationary variance along them), else each ``theta_i``."""
    if pred.neutral_directions.shape[1]:
        U = pred.identifiable_basis
        labels = [" + ".join(f"{c:.3g}*theta_{n}" for c, n in zip(U[:, j], names) if abs(c) > 1e-12)
                  for j in range(U.shape[1])]
        return th @ U, np.diag(pred.identifiable_covariance), labels
    return th, np.diag(pred.covariance), [f"theta_{n}" for n in names]


def _burn_in(loop: LinearLoop, burn_in: float | None) -> tuple[float, float]:
    """Correlation time ``1/slowest rate`` and the burn-in (default five of them)."""
    tau = 1.0 / _slowest_rate(loop)
    return tau, 5.0 * tau if burn_in is None else float(burn_in)


def _stationary_in_theta(loop: LinearLoop) -> bool:
    """False (and a RuntimeWarning why) when flat modes make theta random-walk: no variance to sample."""
    n_flat = int(loop_modes(loop).flat.size)
    if n_flat:
        warnings.warn(f"parameter noise not checked against the SSA: the loop has {n_flat} flat mode(s) (lines of "
                      "fixed points): theta random-walks along them, so the sampled variance has no stationary "
                      "value (the prediction is the covariance transverse to them)", RuntimeWarning)
    return not n_flat


def _affordable(loop: LinearLoop, tau: float, burn: float, max_events: float) -> bool:
    """Whether burn-in plus ``MIN_SPAN`` correlation times fit in ``max_events`` (else a RuntimeWarning why not)."""
    need = (burn + MIN_SPAN * tau) * event_rate(loop)
    if need > max_events:
        warnings.warn(f"parameter noise not checked against the SSA: the loop's slowest mode has correlation "
                      f"time {tau:.3g}, so a meaningful run (burn-in + {MIN_SPAN:g} correlation times) needs "
                      f"about {need:.2g} events per replicate > max_events = {max_events:.2g}", RuntimeWarning)
    return need <= max_events


def validate_noise(model: Model | LinearLoop, replicates: int = 8, seed: int = 0, *, loop: LinearLoop | None = None,
                   clamping: str | None = None, t_end: float | None = None, burn_in: float | None = None,
                   tolerance: float = 0.05, max_events: float = 5e6, progress: bool = False,
                   prediction: NoisePrediction | None = None) -> list[dict]:
    """Compare the LNA parameter noise with the SSA's stationary variance of theta.

    The SSA starts at the loop's fixed point (copies at their stationary
    laws there); after ``burn_in`` (default 5 correlation times
    ``1/slowest_rate``) it records theta every 1/5 correlation time until
    ``t_end`` (default: 300 correlation times, shortened so a replicate
    takes at most ``max_events`` expected events and, with neutral
    directions, so their random walk spreads by at most 0.05 in variance:
    the loop's rates, hence its noise, change along them). Per replicate the
    time-averaged squared deviation from the pooled mean estimates the
    variance; the 95 % confidence interval comes from the replicate-to-
    replicate spread (Student t). One check per learned species, or per
    identifiable coordinate ``U^T theta`` when neutral directions exist
    (their component is a random walk without a stationary variance).

    ``passed`` when ``|simulated - predicted| <= (ci half-width) + tolerance * predicted``:
    the replicates' 95 % confidence interval widened by the LNA's own
    relative error allowance (its O(1/M, 1/Omega) corrections).

    When even a minimal run (burn-in plus ``MIN_SPAN`` correlation times)
    would exceed ``max_events`` per replicate, no check is made: an empty
    list and a ``RuntimeWarning`` saying why (E3's slowest learning mode has
    a correlation time of ~1.4e5).

    Returns
    -------
    list of dict
        One ``validation`` entry of report.json per checked coordinate:
        ``quantity, predicted, simulated, rel_error, tolerance, passed, ci``
        (95 % interval of the simulated value), ``replicates`` (used: those
        where no parameter species went extinct), ``t_end, burn_in, events, seed``.
    """
    from crnfb.feedback.ssa import simulate_ssa

    if replicates < 2:
        raise ValueError("validate_noise needs at least 2 replicates for a confidence interval")
    model, loop = model_and_loop(model, loop)
    # whether the SSA can sample the slowest mode is decided before the covariance is computed
    loop = prediction.loop if prediction is not None else (loop or linearise(model, clamping))
    tau, burn = _burn_in(loop, burn_in)
    if not _stationary_in_theta(loop):
        return []
    if t_end is None and not _affordable(loop, tau, burn, max_events):
        return []
    pred = prediction or parameter_noise(model, clamping, loop)
    if t_end is None:
        span = min(300.0 * tau, max_events / event_rate(pred))
        if pred.neutral_diffusion.size:
            span = min(span, 0.05 / float(np.max(np.diag(pred.neutral_diffusion))))
        t_end = burn + span
    dt = tau / 5.0
    n_points = int(np.ceil(t_end / dt)) + 1
    traj = simulate_ssa(model, t_end, n_points, seed, replicates, progress=progress, clamping=pred.clamping,
                        theta_start=pred.theta)
    keep = traj.t >= burn
    th = traj.theta[:, keep, :]
    alive = np.all(np.isfinite(th), axis=(1, 2))     # a parameter species may go extinct (L = 0)
    if alive.sum() < 2:
        raise RuntimeError(f"{int((~alive).sum())} of {replicates} replicates lost a parameter species "
                           "(L_i = 0); raise [ensembles] omega or shorten t_end")
    th = th[alive]
    replicates_used = int(alive.sum())
    y, predicted, labels = _checked_coordinates(pred, th, model.learned_names)
    dev = y - y.reshape(-1, y.shape[2]).mean(axis=0)
    v = np.mean(dev ** 2, axis=1)                        # (R, d)
    sim = v.mean(axis=0)
    half = stats.t.ppf(0.975, replicates_used - 1) * v.std(axis=0, ddof=1) / np.sqrt(replicates_used)
    out = []
    for j, lab in enumerate(labels):
        p, s, h = float(predicted[j]), float(sim[j]), float(half[j])
        out.append({"quantity": f"parameter noise var({lab})", "predicted": p, "simulated": s,
                    "rel_error": abs(s - p) / abs(p), "tolerance": float(tolerance),
                    "passed": bool(abs(s - p) <= h + tolerance * abs(p)), "ci": [s - h, s + h],
                    "replicates": replicates_used, "t_end": float(t_end), "burn_in": float(burn),
                    "events": int(traj.events.sum()), "seed": int(seed)})
    return out


__all__ = ["DENSE_LYAPUNOV_LIMIT", "diffusion_matrix", "event_rate", "lyapunov", "NoisePrediction",
           "NoStationaryCovariance",
           "parameter_noise", "sparse_diffusion", "validate_noise"]
