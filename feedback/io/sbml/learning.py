"""The learning CRN as an irreversible mass-action network (docs/theory.md §4 and §6; docs/sbml.md).

Built from :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork`, never
re-derived: the free copies live on the whole class, the clamped copies on
``LearningNetwork.clamped_states`` (visible part in the support of ``Q_1`` or
``Q_2``), the reset law is ``LearningNetwork.reset_target`` and the start is
``LearningNetwork.initial_state``. So the exported ODE *is*
``LearningNetwork.rhs`` (tested to 1e-10).

Two representations:

* **fractions** (default): amounts are fractions of copies per state and
  ``Lambda_i = lambda_i``, volume 1; resets are the linear pair
  ``clamped_s ->`` (rate ``gamma``) and ``-> clamped_s`` (constant
  ``gamma Q(v) u(h|v)``), exact as an ODE because the clamped fractions sum
  to 1 (2 reactions per clamped state);
* **copies** (``copies=True``, docs/theory.md §6): amounts are copy counts
  (``M_f`` free and ``M_c`` clamped copies, ``[ensembles]``) and
  ``Lambda_i`` counts ``lambda_i Omega`` molecules; every reset moves one
  copy, ``clamped_s -> clamped_s'`` at ``gamma Q(v') u(h'|v')``, so the copy
  totals are conserved and the network read as a stochastic (SSA/LNA) model
  is the finite-ensemble process. Its cost: ``n_c (n_c - 1)`` reset
  reactions instead of ``2 n_c``.

Equilibrium clamping (``p_c = Qt(theta)`` at all times) has no mass-action
form: it is refused unless ``speedup`` is given, which exports dynamic
clamping with the clamped copies' hidden-only jumps ``speedup`` times faster
(``LearningNetwork(..., clamped_speedup=speedup)``); the command line prints
how far that network's fixed point and ``eps_crit`` are from the report's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...dynamics.ensembles import EdgeList, LearningNetwork
from ...errors import ModelError
from ._libsbml import COMPARTMENT, SBMLExportWarning
from .labels import check_ids, state_label, to_sid
from .massaction import MassActionNetwork, MassActionReaction

__all__ = ["AMOUNT_FLOOR", "exported_network", "clamped_start", "learning_network", "largest_remainder", "path_mass"]

#: Initial amounts below this are written as 0: tools such as libRoadRunner scale each species'
#: absolute tolerance by its initial value, and a subnormal one makes CVODE fail (CV_TOO_MUCH_ACC).
AMOUNT_FLOOR = 1e-200


def exported_network(model, speedup: float | None = None) -> LearningNetwork:
    """The :class:`LearningNetwork` that the SBML export writes.

    Dynamic clamping: the model's own. Equilibrium clamping: refused
    (:class:`ModelError`) unless ``speedup`` is given; then dynamic clamping at
    the model's ``gamma`` with the clamped hidden-only jumps ``speedup``
    times faster.
    """
    if model.learning.clamping == "equilibrium":
        if speedup is None:
            raise ModelError(
                "clamping = \"equilibrium\" (p_c = Qt(theta) at all times) has no mass-action form, so the "
                "learning network would not be the analysed system; give a speed-up S (crnfb export --learning "
                "--speedup S) to export dynamic clamping with the clamped hidden reactions S times faster "
                "(the deviation of the fixed point and eps_crit is printed), or set clamping = \"dynamic\"",
                key="learning.clamping", file=model.source)
        return LearningNetwork(model, "dynamic", clamped_speedup=float(speedup))
    if speedup is not None:
        raise ModelError("a speed-up applies only to clamping = \"equilibrium\"; this model uses dynamic "
                         "clamping, which is exported exactly", key="learning.clamping", file=model.source)
    return LearningNetwork(model)


def clamped_start(model, theta: np.ndarray | None = None, speedup: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The exported clamped ensemble's start ``(states, p_c)`` (docs/theory.md §4).

    The stationary law of the exported clamped dynamics at ``theta``
    (learned coordinates; default the file's) under the initial environment:
    ``LearningNetwork.clamped_stationary``. ``states`` index ``model.space.states``.
    """
    net = exported_network(model, speedup)
    theta = model.theta0 if theta is None else np.asarray(theta, float)
    return net.clamped_states, net.clamped_stationary(theta, 0.0)


