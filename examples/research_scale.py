"""Write the research-scale example models (docs/theory.md §8, issue 12).

Run::

    python examples/research_scale.py        # rewrites the three files below

- ``scaffold_T40_K20.toml``: E3 with ``T = 40`` and a scaffold ``S0..S20``
  (651 copy states per ensemble, 23 learned energies), dynamic clamping,
  gamma 0.5, eps 0.05. The target is the same kind of bimodal mixture of
  binomials as E3's (``P(x) = sum_k w_k binomial(T - k, 0.9)``), so D* = 0.
- ``two_visible.toml``: two visible species ``X1``, ``X2``; hidden ``Y1``,
  ``Y2`` and one scaffold per copy with two arms, ``S0 + Y1 <-> A1``,
  ``A(k-1) + Y1 <-> Ak`` and the same for ``Y2`` with ``B1..BK``. Conserved:
  ``x1 + y1 + sum_k k a_k = T``, ``x2 + y2 + sum_k k b_k = T``, one scaffold.
  On the class the law is a mixture over the scaffold state ``s`` of products
  ``binomial(T - k_A(s), p1) x binomial(T - k_B(s), p2)``: visible species
  correlate through the scaffold. The target is that law at "teacher"
  scaffold weights concentrated at the two arms' ends (an x1-low/x2-high mode
  and an x1-high/x2-low mode), so D* = 0 for this network, while every network
  without the scaffold has a product law and cannot go below the target's
  mutual information (tests/test_research_scale.py). ``T = 23``, ``K = 11``:
  10,080 copy states per ensemble.
- ``two_visible_1e5.toml``: the same with ``T = 56``, ``K = 18``
  (100,719 copy states); for the fixed-point and linearisation benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
P = 0.9


def _species(names_visible: list[str], names_hidden: list[str]) -> str:
    out = []
    for n in names_visible:
        out.append(f"[species.{n}]\nenergy = 0.0\nvisible = true\n")
    for n in names_hidden:
        out.append(f"[species.{n}]\nenergy = 0.0\n")
    return "\n".join(out)


def _reactions(eqs: list[str]) -> str:
    return "\n".join(f'[[reactions]]\neq = "{e}"\n' for e in eqs)


def _weights(w: np.ndarray) -> str:
    w = np.asarray(w, float)
    w = w / w.sum()
    txt = [f"{x:.6f}" for x in w]
    # keep the printed weights summing to 1 within the file format's 1e-9
    last = 1.0 - sum(float(t) for t in txt[:-1])
    txt[-1] = f"{last:.6f}" if abs(last - float(txt[-1])) < 1e-5 else txt[-1]
    assert abs(sum(float(t) for t in txt) - 1.0) < 1e-9, txt
    return "[" + ", ".join(txt) + "]"


def scaffold(T: int = 40, K: int = 20) -> str:
    """E3 with total T and scaffold S0..SK; U-shaped (bimodal) target weights."""
    k = np.arange(K + 1)
    beta = 3.125 / K                      # E3 (K = 10) end/middle weight ratio, about 11
    w = np.cosh(beta * (k - K / 2))
    w_change = w * np.exp(0.05 * (k - K / 2))  # more weight on the low-x mode
    comps = ", ".join(f'{{ family = "binomial", n = {T - j}, p = {P} }}' for j in k)
    hidden = ["Y"] + [f"S{j}" for j in k]
    eqs = ["X <-> Y"] + [f"S{j - 1} + Y <-> S{j}" for j in range(1, K + 1)]
    return (f"# E3 at research scale (examples/research_scale.py writes this file): X visible; Y and a\n"
            f"# scaffold S0..S{K} hidden, conserved x + y + sum_k k*sk = {T}, sum_k sk = 1.\n"
            f"# P(x) = sum_k w_k binomial({T} - k, p): learns the bimodal target exactly (D* = 0).\n"
            f'name = "scaffold-T{T}-K{K}"\n\n'
            + _species(["X"], hidden) + "\n" + _reactions(eqs)
            + f"\n[initial]\nX = {T}\nS0 = 1\n\n"
            f"[environment]   # bimodal: modes near x = {P * T:.0f} (k = 0) and x = {P * (T - K):.0f} (k = {K})\n"
            f'family = "mixture"\nweights = {_weights(w)}\ncomponents = [{comps}]\n\n'
            f"[environment.change]   # more weight on the low mode\n"
            f'family = "mixture"\nweights = {_weights(w_change)}\ncomponents = [{comps}]\n\n'
            f'[learning]\neps = 0.05\nclamping = "dynamic"\ngamma = 0.5\ndmu = 20.0\n')


def two_visible(T: int, K: int, name: str) -> str:
    """Two visible pools bound by a two-armed scaffold; target at teacher weights."""
    states = ["S0"] + [f"A{j}" for j in range(1, K + 1)] + [f"B{j}" for j in range(1, K + 1)]
    kA = [0] + list(range(1, K + 1)) + [0] * K
    kB = [0] + [0] * K + list(range(1, K + 1))
    # teacher weights: U-shaped along the path B_K .. B1 S0 A1 .. A_K, end/middle ratio 10
    pos = np.array(kA) - np.array(kB)
    beta = np.arccosh(10.0) / K
    w = np.cosh(beta * pos)
    w_change = w * np.exp(0.1 * pos / K * 2)   # shift weight towards the A arm (x1 low, x2 high)

    def comps() -> str:
        return ", ".join(
            f'{{ family = "product", components = [{{ family = "binomial", n = {T - a}, p = {P} }}, '
            f'{{ family = "binomial", n = {T - b}, p = {P} }}] }}' for a, b in zip(kA, kB))

    eqs = ["X1 <-> Y1", "X2 <-> Y2", "S0 + Y1 <-> A1", "S0 + Y2 <-> B1"]
    eqs += [f"A{j - 1} + Y1 <-> A{j}" for j in range(2, K + 1)]
    eqs += [f"B{j - 1} + Y2 <-> B{j}" for j in range(2, K + 1)]
    n_states = (T + 1) * ((T + 1) * (2 * K + 1) - K * (K + 1))
    return (f"# Two visible species with a hidden two-armed scaffold (examples/research_scale.py writes\n"
            f"# this file). X1, X2 visible; Y1, Y2, S0, A1..A{K}, B1..B{K} hidden. Conserved:\n"
            f"# x1 + y1 + sum_k k*ak = {T}, x2 + y2 + sum_k k*bk = {T}, s0 + sum ak + sum bk = 1;\n"
            f"# {n_states} copy states. The law is a mixture over the scaffold state of products\n"
            f"# binomial({T} - kA, p1) x binomial({T} - kB, p2), so x1 and x2 are correlated; the\n"
            f"# target is that law at teacher weights (D* = 0). Without the scaffold every law is\n"
            f"# a product law and D >= the target's mutual information (tests/test_research_scale.py).\n"
            f'name = "{name}"\n\n'
            + _species(["X1", "X2"], ["Y1", "Y2"] + states) + "\n" + _reactions(eqs)
            + f"\n[initial]\nX1 = {T}\nX2 = {T}\nS0 = 1\n\n"
            f"[environment]   # mode A: x1 near {P * (T - K):.0f}, x2 near {P * T:.0f}; mode B: the reverse\n"
            f'family = "mixture"\nweights = {_weights(w)}\ncomponents = [{comps()}]\n\n'
            f"[environment.change]   # more weight on mode A\n"
            f'family = "mixture"\nweights = {_weights(w_change)}\ncomponents = [{comps()}]\n\n'
            f'[learning]\neps = 0.05\nclamping = "dynamic"\ngamma = 0.5\ndmu = 20.0\n')


def main() -> None:
    files = {"scaffold_T40_K20.toml": scaffold(40, 20),
             "two_visible.toml": two_visible(23, 11, "two-visible"),
             "two_visible_1e5.toml": two_visible(56, 18, "two-visible-1e5")}
    for name, text in files.items():
        (HERE / name).write_text(text)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
