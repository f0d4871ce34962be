"""``crnfb export --learning --prune P``: which copy states to keep, and how far the pruned network is.

Learning moves mass: a copy state that is improbable at the episode start
(``theta0``) can carry much of it at the learned fixed point. So states are
kept by the largest mass they carry anywhere on the learning path
(:func:`learning_path_mass`: the start, the loop's fixed point, the states of
a learning episode integrated until it settles, and the free and clamped
laws at ``theta0``, ``theta*`` and the episode's ``theta``). What pruning
still changes is then measured on the written network itself
(:func:`prune_deviation`): its fixed point and slowest eigenvalues against
the unpruned network's, both from the exported mass-action ODE
(:meth:`~crnfb.feedback.io.sbml.MassActionNetwork.rhs` and its exact Jacobian),
so the numbers are those a peer simulator of the file finds (tested against
libRoadRunner's steady state in tests/test_sbml_export.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.sparse.linalg import splu

from crnfb.feedback.io.sbml import exported_network, learning_network, path_mass
from crnfb.feedback.numerics import sizes

__all__ = ["SLOW_MODES", "PruneDeviation", "learning_path_mass", "mass_action_steady_state",
           "slowest_modes", "prune_deviation"]

#: How many of the slowest non-zero eigenvalues are compared.
SLOW_MODES = 3
#: Points of the episode's ``theta`` at which the free and clamped laws are added to the path's mass.
PATH_THETAS = 24


def _slowest_rate(model, net, fp) -> float:
    from crnfb.analysis.linear.linearise import linearise
    from crnfb.analysis.linear.stability import stability
    try:
        return float(stability(linearise(model, fixed_point=fp, net=net)).slowest_rate)
    except Exception:  # noqa: BLE001 - only sets the episode's hold time and time limit
        return float("nan")


def learning_path_mass(model, net, fp) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """``((free, clamped), info)``: each copy state's largest mass on the learning path of ``net``.

    The path: the episode start, the loop fixed point ``fp`` (of ``net``),
    every output state of a learning episode from the start until it settles
    at ``fp`` (:func:`crnfb.analysis.analyses.globalbehaviour.settle`) and the
    stationary free and clamped laws at ``theta0``, ``theta*`` and up to
    :data:`PATH_THETAS` of the episode's ``theta``. ``info``: the episode's
    length, whether it settled, and the integrator's failure if any (the
    states reached before it count; when the episode cannot be integrated
    at all, only the start and the fixed point do).
    """
    from crnfb.analysis.analyses.globalbehaviour import settle
    from crnfb.feedback.errors import ModelError
    from crnfb.feedback.dynamics.integrate import SimulationError
    x0 = net.initial_state()
    try:
        run = settle(model, net, x0, fp.theta, _slowest_rate(model, net, fp))
    except (ModelError, SimulationError) as e:   # e.g. an unstable loop over the integrator's work limit
        m_f, m_c = path_mass(net, [x0, fp.x], [model.theta0, fp.theta])
        why = re.sub(r"\[--[\w-]+\]: |; the loop settles long before.*$", "", str(getattr(e, "message", e)))
        return (m_f, m_c), {"t_end": 0.0, "settled": False, "failure": f"the episode could not be integrated: {why}"}
    X = np.asarray(run.X, float)
    k = net.n_f + net.n_c
    idx = np.unique(np.linspace(0, X.shape[1] - 1, min(PATH_THETAS, X.shape[1])).round().astype(int))
    thetas = [model.theta0, fp.theta, *(X[k:, i] for i in idx if np.all(np.isfinite(X[k:, i])))]
    top = np.nanmax(X, axis=1)
    m_f, m_c = path_mass(net, [x0, fp.x, top], thetas)
    info = {"t_end": float(run.t[-1]), "settled": bool(run.converged), "failure": run.failure}
    return (m_f, m_c), info


def _range_basis(mnet) -> np.ndarray | None:
    """Orthonormal basis of the stoichiometric subspace (dense; None above
    :data:`crnfb.feedback.numerics.sizes.PRUNE_DENSE_LIMIT` species)."""
    N = mnet.stoichiometry
    if N.shape[0] > sizes.PRUNE_DENSE_LIMIT:
        return None
    w, V = linalg.eigh((N @ N.T).toarray())
    return V[:, w > 1e-10 * max(float(w.max()), 1e-300)]


def _residual(mnet, x: np.ndarray) -> tuple[np.ndarray, float]:
    f = mnet.rhs(x)
    return f, float(np.max(np.abs(f))) / max(1.0, float(np.max(np.abs(x))))


def _newton(mnet, x: np.ndarray, Q: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, float]:
    """Minimum-norm Newton steps in the stoichiometric subspace, halved until the residual falls."""
    f, r = _residual(mnet, x)
    for _ in range(max_iter):
        if r <= tol:
            break
        y = linalg.lstsq(Q.T @ (mnet.jacobian(x) @ Q), -(Q.T @ f), cond=1e-12, lapack_driver="gelsy")[0]
        dx, step = Q @ y, 1.0
        while step > 1e-4:
            fn, rn = _residual(mnet, x + step * dx)
            if np.isfinite(rn) and rn < r:
                break
            step /= 2.0
        else:
            break
        x, f, r = x + step * dx, fn, rn
    return x, r


def _continuation(mnet, x: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, float]:
    """Pseudo-transient continuation (``(I/tau - J) dx = f``, tau growing tenfold per accepted step)."""
    f, r = _residual(mnet, x)
    eye, tau = sparse.identity(x.size, format="csc"), 1e-2
    for _ in range(max_iter):
        if r <= tol or tau < 1e-12:
            break
        try:
            dx = splu((eye / tau - mnet.jacobian(x)).tocsc()).solve(f)
        except RuntimeError:   # singular at this tau
            tau /= 4.0
            continue
        fn, rn = _residual(mnet, x + dx)
        if np.isfinite(rn) and rn < 10.0 * r and (x + dx).min() > -1e-9 * max(1.0, float(np.max(x))):
            x, f, r, tau = x + dx, fn, rn, min(10.0 * tau, 1e10)
        else:
            tau /= 4.0
    return x, r


def mass_action_steady_state(mnet, x0: np.ndarray | None = None, tol: float = 1e-12,
                             max_iter: int = 60) -> tuple[np.ndarray, float, bool]:
    """``(x, residual, converged)``: a steady state of ``mnet``'s ODE near ``x0`` (default its initial amounts).

    Up to :data:`crnfb.feedback.numerics.sizes.PRUNE_DENSE_LIMIT` species: Newton's method with minimum-norm
    steps in the stoichiometric subspace, so ``x`` stays on the
    conservation class of ``x0`` and does not move along flat directions
    (lines of fixed points of unidentifiable parameters): the steady state
    nearest ``x0``. Larger: pseudo-transient continuation with sparse LU.
    ``residual`` is ``max |f(x)|`` relative to ``max(1, max |x|)``;
    ``converged`` when it is at most ``tol``.
    """
    x = np.asarray(mnet.initial if x0 is None else x0, float).copy()
    Q = _range_basis(mnet)
    x, r = _newton(mnet, x, Q, tol, max_iter) if Q is not None else _continuation(mnet, x, tol, 4 * max_iter)
    return x, r, bool(r <= tol)


def slowest_modes(mnet, x: np.ndarray, k: int = SLOW_MODES) -> tuple[np.ndarray | None, int]:
    """``(modes, zeros)``: the ``k`` slowest non-zero eigenvalues of ``mnet``'s Jacobian at ``x``, and how
    many zero eigenvalues were left out.

    The Jacobian is restricted to the range of the stoichiometric matrix
    (which it maps into), so the conservation laws (the copy totals) do not
    appear; the zero modes that remain (flat directions: lines of fixed
    points of unidentifiable learned parameters) are those within
    :func:`~crnfb.analysis.linear.stability.zero_tolerance` of zero, as in the
    report's stability section. ``(None, 0)`` above :data:`crnfb.feedback.numerics.sizes.PRUNE_DENSE_LIMIT` species.
    """
    from crnfb.analysis.linear.stability import zero_tolerance
    Q = _range_basis(mnet)
    if Q is None:
        return None, 0
    Jr = Q.T @ (mnet.jacobian(x) @ Q)
    ev = linalg.eigvals(Jr)
    zero = np.abs(ev) <= zero_tolerance(ev, float(np.max(np.abs(np.diag(Jr)), initial=0.0)))
    ev = ev[~zero]
    ev = ev[np.lexsort((ev.imag, -ev.real))]
    return ev[:k], int(zero.sum())


@dataclass(frozen=True, kw_only=True)
class PruneDeviation:
    """The pruned export against the unpruned one, both as written (mass-action ODEs).

    Attributes
    ----------
    prune : float
    learned : tuple of str
    kept : tuple         (free kept, free states, clamped kept, clamped states)
    lambda_full, lambda_pruned : ndarray
        ``lambda`` of the learned species at each network's steady state
        (reached from the loop fixed point).
    modes_full, modes_pruned : ndarray or None
        The :data:`SLOW_MODES` slowest non-zero eigenvalues there (None above
        :data:`crnfb.feedback.numerics.sizes.PRUNE_DENSE_LIMIT` species).
    zeros : tuple        the zero eigenvalues left out of each (unpruned, pruned): flat directions
    residual : float     the larger steady-state residual of the two
    pruned_by : str      what the kept states were chosen by: "learning path" or "start"
    converged : bool     both steady states were found (residual <= 1e-12); if not, the pruned network
                         has no steady state near the unpruned one's and the numbers are where Newton stopped
    """

    prune: float
    learned: tuple
    kept: tuple
    lambda_full: np.ndarray
    lambda_pruned: np.ndarray
    modes_full: np.ndarray | None
    modes_pruned: np.ndarray | None
    residual: float
    pruned_by: str = "learning path"
    zeros: tuple = (0, 0)
    converged: bool = True

    @property
    def lambda_deviation(self) -> float:
        """Largest relative deviation of ``lambda`` (pruned vs unpruned)."""
        return float(np.max(np.abs(self.lambda_pruned / self.lambda_full - 1.0)))

    @property
    def modes_deviation(self) -> float | None:
        """Largest ``|mu_pruned - mu_full| / |mu_full|`` over the slowest modes, in order (None if not computed)."""
        if self.modes_full is None or self.modes_pruned is None:
            return None
        n = min(self.modes_full.size, self.modes_pruned.size)
        a, b = self.modes_full[:n], self.modes_pruned[:n]
        return float(np.max(np.abs(b - a) / np.maximum(np.abs(a), 1e-300))) if n else 0.0

    def lines(self) -> list[str]:
        """Human-readable summary."""
        ff, nf, fc, nc = self.kept
        by = "mass on the learning path stays" if self.pruned_by == "learning path" else "start probability is"
        out = [f"pruned network (copy states whose {by} below {self.prune:g} left out: "
               f"kept {ff} of {nf} free, {fc} of {nc} clamped) against the unpruned export:"]
        if not self.converged:
            out.append(f"  NOT MEASURED: no steady state of the pruned network was found near the unpruned one's "
                       f"(residual {self.residual:.2g}); its learning does not settle where the unpruned "
                       "network's does: lower P")
            return out
        for n, a, b in zip(self.learned, self.lambda_full, self.lambda_pruned):
            out.append(f"  lambda_{n}: pruned {b:.6g}, unpruned {a:.6g} (relative deviation {b / a - 1:+.2e})")
        if self.modes_full is None or self.modes_pruned is None:
            out.append(f"  slowest eigenvalues: not computed (more than {sizes.PRUNE_DENSE_LIMIT} species)")
        else:
            fmt = lambda e: ", ".join(f"{v.real:.6g}" + (f"{v.imag:+.3g}i" if abs(v.imag) > 1e-9 * abs(v) else "")  # noqa: E731
                                      for v in e)
            out.append(f"  slowest eigenvalues: pruned {fmt(self.modes_pruned)}; unpruned {fmt(self.modes_full)} "
                       f"(relative deviation {self.modes_deviation:.2e})")
            if any(self.zeros):
                out.append(f"  zero eigenvalues left out (flat directions of unidentifiable parameters): "
                           f"pruned {self.zeros[1]}, unpruned {self.zeros[0]}")
        return out


def _learned_lambda(model, mnet, x: np.ndarray) -> np.ndarray:
    ids = mnet.species_ids
    omega = float(mnet.parameters.get("Omega", 1.0))
    return np.array([x[ids.index(f"Lambda_{n}")] / omega for n in model.learned_names])


def prune_deviation(model, prune: float, *, speedup: float | None = None, copies: bool = False,
                    keep_mass=None, fp=None) -> PruneDeviation:
    """Fixed point and slowest modes of the pruned export against the unpruned one (module docstring).

    Both networks start at the loop fixed point ``fp`` of the exported
    :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork` (pruned: restricted
    and renormalised) and are taken to their steady state by
    :func:`mass_action_steady_state`. ``keep_mass`` as for
    :func:`~crnfb.feedback.io.sbml.learning_network` (None: the start law, as
    ``learning_network(model, prune=P)`` keeps without it).
    """
    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    net = exported_network(model, speedup)
    fp = loop_fixed_point(model, net) if fp is None else fp
    by = "learning path" if keep_mass is not None else "start"
    if keep_mass is None:   # what learning_network(prune=P) alone keeps: the start law's states
        keep_mass = net.split(net.initial_state())[:2]
    kw = {"speedup": speedup, "copies": copies, "state": fp.x}
    full = learning_network(model, **kw)
    pruned = learning_network(model, prune=prune, keep_mass=keep_mass, **kw)
    xf, rf, okf = mass_action_steady_state(full)
    xp, rp, okp = mass_action_steady_state(pruned)
    info = pruned.info
    kept = (info["kept_states"][0], info["states"][0], info["kept_states"][1], info["states"][1])
    (mf, zf), (mp, zp) = slowest_modes(full, xf), slowest_modes(pruned, xp)
    return PruneDeviation(prune=float(prune), learned=tuple(model.learned_names), kept=kept,
                          lambda_full=_learned_lambda(model, full, xf),
                          lambda_pruned=_learned_lambda(model, pruned, xp), modes_full=mf, modes_pruned=mp,
                          residual=max(rf, rp), pruned_by=by, zeros=(zf, zp), converged=okf and okp)