def largest_remainder(p: np.ndarray, total: int) -> np.ndarray:
    """Whole counts summing to ``total`` closest to ``total * p`` (Hamilton's method)."""
    x = total * np.asarray(p, float) / np.sum(p)
    n = np.floor(x).astype(np.int64)
    short = int(total - n.sum())
    if short > 0:
        n[np.argsort(-(x - n), kind="stable")[:short]] += 1
    return n


@dataclass(frozen=True)
class _Layout:
    """What is written: kept states, their labels and start, and the scale of each ensemble."""

    net: LearningNetwork
    labels: list
    free: np.ndarray          # kept free states (class indices)
    clamped: np.ndarray       # kept positions in net.clamped_states
    p_f: np.ndarray           # start on the kept free states (renormalised)
    p_c: np.ndarray
    reset: np.ndarray         # reset target on the kept clamped states (renormalised)
    dropped: dict             # pruned mass per ensemble at the start
    scale: tuple              # (M_f, M_c, Omega), all 1 for fractions
    theta: np.ndarray         # learned theta at the start
    given: bool               # the start was given (written as is, never rounded)
    pruned_by: str = "start"  # what the mass compared with the threshold was: "start" or "learning path"


def path_mass(net: LearningNetwork, states=(), thetas=()) -> tuple[np.ndarray, np.ndarray]:
    """The largest mass each copy state carries over loop ``states`` and the laws at ``thetas``.

    ``states``: loop states ``(p_f, p_c, theta)`` of ``net`` (the start, the
    fixed point, the points of a learning trajectory); ``thetas``: learned
    coordinates at which the free law ``pi(theta)`` and the clamped
    stationary law count too. Returns ``(free, clamped)``, the maxima per
    free and per clamped state: the ``keep_mass`` of :func:`learning_network`.
    """
    m_f, m_c = np.zeros(net.n_f), np.zeros(net.n_c)
    for x in states:
        p_f, p_c, _ = net.split(np.asarray(x, float))
        m_f, m_c = np.maximum(m_f, p_f), np.maximum(m_c, p_c)
    for th in thetas:
        m_f = np.maximum(m_f, net.free_stationary(np.asarray(th, float)))
        if net.n_c:
            m_c = np.maximum(m_c, net.clamped_stationary(np.asarray(th, float)))
    return m_f, m_c


def _kept(ref: np.ndarray, prune: float, n: int) -> np.ndarray:
    return np.nonzero(ref >= prune)[0] if prune > 0 else np.arange(n)


def _layout(model, net: LearningNetwork, prune: float, copies: bool, state, keep_mass=None) -> _Layout:
    x0 = net.initial_state() if state is None else np.asarray(state, float)
    if x0.shape != (net.n_states,):
        raise ValueError(f"state must be a loop state (p_f, p_c, theta) of {net.n_states} entries, got {x0.shape}")
    p_f, p_c, theta = net.split(x0)
    ref_f, ref_c = (p_f, p_c) if keep_mass is None else (np.asarray(m, float) for m in keep_mass)
    if ref_f.shape != (net.n_f,) or ref_c.shape != (net.n_c,):
        raise ValueError(f"keep_mass must be (free, clamped) of {net.n_f} and {net.n_c} entries, "
                         f"got {ref_f.shape} and {ref_c.shape}")
    keep_f, keep_c = _kept(ref_f, prune, net.n_f), _kept(ref_c, prune, net.n_c)
    r = net.reset_target(0.0)
    if r[keep_c].sum() <= 0:
        raise ModelError(f"pruning at {prune:g} removes every clamped state that the resets reach; lower it")
    dropped = {"free": float(p_f.sum() - p_f[keep_f].sum()), "clamped": float(p_c.sum() - p_c[keep_c].sum())}
    ens = model.ensembles
    scale = (float(ens.free), float(ens.clamped), float(ens.omega)) if copies else (1.0, 1.0, 1.0)
    labels = [state_label(model.network.names, s) for s in model.space.states]
    return _Layout(net, labels, keep_f, keep_c, p_f[keep_f] / p_f[keep_f].sum(), p_c[keep_c] / p_c[keep_c].sum(),
                   r[keep_c] / r[keep_c].sum(), dropped, scale, theta.copy(), state is not None,
                   "start" if keep_mass is None else "learning path")


