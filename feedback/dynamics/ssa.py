"""Exact stochastic simulation of the finite-ensemble learning network (docs/theory.md §6).

``M_f`` free and ``M_c`` clamped copies of the model network and one
parameter species count ``L_i`` per learned species in volume ``Omega``
(``lambda_i = L_i / Omega``, ``theta_i = ln lambda_i``). The ensembles are
held as occupation counts per copy state (``N_f[s]``, ``N_c[c]``), so the
cost of an event does not grow with the number of copies.

Algorithm (Gillespie's direct method, exact; docs/stochastic.md)
------------------------------------------------------------------
The channels are grouped so that a change of ``lambda`` touches only a few
numbers:

- one channel per reaction direction ``r`` of a free copy, propensity
  ``lambda^{expo_r} * sum_s N_f[s] coef_r(s)`` (catalytic scheme: the
  ``lambda`` factor is the same for every source state); the sum is kept
  incrementally and a Fenwick (binary indexed) tree per direction over the
  weights ``N_f[s] coef_r(s)`` picks the source state in ``O(log S)``;
- the same for the hidden-only reaction directions of the clamped copies;
- one reset channel (rate ``gamma M_c``): a clamped copy chosen uniformly
  (a Fenwick tree over ``N_c``) is replaced by a sample of
  ``Q(a(t))(v) u(h|v)`` (``LearningNetwork.reset_target``; binary search
  in its cumulative table);
- per learned species a production channel ``eps_i L_i sum_c N_c[c] n_i(c) / M_c``
  and a degradation channel ``eps_i L_i sum_s N_f[s] n_i(s) / M_f``.

A learning event changes ``lambda_i``, so only the ``lambda`` factors of
the directions whose exponent involves species ``i`` are recomputed. A copy
jump ``s -> s'`` updates, per direction, two tree entries and the sum.
Floating sums are rebuilt from the integer counts every 65536 events, so
rounding never accumulates. The environment ``a(t)`` must be piecewise
constant; at a breakpoint the reset table changes and the waiting time is
redrawn (exact by memorylessness). Output times are only observed: the
pending event time is kept, so the sample path does not depend on how many
points are recorded or on the chunking used for progress reports.

Under ``clamping = "equilibrium"`` (the idealised clamped ensemble, docs/theory.md
section 4) there are no clamped copies: the production propensity uses the
exact ``m_c(theta) = <n>_Qt``, recomputed after each learning event of a
hidden species (``pi(h|v)`` does not depend on the visible species' theta;
without hidden species ``m_c = E_Q[n]``); with one hidden learned species it
is a function of that species' count alone and is tabulated on it.

Reproducibility: ``numpy.random.SeedSequence(seed).spawn(replicates)``
gives each replicate its own stream; the initial multinomial samples come
from a NumPy ``Generator`` on that stream and the event loop from a
xoshiro256** generator seeded from it (inside numba). Replicate ``i``'s
path depends only on ``(seed, i)`` and the model, not on the number of
replicates or threads. Replicates run in parallel on threads (the compiled
event loop releases the GIL).
"""

from __future__ import annotations

import math
import numbers
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit

from .ensembles import LearningNetwork
from ..io.files import atomic_file
from ..errors import ModelError
from ..model.model import Model
from ..numerics.progress import progress_bar

REBUILD_EVERY = 1 << 16


