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
  :class:`control.NonlinearIOSystem` (the parts of the network's vector field
  :class:`~crnfb.feedback.dynamics.ensembles.LoopField`) and their closed loop wired
  by :func:`control.interconnect` (input ``a``; outputs ``theta``, ``m_f``,
  ``m_c``, ``e``). Its state is ``(p_f, p_c, theta)``, the order of
  :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork`, so it can be simulated with
  :func:`control.input_output_response` or checked against the analytic
  Jacobian. Do not use :func:`control.linearize` on it for analysis: it is a
  forward difference with a fixed absolute step (see ``docs/loop.md``).

The same blocks linearised at the loop's fixed point (analytic
:class:`control.StateSpace` models) belong to the analysis side: they are
methods of the linearised loop, ``crnfb.analysis.linear.linearise.LinearLoop``
(``blocks()``, ``state_space()``, ``loop_transfer()``), built in
:mod:`crnfb.analysis.linear.linblocks` from the names and the summing junction
defined here. ``crnfb.feedback`` never imports ``crnfb.analysis``.
"""

from __future__ import annotations

from dataclasses import dataclass

import control
import numpy as np

from .ensembles import LearningNetwork
from ..model.model import Model

__all__ = ["LoopBlocks", "signal_names", "state_names", "summing_junction", "loop_outputs",
           "nonlinear_blocks", "nonlinear_loop"]

# -- names ---------------------------------------------------------------------------------------
def signal_names(model: Model) -> dict[str, list[str]]:
    """Signal names per learned species: ``{"theta": ["theta_X", ...], "m_f": ..., "m_c": ..., "e": ...}``."""
    sp = model.learned_names
    return {s: [f"{s}_{n}" for n in sp] for s in ("theta", "m_f", "m_c", "e")}


def state_names(prefix: str, idx: np.ndarray) -> list[str]:
    """``["<prefix>[i]", ...]`` for the state indices ``idx``."""
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


def summing_junction(names: dict[str, list[str]], k: int) -> control.StateSpace:
    """The summing junction ``e = m_c - m_f`` as a static :class:`control.StateSpace`."""
    D = np.hstack([np.eye(k), -np.eye(k)])
    return control.ss(np.zeros((0, 0)), np.zeros((0, 2 * k)), np.zeros((k, 0)), D,
                      inputs=names["m_c"] + names["m_f"], outputs=names["e"], name="sum")


# -- nonlinear blocks ----------------------------------------------------------------------------------
def nonlinear_blocks(model: Model | LearningNetwork, clamping: str | None = None) -> LoopBlocks:
    """The loop's blocks as nonlinear I/O systems (the parts of :attr:`LearningNetwork.field`).

    ``P_f`` has states ``p_f[i]`` (``i`` indexes ``model.space.states``);
    ``P_c`` under dynamic clamping has states ``p_c[j]`` (``j`` indexes
    ``net.clamped_states``, i.e. class state ``net.clamped_states[j]``),
    under equilibrium clamping it is static (``m_c = <n>_Qt(theta, a)``).
    ``K`` is linear (a :class:`control.StateSpace`).
    """
    net = _network(model, clamping)
    m = net.model
    names = signal_names(m)
    k, E = net.k, net.eps
    fld = net.field          # the one vector field (plain means), taken apart block by block

    K = control.ss(np.zeros((k, k)), np.diag(E), np.eye(k), np.zeros((k, k)),
                   inputs=names["e"], outputs=names["theta"], states=names["theta"], name="K")

    def f_upd(t, x, u, params):
        return fld.free_flow(x, u)

    def f_out(t, x, u, params):
        return fld.mean(fld.SfL, x)

    P_f = control.nlsys(f_upd, f_out, inputs=names["theta"], outputs=names["m_f"],
                        states=state_names("p_f", np.arange(net.n_f)), name="P_f")

    if net.dynamic:
        def c_upd(t, x, u, params):
            return fld.clamped_flow(x, u[:k], float(u[k]))

        def c_out(t, x, u, params):
            return fld.mean(fld.ScL, x)

        P_c = control.nlsys(c_upd, c_out, inputs=names["theta"] + ["a"], outputs=names["m_c"],
                            states=state_names("p_c", np.arange(net.n_c)), name="P_c")
    else:
        def c_static(t, x, u, params):
            return fld.clamped_mean(u[:k], float(u[k]))

        P_c = control.nlsys(None, c_static, inputs=names["theta"] + ["a"], outputs=names["m_c"],
                            name="P_c")
    return LoopBlocks(K, P_f, P_c, summing_junction(names, k))


def loop_outputs(names: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """``(outlist, outputs)`` for :func:`control.interconnect`: theta, m_f, m_c, e of the blocks."""
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
    >>> from crnfb.feedback.dynamics.ensembles import LearningNetwork
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
    src, out = loop_outputs(names)
    return control.interconnect(blocks.as_list(), inplist=["P_c.a"], inputs=["a"],
                                outlist=src, outputs=out, name=name)