def _notes(model, lay: _Layout, copies: bool, speedup: float | None) -> list[str]:
    net = model.network
    what = ("copy counts (M_f free, M_c clamped copies) and Lambda counts lambda*Omega molecules; every reset "
            "moves one copy (copy totals conserved: the finite-ensemble process of docs/theory.md §6)"
            if copies else "fractions of copies and Lambda = lambda, compartment volume 1")
    notes = [
        f"Learning CRN of model '{net.name}' at the ensemble level (crn-feedback docs/theory.md §4), exported by "
        f"crn-feedback. All reactions are irreversible mass action. Amounts are {what}.",
        "Species free_<state> and clamped_<state>: free / clamped copies in a copy state; <state> lists every "
        f"species of the model network followed by its count, joined by '_' (species order: {', '.join(net.names)})."
        " Lambda_<species>: activity of a learned species.",
        ("Initial values: the loop state given at export (e.g. the loop's fixed point)." if lay.given else
         "Initial values: free copies at pi_theta0, clamped copies at the clamped ensemble's stationary law for "
         "theta0, Lambda at exp(theta0) (theta0 = -energy).") + f" Fractions below {AMOUNT_FLOOR:g} are written as 0.",
    ]
    if speedup is not None:
        notes.append(f"APPROXIMATION: the model uses equilibrium clamping (p_c = Qt(theta)); this network uses "
                     f"dynamic clamping at gamma = {model.learning.gamma:g} with the clamped hidden-only reactions "
                     f"{speedup:g} times faster (parameter clamped_speedup).")
    if lay.free.size < lay.net.n_f or lay.clamped.size < lay.net.n_c:
        by = ("whose largest mass on the learning path (start, fixed point, trajectory) is"
              if lay.pruned_by == "learning path" else "whose start probability is")
        notes.append(f"PRUNED: copy states {by} below the threshold were left out; dropped start mass free "
                     f"{lay.dropped['free']:.3g}, clamped {lay.dropped['clamped']:.3g} (the rest renormalised).")
    return notes


def _parameters(model, lay: _Layout, speedup: float | None, copies: bool):
    net, space = model.network, model.space
    names = net.names
    learned = list(model.learned)
    params: dict[str, float] = {}
    pnotes: dict[str, str] = {}
    for r in range(len(net.reactions)):
        params[f"kappa_r{r + 1}"] = float(net.kappa[r])
        pnotes[f"kappa_r{r + 1}"] = net.equation(r)
    theta_full = model.full_theta(model.theta0)
    for j in sorted({j for e in space.edges for j in np.nonzero(e.exponent)[0] if j not in learned}):
        params[f"lambda_{names[j]}"] = float(np.exp(theta_full[j]))
        pnotes[f"lambda_{names[j]}"] = f"constant activity of the unlearned species {names[j]}"
    params["gamma"] = float(model.learning.gamma)
    if speedup is not None:
        params["clamped_speedup"] = float(speedup)
        pnotes["clamped_speedup"] = "factor on the clamped copies' hidden-only jumps (equilibrium approximation)"
    for k, i in enumerate(learned):
        params[f"eps_{names[i]}"] = float(model.eps[k])
    if copies:
        for pid, v in zip(("M_f", "M_c", "Omega"), lay.scale):
            params[pid] = v
    vnames = [names[i] for i in net.visible]
    cstates = lay.net.clamped_states[lay.clamped]
    qlabel = {}
    for v in np.unique(space.visible_index[cstates]):
        qlabel[v] = f"Q_{state_label(vnames, space.visible_states[v])}"
        params[qlabel[v]] = float(model.q[v])
    return params, pnotes, qlabel


def _jumps(model, lay: _Layout, ens: str, edges: EdgeList, labels: list, kept: np.ndarray, extra: tuple):
    """Copy jumps of one ensemble: ``<ens>_s + y'_L Lambda -> <ens>_s' + y'_L Lambda``.

    ``edges`` index the ensemble's own states (``labels``); only jumps between
    ``kept`` states are written. The rate constant is the edge's propensity
    coefficient (``kappa`` times the falling factorial, times the speed-up for
    clamped copies) times the constant activities of unlearned catalysts,
    over ``Omega^order`` when ``Lambda`` counts molecules.
    """
    net, learned = model.network, list(model.learned)
    names = net.names
    lam = np.exp(model.full_theta(model.theta0))
    omega = lay.scale[2]
    keep = np.zeros(len(labels), bool)
    keep[kept] = True
    unl = [j for j in range(len(names)) if j not in learned]
    speed = lay.net.clamped_speedup if ens == "clamped" else 1.0
    out = []
    for k in np.nonzero(keep[edges.src] & keep[edges.dst])[0]:
        s, d = int(edges.src[k]), int(edges.dst[k])
        ex, rk = edges.expo[k], int(edges.reaction[k])
        cat = {f"Lambda_{names[j]}": int(ex[j]) for j in learned if ex[j]}
        order = sum(cat.values())
        facs = ((f"kappa_r{rk + 1}", 1), *[(f"lambda_{names[j]}", int(ex[j])) for j in unl if ex[j]], *extra)
        if order and omega != 1.0:
            facs = facs + (("Omega", -order),)
        kconst = float(edges.coef[k] * np.prod([lam[j] ** ex[j] for j in unl])) * omega ** -order
        ff = float(edges.coef[k] / net.kappa[rk] / speed)
        tag = f"{'F' if ens == 'free' else 'C'}_r{rk + 1}{'f' if edges.forward[k] else 'b'}_{labels[s]}"
        out.append(MassActionReaction(tag, {f"{ens}_{labels[s]}": 1, **cat}, {f"{ens}_{labels[d]}": 1, **cat},
                                      kconst, facs, ff))
    return out