# ---------------------------------------------------------------------------------------------
# random numbers: xoshiro256** (Blackman & Vigna), state = 4 x uint64 per replicate
# ---------------------------------------------------------------------------------------------
@njit(inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(inline="always")
def _next_u64(s):
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(inline="always")
def _uniform(s):
    """Uniform on [0, 1) with 53 random bits."""
    return float(_next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# ---------------------------------------------------------------------------------------------
# Fenwick trees (one per row of a 2-D array; size P = power of two >= n; 1-based)
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _fen_build(tree, row, w, n, P):
    for i in range(P + 1):
        tree[row, i] = 0.0
    for i in range(n):
        tree[row, i + 1] = w[i]
    for i in range(1, P + 1):
        j = i + (i & -i)
        if j <= P:
            tree[row, j] += tree[row, i]


@njit(inline="always")
def _fen_add(tree, row, idx, delta, P):
    i = idx + 1
    while i <= P:
        tree[row, i] += delta
        i += i & -i


@njit(inline="always")
def _fen_find(tree, row, u, P):
    """Smallest 0-based index whose prefix sum exceeds ``u`` (P if none)."""
    pos = 0
    mask = P
    while mask > 0:
        nxt = pos + mask
        if nxt <= P and tree[row, nxt] <= u:
            pos = nxt
            u -= tree[row, nxt]
        mask >>= 1
    return pos


@njit(cache=True)
def _linear_pick(N, coef, u):
    """Fallback (rounding): pick by a linear scan over the exact weights."""
    n = N.size
    acc = 0.0
    last = -1
    for s in range(n):
        w = N[s] * coef[s]
        if w > 0:
            acc += w
            last = s
            if acc > u:
                return s
    return last


# ---------------------------------------------------------------------------------------------
# the event loop of one replicate
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _lamfac(lam, expo_row):
    f = 1.0
    for i in range(expo_row.size):
        for _ in range(expo_row[i]):
            f *= lam[i]
    return f


@njit(cache=True)
def _eq_clamped_mean(lam, states, logfact, vis, q, learned, out):
    """Exact ``<n>_Qt`` of the learned species (equilibrium clamping) at ``lambda``."""
    S, N = states.shape
    nv = q.size
    lw = np.empty(S)
    for s in range(S):
        acc = -logfact[s]
        for i in range(N):
            if states[s, i] != 0:
                acc += states[s, i] * math.log(lam[i])
        lw[s] = acc
    vmax = np.full(nv, -np.inf)
    for s in range(S):
        if lw[s] > vmax[vis[s]]:
            vmax[vis[s]] = lw[s]
    Z = np.zeros(nv)
    for s in range(S):
        Z[vis[s]] += math.exp(lw[s] - vmax[vis[s]])
    for j in range(learned.size):
        out[j] = 0.0
    for s in range(S):
        v = vis[s]
        if q[v] > 0:
            w = q[v] * math.exp(lw[s] - vmax[v]) / Z[v]
            for j in range(learned.size):
                out[j] += w * states[s, learned[j]]


@njit(cache=True)
def _eq_mean_at(lam, states, logfact, vis, q, learned, out, mean_table, table_j, L):
    """:func:`_eq_clamped_mean`, tabulated on ``L[table_j]`` when one hidden learned species is the only
    one that moves ``<n>_Qt`` (``mean_table`` has rows then; NaN = not yet computed): the mean is a
    function of that count alone, so each value is computed once per call of the event loop."""
    if mean_table.shape[0] == 0:
        _eq_clamped_mean(lam, states, logfact, vis, q, learned, out)
        return
    i = L[table_j]
    if 0 <= i < mean_table.shape[0]:
        if mean_table[i, 0] == mean_table[i, 0]:
            for j in range(out.size):
                out[j] = mean_table[i, j]
            return
        _eq_clamped_mean(lam, states, logfact, vis, q, learned, out)
        for j in range(out.size):
            mean_table[i, j] = out[j]
        return
    _eq_clamped_mean(lam, states, logfact, vis, q, learned, out)


@njit(inline="always")
def _functionals(Nf, Nc, fun_f, fun_c, out, pos):
    """``out[pos, i] = fun_f[i] . N_f + fun_c[i] . N_c``: linear functionals of the copy counts."""
    for i in range(fun_f.shape[0]):
        acc = 0.0
        for s in range(Nf.size):
            if Nf[s] != 0:
                acc += fun_f[i, s] * Nf[s]
        for c in range(Nc.size):
            if Nc[c] != 0:
                acc += fun_c[i, c] * Nc[c]
        out[pos, i] = acc


@njit(inline="always")
def _move(s, d, t, N, occ, last, tree, coef, sums, lamfac, a, a_dir, P, lx, Ssum, eps, L, M, a_learn):
    """One copy of an ensemble moves ``s -> d`` at time ``t``: counts, occupancy integrals,
    per-direction trees and sums, the direction propensities (``a[a_dir + p]``) and the
    learning propensities fed by this ensemble (``a[a_learn + j]``)."""
    occ[s] += N[s] * (t - last[s])
    last[s] = t
    occ[d] += N[d] * (t - last[d])
    last[d] = t
    N[s] -= 1
    N[d] += 1
    for p in range(coef.shape[0]):
        cs = coef[p, s]
        cd = coef[p, d]
        if cs != 0.0:
            _fen_add(tree, p, s, -cs, P)
        if cd != 0.0:
            _fen_add(tree, p, d, cd, P)
        if cs != cd:
            sums[p] += cd - cs
            a[a_dir + p] = lamfac[p] * sums[p]
    for j in range(Ssum.size):
        dl = lx[d, j] - lx[s, j]
        if dl != 0:
            Ssum[j] += dl
            a[a_learn + j] = eps[j] * L[j] * Ssum[j] / M


@njit(cache=True, nogil=True)
def _advance(t_stop, Nf, Nc, L, rng, tv, iv, out_times, out_theta, out_mf, out_mc, occ_f, occ_c, mc,
             fcoef, fdst, fexpo, ccoef, cdst, cexpo, lf, lc, learned, lam0, lscale, eps, gamma, Mf, Mc,
             seg_t, seg_cdf, dynamic, eq_states, eq_logfact, eq_vis, seg_q, eq_dep, fun_f, fun_c, out_fun):
    """Advance one replicate to ``t_stop``, recording every output time passed.

    ``tv = [t, t_next]`` (``t_next < 0``: no pending event time), ``iv =
    [segment, events, output position]``; ``occ_f``/``occ_c`` accumulate
    ``int N dt``; ``mc`` holds the exact clamped mean under equilibrium clamping.
    """
    S = Nf.size
    C = Nc.size
    Df = fcoef.shape[0]
    Dc = ccoef.shape[0]
    k = L.size
    P = 1
    while P < S:
        P *= 2
    Pc = 1
    while Pc < max(C, 1):
        Pc *= 2
    IR = Df + Dc                  # reset channel
    IP = IR + 1                   # production channels
    ID = IP + k                   # degradation channels
    K = ID + k

    t = tv[0]
    t_next = tv[1]
    seg = iv[0]
    events = iv[1]
    pos = iv[2]
    G = seg_t.size
    n_out = out_times.size

    lam = lam0.copy()
    for j in range(k):
        lam[learned[j]] = L[j] * lscale[j]
    lamf = np.empty(Df)
    for q in range(Df):
        lamf[q] = _lamfac(lam, fexpo[q])
    lamc = np.empty(Dc)
    for q in range(Dc):
        lamc[q] = _lamfac(lam, cexpo[q])
    # directions whose lambda factor depends on learned species j
    fdep = np.zeros((k, Df), np.bool_)
    cdep = np.zeros((k, Dc), np.bool_)
    for j in range(k):
        for q in range(Df):
            fdep[j, q] = fexpo[q, learned[j]] != 0
        for q in range(Dc):
            cdep[j, q] = cexpo[q, learned[j]] != 0

    # equilibrium clamping with one hidden learned species: <n>_Qt tabulated on its count
    table_j = -1
    n_dep = 0
    for j in range(k):
        if eq_dep[j]:
            n_dep += 1
            table_j = j
    if dynamic or n_dep != 1:
        mean_table = np.empty((0, max(k, 1)))
        table_j = 0
    else:
        mean_table = np.full((4 * max(L[table_j], 1) + 1024, max(k, 1)), np.nan)
    treef = np.zeros((max(Df, 1), P + 1))
    treec = np.zeros((max(Dc, 1), Pc + 1))
    treen = np.zeros((1, Pc + 1))
    sumf = np.zeros(Df)
    sumc = np.zeros(Dc)
    wbuf = np.empty(max(S, C, 1))
    Sf = np.zeros(k, np.int64)
    Sc = np.zeros(k, np.int64)
    for s in range(S):
        for j in range(k):
            Sf[j] += Nf[s] * lf[s, j]
    for c in range(C):
        for j in range(k):
            Sc[j] += Nc[c] * lc[c, j]
    last_f = np.full(S, t)
    last_c = np.full(max(C, 1), t)
    a = np.zeros(K)

    rebuild = True
    since = 0
    while True:
        if rebuild:
            for q in range(Df):
                acc = 0.0
                for s in range(S):
                    wbuf[s] = Nf[s] * fcoef[q, s]
                    acc += wbuf[s]
                _fen_build(treef, q, wbuf, S, P)
                sumf[q] = acc
                a[q] = lamf[q] * acc
            for q in range(Dc):
                acc = 0.0
                for c in range(C):
                    wbuf[c] = Nc[c] * ccoef[q, c]
                    acc += wbuf[c]
                _fen_build(treec, q, wbuf, C, Pc)
                sumc[q] = acc
                a[Df + q] = lamc[q] * acc
            if dynamic:
                for c in range(C):
                    wbuf[c] = Nc[c]
                _fen_build(treen, 0, wbuf, C, Pc)
                a[IR] = gamma * Mc
            else:
                a[IR] = 0.0
                if eq_dep.any():
                    _eq_mean_at(lam, eq_states, eq_logfact, eq_vis, seg_q[seg], learned, mc, mean_table, table_j, L)
            for j in range(k):
                if dynamic:
                    a[IP + j] = eps[j] * L[j] * Sc[j] / Mc
                else:
                    a[IP + j] = eps[j] * L[j] * mc[j]
                a[ID + j] = eps[j] * L[j] * Sf[j] / Mf
            rebuild = False
            since = 0

        a0 = 0.0
        for q in range(K):
            a0 += a[q]
        if t_next < 0.0:
            if a0 > 0.0:
                t_next = t - math.log(1.0 - _uniform(rng)) / a0
            else:
                t_next = np.inf
        # the next deterministic boundary: a breakpoint of a(t) or the end of this call
        t_lim = t_stop
        at_seg = False
        if seg + 1 < G and seg_t[seg + 1] <= t_stop:
            t_lim = seg_t[seg + 1]
            at_seg = True
        if t_next > t_lim:
            while pos < n_out and out_times[pos] <= t_lim:
                for j in range(k):
                    out_theta[pos, j] = math.log(L[j] * lscale[j]) if L[j] > 0 else -np.inf
                    out_mf[pos, j] = Sf[j] / Mf
                    out_mc[pos, j] = Sc[j] / Mc if dynamic else mc[j]
                _functionals(Nf, Nc, fun_f, fun_c, out_fun, pos)
                pos += 1
            t = t_lim
            if at_seg:
                seg += 1
                t_next = -1.0          # propensities change: redraw
                if not dynamic:
                    mean_table[:] = np.nan      # the clamped law q changed
                    _eq_mean_at(lam, eq_states, eq_logfact, eq_vis, seg_q[seg], learned, mc, mean_table, table_j, L)
                    for j in range(k):
                        a[IP + j] = eps[j] * L[j] * mc[j]
                continue
            break
        while pos < n_out and out_times[pos] < t_next:
            for j in range(k):
                out_theta[pos, j] = math.log(L[j] * lscale[j]) if L[j] > 0 else -np.inf
                out_mf[pos, j] = Sf[j] / Mf
                out_mc[pos, j] = Sc[j] / Mc if dynamic else mc[j]
            _functionals(Nf, Nc, fun_f, fun_c, out_fun, pos)
            pos += 1
        t = t_next
        t_next = -1.0

        # -- which channel
        u = _uniform(rng) * a0
        ch = -1
        acc = 0.0
        for q in range(K):
            if a[q] > 0.0:
                acc += a[q]
                ch = q
                if acc > u:
                    break
        events += 1
        since += 1
        if since >= REBUILD_EVERY:
            rebuild = True

        if ch < Df:
            # a free copy jumps along direction ch
            q = ch
            u = _uniform(rng) * sumf[q]
            s = _fen_find(treef, q, u, P)
            if s >= S or Nf[s] == 0 or fcoef[q, s] == 0.0:
                s = _linear_pick(Nf, fcoef[q], u)
                rebuild = True
            d = fdst[q, s]
            _move(s, d, t, Nf, occ_f, last_f, treef, fcoef, sumf, lamf, a, 0, P, lf, Sf, eps, L, Mf, ID)
        elif ch < IP:
            if ch < IR:
                # a clamped copy jumps along hidden direction q
                q = ch - Df
                u = _uniform(rng) * sumc[q]
                c = _fen_find(treec, q, u, Pc)
                if c >= C or Nc[c] == 0 or ccoef[q, c] == 0.0:
                    c = _linear_pick(Nc, ccoef[q], u)
                    rebuild = True
                d = cdst[q, c]
            else:
                # reset: a uniformly chosen clamped copy gets a fresh sample of Q(a) u(h|v)
                u = _uniform(rng) * Mc
                c = _fen_find(treen, 0, u, Pc)
                if c >= C or Nc[c] == 0:
                    c = _linear_pick(Nc, np.ones(C), u)
                    rebuild = True
                u = _uniform(rng)
                cdf = seg_cdf[seg]
                lo = 0
                hi = C - 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if cdf[mid] > u:
                        hi = mid
                    else:
                        lo = mid + 1
                d = lo
            if d != c:
                _fen_add(treen, 0, c, -1.0, Pc)
                _fen_add(treen, 0, d, 1.0, Pc)
                _move(c, d, t, Nc, occ_c, last_c, treec, ccoef, sumc, lamc, a, Df, Pc, lc, Sc, eps, L, Mc, IP)
        else:
            # learning event: production or degradation of L_j
            if ch < ID:
                j = ch - IP
                L[j] += 1
            else:
                j = ch - ID
                L[j] -= 1
            sp = learned[j]
            lam[sp] = L[j] * lscale[j]
            for q in range(Df):
                if fdep[j, q]:
                    lamf[q] = _lamfac(lam, fexpo[q])
                    a[q] = lamf[q] * sumf[q]
            for q in range(Dc):
                if cdep[j, q]:
                    lamc[q] = _lamfac(lam, cexpo[q])
                    a[Df + q] = lamc[q] * sumc[q]
            if not dynamic and eq_dep[j]:
                _eq_mean_at(lam, eq_states, eq_logfact, eq_vis, seg_q[seg], learned, mc, mean_table, table_j, L)
                for i in range(k):
                    a[IP + i] = eps[i] * L[i] * mc[i]
            elif dynamic:
                a[IP + j] = eps[j] * L[j] * Sc[j] / Mc
            else:
                a[IP + j] = eps[j] * L[j] * mc[j]
            a[ID + j] = eps[j] * L[j] * Sf[j] / Mf

    # flush the occupancy integrals to t_stop
    for s in range(S):
        occ_f[s] += Nf[s] * (t - last_f[s])
    for c in range(C):
        occ_c[c] += Nc[c] * (t - last_c[c])
    tv[0] = t
    tv[1] = t_next
    iv[0] = seg
    iv[1] = events
    iv[2] = pos


# ---------------------------------------------------------------------------------------------
# Python side: structure, environment segments, start, result
# ---------------------------------------------------------------------------------------------
def _directions(edges_by_direction, n_states: int, n_species: int):
    """Dense per-direction tables ``coef[q, s]``, ``dst[q, s]`` and integer exponents ``expo[q]``."""
    D = len(edges_by_direction)
    coef = np.zeros((D, n_states))
    dst = np.zeros((D, n_states), np.int64)
    expo = np.zeros((D, n_species), np.int64)
    for q, (src, d, c, e) in enumerate(edges_by_direction):
        coef[q, src] = c
        dst[q, src] = d
        expo[q] = np.rint(e).astype(np.int64)
    return coef, dst, expo


def _segments(a_signal, t_end: float) -> tuple[np.ndarray, np.ndarray]:
    """Start times and values of the constant pieces of ``a(t)`` on ``[0, t_end]``.

    ``a_signal``: None (a = 0), a number, or a callable ``a(t)`` with
    ``breakpoints`` (a sequence of times, or a method returning them, called
    with ``(t0, t1)`` if it takes arguments). The signal must be constant
    between breakpoints (checked at a few points per piece).
    """
    if a_signal is None:
        return np.zeros(1), np.zeros(1)
    if isinstance(a_signal, numbers.Real):
        return np.zeros(1), np.array([float(a_signal)])
    if not callable(a_signal):
        raise ModelError(f"a_signal must be None, a number or a signal a(t); got {a_signal!r}")
    if not getattr(a_signal, "piecewise_constant", True):
        raise ModelError(f"the SSA needs a piecewise-constant environment a(t); {type(a_signal).__name__} is not "
                         "(use Constant, Step or Telegraph signals)")
    bp = getattr(a_signal, "breakpoints", ())
    if callable(bp):
        try:
            bp = bp(0.0, t_end)
        except TypeError:
            bp = bp()
    bp = np.unique(np.asarray([b for b in np.atleast_1d(np.asarray(bp, float)) if 0.0 < b < t_end], float))
    starts = np.concatenate([[0.0], bp])
    ends = np.concatenate([bp, [t_end]])
    values = np.empty(starts.size)
    for g, (t0, t1) in enumerate(zip(starts, ends)):
        probe = t0 + (t1 - t0) * np.array([1e-9, 0.25, 0.5, 0.75, 1 - 1e-9])
        vals = np.array([float(a_signal(x)) for x in probe])
        if np.ptp(vals) > 1e-12 * max(1.0, np.abs(vals).max()):
            raise ModelError(f"the SSA needs a piecewise-constant environment a(t); "
                             f"{type(a_signal).__name__} varies on [{t0:g}, {t1:g}] "
                             f"({vals.min():g}..{vals.max():g}). Use Constant, Step or Telegraph signals")
        values[g] = vals[2]
    return starts, values


@dataclass(frozen=True, eq=False)
class SSATrajectory:
    """Replicated SSA trajectories of the finite-ensemble learning network.

    Attributes
    ----------
    t : ndarray (T,)              output times
    theta : ndarray (R, T, k)     ``ln(L_i / Omega)`` of the learned species
    m_f, m_c : ndarray (R, T, k)  ensemble means of the learned species (free, clamped;
                                  under equilibrium clamping ``m_c`` is the exact ``<n>_Qt``)
    a : ndarray (T,)              environment mixing weight at the output times
    events : ndarray (R,)         events simulated per replicate
    seed : int                    the seed (replicate i uses ``SeedSequence(seed).spawn(R)[i]``)
    names : tuple                 learned species
    clamping : str
    learning : bool               False: theta frozen (copy dynamics only)
    cpu_seconds : float           CPU time of the event loop (all threads; includes the one-off
                                  compilation when no numba cache exists yet)
    occupancy_f, occupancy_c : ndarray (R, S) / (R, C) or None
        Time-averaged copy counts per state over ``[occupancy_from, t_end]``.
    occupancy_from : float or None
    functionals : ndarray (R, T, F) or None
        The linear functionals of the copy counts asked for (``simulate_ssa(functionals=...)``).
    """

    t: np.ndarray
    theta: np.ndarray
    m_f: np.ndarray
    m_c: np.ndarray
    a: np.ndarray
    events: np.ndarray
    seed: int
    names: tuple
    clamping: str
    learning: bool
    cpu_seconds: float
    occupancy_f: np.ndarray | None = None
    occupancy_c: np.ndarray | None = None
    occupancy_from: float | None = None
    model: Model | None = field(default=None, repr=False)
    functionals: np.ndarray | None = None

    @property
    def replicates(self) -> int:
        return self.theta.shape[0]

    def divergence(self) -> np.ndarray:
        """``D(Q(a(t)) || P_theta(t))`` per replicate and output time, exact (R, T)."""
        if self.model is None:
            raise ValueError("the trajectory carries no model; D cannot be computed")
        out: np.ndarray = np.empty(self.theta.shape[:2])
        for r in range(out.shape[0]):
            for i in range(out.shape[1]):
                th = self.theta[r, i]
                out[r, i] = self.model.divergence(th, float(self.a[i])) if np.all(np.isfinite(th)) else np.inf
        return out

    def to_csv(self, path, *, overwrite: bool = True, inputs=()) -> Path:
        """Write the docs/cli.md simulate CSV: ``time, theta_*, m_f_*, m_c_*, D, a``.

        Same columns as the ODE trajectories of :mod:`crnfb.feedback.dynamics.integrate` (``a``:
        the environment's mixing weight).

        With several replicates a leading ``replicate`` column is added. The
        file is written to a temporary name and renamed (never half-written).
        """
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ModelError(f"cannot write {path}: folder {folder} does not exist")
        D = self.divergence()
        cols = (["time"] + [f"theta_{n}" for n in self.names] + [f"m_f_{n}" for n in self.names]
                + [f"m_c_{n}" for n in self.names] + ["D", "a"])
        R, T, _ = self.theta.shape
        blocks = []
        for r in range(R):
            blk = np.column_stack([self.t, self.theta[r], self.m_f[r], self.m_c[r], D[r], self.a])
            blocks.append(np.column_stack([np.full(T, r), blk]) if R > 1 else blk)
        data = np.vstack(blocks)
        header = ",".join((["replicate"] if R > 1 else []) + cols)
        fmt = (["%d"] if R > 1 else []) + ["%.10g"] * len(cols)
        with atomic_file(path, "w", newline="", overwrite=overwrite, inputs=inputs) as fh:
            np.savetxt(fh, data, delimiter=",", header=header, comments="", fmt=fmt)
        return path


@dataclass(frozen=True, eq=False)
class _Static:
    """Arrays the event loop needs (shared by the replicates)."""

    net: LearningNetwork
    dynamic: bool
    fcoef: np.ndarray
    fdst: np.ndarray
    fexpo: np.ndarray
    ccoef: np.ndarray
    cdst: np.ndarray
    cexpo: np.ndarray
    lf: np.ndarray
    lc: np.ndarray
    learned: np.ndarray
    lam0: np.ndarray
    eq_states: np.ndarray
    eq_logfact: np.ndarray
    eq_vis: np.ndarray
    eq_dep: np.ndarray        # learned species whose theta moves <n>_Qt (the hidden ones)


def _static(model: Model, clamping: str | None) -> _Static:
    net = LearningNetwork(model, clamping)
    space = model.space
    N = model.network.n_species
    L = model.learned
    fdirs = [(e.src, e.dst, e.coef, e.exponent) for e in space.edges]
    fcoef, fdst, fexpo = _directions(fdirs, space.size, N)
    if net.dynamic:
        he = net.hidden_edges
        cdirs = []
        for r, fw in sorted({(int(r), bool(f)) for r, f in zip(he.reaction, he.forward)}):
            m = (he.reaction == r) & (he.forward == fw)
            cdirs.append((he.src[m], he.dst[m], he.coef[m], he.expo[m][0]))
        ccoef, cdst, cexpo = _directions(cdirs, net.n_c, N)
        lc = space.states[net.clamped_states][:, L].astype(np.int64)
    else:
        ccoef, cdst, cexpo = np.zeros((0, 0)), np.zeros((0, 0), np.int64), np.zeros((0, N), np.int64)
        lc = np.zeros((0, L.size), np.int64)
    lf = space.states[:, L].astype(np.int64)
    c = np.ascontiguousarray   # one compiled signature: every array C-ordered
    return _Static(net, net.dynamic, c(fcoef), c(fdst), c(fexpo), c(ccoef), c(cdst), c(cexpo), c(lf), c(lc),
                   c(L, dtype=np.int64), c(np.exp(model.network.theta0)), c(space.states, dtype=np.int64),
                   c(space.log_factorial, dtype=float), c(space.visible_index, dtype=np.int64),
                   c(np.isin(L, model.network.hidden)))


#: Largest expected number of events a run may need (the compiled loop does ~1e7-1e8 events/s per core).
MAX_EVENTS = 2e9


def expected_event_rate(model: Model, theta: np.ndarray | None = None) -> float:
    """Expected events per unit time of the finite-ensemble network at ``theta`` (start of a run).

    Copy jumps: ``M_f sum_n pi(n) r(n)`` for the free ensemble and the same
    for the clamped one (``r(n)``: total propensity out of ``n``, from the
    class's edges); parameter species: ``Omega lambda_i`` creations and
    about as many removals per unit of ``eps_i`` (docs/theory.md §6).
    """
    theta = model.theta0 if theta is None else np.asarray(theta, float)
    full = model.full_theta(theta)
    space = model.space
    pi = space.stationary(full)
    with np.errstate(over="ignore"):
        out = np.zeros(space.size)
        for e in space.edges:
            np.add.at(out, e.src, e.coef * np.exp(float(full @ e.exponent)))
        per_copy = float(pi @ out)
        ens = model.ensembles
        learn = float(np.sum(2.0 * model.eps * ens.omega * np.exp(theta)))
    return (ens.free + ens.clamped) * per_copy + learn


def ssa_work_estimate(model: Model, t_end: float, replicates: int = 1) -> float:
    """Expected events of a run (:func:`expected_event_rate` times ``t_end`` and replicates)."""
    return expected_event_rate(model) * float(t_end) * int(replicates)


def _check_ssa_run(model: Model, t_end: float, n_points: int, replicates: int) -> None:
    """Validate the run length and sizes of :func:`simulate_ssa`, and refuse runs of hours."""
    if not (np.isfinite(t_end) and t_end > 0):
        raise ModelError(f"t_end must be a positive number, got {t_end!r}")
    if int(n_points) < 2:
        raise ModelError(f"n_points must be >= 2, got {n_points!r}")
    if int(replicates) < 1:
        raise ModelError(f"replicates must be >= 1, got {replicates!r}")
    events = ssa_work_estimate(model, t_end, replicates)
    if not events <= MAX_EVENTS:
        raise ModelError(f"the run would need about {events:.3g} events (expected event rate "
                         f"{events / (float(t_end) * int(replicates)):.3g} per unit time, t_end = {t_end:g}) > "
                         f"{MAX_EVENTS:.0e}, hours of compute; shorten t_end or the ensembles "
                         "([ensembles] free, clamped, omega)", key="--t-end")


def _environment_tables(model: Model, st, seg_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per signal segment: reset-target CDFs (dynamic clamping) or clamped laws q (equilibrium)."""
    if np.any(seg_a < 0) or np.any(seg_a > 1):
        raise ModelError(f"the mixing weight a(t) must lie in [0, 1] (Q = (1-a) Q_1 + a Q_2); got "
                         f"{seg_a.min():g}..{seg_a.max():g}")
    if st.dynamic:
        cdf = np.cumsum(np.array([st.net.reset_target(a) for a in seg_a]), axis=1)
        cdf /= cdf[:, -1:]
        cdf[:, -1] = 1.0 + 1e-12   # every uniform in [0,1) finds a state
        seg_q = np.zeros((seg_a.size, 1))
    else:
        cdf = np.zeros((seg_a.size, 1))
        seg_q = np.array([model.q_at(a) for a in seg_a])
    return np.ascontiguousarray(cdf), np.ascontiguousarray(seg_q)


def _parameter_copies(model: Model, theta: np.ndarray, omega: float,
                      learn: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start copy numbers ``L0`` of the parameter species and the scale with ``lambda = scale * L``."""
    k = theta.size
    if learn:
        L0 = np.rint(omega * np.exp(theta)).astype(np.int64)
        lscale = np.full(k, 1.0 / omega)
    else:   # frozen: lambda exactly exp(theta) (L = 1 with scale lambda)
        L0 = np.ones(k, np.int64)
        lscale = np.exp(theta)
    if learn and np.any(L0 <= 0):
        bad = [model.learned_names[i] for i in np.nonzero(L0 <= 0)[0]]
        raise ModelError(f"Omega * lambda rounds to 0 for {bad} (Omega = {omega:g}): the parameter species "
                         "would be extinct; raise [ensembles] omega")
    return L0, lscale


@dataclass
class _Replicas:
    """The per-replicate arrays the compiled event loop updates in place (first axis: replicate)."""

    Nf: np.ndarray
    Nc: np.ndarray
    rng: np.ndarray
    L: np.ndarray
    tv: np.ndarray
    iv: np.ndarray
    out_theta: np.ndarray
    out_mf: np.ndarray
    out_mc: np.ndarray
    occ_f: np.ndarray
    occ_c: np.ndarray

    @classmethod
    def start(cls, seed: int, R: int, S: int, C: int, Mf: int, Mc: int, p_f: np.ndarray, p_c: np.ndarray,
              L0: np.ndarray, n_out: int) -> "_Replicas":
        Nf, Nc, rng = _initial_copies(seed, R, S, C, Mf, Mc, p_f, p_c)
        tv = np.zeros((R, 2))
        tv[:, 1] = -1.0
        out_theta = np.zeros((R, n_out, L0.size))
        return cls(Nf, Nc, rng, np.tile(L0, (R, 1)), tv, np.zeros((R, 3), np.int64), out_theta,
                   np.zeros_like(out_theta), np.zeros_like(out_theta), np.zeros((R, S)), np.zeros((R, C)))


def _start_laws(model: Model, st, theta_start: np.ndarray | None,
                a0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start parameters and the stationary free (and, dynamic clamping, clamped) laws for them."""
    k = st.learned.size
    theta = model.theta0 if theta_start is None else np.asarray(theta_start, float)
    if theta.shape != (k,):
        raise ModelError(f"theta_start needs {k} values (learned species {model.learned_names})")
    p_f = st.net.free_stationary(theta)
    p_c = st.net.clamped_stationary(theta, a0) if st.dynamic else np.zeros(0)
    return theta, p_f, p_c


def _occupancy(int_f: np.ndarray, int_c: np.ndarray, occupancy_from: float, t_end: float) -> dict:
    """Time-averaged copies per state over ``[occupancy_from, t_end]`` from their time integrals."""
    span = float(t_end) - float(occupancy_from)
    return dict(occupancy_f=int_f / span, occupancy_c=int_c / span, occupancy_from=float(occupancy_from))


def _initial_copies(seed: int, R: int, S: int, C: int, Mf: int, Mc: int, p_f: np.ndarray,
                    p_c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per replicate: free and clamped copies drawn from their start laws, and the event loop's RNG state.

    Replicate ``r`` draws from child ``r`` of ``SeedSequence(seed)``, so a path does not
    depend on how many replicates run beside it.
    """
    children = np.random.SeedSequence(seed).spawn(R)
    Nf = np.zeros((R, S), np.int64)
    Nc = np.zeros((R, max(C, 1)), np.int64)[:, :C]
    rng = np.zeros((R, 4), np.uint64)
    for r, ch in enumerate(children):
        g = np.random.default_rng(ch)
        Nf[r] = g.multinomial(Mf, p_f / p_f.sum())
        if C:
            Nc[r] = g.multinomial(Mc, p_c / p_c.sum())
        rng[r] = g.integers(0, np.iinfo(np.uint64).max, size=4, dtype=np.uint64, endpoint=True)
    return Nf, np.ascontiguousarray(Nc), rng


def _clamped_means_start(model: Model, st, theta: np.ndarray, seg_q: np.ndarray, R: int) -> np.ndarray:
    """Clamped means per replicate at the start: exact under equilibrium clamping, else zeros (counted)."""
    mc = np.zeros((R, theta.size))
    if not st.dynamic:
        th_full = model.full_theta(theta)
        mc[:] = model.landscape.moments(th_full, seg_q[0]).mean_clamped[model.learned]
    return mc


def _chunk_bounds(out_times: np.ndarray, occupancy_from: float | None, t_end: float) -> list[float]:
    """Chunk boundaries: output times (deterministic; the path does not depend on them)."""
    n_chunks = int(min(out_times.size - 1, 50))
    bounds = list(out_times[np.linspace(0, out_times.size - 1, n_chunks + 1).round().astype(int)][1:])
    if occupancy_from is not None:
        if not 0.0 <= occupancy_from < t_end:
            raise ModelError(f"occupancy_from must lie in [0, t_end), got {occupancy_from!r}")
        bounds = sorted(set(bounds) | {float(occupancy_from)})
    return bounds


def _run_replicates(advance: Callable[[int, float], None], R: int, bounds: list[float], workers: int,
                    t_end: float, progress: bool) -> float:
    """Advance every replicate through every chunk boundary (in threads); return the CPU seconds."""
    bar = progress_bar(R * t_end, f"SSA x{R}", progress, unit="t")
    lock = threading.Lock()

    def run(r: int) -> None:
        t_prev = 0.0
        for tb in bounds:
            advance(r, tb)
            if bar is not None:
                with lock:
                    bar.update(float(tb) - t_prev)
            t_prev = float(tb)

    cpu0 = time.process_time()
    try:
        if workers == 1:
            for r in range(R):
                run(r)
        else:
            with ThreadPoolExecutor(max_workers=workers) as ex:   # the event loop releases the GIL
                list(ex.map(run, range(R)))
    finally:
        if bar is not None:
            bar.close()
    return time.process_time() - cpu0


def _functional_weights(functionals, S: int, C: int) -> tuple[np.ndarray, np.ndarray]:
    """C-ordered float weights ``(F, S)`` and ``(F, C)`` of the recorded functionals (F = 0 for none)."""
    if functionals is None:
        return np.zeros((0, S)), np.zeros((0, C))
    ff, fc = (np.ascontiguousarray(np.atleast_2d(np.asarray(w, float))) for w in functionals)
    if C == 0:
        fc = np.zeros((ff.shape[0], 0))
    if ff.shape[1] != S or fc.shape != (ff.shape[0], C):
        raise ModelError(f"functionals need weights of shape (F, {S}) and (F, {C}); got {ff.shape} and {fc.shape}")
    return ff, fc


def simulate_ssa(model: Model, t_end: float, n_points: int = 201, seed: int | None = 0, replicates: int = 1,
                 a_signal=None, progress: bool = True, *, learn: bool = True, clamping: str | None = None,
                 theta_start: np.ndarray | None = None, occupancy_from: float | None = None,
                 threads: int | None = None,
                 functionals: tuple[np.ndarray, np.ndarray] | None = None) -> SSATrajectory:
    """Exact SSA of the finite-ensemble learning network (docs/theory.md §6).

    Parameters
    ----------
    model : Model
        Ensemble sizes ``M_f, M_c, Omega`` from ``model.ensembles``; ``eps``,
        ``gamma`` and clamping from ``model.learning``.
    t_end : float
    n_points : int
        Output times ``linspace(0, t_end, n_points)``.
    seed : int or None
        Root seed (None: fresh entropy, recorded in the result).
    replicates : int
        Independent replicates, run in parallel.
    a_signal : None, number or signal
        Environment mixing weight ``a(t)`` (``Q = (1-a) Q_1 + a Q_2``),
        piecewise constant (a signal with ``breakpoints``).
    progress : bool
        Progress bar on stderr (does not change the sample path).
    learn : bool
        False freezes theta (no learning events): copy dynamics only.
    clamping : str or None
        Override the model's clamping (``dynamic`` | ``equilibrium``).
    theta_start : array or None
        Start here instead of the file's energies (copies at their
        stationary laws for it).
    occupancy_from : float or None
        If given, also return time-averaged copy counts per state over
        ``[occupancy_from, t_end]``.
    threads : int or None
        Threads for the replicates (default: one per core; the compiled
        event loop releases the GIL).
    functionals : (F_f, F_c) or None
        Weights (F, free states), (F, clamped states): also record ``F_f @ N_f + F_c @ N_c``.

    Returns
    -------
    SSATrajectory
    """
    _check_ssa_run(model, t_end, n_points, replicates)
    st = _static(model, clamping)
    net = st.net
    Mf, Mc, omega = int(model.ensembles.free), int(model.ensembles.clamped), float(model.ensembles.omega)
    R = int(replicates)
    k = st.learned.size
    out_times = np.linspace(0.0, float(t_end), int(n_points))
    seg_t, seg_a = _segments(a_signal, float(t_end))
    cdf, seg_q = _environment_tables(model, st, seg_a)
    eps = model.eps.copy() if learn else np.zeros(k)
    theta, p_f, p_c = _start_laws(model, st, theta_start, float(seg_a[0]))
    L0, lscale = _parameter_copies(model, theta, omega, learn)
    seed = secrets.randbits(128) if seed is None else seed      # as numpy's SeedSequence() draws its entropy
    S, C = st.fcoef.shape[1], (net.n_c if st.dynamic else 0)
    b = _Replicas.start(int(seed), R, S, C, Mf, Mc, p_f, p_c, L0, out_times.size)
    mc = _clamped_means_start(model, st, theta, seg_q, R)
    bounds = _chunk_bounds(out_times, occupancy_from, t_end)
    workers = max(1, min(R, int(threads) if threads else (os.cpu_count() or 1)))
    (fun_f, fun_c), occ_f, occ_c = _functional_weights(functionals, S, C), b.occ_f, b.occ_c
    out_fun = np.zeros((R, out_times.size, fun_f.shape[0]))
    snap_f, snap_c = occ_f.copy(), occ_c.copy()    # occupancy integrals at occupancy_from

    def advance(r: int, tb: float) -> None:
        _advance(float(tb), b.Nf[r], b.Nc[r], b.L[r], b.rng[r], b.tv[r], b.iv[r], out_times, b.out_theta[r],
                 b.out_mf[r], b.out_mc[r], occ_f[r], occ_c[r], mc[r], st.fcoef, st.fdst, st.fexpo, st.ccoef, st.cdst,
                 st.cexpo, st.lf, st.lc, st.learned, st.lam0, lscale, eps, float(net.gamma), Mf, Mc, seg_t,
                 cdf, st.dynamic, st.eq_states, st.eq_logfact, st.eq_vis, seg_q, st.eq_dep, fun_f, fun_c, out_fun[r])
        if occupancy_from is not None and tb == occupancy_from:
            snap_f[r], snap_c[r] = occ_f[r], occ_c[r]

    cpu = _run_replicates(advance, R, bounds, workers, float(t_end), progress)
    occ_kw = {} if occupancy_from is None else _occupancy(occ_f - snap_f, occ_c - snap_c, occupancy_from, t_end)
    a_out = seg_a[np.searchsorted(seg_t, out_times, side="right") - 1]
    return SSATrajectory(out_times, b.out_theta, b.out_mf, b.out_mc, a_out, b.iv[:, 1].copy(), int(seed),
                         tuple(model.learned_names), net.clamping, bool(learn), cpu, model=model,
                         functionals=out_fun if functionals is not None else None, **occ_kw)


__all__ = ["simulate_ssa", "SSATrajectory"]
