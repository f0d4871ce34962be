"""State classes indexed by exact keys, limited by the class and not the box (issue 21).

Every enumeration is compared with a plain breadth-first search over tuples
(``conftest.reachable_class``), on random small networks drawn by
hypothesis: closed ones (every reaction keeps the total count, so
conservation laws bound every species; a reaction set that splits the
species gives several laws) and open ones with a truncation box. Each is run
through both enumerations (the whole-box connected components and the
breadth-first search) and with keys forced to many 64-bit words. The
1,000-species token walk (``examples/token_walk.py``, a box of ``2**1000``
points) is checked against its closed form and through ``crnfb check``.
"""

from __future__ import annotations

import importlib.util
import itertools
from contextlib import ExitStack
from math import comb, factorial
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import EXAMPLES, reachable_class
from crnfb.analysis.cli.entry import main
from crnfb.feedback.model import statespace
from crnfb.feedback.model.network import Network
from crnfb.feedback.model.statespace import StateKeys, StateSpace
from crnfb.feedback.numerics import sizes


def _token_walk():
    spec = importlib.util.spec_from_file_location("token_walk", EXAMPLES / "token_walk.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TW = _token_walk()


# -- random small networks ---------------------------------------------------------------------

@st.composite
def closed_networks(draw):
    """Reactions between multisets of equal size: the total count (and maybe more) is conserved."""
    n = draw(st.integers(1, 4))
    names = [f"S{i}" for i in range(n)]
    eqs = set()
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.integers(1, 3))
        left = sorted(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k)))
        right = sorted(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k)))
        if left != right:
            eqs.add(" + ".join(names[i] for i in left) + " <-> " + " + ".join(names[i] for i in right))
    initial = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return names, sorted(eqs), initial, None


@st.composite
def open_networks(draw):
    """Any reactions (``0`` allowed on either side) in a box ``n_i <= B``."""
    n = draw(st.integers(1, 3))
    names = [f"S{i}" for i in range(n)]
    eqs = set()
    for _ in range(draw(st.integers(1, 4))):
        left = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
        right = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
        if left != right:
            eqs.add(f"{_complex(left, names)} <-> {_complex(right, names)}")
    B = draw(st.integers(1, 5))
    initial = draw(st.lists(st.integers(0, B), min_size=n, max_size=n))
    return names, sorted(eqs), initial, {s: B for s in names}


def _complex(counts, names) -> str:
    terms = [(f"{c} " if c > 1 else "") + s for c, s in zip(counts, names) if c]
    return " + ".join(terms) if terms else "0"


NETWORKS = st.one_of(closed_networks(), open_networks())


def _paths(path: str, many_words: bool) -> ExitStack:
    """Force the enumeration ``box`` or ``bfs`` and, optionally, keys of one species per word."""
    stack = ExitStack()
    if path == "bfs":
        stack.enter_context(mock.patch.object(sizes, "BOX_CELLS", 0))
    else:
        stack.enter_context(mock.patch.object(sizes, "BOX_CELLS", 10**9))
    if many_words:
        stack.enter_context(mock.patch.object(statespace, "WORD_RANGE", 64))   # radices here are <= 13
    return stack


def _build(case, path="bfs", many_words=False):
    names, eqs, initial, n_max = case
    net = Network.from_equations({s: dict(visible=(i == 0)) for i, s in enumerate(names)}, eqs)
    with _paths(path, many_words):
        sp = StateSpace(net, initial, n_max)
    return net, sp


@given(NETWORKS, st.sampled_from(["box", "bfs"]), st.booleans())
def test_enumeration_equals_brute_force(case, path, many_words):
    names, eqs, initial, n_max = case
    if not eqs:
        return
    net, sp = _build(case, path, many_words)
    # n_max bounds every species in the open case; a closed class is bounded by its total count
    bounds = [n_max[s] for s in names] if n_max else [sum(initial) * 3] * len(names)
    want = reachable_class(net.Y, net.Yp, initial, bounds)
    assert sorted(want) == [tuple(int(v) for v in s) for s in sp.states]   # same set, sorted lexicographically


@given(NETWORKS, st.booleans(), st.data())
def test_index_round_trips(case, many_words, data):
    if not case[1]:
        return
    net, sp = _build(case, "bfs", many_words)
    assert np.array_equal(sp.index(sp.states), np.arange(sp.size))
    members = {tuple(int(v) for v in s): i for i, s in enumerate(sp.states)}
    # any rows, inside the box or not: the index is the row's position, or -1 when it is not a state
    hi = sp.bounds + 2
    rows = np.array(data.draw(st.lists(st.tuples(*[st.integers(-1, int(h)) for h in hi]), min_size=1,
                                       max_size=20)), dtype=np.int64)
    got = sp.index(rows)
    assert got.tolist() == [members.get(tuple(int(v) for v in r), -1) for r in rows]


@given(NETWORKS, st.booleans())
def test_edges_equal_brute_force(case, many_words):
    if not case[1]:
        return
    net, sp = _build(case, "bfs", many_words)
    states = [tuple(int(v) for v in s) for s in sp.states]
    where = {s: i for i, s in enumerate(states)}
    for e in sp.edges:
        y = net.Y[e.reaction] if e.forward else net.Yp[e.reaction]
        yp = net.Yp[e.reaction] if e.forward else net.Y[e.reaction]
        want = {}
        for i, n in enumerate(states):
            m = tuple(a - b + c for a, b, c in zip(n, y, yp))
            if all(a >= b for a, b in zip(n, y)) and m in where:
                # mass action: kappa * prod n_i! / (n_i - y_i)!
                want[(i, where[m])] = net.kappa[e.reaction] * np.prod(
                    [factorial(a) / factorial(a - b) for a, b in zip(n, y)])
        got = dict(zip(zip(e.src.tolist(), e.dst.tolist()), e.coef.tolist()))
        assert got.keys() == want.keys()
        assert all(np.isclose(got[k], want[k], rtol=1e-12) for k in want)