def _resets(model, lay: _Layout, clabels: list, params: dict, qlabel: dict, copies: bool):
    """Resets of clamped copies to ``Q(v) u(h|v)`` (module docstring: linear pair, or copy-conserving moves)."""
    space, gamma = model.space, params["gamma"]
    cstates = lay.net.clamped_states[lay.clamped]
    u = lay.net.reset_law[lay.clamped]
    # the kept reset target renormalised: r = Q(v) u(h|v) / Z, Z = 1 without pruning
    z = float(np.sum(model.q[space.visible_index[cstates]] * u))
    out = []
    for j, s in enumerate(cstates):
        q = qlabel[space.visible_index[s]]
        c = f"clamped_{clabels[j]}"
        if not copies:
            out.append(MassActionReaction(f"In_{clabels[j]}", {}, {c: 1}, float(gamma * lay.reset[j]),
                                          (("gamma", 1), (q, 1)), float(u[j] / z)))
            out.append(MassActionReaction(f"Out_{clabels[j]}", {c: 1}, {}, gamma, (("gamma", 1),), 1.0))
            continue
        for i in range(cstates.size):
            if i != j and lay.reset[j] > 0:
                out.append(MassActionReaction(f"Reset_{clabels[i]}_to_{clabels[j]}", {f"clamped_{clabels[i]}": 1},
                                              {c: 1}, float(gamma * lay.reset[j]), (("gamma", 1), (q, 1)),
                                              float(u[j] / z)))
    return out


def _learning(model, lay: _Layout, clabels: list):
    """``clamped_s + Lambda_i -> clamped_s + 2 Lambda_i`` and ``free_s + Lambda_i -> free_s``, rate ``eps_i n_i(s) / M``."""
    names, space = model.network.names, model.space
    cstates = lay.net.clamped_states[lay.clamped]
    M_f, M_c, _ = lay.scale
    out = []
    for k, i in enumerate(model.learned):
        eps, L = float(model.eps[k]), f"Lambda_{names[i]}"
        e = ((f"eps_{names[i]}", 1),)
        for j, s in enumerate(cstates):
            n = int(space.states[s, i])
            if n > 0:
                c = f"clamped_{clabels[j]}"
                out.append(MassActionReaction(f"Up_{names[i]}_{clabels[j]}", {c: 1, L: 1}, {c: 1, L: 2},
                                              eps * n / M_c, e + ((("M_c", -1),) if M_c != 1 else ()), float(n)))
        for s in lay.free:
            n = int(space.states[s, i])
            if n > 0:
                f_ = f"free_{lay.labels[s]}"
                out.append(MassActionReaction(f"Down_{names[i]}_{lay.labels[s]}", {f_: 1, L: 1}, {f_: 1},
                                              eps * n / M_f, e + ((("M_f", -1),) if M_f != 1 else ()), float(n)))
    return out


def _species(model, lay: _Layout, clabels: list, copies: bool) -> dict:
    M_f, M_c, omega = lay.scale
    if copies and not lay.given:
        f0, c0 = largest_remainder(lay.p_f, int(M_f)), largest_remainder(lay.p_c, int(M_c))
    elif copies:
        f0, c0 = M_f * lay.p_f, M_c * lay.p_c
    else:
        f0 = np.where(lay.p_f >= AMOUNT_FLOOR, lay.p_f, 0.0)
        c0 = np.where(lay.p_c >= AMOUNT_FLOOR, lay.p_c, 0.0)
    species = {f"free_{lay.labels[s]}": float(v) for s, v in zip(lay.free, f0)}
    species.update({f"clamped_{lab}": float(v) for lab, v in zip(clabels, c0)})
    for i, th in zip(model.learned, lay.theta):
        L = omega * np.exp(th)
        species[f"Lambda_{model.network.names[i]}"] = float(round(L)) if copies and not lay.given else float(L)
    return species


