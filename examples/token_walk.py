"""Token-walk networks: a few tokens walking on reaction graphs of many species (issue 21).

Run::

    python examples/token_walk.py 1000 -o tokens_1000.toml       # 1,000 species, one token
    python examples/token_walk.py 40:2 -o tokens_40x2.toml       # 40 species, two tokens: 820 states
    python examples/token_walk.py 113 887 -o two_walks.toml      # two walks, 1,000 species, 100,231 states

Each argument ``n[:k]`` is one *group*: its own species ``A<g>_0 .. A<g>_<n-1>``
joined by the reactions ``A_i <-> A_(i+1 mod n)`` (a ring) and, from every
fifth species, a chord ``A_i <-> A_(7i+3 mod n)``, holding ``k`` tokens (default
1) that start on ``A_0``. Each group conserves its token count, so a group has
``C(n + k - 1, k)`` states and the class is the product of the groups'. The
box of the species' counts has ``prod (k + 1)^n`` points: ``2^1000`` for one
token on 1,000 species, which a single 64-bit code of the box cannot index
(crnfb.feedback.model.statespace.StateKeys). ``A0_0`` is visible (its target is
``binomial(k, 0.3)``); energies cycle through ``0, 0.1, ..., 0.6`` kT.
"""

from __future__ import annotations

import argparse
from math import comb
from pathlib import Path


def groups_from(args: list[str]) -> list[tuple[int, int]]:
    """``["40:2", "100"]`` -> ``[(40, 2), (100, 1)]``."""
    out = []
    for a in args:
        n, _, k = a.partition(":")
        out.append((int(n), int(k) if k else 1))
    return out


def class_size(groups: list[tuple[int, int]]) -> int:
    """States of the class: ``prod C(n + k - 1, k)`` (tokens of one group are indistinguishable)."""
    size = 1
    for n, k in groups:
        size *= comb(n + k - 1, k)
    return size


def _group_edges(n: int) -> list[tuple[int, int]]:
    pairs = {(i, (i + 1) % n) for i in range(n)} | {(i, (7 * i + 3) % n) for i in range(0, n, 5)}
    return sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})


def token_walk(groups: list[tuple[int, int]]) -> tuple[dict[str, dict], list[str], dict[str, int]]:
    """``(species, equations, initial)`` for ``Network.from_equations`` and the initial state."""
    species: dict[str, dict] = {}
    equations: list[str] = []
    initial: dict[str, int] = {}
    for g, (n, k) in enumerate(groups):
        names = [f"A{g}_{i}" for i in range(n)]
        for i, name in enumerate(names):
            species[name] = dict(energy=round(0.1 * ((i + g) % 7), 1), visible=(g == 0 and i == 0))
        equations += [f"{names[a]} <-> {names[b]}" for a, b in _group_edges(n)]
        initial[names[0]] = k
    return species, equations, initial


def token_toml(groups: list[tuple[int, int]], name: str = "token-walk") -> str:
    """The model file of :func:`token_walk` (docs/model-file.md)."""
    species, equations, initial = token_walk(groups)
    k0 = groups[0][1]
    lines = [f"# Token walk (examples/token_walk.py): groups (species, tokens) {groups};",
             f"# {len(species)} species, {class_size(groups)} states per copy.",
             f'name = "{name}"', ""]
    for s, opts in species.items():
        lines.append(f"[species.{s}]\nenergy = {opts['energy']}" + ("\nvisible = true" if opts["visible"] else ""))
    lines += [f'[[reactions]]\neq = "{e}"' for e in equations]
    lines.append("[initial]\n" + "\n".join(f"{s} = {v}" for s, v in initial.items()))
    lines.append(f'[environment]\nfamily = "binomial"\nn = {k0}\np = 0.3')
    lines.append('[learning]\neps = 0.05\nclamping = "dynamic"\ngamma = 1.0')
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("groups", nargs="+", help="n[:k] per group: n species, k tokens (default 1)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    groups = groups_from(args.groups)
    args.out.write_text(token_toml(groups, name=args.out.stem))
    print(f"wrote {args.out}: {sum(n for n, _ in groups)} species, {class_size(groups)} states")


if __name__ == "__main__":
    main()
