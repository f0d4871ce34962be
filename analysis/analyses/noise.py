"""Linear noise approximation of the finite-ensemble learning loop (docs/theory.md §6).

The loop state ``x = (p_f, p_c, theta)`` of :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork`
is, for ``M_f`` free and ``M_c`` clamped copies and parameter counts in
volume ``Omega``, a density-dependent jump process whose deterministic limit
is the loop ODE. Around the loop's fixed point its fluctuations obey the
Ornstein-Uhlenbeck equation ``d dx = J dx dt + B dW`` with ``J`` the loop
Jacobian (:func:`crnfb.analysis.linear.linearise.linearise`) and the diffusion matrix
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
the invariant subspace of :class:`~crnfb.analysis.linear.linearise.LinearLoop`. The
learning noise does not: a neutral direction ``n`` (``theta -> theta + n c``
changes no law) has zero drift, so its component is a random walk with no
stationary variance. It is split off along ``n`` (the projection
``P = I - N (W N)^{-1} W`` with ``W = (E^{-1} N)^T`` the loop's conserved
combinations) and its growth rate reported; the reduced covariance solves
``Jr S + S Jr^T + Dr = 0`` with ``Dr = (P D P^T)[rest, rest]`` (``J V = V Jr``)
and maps back as ``V S V^T``.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass, field, replace
from functools import partial, reduce
from typing import Iterable

import numpy as np
import scipy.linalg
from scipy import sparse, stats

from crnfb.analysis.analyses.context import Analysis, model_and_loop
from crnfb.analysis.linear.linearise import LinearLoop, linearise
from crnfb.analysis.analyses.noise_spectral import SparseDiffusion, spectral_covariance
from crnfb.analysis.linear.stability import loop_modes
from crnfb.feedback.dynamics.ensembles import EdgeList
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics import sizes as switches


class NoStationaryCovariance(ValueError):
    """The linearised loop has no stationary covariance (unstable, an unexplained zero mode, or flat
    modes on the frequency-integral path): a reason for ``passed: null``, not a failure."""


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
    return _total(parts.values()), parts


def _total(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """The sum of the arrays (``sum`` would start from the number 0)."""
    return reduce(operator.add, arrays)


def lyapunov(A: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Solve ``A X + X A^T + Q = 0`` (python-control / slycot; SciPy as fallback); symmetrised."""
    try:
        import control
        X = np.asarray(control.lyap(A, Q))
    except Exception:  # slycot missing or a solver failure: Bartels-Stewart in SciPy
        from scipy.linalg import solve_continuous_lyapunov
        X = solve_continuous_lyapunov(A, -Q)
    return 0.5 * (X + X.T)