def learning_network(model, *, speedup: float | None = None, copies: bool = False,
                     prune: float = 0.0, state: np.ndarray | None = None,
                     keep_mass: tuple | None = None) -> MassActionNetwork:
    """The learning CRN of ``model`` as irreversible mass-action reactions (module docstring).

    Parameters
    ----------
    model : Model
    speedup : float or None
        Required for equilibrium clamping (refused otherwise): the factor on
        the clamped hidden-only jumps of the exported dynamic clamping.
    copies : bool
        Copy counts with copy-conserving resets (exact finite-ensemble
        stochastic semantics) instead of fractions.
    prune : float
        Leave out copy states whose mass is below ``prune`` (the rest
        renormalised; the dropped start mass is in ``.info`` and the notes):
        the mass in ``keep_mass`` when given, else the start probability.
        0 keeps every state, and then the ODE equals ``LearningNetwork.rhs``
        exactly.
    keep_mass : (ndarray, ndarray) or None
        The largest mass of each free and each clamped state on the learning
        path (:func:`path_mass`: start, fixed point, trajectory). Learning
        moves mass onto states that are improbable at the start, so pruning
        by the start alone moves the exported network's fixed point
        (``crnfb export --prune`` passes the path's mass; docs/sbml.md).
    state : ndarray or None
        Initial state as a loop state ``(p_f, p_c, theta)`` of the exported
        :class:`LearningNetwork` (e.g. the loop's fixed point, so that a
        peer tool starts its steady-state search there); default the
        episode start. Written as is (copy counts not rounded).

    Returns
    -------
    MassActionNetwork
        ``.info``: ``speedup``, ``copies``, ``dropped_mass`` (per ensemble),
        ``species``/``reactions`` counts.
    """
    if not (0.0 <= prune < 1.0):
        raise ModelError(f"prune must be in [0, 1), got {prune!r}")
    net = exported_network(model, speedup)
    lay = _layout(model, net, prune, copies, state, keep_mass)
    names = model.network.names
    bad = model.space.hidden_disconnected(np.nonzero((model.q > 0) | (model.q_change > 0))[0])
    notes = _notes(model, lay, copies, speedup)
    if bad:
        msg = (f"hidden-only reactions do not connect the hidden states for visible states {bad[:5]}; "
               "the clamped ensemble cannot reach pi(h|v) there for any gamma")
        warnings.warn(msg, SBMLExportWarning, stacklevel=2)
        notes.append("WARNING: " + msg + ".")
    params, pnotes, qlabel = _parameters(model, lay, speedup, copies)
    clabels = [lay.labels[s] for s in net.clamped_states[lay.clamped]]
    extra = (("clamped_speedup", 1),) if speedup is not None else ()
    rx = (_jumps(model, lay, "free", net.edges, lay.labels, lay.free, ())
          + _jumps(model, lay, "clamped", net.hidden_edges, [lay.labels[s] for s in net.clamped_states],
                   lay.clamped, extra)
          + _resets(model, lay, clabels, params, qlabel, copies) + _learning(model, lay, clabels))
    species = _species(model, lay, clabels, copies)
    check_ids([COMPARTMENT, *species, *params, *(r.id for r in rx)],
              "free_/clamped_/Lambda_/Q_/eps_/kappa_ ids, reaction ids F_, C_, In_, Out_, Reset_, Up_, Down_")
    th = model.full_theta(model.theta0)
    snotes = {f"Lambda_{names[i]}": {"theta0": repr(float(th[i])), "species": names[i]} for i in model.learned}
    info = {"speedup": speedup, "copies": copies, "dropped_mass": lay.dropped, "species": len(species),
            "reactions": len(rx), "pruned_by": "learning path" if keep_mass is not None else "start",
            "kept_states": (int(lay.free.size), int(lay.clamped.size)), "states": (int(net.n_f), int(net.n_c))}
    return MassActionNetwork(to_sid(f"{model.network.name}_learning"), f"{model.network.name} (learning CRN)",
                             species, params, rx, notes, snotes, pnotes, info)
