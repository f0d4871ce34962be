"""The learning loop as python-control systems with named signals (docs/theory.md §5).

Four blocks, one signal name per learned species ``<sp>``:

======  ==========================================  ==================  ===============
block   dynamics                                    inputs              outputs
======  ==========================================  ==================  ===============
``K``   ``dtheta/dt = eps e`` (integral control)    ``e_<sp>``          ``theta_<sp>``
``P_f`` free ensemble ``dp_f/dt = A(theta) p_f``    ``theta_<sp>``      ``m_f_<sp>``
``P_c`` clamped ensemble (dynamic: states ``p_c``;  ``theta_<sp>``,     ``m_c_<sp>``
        equilibrium: the static map ``m_c(theta,   ``a``
        a)``)
``sum`` ``e = m_c - m_f``                           ``m_c_<sp>``,       ``e_<sp>``
                                                    ``m_f_<sp>``
======  ==========================================  ==================  ===============

``a`` is the environment's mixing weight, ``Q = (1-a) Q_1 + a Q_2``.

* :func:`nonlinear_blocks` / :func:`nonlinear_loop`: the blocks as
  :class:`control.NonlinearIOSystem` (vector fields from
  :class:`~crnfb.feedback.ensembles.LearningNetwork`) and their closed loop wired
  by :func:`control.interconnect` (input ``a``; outputs ``theta``, ``m_f``,
  ``m_c``, ``e``). Its state is ``(p_f, p_c, theta)``, the order of
  :class:`~crnfb.feedback.ensembles.LearningNetwork`, so it can be simulated with
  :func:`control.input_output_response` or checked against the analytic
  Jacobian. Do not use :func:`control.linearize` on it for analysis: it is a
  forward difference with a fixed absolute step (see
  ``docs/loop.md``); use :func:`linear_blocks` instead.
* :func:`linear_blocks` / :func:`linear_loop`: the same blocks as analytic
  :class:`control.StateSpace` models at the loop's fixed point
  (:func:`crnfb.analysis.linearise.linearise`), in reduced coordinates: each
  ensemble restricted to its tangent space ``sum dp = 0`` by eliminating its
  pivot state, and (by default) the controller restricted to the
  identifiable theta directions by eliminating the neutral pivots exactly
  as :mod:`crnfb.analysis.linearise` does. The interconnection's state matrix
  *is* ``LinearLoop.Jr`` (same coordinates, same order).
* :func:`loop_transfer_blocks`: the loop broken at ``theta``,
  ``L(s) = E (P_f(s) - P_c(s)) / s``, for margins.

Example: take the free plant out and look at it alone::

    >>> import control
    >>> from crnfb.feedback import load_model
    >>> from crnfb.analysis.linearise import linearise
    >>> from crnfb.feedback.loop import linear_blocks, linear_loop
    >>> lin = linearise(load_model("examples/birth_death.toml"))
    >>> blocks = linear_blocks(lin)
    >>> P_f = blocks.P_f                       # theta_X -> m_f_X, 60 states
    >>> round(float(control.dcgain(P_f)), 6)    # = Var_pi(x) = mu = 5 (Poisson)
    5.0
    >>> T = linear_loop(lin)                   # a -> theta, m_f, m_c, e
    >>> T.input_labels, T.output_labels[:2]
    (['a'], ['theta_X', 'm_f_X'])

Dense models are built only up to :data:`MAX_DENSE_STATES` states (a
:class:`LoopTooLargeError` beyond); for larger loops use the sparse
``LinearLoop.Jr`` and :func:`crnfb.analysis.stability.closed_loop_eigenvalues`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import control
import numpy as np
from scipy import sparse

from .ensembles import LearningNetwork
from .model import Model

if TYPE_CHECKING:  # pragma: no cover
    from crnfb.analysis.linearise import LinearLoop

MAX_DENSE_STATES = 3000
"""Largest state count for which dense :class:`control.StateSpace` models are built."""


class LoopTooLargeError(ValueError):
    """The loop has too many states for dense python-control models."""


# -- names ---------------------------------------------------------------------------------------
def signal_names(model: Model) -> dict[str, list[str]]:
    """Signal names per learned species: ``{"theta": ["theta_X", ...], "m_f": ..., "m_c": ..., "e": ...}``."""
    sp = model.learned_names
    return {s: [f"{s}_{n}" for n in sp] for s in ("theta", "m_f", "m_c", "e")}


def _state_names(prefix: str, idx: np.ndarray) -> list[str]:
    return [f"{prefix}[{int(i)}]" for i in idx]


def _network(model_or_net, clamping: str | None) -> LearningNetwork:
    if isinstance(model_or_net, LearningNetwork):
        if clamping is not None and clamping != model_or_net.clamping:
            return LearningNetwork(model_or_net.model, clamping)
        return model_or_net
    return LearningNetwork(model_or_net, clamping)


@dataclass(frozen=True)
class LoopBlocks:
    """The four blocks of the loop (python-control systems with named signals).

    Attributes
    ----------
    K : controller, ``e -> theta``
    P_f : free plant, ``theta -> m_f``
    P_c : clamped plant, ``(theta, a) -> m_c``
    sum : summing junction, ``(m_c, m_f) -> e = m_c - m_f``
    """

    K: control.InputOutputSystem
    P_f: control.InputOutputSystem
    P_c: control.InputOutputSystem
    sum: control.InputOutputSystem

    def as_list(self) -> list:
        """In state order ``(p_f, p_c, theta)``: ``[P_f, P_c, K, sum]``."""
        return [self.P_f, self.P_c, self.K, self.sum]


def _summing_junction(names: dict[str, list[str]], k: int) -> control.StateSpace:
    D = np.hstack([np.eye(k), -np.eye(k)])
    return control.ss(np.zeros((0, 0)), np.zeros((0, 2 * k)), np.zeros((k, 0)), D,
                      inputs=names["m_c"] + names["m_f"], outputs=names["e"], name="sum")


# -- nonlinear blocks ----------------------------------------------------------------------------------
def nonlinear_blocks(model: Model | LearningNetwork, clamping: str | None = None) -> LoopBlocks:
    """The loop's blocks as nonlinear I/O systems (vector fields of :class:`LearningNetwork`).

    ``P_f`` has states ``p_f[i]`` (``i`` indexes ``model.space.states``);
    ``P_c`` under dynamic clamping has states ``p_c[j]`` (``j`` indexes
    ``net.clamped_states``, i.e. class state ``net.clamped_states[j]``),
    under equilibrium clamping it is static (``m_c = <n>_Qt(theta, a)``).
    ``K`` is linear (a :class:`control.StateSpace`).
    """
    net = _network(model, clamping)
    m = net.model
    names = signal_names(m)
    k, L, E = net.k, m.learned, net.eps
    Sf = net.S_f[:, L].T.copy()

    K = control.ss(np.zeros((k, k)), np.diag(E), np.eye(k), np.zeros((k, k)),
                   inputs=names["e"], outputs=names["theta"], states=names["theta"], name="K")

    def f_upd(t, x, u, params):
        return net.free_generator(u) @ x

    def f_out(t, x, u, params):
        return Sf @ x

    P_f = control.nlsys(f_upd, f_out, inputs=names["theta"], outputs=names["m_f"],
                        states=_state_names("p_f", np.arange(net.n_f)), name="P_f")

    if net.dynamic:
        Sc = net.S_c[:, L].T.copy()
        r0, r1 = net.reset_target(0.0), net.reset_target(1.0)
        g = net.gamma

        def c_upd(t, x, u, params):
            theta, a = u[:k], u[k]
            return net.hidden_generator(theta) @ x + g * ((1.0 - a) * r0 + a * r1 - x)

        def c_out(t, x, u, params):
            return Sc @ x

        P_c = control.nlsys(c_upd, c_out, inputs=names["theta"] + ["a"], outputs=names["m_c"],
                            states=_state_names("p_c", np.arange(net.n_c)), name="P_c")
    else:
        lsc = m.landscape

        def c_static(t, x, u, params):
            theta, a = u[:k], u[k]
            return lsc.moments(net.theta_full(theta), m.q_at(a)).mean_clamped[L]

        P_c = control.nlsys(None, c_static, inputs=names["theta"] + ["a"], outputs=names["m_c"],
                            name="P_c")
    return LoopBlocks(K, P_f, P_c, _summing_junction(names, k))


def _outlist(names: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    src = ([f"K.{s}" for s in names["theta"]] + [f"P_f.{s}" for s in names["m_f"]]
           + [f"P_c.{s}" for s in names["m_c"]] + [f"sum.{s}" for s in names["e"]])
    out = names["theta"] + names["m_f"] + names["m_c"] + names["e"]
    return src, out


def nonlinear_loop(model: Model | LearningNetwork, clamping: str | None = None,
                   name: str = "learning_loop") -> control.InterconnectedSystem:
    """The closed learning loop as one nonlinear I/O system (``control.interconnect`` of the blocks).

    Input ``a``; outputs ``theta_<sp>, m_f_<sp>, m_c_<sp>, e_<sp>``; state
    ``(p_f, p_c, theta)`` in the order of :class:`LearningNetwork`, so
    ``loop.dynamics(0, x, [a]) == LearningNetwork.rhs(x, a)``.

    Examples
    --------
    >>> import control, numpy as np
    >>> from crnfb.feedback import load_model
    >>> from crnfb.feedback.ensembles import LearningNetwork
    >>> model = load_model("examples/isomerisation.toml")
    >>> sys = nonlinear_loop(model)
    >>> x0 = LearningNetwork(model).initial_state()
    >>> resp = control.input_output_response(sys, np.linspace(0, 5, 6), 0.0, x0,
    ...                                      solve_ivp_method="LSODA")
    >>> resp.outputs.shape[0] == sys.noutputs
    True
    """
    blocks = nonlinear_blocks(model, clamping)
    names = signal_names(_network(model, clamping).model)
    src, out = _outlist(names)
    return control.interconnect(blocks.as_list(), inplist=["P_c.a"], inputs=["a"],
                                outlist=src, outputs=out, name=name)


# -- linear blocks at the fixed point ---------------------------------------------------------------------
def _check_size(n: int, what: str) -> None:
    if n > MAX_DENSE_STATES:
        raise LoopTooLargeError(
            f"{what} has {n} states; dense python-control models are built only up to "
            f"MAX_DENSE_STATES = {MAX_DENSE_STATES}. For larger loops use the sparse reduced Jacobian "
            "LinearLoop.Jr, crnfb.analysis.stability.closed_loop_eigenvalues (sparse Arnoldi), or lower n_max")


@dataclass(frozen=True)
class _Parts:
    cols_f: np.ndarray     # positions in rest of the kept p_f / p_c / theta coordinates
    cols_c: np.ndarray
    cols_t: np.ndarray
    theta_cols: np.ndarray  # full-state columns of theta


def _parts(loop: "LinearLoop") -> _Parts:
    net = loop.net
    rest = loop.rest
    nf, nc = net.n_f, net.n_c
    cols_f = np.nonzero(rest < nf)[0]
    cols_c = np.nonzero((rest >= nf) & (rest < nf + nc))[0]
    cols_t = np.nonzero(rest >= nf + nc)[0]
    return _Parts(cols_f, cols_c, cols_t, np.arange(nf + nc, nf + nc + net.k))


def _dense(M) -> np.ndarray:
    return M.toarray() if sparse.issparse(M) else np.asarray(M)


def linear_blocks(loop: "LinearLoop", reduce_neutral: bool = True) -> LoopBlocks:
    """The loop's blocks as analytic :class:`control.StateSpace` models at the fixed point.

    Parameters
    ----------
    loop : LinearLoop
        From :func:`crnfb.analysis.linearise.linearise`.
    reduce_neutral : bool
        ``True`` (default): ``K`` keeps only the identifiable theta
        coordinates (the neutral pivots of ``loop`` eliminated; its output is
        still every ``theta_<sp>``), so the interconnection equals
        ``loop.Jr``. ``False``: ``K`` is the plain ``eps I / s`` and the
        interconnection has one extra zero eigenvalue per neutral direction.

    Returns
    -------
    LoopBlocks
        ``P_f`` (states ``p_f[i]``, the pivot of ``p_f`` eliminated:
        ``p_f[pivot] = -sum`` of the others), ``P_c`` (dynamic: states
        ``p_c[j]`` likewise; equilibrium: static gain ``[d m_c/d theta,
        d m_c/d a]``), ``K`` and ``sum``. Deviation variables from the fixed
        point throughout.

    Examples
    --------
    >>> import control
    >>> from crnfb.feedback import load_model
    >>> from crnfb.analysis.linearise import linearise
    >>> blocks = linear_blocks(linearise(load_model("examples/isomerisation.toml")))
    >>> blocks.P_c.input_labels
    ['theta_X', 'theta_Y', 'a']
    >>> G = blocks.P_f - blocks.P_c[:, :2]   # P_f - P_c from theta: DC gain = H
    >>> bool(abs(control.dcgain(G)[0, 0] - control.dcgain(G)[1, 1]) < 1e-9)
    True
    """
    net = loop.net
    model = net.model
    names = signal_names(model)
    k, E = net.k, net.eps
    _check_size(loop.n_reduced if reduce_neutral else loop.n_reduced + loop.removed.get("neutral", 0),
                "the reduced loop")
    pr = _parts(loop)
    rest = loop.rest
    J = loop.J.tocsr()
    Jr = loop.Jr.tocsr()
    Cf_full = _dense(loop.output("m_f"))
    theta_map = _dense(loop.output("theta"))         # (k, r): theta = V_t theta_rest

    # free plant
    Af = _dense(Jr[pr.cols_f][:, pr.cols_f])
    Bf = _dense(J[rest[pr.cols_f]][:, pr.theta_cols])
    Cf = Cf_full[:, pr.cols_f]
    P_f = control.ss(Af, Bf, Cf, np.zeros((k, k)), inputs=names["theta"], outputs=names["m_f"],
                     states=_state_names("p_f", rest[pr.cols_f]), name="P_f")

    # clamped plant
    if net.dynamic:
        Ac = _dense(Jr[pr.cols_c][:, pr.cols_c])
        Bc = np.hstack([_dense(J[rest[pr.cols_c]][:, pr.theta_cols]), loop.Br[pr.cols_c][:, None]])
        Cc = _dense(loop.output("m_c"))[:, pr.cols_c]
        P_c = control.ss(Ac, Bc, Cc, np.zeros((k, k + 1)), inputs=names["theta"] + ["a"],
                         outputs=names["m_c"], states=_state_names("p_c", rest[pr.cols_c] - net.n_f),
                         name="P_c")
    else:
        fp = loop.fixed_point
        dmc = net.clamped_mean_jacobian(fp.theta, fp.a)
        D = np.hstack([dmc, loop.feedthrough("m_c")[:, None]])
        P_c = control.ss(np.zeros((0, 0)), np.zeros((0, k + 1)), np.zeros((k, 0)), D,
                         inputs=names["theta"] + ["a"], outputs=names["m_c"], name="P_c")

    # controller
    if reduce_neutral:
        kept = rest[pr.cols_t] - (net.n_f + net.n_c)     # learned indices kept as states
        Ct = theta_map[:, pr.cols_t]
        K = control.ss(np.zeros((kept.size, kept.size)), np.diag(E)[kept], Ct, np.zeros((k, k)),
                       inputs=names["e"], outputs=names["theta"], states=[names["theta"][i] for i in kept],
                       name="K")
    else:
        K = control.ss(np.zeros((k, k)), np.diag(E), np.eye(k), np.zeros((k, k)),
                       inputs=names["e"], outputs=names["theta"], states=names["theta"], name="K")
    return LoopBlocks(K, P_f, P_c, _summing_junction(names, k))


def linear_loop(loop: "LinearLoop", reduce_neutral: bool = True, name: str = "learning_loop_lin"
                ) -> control.StateSpace:
    """The linearised closed loop, ``control.interconnect`` of :func:`linear_blocks`.

    Input ``a``; outputs ``theta_<sp>, m_f_<sp>, m_c_<sp>, e_<sp>``. With
    ``reduce_neutral=True`` its ``A`` equals ``loop.Jr``, ``B`` equals
    ``loop.Br`` and the output rows equal ``loop.output(name)`` (with
    ``loop.feedthrough(name)`` as ``D``).
    """
    blocks = linear_blocks(loop, reduce_neutral)
    names = signal_names(loop.net.model)
    src, out = _outlist(names)
    return control.interconnect(blocks.as_list(), inplist=["P_c.a"], inputs=["a"],
                                outlist=src, outputs=out, name=name)


def loop_transfer_blocks(loop: "LinearLoop", reduce_neutral: bool = True,
                         name: str = "L") -> control.StateSpace:
    """The loop broken at ``theta``: ``L(s) = E (P_f(s) - P_c(s)) / s`` (docs/theory.md §5).

    Inputs ``theta_in_<sp>`` (a theta perturbation injected into both
    plants, ``a = 0``); outputs ``theta_ret_<sp>``: what comes back round
    the loop, with the sign of the standard negative-feedback convention,
    ``y = L u`` (the controller's theta is ``-y``). Closing it as
    ``control.feedback(L, np.eye(k))`` (``u = -y``) gives back the closed
    loop: its poles are the eigenvalues of ``loop.Jr``, and
    ``S = (I + L)^{-1}`` is the sensitivity. The DC gain of ``s L(s) / eps``
    tends to ``H`` in the quasi-static limit.

    Margins: avoid ``control.margin`` on large models (it goes through a
    polynomial transfer function); evaluate ``L`` on a frequency grid
    (``control.frequency_response``) instead.
    """
    blocks = linear_blocks(loop, reduce_neutral)
    names = signal_names(loop.net.model)
    inp = [f"theta_in_{s}" for s in loop.net.model.learned_names]
    ret = [f"theta_ret_{s}" for s in loop.net.model.learned_names]
    inplist = [[f"P_f.{t}", f"P_c.{t}"] for t in names["theta"]]
    outlist = [("K", t, -1.0) for t in names["theta"]]
    return control.interconnect([blocks.P_f, blocks.P_c, blocks.K, blocks.sum],
                                connections=[[f"sum.{m}", f"P_c.{m}"] for m in names["m_c"]]
                                + [[f"sum.{m}", f"P_f.{m}"] for m in names["m_f"]]
                                + [[f"K.{e}", f"sum.{e}"] for e in names["e"]],
                                inplist=inplist, inputs=inp, outlist=outlist, outputs=ret,
                                ignore_inputs=["a"], name=name)