# -- keys ----------------------------------------------------------------------------------------

@given(st.lists(st.integers(0, 40), min_size=1, max_size=12), st.sampled_from([64, 2**10, 2**62]),
       st.data())
def test_keys_are_exact_ordered_and_linear(bounds, word_range, data):
    with mock.patch.object(statespace, "WORD_RANGE", word_range):
        keys = StateKeys.for_box(np.array(bounds))
    rows = np.array(data.draw(st.lists(st.tuples(*[st.integers(0, b) for b in bounds]), min_size=2,
                                       max_size=30)), dtype=np.int64)
    words = keys.encode(rows)
    assert words.shape == (rows.shape[0], keys.n_words)
    assert words.min() >= 0 and words.max() < word_range
    sortable = keys.sortable(words)
    # equal keys exactly for equal rows; key order is the lexicographic order of the rows
    for (i, a), (j, b) in itertools.combinations(enumerate(rows.tolist()), 2):
        assert (sortable[i] == sortable[j]) == (a == b)
    order = np.argsort(sortable, kind="stable")
    assert [tuple(r) for r in rows[order]] == sorted(tuple(r) for r in rows.tolist())
    # linear: the words of a + (b - a) are those of a plus those of the move b - a
    move = rows[1] - rows[0]
    assert np.array_equal(keys.encode(rows[:1]) + keys.encode(move[None, :]), words[1:2])


def test_a_species_wider_than_a_word_is_refused():
    with mock.patch.object(statespace, "WORD_RANGE", 8), pytest.raises(statespace.ModelError, match="n_max"):
        StateKeys.for_box(np.array([3, 8]))


def test_one_word_per_62_bits():
    # 1,000 species of radix 2 need ceil(1000 / 62) words; radix 3 packs 39 per word (3^39 < 2^62 < 3^40)
    assert StateKeys.for_box(np.ones(1000, np.int64)).n_words == 17
    assert StateKeys.for_box(np.full(40, 2)).n_words == 2
    assert StateKeys.for_box(np.full(39, 2)).n_words == 1


# -- many species: the box is no limit ---------------------------------------------------------

@pytest.mark.parametrize("groups", [[(40, 2)], [(100, 2)], [(3, 2), (997, 1)]],
                         ids=["40x2", "100x2", "1000-species"])
def test_token_walks_enumerate_their_closed_form(groups):
    # refused before issue 21 ("the truncation box is too large"): boxes of 3^40 .. 2^1000 points
    species, eqs, initial = TW.token_walk(groups)
    net = Network.from_equations(species, eqs)
    sp = StateSpace(net, [initial.get(s, 0) for s in net.names])
    assert sp.size == TW.class_size(groups) == np.prod([comb(n + k - 1, k) for n, k in groups])
    # every distribution of each group's k tokens over its n species, each exactly once
    start = 0
    for n, k in groups:
        block = sp.states[:, start:start + n]
        assert (block.sum(axis=1) == k).all() and (block >= 0).all()
        start += n
    assert np.unique(sp.states, axis=0).shape[0] == sp.size
    assert np.array_equal(sp.index(sp.states), np.arange(sp.size))


def test_one_token_on_1000_species_is_the_flipped_identity():
    # one token: the states are the unit vectors, e_999 < ... < e_0 lexicographically
    species, eqs, initial = TW.token_walk([(1000, 1)])
    net = Network.from_equations(species, eqs)
    sp = StateSpace(net, [initial.get(s, 0) for s in net.names])
    assert np.array_equal(sp.states, np.eye(1000, dtype=np.int64)[::-1])
    # one jump per direction of every reaction edge of the graph, from the state holding the token
    assert sum(e.src.size for e in sp.edges) == 2 * len(eqs)


@pytest.mark.slow
def test_crnfb_check_on_1000_species(tmp_path, capsys):
    path = tmp_path / "tokens_1000.toml"
    path.write_text(TW.token_toml([(1000, 1)], name="tokens-1000"))
    rc = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "class size       1000 states" in out
    assert "detailed balance holds" in out
    assert err == ""


@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(0, 4)), min_size=1, max_size=4))
def test_disjoint_law_bounds_equal_the_linear_program(groups):
    # species_bounds skips the solver for disjoint non-negative laws; compare with linprog itself.
    # Each group: species A_g (coefficient c in the law) <-> c B_g ... via "c A <-> c B" keeps c a + c b.
    from scipy.optimize import linprog
    species, eqs, initial = {}, [], []
    for g, (ca, cb, n0) in enumerate(groups):
        species[f"A{g}"], species[f"B{g}"] = dict(visible=(g == 0)), {}
        eqs.append(f"{cb} A{g} <-> {ca} B{g}")     # conserves ca*a + cb*b
        initial += [n0 * cb, 0]
    net = Network.from_equations(species, eqs)
    L = net.conservation_laws
    assert (L >= 0).all() and ((L != 0).sum(axis=0) <= 1).all()   # the closed-form path
    got = statespace.species_bounds(net, np.array(initial))
    for i in range(net.n_species):
        c = np.zeros(net.n_species)
        c[i] = -1.0
        res = linprog(c, A_eq=L, b_eq=L @ np.array(initial), bounds=[(0, None)] * net.n_species)
        assert got[i] == np.floor(-res.fun + 1e-9)
