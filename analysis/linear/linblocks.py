"""The learning loop's blocks linearised at its fixed point (docs/theory.md §5).

Analytic :class:`control.StateSpace` models of the four blocks of
:mod:`crnfb.feedback.dynamics.loop` (``K``, ``P_f``, ``P_c``, ``sum``) at the loop's
fixed point, in the reduced coordinates of
:class:`~crnfb.analysis.linear.linearise.LinearLoop`: each ensemble restricted to its
tangent space ``sum dp = 0`` by eliminating its pivot state, and (by default)
the controller restricted to the identifiable theta directions by eliminating
the neutral pivots exactly as :func:`~crnfb.analysis.linear.linearise.linearise`
does. The interconnection's state matrix *is* ``LinearLoop.Jr`` (same
coordinates, same order). Like python-control's ``linearize``, which returns
a ``StateSpace``, the linearised loop hands these out itself:
``LinearLoop.blocks()``, ``LinearLoop.state_space()`` and
``LinearLoop.loop_transfer()`` call the functions here.

Example: take the free plant out and look at it alone::

    >>> import control
    >>> from crnfb.feedback import load_model
    >>> from crnfb.analysis.linear.linearise import linearise
    >>> lin = linearise(load_model("examples/birth_death.toml"))
    >>> blocks = lin.blocks()
    >>> P_f = blocks.P_f                       # theta_X -> m_f_X, 60 states
    >>> round(float(control.dcgain(P_f)), 6)    # = Var_pi(x) = mu = 5 (Poisson)
    5.0
    >>> T = lin.state_space()                  # a -> theta, m_f, m_c, e
    >>> T.input_labels, T.output_labels[:2]
    (['a'], ['theta_X', 'm_f_X'])

Dense models are built only up to :data:`crnfb.feedback.numerics.sizes.MAX_DENSE_STATES` states (a
:class:`LoopTooLargeError` beyond); for larger loops use the sparse
``LinearLoop.Jr`` and :func:`crnfb.analysis.linear.stability.closed_loop_eigenvalues`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import control
import numpy as np
from scipy import sparse

from crnfb.feedback.dynamics.loop import LoopBlocks, loop_outputs, signal_names, state_names, summing_junction
from crnfb.feedback.numerics import sizes

if TYPE_CHECKING:  # pragma: no cover
    from crnfb.analysis.linear.linearise import LinearLoop

__all__ = ["LoopTooLargeError", "linear_blocks", "linear_loop", "loop_transfer_blocks"]


class LoopTooLargeError(ValueError):
    """The loop has too many states for dense python-control models."""


def _check_size(n: int, what: str) -> None:
    if n > sizes.MAX_DENSE_STATES:
        raise LoopTooLargeError(
            f"{what} has {n} states; dense python-control models are built only up to "
            f"crnfb.feedback.numerics.sizes.MAX_DENSE_STATES = {sizes.MAX_DENSE_STATES}. "
            "For larger loops use the sparse "
            "reduced Jacobian "
            "LinearLoop.Jr, crnfb.analysis.linear.stability.closed_loop_eigenvalues (sparse Arnoldi), or lower n_max")


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
        From :func:`crnfb.analysis.linear.linearise.linearise`.
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
    >>> from crnfb.analysis.linear.linearise import linearise
    >>> from crnfb.analysis.linear.linblocks import linear_blocks
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
    k = net.k
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
                     states=state_names("p_f", rest[pr.cols_f]), name="P_f")

    # clamped plant
    if net.dynamic:
        Ac = _dense(Jr[pr.cols_c][:, pr.cols_c])
        Bc = np.hstack([_dense(J[rest[pr.cols_c]][:, pr.theta_cols]), loop.Br[pr.cols_c][:, None]])
        Cc = _dense(loop.output("m_c"))[:, pr.cols_c]
        P_c = control.ss(Ac, Bc, Cc, np.zeros((k, k + 1)), inputs=names["theta"] + ["a"],
                         outputs=names["m_c"], states=state_names("p_c", rest[pr.cols_c] - net.n_f),
                         name="P_c")
    else:
        fp = loop.fixed_point
        dmc = net.clamped_mean_jacobian(fp.theta, fp.a)
        D = np.hstack([dmc, loop.feedthrough("m_c")[:, None]])
        P_c = control.ss(np.zeros((0, 0)), np.zeros((0, k + 1)), np.zeros((k, 0)), D,
                         inputs=names["theta"] + ["a"], outputs=names["m_c"], name="P_c")

    K = _controller(loop, pr, theta_map, names, reduce_neutral)
    return LoopBlocks(K, P_f, P_c, summing_junction(names, k))


def _controller(loop: "LinearLoop", pr, theta_map: np.ndarray, names: dict,
                reduce_neutral: bool) -> control.StateSpace:
    """The integrating controller ``K = eps / s``, on the identifiable theta coordinates if reduced."""
    net = loop.net
    k, E = net.k, net.eps
    if reduce_neutral:
        kept = loop.rest[pr.cols_t] - (net.n_f + net.n_c)     # learned indices kept as states
        Ct = theta_map[:, pr.cols_t]
        return control.ss(np.zeros((kept.size, kept.size)), np.diag(E)[kept], Ct, np.zeros((k, k)),
                          inputs=names["e"], outputs=names["theta"], states=[names["theta"][i] for i in kept],
                          name="K")
    return control.ss(np.zeros((k, k)), np.diag(E), np.eye(k), np.zeros((k, k)),
                      inputs=names["e"], outputs=names["theta"], states=names["theta"], name="K")


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
    src, out = loop_outputs(names)
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