@dataclass(frozen=True, eq=False, kw_only=True)
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
    method : str                          ``"dense Lyapunov"`` (up to :data:`crnfb.feedback.numerics.sizes.DENSE_LYAPUNOV_LIMIT`
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
    def linear_loop(self) -> LinearLoop:
        """:attr:`loop`, which the SSA check needs (ValueError for a prediction made without one)."""
        if self.loop is None:
            raise ValueError("this noise prediction carries no linearised loop (loop=None)")
        return self.loop

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


def parameter_noise(model: Model | LinearLoop | Analysis, clamping: str | None = None,
                    loop: LinearLoop | None = None) -> NoisePrediction:
    """Stationary LNA covariance of the learned theta for the model's ensemble sizes.

    Parameters
    ----------
    model : Model, LinearLoop or Analysis
        ``model.ensembles`` gives ``M_f, M_c, Omega``; a linearised loop, or the model's
        :class:`~crnfb.analysis.analyses.context.Analysis` (its loop), may stand in for it.
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
    if n_flat and loop.n_reduced > switches.DENSE_LYAPUNOV_LIMIT:
        raise NoStationaryCovariance(
            f"the loop has {n_flat} flat mode(s) (lines of fixed points) and {loop.n_reduced} reduced states: the "
            f"frequency-integral covariance (above {switches.DENSE_LYAPUNOV_LIMIT}) does not project them out")
    if loop.n_reduced <= switches.DENSE_LYAPUNOV_LIMIT:
        cov_parts, method, err = _dense_parts(loop, {n: d.dense() for n, d in diffusion.items()}, G), \
            "dense Lyapunov", None
    else:
        spec = spectral_covariance(loop, diffusion, Dth, rate)
        cov_parts, method, err = spec.parts, "frequency integral", spec.error
    cov = _total(cov_parts.values())
    U = model.identifiable
    ens = model.ensembles
    sizes = (int(ens.free), int(ens.clamped), float(ens.omega))
    return NoisePrediction(theta=loop.fixed_point.theta.copy(), covariance=cov, identifiable_basis=U,
                           identifiable_covariance=U.T @ cov @ U, parts=cov_parts, neutral_directions=N,
                           neutral_diffusion=G @ np.diag(Dth) @ G.T, neutral_drift=-0.5 * G @ Dth, slowest_rate=rate,
                           sizes=sizes, clamping=net.clamping, loop=loop, method=method, quadrature_error=err)


def _slowest_rate(loop: LinearLoop) -> float:
    """``-max Re eig(Jr)`` without the flat modes (:func:`~crnfb.analysis.linear.stability.loop_modes`,
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
def event_rate(prediction: NoisePrediction | _RatesOnly | LinearLoop) -> float:
    """Expected SSA events per unit time at the fixed point (all channels), from a prediction or its loop."""
    loop = prediction if isinstance(prediction, LinearLoop) else prediction.linear_loop
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


# -- the run plan: a CPU-time budget, batch means (docs/validation.md, "Parameter noise") -----------
#: CPU seconds the SSA runs of one noise check may take (``crnfb report --noise-budget``).
NOISE_BUDGET = 60.0
#: Confidence of the interval of each compared variance (Student t over the batch means).
CONFIDENCE = 0.99
#: Independent replicates (run in parallel); each gives :data:`BATCHES` batches.
REPLICATES = 8
BATCHES = 4
#: Length of one batch and of the burn-in, in correlation times ``1/slowest rate``.
BATCH_SPAN = 5.0
BURN_IN = 3.0
#: Samples of theta per correlation time.
SAMPLES_PER_TAU = 10
#: Expected events of the pilot run that measures this network's events per CPU second.
PILOT_EVENTS = 3e5
#: Largest variance the neutral random walk may add over one replicate (the loop's rates move along it).
NEUTRAL_SPREAD = 0.05


def _stationary_in_theta(loop: LinearLoop) -> bool:
    """False (and a RuntimeWarning why) when flat modes make theta random-walk: no variance to sample."""
    n_flat = int(loop_modes(loop).flat.size)
    if n_flat:
        warnings.warn(f"parameter noise not checked against the SSA: the loop has {n_flat} flat mode(s) (lines of "
                      "fixed points): theta random-walks along them, so the sampled variance has no stationary "
                      "value (the prediction is the covariance transverse to them)", RuntimeWarning)
    return not n_flat


@dataclass(frozen=True)
class NoisePlan:
    """How long the SSA runs of a noise check are, and what they cost.

    Attributes
    ----------
    tau : float                 correlation time of the squared compared coordinates (batch length unit)
    burn_in, t_end : float      per replicate (burn-in ``BURN_IN tau``, then ``batches`` batches of
                                ``BATCH_SPAN tau``)
    n_points : int              theta samples per replicate (``SAMPLES_PER_TAU`` per ``tau``)
    replicates, batches : int   replicates and batches per replicate
    event_rate : float          expected events per unit time at the fixed point
    events_per_cpu_second : float   measured on this network (pilot run)
    cpu_estimate, budget : float    CPU seconds of the whole plan, and the budget
    reason : str                why the check is not made ("" when it fits)
    tau_mean : float            largest integrated autocorrelation time of the coordinates themselves
    reason_full : str           for a check restricted to the faster modes: why the full one was not made
    """

    tau: float
    burn_in: float
    t_end: float
    n_points: int
    replicates: int
    batches: int
    event_rate: float
    events_per_cpu_second: float
    cpu_estimate: float
    budget: float
    reason: str = ""
    tau_mean: float = float("nan")
    reason_full: str = ""

    @property
    def fits(self) -> bool:
        return not self.reason


class _RatesOnly:
    """What :func:`plan_noise_check` reads of a prediction for a loop above
    :data:`crnfb.feedback.numerics.sizes.CORRELATION_DENSE_LIMIT` (slowest rate, event rate), without the covariance."""

    def __init__(self, loop: LinearLoop):
        self.linear_loop = loop
        self.slowest_rate = _slowest_rate(loop)
        self.neutral_diffusion = np.zeros((0, 0))


def events_per_cpu_second(model: Model, prediction: NoisePrediction | LinearLoop, seed: int = 0) -> float:
    """SSA events per CPU second on this network at its fixed point, from a pilot run of about
    :data:`PILOT_EVENTS` events (after a first tiny run that loads or compiles the event loop)."""
    from crnfb.feedback.dynamics.ssa import simulate_ssa

    loop = prediction.linear_loop if isinstance(prediction, NoisePrediction) else prediction
    rate = event_rate(loop)
    pilot = partial(simulate_ssa, model, seed=seed, replicates=1, progress=False, clamping=loop.net.clamping,
                    theta_start=loop.fixed_point.theta, threads=1)
    pilot(100.0 / rate, 2)
    tr = pilot(PILOT_EVENTS / rate, 2)
    return float(tr.events.sum()) / max(float(tr.cpu_seconds), 1e-3)


def _reduced_covariance(pred: NoisePrediction) -> np.ndarray:
    """The stationary covariance ``S`` of the reduced loop state (dense Lyapunov solve)."""
    loop = pred.linear_loop
    net = loop.net
    n, base = net.n_states, net.n_f + net.n_c
    D = _total(d.dense() for d in sparse_diffusion(loop).values())
    P = np.eye(n)
    if pred.neutral_directions.shape[1]:
        W = (pred.neutral_directions / net.model.eps[:, None]).T
        P[base:, base:] -= pred.neutral_directions @ np.linalg.solve(W @ pred.neutral_directions, W)
    Dr = (P @ D @ P.T)[np.ix_(loop.rest, loop.rest)]
    return lyapunov(loop.Jr.toarray(), Dr)


def _coordinate_matrix(pred: NoisePrediction) -> np.ndarray:
    """``(k, d)``: the compared coordinates ``c = L^T theta`` (identifiable basis with neutral directions)."""
    return pred.identifiable_basis if pred.neutral_directions.shape[1] else np.eye(pred.theta.size)


#: Condition number of the eigenvector matrix up to which the correlation integrals are summed over
#: modes (above it, e.g. a defective pair: one Lyapunov solve per coordinate).
MODAL_COND_LIMIT = 1e8


def _times(Jr: np.ndarray, S: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Variance, ``tau_c`` and ``tau_2`` of ``a_j^T z`` for a stationary OU ``z`` (drift ``Jr``, covariance ``S``).

    ``C(t) = a^T exp(Jr t) b`` (``b = S a``) is ``sum_k alpha_k exp(lam_k t)`` on the modes, so
    ``int C = sum alpha_k / (-lam_k)`` and ``int C^2 = sum_kl alpha_k alpha_l / (-(lam_k + lam_l))``;
    with an ill-conditioned eigenbasis the same integrals come from ``Jr^{-1}`` and a Lyapunov solve."""
    d = A.shape[1]
    B = S @ A
    var = np.einsum("ij,ij->j", A, B)
    lam, Vr = np.linalg.eig(Jr)
    if np.linalg.cond(Vr) < MODAL_COND_LIMIT:
        alpha = (A.T @ Vr) * np.linalg.solve(Vr, B).T            # (d, modes)
        tau_c = np.real(alpha @ (-1.0 / lam)) / var
        M = -1.0 / (lam[:, None] + lam[None, :])
        tau_2 = 2.0 * np.real(np.einsum("jk,kl,jl->j", alpha, M, alpha)) / var ** 2
        return var, tau_c, tau_2
    tau_c, tau_2 = np.empty(d), np.empty(d)
    for j in range(d):
        a, b = A[:, j], B[:, j]
        tau_c[j] = -float(a @ np.linalg.solve(Jr, b)) / var[j]
        tau_2[j] = 2.0 * float(a @ lyapunov(Jr, np.outer(b, b)) @ a) / var[j] ** 2
    return var, tau_c, tau_2


def correlation_times(pred: NoisePrediction, S: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per compared coordinate ``c = l . theta`` (:func:`_checked_coordinates`): the integrated
    autocorrelation time of ``c``, ``tau_c = int_0^inf C(t) dt / C(0)``, and that of ``c^2``,
    ``tau_2 = 2 int_0^inf C(t)^2 dt / C(0)^2`` (``1/k`` both for an OU process of rate ``k``).

    With ``C(t) = a^T exp(Jr t) S a`` (``a`` = ``l`` on the reduced coordinates, ``S`` the
    reduced covariance) these are ``-a^T Jr^{-1} S a / a^T S a`` and ``2 a^T X a / (a^T S a)^2``
    with ``Jr X + X Jr^T + (S a)(S a)^T = 0``. Above :data:`crnfb.feedback.numerics.sizes.CORRELATION_DENSE_LIMIT` reduced
    states: ``1/slowest rate`` for both. ``S`` (:func:`_reduced_covariance`) may be given.
    """
    loop = pred.linear_loop
    d = _coordinate_matrix(pred).shape[1]
    if loop is None or loop.n_reduced > switches.CORRELATION_DENSE_LIMIT:
        return np.full(d, 1.0 / pred.slowest_rate), np.full(d, 1.0 / pred.slowest_rate)
    Vt = loop.V.toarray()[loop.net.n_f + loop.net.n_c:]
    S = _reduced_covariance(pred) if S is None else S
    _, tau_c, tau_2 = _times(loop.Jr.toarray(), S, Vt.T @ _coordinate_matrix(pred))
    return tau_c, tau_2


@dataclass(frozen=True, eq=False)
class _Target:
    """What a noise check compares: per coordinate the predicted variance, a label, the correlation
    times ``(tau_c, tau_2)``; for a check restricted to the loop's faster modes also the cut rate,
    the functionals that read the coordinates off the state (``fun_f``/``fun_c`` on the copy
    counts, ``w_theta`` on theta) and the share of the full variance they carry. ``explored``:
    the variance of each theta_i the runs explore (it sets the LNA's own error, :func:`lna_tolerance`)."""

    predicted: np.ndarray
    labels: list
    times: tuple
    slowest: float
    r_cut: float | None = None
    fun_f: np.ndarray | None = None
    fun_c: np.ndarray | None = None
    w_theta: np.ndarray | None = None
    excluded: int = 0
    share: np.ndarray | None = None
    explored: np.ndarray | None = None

    def values(self, theta: np.ndarray, fun: np.ndarray | float) -> np.ndarray:
        """The compared coordinates ``(R, T, d)`` from theta ``(R, T, k)`` and the recorded functionals."""
        return theta @ self.w_theta + fun


def _full_target(pred: NoisePrediction, names: tuple[str, ...], S: np.ndarray | None = None) -> _Target:
    _, predicted, labels = _checked_coordinates(pred, np.zeros((1, 1, pred.theta.size)), names)
    return _Target(predicted, labels, correlation_times(pred, S), pred.slowest_rate, w_theta=_coordinate_matrix(pred),
                   explored=np.diag(pred.covariance))


def _fast_projector(Jr: np.ndarray, r_cut: float) -> tuple[np.ndarray, int]:
    """``I - P_slow`` (real): the spectral projector onto the modes decaying at rate >= ``r_cut``."""
    lam, W, Vr = scipy.linalg.eig(Jr, left=True, right=True)
    slow = -lam.real < r_cut
    Vs, Ws = Vr[:, slow], W[:, slow].conj().T
    Ps = Vs @ np.linalg.solve(Ws @ Vs, Ws)
    return np.eye(Jr.shape[0]) - Ps.real, int(slow.sum())


def _fast_target(pred: NoisePrediction, names: tuple[str, ...], r_cut: float, S: np.ndarray | None = None) -> _Target:
    """The compared coordinates with the modes slower than ``r_cut`` projected out (docs/validation.md)."""
    loop = pred.linear_loop
    net = loop.net
    n, base = net.n_states, net.n_f + net.n_c
    Jr = loop.Jr.toarray()
    Pf, excluded = _fast_projector(Jr, r_cut)
    S = _reduced_covariance(pred) if S is None else S
    Vt = loop.V.toarray()[base:]
    Lc = _coordinate_matrix(pred)
    A = Vt.T @ Lc
    var, tau_c, tau_2 = _times(Jr, Pf @ S @ Pf.T, A)
    # c_j = a_j^T Pf y_r, y_r = (x - x*)[rest] with theta's neutral part projected off (exact on the manifold)
    G = np.zeros((n, A.shape[1]))
    G[loop.rest] = Pf.T @ A
    w_theta = G[base:]
    if pred.neutral_directions.shape[1]:
        N = pred.neutral_directions
        W = (N / net.model.eps[:, None]).T
        w_theta = (np.eye(net.k) - N @ np.linalg.solve(W @ N, W)).T @ w_theta
    Mf, Mc, _ = pred.sizes
    _, full, labels = _checked_coordinates(pred, np.zeros((1, 1, pred.theta.size)), names)
    labels = [f"{lab}; modes with rate >= {r_cut:.3g}" for lab in labels]
    # theta explores the fast modes' variance and what the slow ones (started at zero) gain over a run
    Ps = np.eye(Jr.shape[0]) - Pf
    Ss = Ps @ S @ Ps.T
    E = scipy.linalg.expm(Jr * _run_length(tau_2, r_cut))
    explored = np.diag(Vt @ (Pf @ S @ Pf.T + Ss - E @ Ss @ E.T) @ Vt.T)
    return _Target(var, labels, (tau_c, tau_2), r_cut, r_cut, (G[:net.n_f] / Mf).T, (G[net.n_f:base] / Mc).T,
                   w_theta, excluded, var / full, explored)


def _run_length(tau_2: np.ndarray, slowest: float) -> float:
    """Burn-in plus batches of one replicate (:func:`plan_noise_check`)."""
    tau = float(np.max(tau_2))
    return BURN_IN * max(tau, 1.0 / slowest) + BATCHES * BATCH_SPAN * tau


def _mode_rates(loop: LinearLoop) -> np.ndarray:
    """Distinct decay rates of the reduced loop's modes, slowest first (pairs once)."""
    rates = np.sort(-np.linalg.eigvals(loop.Jr.toarray()).real)
    return rates[np.concatenate([[True], np.diff(rates) > 1e-9 * np.abs(rates[1:])])]


def plan_noise_check(prediction: NoisePrediction | _RatesOnly, speed: float, budget: float = NOISE_BUDGET,
                     replicates: int = REPLICATES, times: tuple[np.ndarray, np.ndarray] | None = None,
                     slowest: float | None = None) -> NoisePlan:
    """The run plan of :func:`validate_noise` and whether it fits ``budget`` CPU seconds at ``speed``
    events per CPU second (a plan that does not fit says why, with its estimated CPU time).

    The correlation time ``tau`` is the largest integrated autocorrelation time of the squared
    compared coordinates (:func:`correlation_times`, given as ``times`` or computed); the burn-in
    is :data:`BURN_IN` times the larger of ``tau`` and ``1/slowest`` (the slowest sampled rate,
    by default the loop's)."""
    if times is None:
        if not isinstance(prediction, NoisePrediction):
            raise TypeError("plan_noise_check needs the correlation times (times=...) without a covariance")
        times = correlation_times(prediction)
    tau_c, tau_2 = times
    tau = float(np.max(tau_2))
    burn = BURN_IN * max(tau, 1.0 / (prediction.slowest_rate if slowest is None else slowest))
    t_end = _run_length(tau_2, prediction.slowest_rate if slowest is None else slowest)
    n_points = int(np.ceil(t_end * SAMPLES_PER_TAU / tau)) + 1
    rate = event_rate(prediction)
    cpu = replicates * t_end * rate / speed
    reason = ""
    if not cpu <= budget:
        reason = (f"parameter noise not checked against the SSA: {replicates} replicates of {t_end:.3g} time units "
                  f"(burn-in {burn:.3g} + {BATCHES} batches of {BATCH_SPAN:g} correlation times {tau:.3g}) need "
                  f"about {replicates * t_end * rate:.2g} events, {cpu:.3g} CPU s at the measured "
                  f"{speed:.3g} events per CPU s > the budget of {budget:g} CPU s (--noise-budget)")
    elif prediction.neutral_diffusion.size:
        spread = float(np.max(np.diag(prediction.neutral_diffusion))) * t_end
        if spread > NEUTRAL_SPREAD:
            reason = (f"parameter noise not checked against the SSA: the neutral random walk would spread by "
                      f"{spread:.3g} in variance over a replicate of {t_end:.3g} time units (> {NEUTRAL_SPREAD:g}; "
                      "the loop's rates change along it): raise [ensembles] omega")
    return NoisePlan(tau, burn, t_end, n_points, int(replicates), BATCHES, rate, float(speed), float(cpu),
                     float(budget), reason, float(np.max(tau_c)))


def _choose_plan(pred: NoisePrediction, names: tuple[str, ...], speed: float, budget: float,
                 replicates: int) -> tuple[_Target, NoisePlan]:
    """The full check if it fits the budget; else the check restricted to the loop's faster modes
    with the lowest cut rate that fits (dense loops only); else the full plan with its reason."""
    dense = pred.loop is not None and pred.loop.n_reduced <= switches.CORRELATION_DENSE_LIMIT
    S = _reduced_covariance(pred) if dense else None
    full = _full_target(pred, names, S)
    plan = plan_noise_check(pred, speed, budget, replicates, full.times)
    if plan.fits or not dense:
        return full, plan
    per_tau = replicates * (BURN_IN + BATCHES * BATCH_SPAN) * event_rate(pred) / speed
    for r_cut in _mode_rates(pred.linear_loop)[1:]:
        if per_tau / r_cut > budget:      # even tau = 1/r_cut does not fit
            continue
        target = _fast_target(pred, names, float(r_cut), S)
        fast = plan_noise_check(pred, speed, budget, replicates, target.times, slowest=float(r_cut))
        if fast.fits:
            return target, replace(fast, reason_full=plan.reason)
    return full, plan


def _replicate(model: Model, prediction: NoisePrediction, plan: NoisePlan, target: _Target, seed: int) -> tuple:
    """One replicate of the plan (one thread): the compared coordinates (T, d), events, CPU seconds."""
    from crnfb.feedback.dynamics.ssa import simulate_ssa

    fun = None if target.fun_f is None or target.fun_c is None else (target.fun_f, target.fun_c)
    tr = simulate_ssa(model, plan.t_end, plan.n_points, seed, 1, progress=False, clamping=prediction.clamping,
                      theta_start=prediction.theta, threads=1, functionals=fun)
    th = tr.theta[0]
    y = target.values(th, 0.0 if fun is None or tr.functionals is None else tr.functionals[0])
    y[~np.all(np.isfinite(th), axis=1)] = np.nan        # a parameter species went extinct (L = 0)
    return y, int(tr.events[0]), float(tr.cpu_seconds)


def _replicate_seeds(seed: int, n: int) -> list[int]:
    """Replicate ``i``'s seed from child ``i`` of ``SeedSequence(seed)``: the same whatever the worker count."""
    return [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in np.random.SeedSequence(seed).spawn(n)]


def lna_tolerance(prediction: NoisePrediction, variances: np.ndarray) -> float:
    """Relative error the LNA itself may have (docs/validation.md, "Parameter noise"):
    ``3 max var(theta) + 3 / n_min``, ``var(theta)`` the ``variances`` the runs explore,
    ``n_min`` the smallest population whose discreteness enters."""
    net = prediction.loop.net if prediction.loop is not None else None
    Mf, Mc, omega = prediction.sizes
    sizes = [Mf, omega * float(np.min(np.exp(prediction.theta)))]
    if net is None or net.dynamic:
        sizes.append(Mc)
    return float(3.0 * np.max(variances) + 3.0 / min(sizes))


def _batch_statistics(y: np.ndarray, batches: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and Student-t half-width (:data:`CONFIDENCE`) of the batch means of ``(y - pooled mean)^2``.

    ``y`` is (R, T, d); each replicate's samples are cut into ``batches`` equal runs."""
    dev2 = (y - y.reshape(-1, y.shape[2]).mean(axis=0)) ** 2
    R, T, d = dev2.shape
    per = T // batches
    means = dev2[:, :per * batches].reshape(R, batches, per, d).mean(axis=2).reshape(R * batches, d)
    nb = means.shape[0]
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, nb - 1) * means.std(axis=0, ddof=1) / np.sqrt(nb)
    return means.mean(axis=0), half, nb


def validate_noise(model: Model | LinearLoop | Analysis, replicates: int = REPLICATES, seed: int = 0, *,
                   loop: LinearLoop | None = None, clamping: str | None = None, budget: float = NOISE_BUDGET,
                   prediction: NoisePrediction | None = None, workers: int | None = None,
                   speed: float | None = None) -> list[dict]:
    """Compare the LNA parameter noise with the SSA's stationary variance of theta.

    The plan (:func:`plan_noise_check`): ``replicates`` independent SSA runs
    start at the loop's fixed point (copies at their stationary laws there),
    discard :data:`BURN_IN` correlation times ``1/slowest_rate`` and record
    theta :data:`SAMPLES_PER_TAU` times per correlation time over
    :data:`BATCHES` batches of :data:`BATCH_SPAN` correlation times each. Its
    cost in CPU seconds is estimated from the expected event rate and the
    events per CPU second measured on this network by a pilot run
    (``speed`` overrides the measurement); the check is made when that fits
    ``budget``, else an empty list and a ``RuntimeWarning`` giving the
    estimate. The replicates run in parallel (:func:`crnfb.feedback.numerics.parallel.run_all`,
    ``workers``), replicate ``i`` from child ``i`` of ``SeedSequence(seed)``:
    the result does not depend on the worker count.

    The correlation time is the integrated autocorrelation time of the squared
    compared coordinates, from the LNA itself (:func:`correlation_times`).
    Per batch, the mean of ``(theta - pooled mean)^2`` estimates the
    variance; the :data:`CONFIDENCE` interval is Student t over the batch
    means, or the interval the LNA predicts for the estimator when that is
    wider (``t var sqrt(2 tau_2 / span)``, :func:`correlation_times`). One
    check per learned species, or per identifiable coordinate
    ``U^T theta`` when neutral directions exist. ``passed`` when
    ``|simulated - predicted| <= half-width + tolerance * predicted``, the
    tolerance adding the terms the comparison neglects (:func:`lna_tolerance`,
    the bias of the pooled mean ``2 tau_c / (sampled span)``, the burn-in's
    ``exp(-2 BURN_IN)``; docs/validation.md).

    Returns
    -------
    list of dict
        One ``validation`` entry of report.json per checked coordinate:
        ``quantity, predicted, simulated, rel_error, tolerance, passed, ci``,
        and the plan (``replicates`` used, ``batches``, ``t_end``, ``burn_in``,
        ``events``, ``cpu_seconds``, ``cpu_estimate``, ``budget``, ``seed``, ...).
    """
    from crnfb.feedback.numerics.parallel import run_all

    if replicates < 2:
        raise ValueError("validate_noise needs at least 2 replicates for a confidence interval")
    model, loop = model_and_loop(model, loop)
    loop = prediction.linear_loop if prediction is not None else (loop or linearise(model, clamping))
    if not _stationary_in_theta(loop):
        return []
    if prediction is None and loop.n_reduced > switches.CORRELATION_DENSE_LIMIT:
        # large loop: the plan needs only the slowest rate, so decide before the (costly) covariance
        speed = events_per_cpu_second(model, loop, seed) if speed is None else float(speed)
        rates = _RatesOnly(loop)
        tau = np.full(1, 1.0 / rates.slowest_rate)
        rough = plan_noise_check(rates, speed, budget, replicates, (tau, tau))
        if not rough.fits and "budget" in rough.reason:
            warnings.warn(rough.reason, RuntimeWarning)
            return []
    pred = prediction or parameter_noise(model, clamping, loop)
    speed = events_per_cpu_second(model, pred, seed) if speed is None else float(speed)
    target, plan = _choose_plan(pred, tuple(model.learned_names), speed, budget, replicates)
    if not plan.fits:
        warnings.warn(plan.reason, RuntimeWarning)
        return []
    tasks = [partial(_replicate, model, pred, plan, target, s) for s in _replicate_seeds(seed, replicates)]
    runs = run_all(tasks, workers)
    t = np.linspace(0.0, plan.t_end, plan.n_points)
    y = np.stack([r[0] for r in runs])[:, t > plan.burn_in, :]
    alive = np.all(np.isfinite(y), axis=(1, 2))     # a parameter species may go extinct (L = 0)
    if alive.sum() < 2:
        warnings.warn(f"parameter noise not checked: {int((~alive).sum())} of {replicates} replicates lost a "
                      "parameter species (L_i = 0); raise [ensembles] omega", RuntimeWarning)
        return []
    return _entries(pred, target, plan, y[alive], runs, seed)


def _entries(pred: NoisePrediction, target: _Target, plan: NoisePlan, y: np.ndarray, runs: list,
             seed: int) -> list[dict]:
    """The validation entries from the sampled coordinates ``y`` (R alive, T after burn-in, d)."""
    n_alive = y.shape[0]
    predicted, labels = target.predicted, target.labels
    sim, half_b, nb = _batch_statistics(y, plan.batches)
    # the interval the LNA predicts for the estimator, var * sqrt(2 tau_2 / span): for a skewed quantity
    # the batch SD falls with the batch mean, so a low estimate alone would come with too narrow an interval
    span = float(n_alive) * (plan.t_end - plan.burn_in)
    tq = stats.t.ppf(0.5 + CONFIDENCE / 2, nb - 1)
    half_m = tq * predicted * np.sqrt(2.0 * target.times[1] / span)
    half = np.maximum(half_b, half_m)
    # the pooled mean's variance 2 tau_c sigma^2 / (total span) biases the estimate low by that share
    if target.explored is None:
        raise ValueError("the compared coordinates do not say which variances the runs explore")
    parts = {"lna": lna_tolerance(pred, target.explored), "pooled_mean": 2.0 * plan.tau_mean / span,
             "burn_in": float(np.exp(-2.0 * BURN_IN))}
    tol = float(sum(parts.values()))
    common = {"replicates": int(n_alive), "batches": int(nb), "confidence": CONFIDENCE,
              "t_end": float(plan.t_end), "burn_in": float(plan.burn_in), "correlation_time": float(plan.tau),
              "events": int(sum(r[1] for r in runs)), "cpu_seconds": float(sum(r[2] for r in runs)),
              "cpu_estimate": plan.cpu_estimate, "budget": plan.budget,
              "events_per_cpu_second": plan.events_per_cpu_second, "tolerance_parts": parts, "seed": int(seed)}
    if target.r_cut is not None:
        common.update({"modes_cut_below_rate": float(target.r_cut), "modes_excluded": int(target.excluded),
                       "full_check_not_made": plan.reason_full})
    out = []
    for j, lab in enumerate(labels):
        p, s_, h = float(predicted[j]), float(sim[j]), float(half[j])
        out.append({"quantity": f"parameter noise var({lab})", "predicted": p, "simulated": s_,
                    "rel_error": abs(s_ - p) / abs(p), "tolerance": tol,
                    "passed": bool(abs(s_ - p) <= h + tol * abs(p)), "ci": [s_ - h, s_ + h],
                    "ci_half_width": {"batch_means": float(half_b[j]), "lna": float(half_m[j])},
                    "correlation_times": {"theta": float(target.times[0][j]), "squared": float(target.times[1][j])},
                    **({} if target.share is None else {"share_of_full_variance": float(target.share[j])}),
                    **common})
    return out


__all__ = ["diffusion_matrix", "event_rate", "events_per_cpu_second", "lna_tolerance",
           "lyapunov", "NOISE_BUDGET", "NoisePlan", "NoisePrediction", "NoStationaryCovariance", "parameter_noise", "plan_noise_check",
           "sparse_diffusion", "validate_noise"]
