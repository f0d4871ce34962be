"""Dense brute-force computations for small generated networks, written from docs/theory.md alone.

Nothing here imports crnfb: the class is enumerated by breadth-first search,
the stationary law is the product form, ``D`` and its Hessian come from
enumeration and finite differences, and the closed loop's Jacobian from a
vector field written out from theory §4 (free ensemble, clamped ensemble
with resets or held at equilibrium, learning reactions). The corpus tests
compare the report's numbers with these.
"""
from __future__ import annotations

from collections import deque
from math import lgamma

import numpy as np
from scipy.optimize import minimize

__all__ = ["Brute"]


def _ff(n, y):
    """Falling factorial prod_s n_s (n_s - 1) ... (n_s - y_s + 1)."""
    out = 1.0
    for k in range(y):
        out *= n - k
    return out


class Brute:
    """The learning problem of a :class:`tests.corpus.Net`, by enumeration.

    Parameters
    ----------
    net : Net
    """

    def __init__(self, net):
        self.net = net
        self.sp = list(net.species)
        self.idx = {s: i for i, s in enumerate(self.sp)}
        self.states = self._enumerate()
        self.N = np.array(self.states, dtype=float)          # (n_states, n_species)
        self.vis = [self.idx[s] for s in net.visible]
        self.L = [self.idx[s] for s in net.learned]
        self.eps = net.eps
        vkeys = [tuple(int(c) for c in row[self.vis]) for row in self.N]
        self.vkey = vkeys
        reach = {v for v in vkeys}
        tgt = {v: p for v, p in net.target.items() if v in reach and p > 0}
        z = sum(tgt.values())
        self.Q = {v: p / z for v, p in tgt.items()}           # the tail beyond the class dropped, renormalised
        self.transitions = self._transitions()

    # -- the class ---------------------------------------------------------------------------
    def _vec(self, d):
        v = np.zeros(len(self.sp), dtype=int)
        for s, c in d.items():
            v[self.idx[s]] = c
        return v

    def _jumps(self):
        out = []
        for r, (lhs, rhs, kap) in enumerate(self.net.reactions):
            y, yp = self._vec(lhs), self._vec(rhs)
            out.append((r, y, yp, kap))
        return out

    def _inside(self, n):
        return self.net.n_max is None or bool(np.all(n <= self.net.n_max))

    def _enumerate(self):
        start = tuple(int(self.net.initial.get(s, 0)) for s in self.sp)
        seen = {start}
        todo = deque([start])
        jumps = self._jumps()
        while todo:
            n = np.array(todo.popleft())
            for _, y, yp, _ in jumps:
                for a, b in ((y, yp), (yp, y)):
                    if np.all(n >= a):
                        m = n - a + b
                        t = tuple(int(c) for c in m)
                        if self._inside(m) and t not in seen:
                            seen.add(t)
                            todo.append(t)
        return sorted(seen)

    def _transitions(self):
        """(i, j, r, reactant vector, product vector of the direction taken, kappa)."""
        pos = {s: i for i, s in enumerate(self.states)}
        out = []
        for i, st in enumerate(self.states):
            n = np.array(st)
            for r, y, yp, kap in self._jumps():
                for a, b in ((y, yp), (yp, y)):
                    if np.all(n >= a):
                        t = tuple(int(c) for c in n - a + b)
                        if t in pos:
                            out.append((i, pos[t], a, b, kap))
        return out

    # -- laws -------------------------------------------------------------------------------
    def full_theta(self, theta_learned):
        th = np.array([-self.net.energies[s] for s in self.sp], float)
        th[self.L] = theta_learned
        return th

    def pi(self, th):
        logw = self.N @ th - np.array([sum(lgamma(c + 1) for c in st) for st in self.states])
        w = np.exp(logw - logw.max())
        return w / w.sum()

    def marginal(self, p):
        out = {}
        for v, q in zip(self.vkey, p):
            out[v] = out.get(v, 0.0) + q
        return out

    def divergence(self, th):
        P = self.marginal(self.pi(th))
        return float(sum(q * np.log(q / P[v]) for v, q in self.Q.items()))

    def q_tilde(self, th):
        """Q(v) pi(h | v): the clamped law at equilibrium."""
        p = self.pi(th)
        P = self.marginal(p)
        return np.array([self.Q.get(v, 0.0) * q / P[v] if P[v] > 0 else 0.0 for v, q in zip(self.vkey, p)])

    def d_learned(self, x):
        return self.divergence(self.full_theta(x))

    def grad_learned(self, x):
        th = self.full_theta(x)
        return (self.N[:, self.L].T @ self.pi(th)) - (self.N[:, self.L].T @ self.q_tilde(th))

    def minimise(self, x0):
        """min_theta_learned D by BFGS from ``x0`` (then Newton-free polish); returns (x, D)."""
        r = minimize(self.d_learned, x0, jac=self.grad_learned, method="BFGS", options={"gtol": 1e-11, "maxiter": 5000})
        return r.x, float(r.fun)

    def hessian(self, x, h=1e-4):
        """Central finite differences of D over the learned energies."""
        k = len(x)
        H = np.zeros((k, k))
        for i in range(k):
            for j in range(i, k):
                ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
                H[i, j] = H[j, i] = (self.d_learned(x + ei + ej) - self.d_learned(x + ei - ej)
                                     - self.d_learned(x - ei + ej) + self.d_learned(x - ei - ej)) / (4 * h * h)
        return H

    # -- the loop ---------------------------------------------------------------------------
    def generator(self, th, hidden_only=False):
        """Master-equation generator A (dp/dt = A p), catalytic scheme k+ = kappa lam^y', k- = kappa lam^y."""
        n = len(self.states)
        A = np.zeros((n, n))
        lam = np.exp(th)
        for i, j, a, b, kap in self.transitions:
            if hidden_only and np.any((b - a)[self.vis] != 0):
                continue
            rate = kap * np.prod(lam ** b) * np.prod([_ff(c, k) for c, k in zip(self.states[i], a)])
            A[j, i] += rate
            A[i, i] -= rate
        return A

    def _clamped_index(self):
        return [i for i, v in enumerate(self.vkey) if v in self.Q or v in self.net.target]

    def reset_target(self):
        """gamma-free reset law Q(v) u(h | v), u uniform on the hidden states of v, on the clamped states."""
        C = self._clamped_index()
        count = {}
        for i in C:
            count[self.vkey[i]] = count.get(self.vkey[i], 0) + 1
        return np.array([self.Q.get(self.vkey[i], 0.0) / count[self.vkey[i]] for i in C])

    def field(self, x, th_fixed_learned=None):
        """The loop's vector field on (p_f, [p_c], theta_L)."""
        n, k = len(self.states), len(self.L)
        dyn = self.net.clamping == "dynamic"
        C = self._clamped_index()
        nc = len(C) if dyn else 0
        pf, pc, xl = x[:n], x[n:n + nc], x[n + nc:]
        th = self.full_theta(xl)
        out = [self.generator(th) @ pf]
        if dyn:
            Ac = self.generator(th, hidden_only=True)[np.ix_(C, C)]
            out.append(Ac @ pc + self.net.gamma * (self.reset_target() - pc))
            mc = self.N[C][:, self.L].T @ pc
        else:
            mc = self.N[:, self.L].T @ self.q_tilde(th)
        out.append(self.eps * (mc - self.N[:, self.L].T @ pf))
        return np.concatenate(out)

    def fixed_state(self, xl):
        """(p_f, [p_c], theta_L) at the learned energies ``xl``: both ensembles stationary."""
        th = self.full_theta(xl)
        parts = [self.pi(th)]
        if self.net.clamping == "dynamic":
            C = self._clamped_index()
            Ac = self.generator(th, hidden_only=True)[np.ix_(C, C)]
            g = self.net.gamma
            parts.append(np.linalg.solve(g * np.eye(len(C)) - Ac, g * self.reset_target()))
        parts.append(np.asarray(xl, float))
        return np.concatenate(parts)

    def jacobian(self, x, h=1e-6):
        """Dense Jacobian by central differences (the field is polynomial in p, smooth in theta)."""
        J = np.zeros((x.size, x.size))
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = h
            J[:, i] = (self.field(x + e) - self.field(x - e)) / (2 * h)
        return J
