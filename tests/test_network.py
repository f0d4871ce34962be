"""Networks: equation parsing, conservation laws, state classes, Wegscheider check.

docs/theory.md §1. Brute-force references live in conftest.py and share no
code with feedback/.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crnfb.feedback import DetailedBalanceError, ModelError, Network, Species
from crnfb.feedback.model.network import (MAX_COEFFICIENT, detailed_balance, from_rate_constants, integer_basis,
                                          parse_complex, parse_equation)
from crnfb.feedback.model.statespace import StateSpace

from conftest import box_slice, example, reachable_class

# -- parsing ----------------------------------------------------------------------------------

NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
NAMES = st.lists(NAME, min_size=1, max_size=5, unique=True)


@st.composite
def complex_text(draw, names):
    """A random rendering of a random complex over ``names``: (text, vector)."""
    vec = draw(st.lists(st.integers(0, 4), min_size=len(names), max_size=len(names)))
    terms = []
    for c, n in zip(vec, names):
        if c == 0:
            continue
        # a coefficient may be split into repeated terms ("A + A" is 2 A)
        parts = [c] if c == 1 or not draw(st.booleans()) else [1, c - 1]
        for p in parts:
            style = draw(st.sampled_from(["{c} {n}", "{c}{n}", "{c}*{n}", "{c} * {n}", "  {c}   {n} "]))
            terms.append(n if p == 1 and draw(st.booleans()) else style.format(c=p, n=n))
    terms = draw(st.permutations(terms))
    sep = draw(st.sampled_from([" + ", "+", "  +   "]))
    return (sep.join(terms) if terms else draw(st.sampled_from(["0", " 0 ", "0  "]))), tuple(vec)


@given(st.data())
def test_parse_complex_round_trip(data):
    names = data.draw(NAMES)
    text, vec = data.draw(complex_text(names))
    assert parse_complex(text, names) == vec


@given(st.data())
def test_parse_equation_round_trip_and_canonical_text(data):
    names = data.draw(NAMES)
    left, y = data.draw(complex_text(names))
    right, yp = data.draw(complex_text(names))
    assume(y != yp)
    eq = data.draw(st.sampled_from(["{} <-> {}", "{}<->{}", "  {}   <->  {} "])).format(left, right)
    assert parse_equation(eq, names) == (y, yp)
    # the network's canonical text parses back to the same reaction
    net = Network(tuple(Species(n) for n in names), (Network.from_equations(
        {n: {} for n in names}, [eq]).reactions[0],))
    assert parse_equation(net.equation(0), names) == (y, yp)


MUTATIONS = [
    lambda eq, names: eq.replace("<->", "->"),
    lambda eq, names: eq.replace("<->", "<-"),
    lambda eq, names: eq.replace("<->", "="),
    lambda eq, names: eq + " <-> " + names[0],
    lambda eq, names: eq.replace("<->", "+ <->"),
    lambda eq, names: eq.replace("<->", "<-> +"),
    lambda eq, names: f"-1 {names[0]} <-> 0",
    lambda eq, names: f"1.5 {names[0]} <-> 0",
    lambda eq, names: f"{names[0]} {names[0]} <-> 0",
    lambda eq, names: f"{names[0]} + + {names[0]} <-> 0",
    lambda eq, names: f"0 {names[0]} <-> 0",
    lambda eq, names: f" <-> {names[0]}",
    lambda eq, names: f"{names[0]} <-> ",
    lambda eq, names: f"{names[0]} <-> {names[0]}",
    lambda eq, names: f"2 {names[0]} <-> {names[0]} + {names[0]}",
    lambda eq, names: f"{names[0]} <-> 3{names[0]}x_unknown",
    lambda eq, names: f"{names[0]} <-> 7",
    lambda eq, names: f"{names[0]} <-> {MAX_COEFFICIENT + 1} {names[0]}",
    lambda eq, names: f"{names[0]} <-> (2) {names[0]}",
    lambda eq, names: f"{names[0]} <-> {names[0]}; import os",
]


@given(st.data(), st.sampled_from(range(len(MUTATIONS))))
def test_parse_equation_rejects_malformed(data, which):
    names = data.draw(NAMES)
    left, y = data.draw(complex_text(names))
    right, yp = data.draw(complex_text(names))
    assume(y != yp)
    bad = MUTATIONS[which](f"{left} <-> {right}", names)
    with pytest.raises(ModelError):
        parse_equation(bad, names)


@given(NAMES, NAME)
def test_unknown_species_is_named(names, other):
    assume(other not in names)
    with pytest.raises(ModelError, match=f"unknown species '{other}'"):
        parse_equation(f"{names[0]} <-> {other}", names)


# -- conservation laws and classes ------------------------------------------------------------

@pytest.mark.parametrize("name", ["birth_death", "isomerisation", "dimer", "chain", "hidden_scaffold"])
def test_conservation_laws_annihilate_stoichiometry(name):
    net = example(name).network
    L = net.conservation_laws
    assert L.dtype.kind == "i"
    assert np.all(L @ net.stoichiometry == 0)
    # a basis of the whole left null space
    assert L.shape[0] + np.linalg.matrix_rank(net.stoichiometry) == net.n_species
    if L.shape[0]:
        assert np.linalg.matrix_rank(L) == L.shape[0]


def _dense_sympy_basis(rows: np.ndarray) -> np.ndarray:
    """The canonical basis by sympy's dense ``Matrix`` (the computation integer_basis used to make)."""
    import sympy
    from fractions import Fraction
    from math import lcm
    null = sympy.Matrix(rows.tolist()).nullspace()
    if not null:
        return np.zeros((0, rows.shape[1]), dtype=np.int64)
    out = []
    for r in sympy.Matrix.hstack(*null).T.rref()[0].tolist():
        fr = [Fraction(int(x.p), int(x.q)) for x in r]
        ints = [int(f * lcm(*[g.denominator for g in fr])) for f in fr]
        g = np.gcd.reduce(np.abs(ints))
        ints = [v // g for v in ints]
        out.append([-v for v in ints] if next(v for v in ints if v) < 0 else ints)
    return np.array(out, dtype=np.int64)


@given(st.integers(1, 6), st.integers(1, 7), st.data())
def test_integer_basis_equals_dense_sympy(m, n, data):
    # the sparse DomainMatrix null space gives the same canonical basis as the dense computation
    rows = np.array(data.draw(st.lists(st.lists(st.integers(-3, 3), min_size=n, max_size=n),
                                       min_size=m, max_size=m)), dtype=np.int64)
    if data.draw(st.booleans()):
        rows[-1] = 2 * rows[0]   # a dependent row
    got = integer_basis(rows)
    assert np.array_equal(got, _dense_sympy_basis(rows))
    assert np.all(rows @ got.T == 0)


def test_conservation_laws_of_the_examples():
    assert example("birth_death").network.conservation_laws.shape == (0, 1)
    assert example("isomerisation").network.conservation_laws.tolist() == [[1, 1]]
    assert example("dimer").network.conservation_laws.tolist() == [[0, 1, 1]]
    L3 = example("hidden_scaffold").network.conservation_laws
    # x + y + sum_k k s_k and sum_k s_k span the same space as the basis found
    want = np.array([[1, 1] + list(range(11)), [0, 0] + [1] * 11])
    assert np.linalg.matrix_rank(np.vstack([L3, want])) == 2


@pytest.mark.parametrize("name", ["isomerisation", "dimer", "chain"])
def test_state_class_matches_brute_force(name):
    model = example(name)
    sp, net = model.space, model.network
    # independent: every point of the box on the conservation slice, then reachability
    slice_ = box_slice(net.conservation_laws, model.initial, sp.bounds)
    reach = reachable_class(net.Y, net.Yp, model.initial, sp.bounds)
    assert reach <= slice_
    got = {tuple(int(v) for v in s) for s in sp.states}
    assert got == reach
    assert sp.size == len(reach)
    # sorted lexicographically, indexable, and states outside are -1
    assert [tuple(s) for s in sp.states] == sorted(got)
    assert np.array_equal(sp.index(sp.states), np.arange(sp.size))
    assert sp.index(np.asarray(model.initial)[None, :] - 1).tolist() == [-1]


def test_state_class_e3_matches_brute_force(e3):
    # box too large for itertools over all 13 species: enumerate (x, y, k) with one scaffold state
    sp, net = e3.space, e3.network
    slice_ = set()
    for k in range(11):
        for x in range(21):
            y = 20 - k - x
            if y >= 0:
                s = [0] * 11
                s[k] = 1
                slice_.add(tuple([x, y] + s))
    reach = reachable_class(net.Y, net.Yp, e3.initial, sp.bounds)
    assert reach == slice_
    assert {tuple(int(v) for v in s) for s in sp.states} == reach


def test_class_respects_reachability_not_only_conservation():
    # 2 A <-> 2 B: from (1, 1) nothing can fire; from (2, 0) parity keeps (1, 1) out
    net = Network.from_equations({"A": dict(visible=True), "B": {}}, ["2 A <-> 2 B"])
    assert StateSpace(net, [1, 1]).states.tolist() == [[1, 1]]
    assert StateSpace(net, [2, 0]).states.tolist() == [[0, 2], [2, 0]]
    assert box_slice(net.conservation_laws, [2, 0], [2, 2]) == {(0, 2), (1, 1), (2, 0)}


@pytest.mark.parametrize("n_max", [0, 1, 5, 17])
def test_open_species_box(n_max):
    net = Network.from_equations({"A": dict(visible=True), "B": {}}, ["0 <-> A", "A + A <-> B"])
    if n_max == 0:
        with pytest.raises(ModelError):
            StateSpace(net, [0, 0], n_max=-1)
        return
    sp = StateSpace(net, [0, 0], n_max=n_max)
    ref = reachable_class(net.Y, net.Yp, [0, 0], [n_max, n_max])
    assert {tuple(s) for s in sp.states.tolist()} == ref


def test_large_chain_enumerates_the_whole_class():
    # the BFS used to be quadratic in the class size; its timing is benchmarks/bench_statespace.py
    net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    sp = StateSpace(net, [0], n_max=8000)
    assert sp.size == 8001
    assert np.array_equal(np.sort(sp.states[:, 0]), np.arange(8001))


# -- Wegscheider conditions -------------------------------------------------------------------

CYCLIC = {
    "species": [Species("A", visible=True), Species("B"), Species("C"), Species("D")],
    "equations": ["A <-> B", "B <-> C", "C <-> A", "2 A <-> C + D", "0 <-> D"],
}


@given(st.lists(st.floats(-3, 3), min_size=4, max_size=4),
       st.lists(st.floats(0.05, 20), min_size=5, max_size=5))
def test_detailed_balanced_rates_give_energies_and_kappa(G, kappa):
    sp, eqs = CYCLIC["species"], CYCLIC["equations"]
    ref = Network.from_equations({s.name: dict(energy=g, visible=s.visible) for s, g in zip(sp, G)},
                                 list(zip(eqs, kappa)))
    kf, kr = ref.rate_constants()
    net, db = from_rate_constants(sp, eqs, kf, kr)
    assert db.holds and db.residual < 1e-9 and not db.violated_cycles
    Gd = net.energies
    nu = net.nu
    # ln(k+/k-) = -G . nu for the derived energies
    np.testing.assert_allclose(np.log(kf / kr), -nu @ Gd, atol=1e-9)
    # the minimum-norm solution: G differs from the true one only along conservation laws
    L = net.conservation_laws
    if L.shape[0]:
        np.testing.assert_allclose(L @ Gd, 0, atol=1e-9)
    # kappa_r = sqrt(k+ k- / lambda^{y + y'}) with lambda = exp(-G)
    lam = np.exp(-Gd)
    want = np.sqrt(kf * kr / np.prod(lam ** (net.Y + net.Yp), axis=1))
    np.testing.assert_allclose(net.kappa, want, rtol=1e-10)
    # and the catalytic scheme reproduces the given rate constants
    kf2, kr2 = net.rate_constants()
    np.testing.assert_allclose(kf2, kf, rtol=1e-9)
    np.testing.assert_allclose(kr2, kr, rtol=1e-9)


def test_given_energies_are_kept_when_consistent():
    sp = [Species("X", energy=0.5, visible=True), Species("Y", energy=-0.25)]
    kf, kr = [2.0 * np.exp(0.25)], [2.0 * np.exp(-0.5)]  # kappa 2, lambda = exp(-G)
    net, db = from_rate_constants(sp, ["X <-> Y"], kf, kr, energies_given=True)
    np.testing.assert_allclose(net.energies, [0.5, -0.25])
    np.testing.assert_allclose(net.kappa, [2.0])
    with pytest.raises(DetailedBalanceError, match="energies disagree"):
        from_rate_constants(sp, ["X <-> Y"], [1.0], [1.0], energies_given=True)


def test_extreme_rate_constants_do_not_overflow():
    # regression: ln(k+/k-) was computed as log(k+ / k-), which overflowed to inf
    sp = [Species("X", visible=True), Species("Y")]
    net, db = from_rate_constants(sp, ["X <-> Y"], [1e300], [1e-300])
    assert db.holds
    np.testing.assert_allclose(-(net.energies[1] - net.energies[0]), np.log(1e300) - np.log(1e-300))
    assert np.all(np.isfinite(net.kappa))


def test_triangle_with_bad_cycle_names_its_reactions():
    sp = [Species("A", visible=True), Species("B"), Species("C")]
    eqs = ["A <-> B", "B <-> C", "C <-> A"]
    with pytest.raises(DetailedBalanceError) as exc:
        from_rate_constants(sp, eqs, [1.0, 2.0, 1.0], [1.0, 1.0, 1.0])
    msg = str(exc.value)
    for eq in eqs:
        assert f"({eq})" in msg
    assert "0.6931" in msg  # ln 2 around the cycle
    # the raw check reports the cycle with its coefficients
    net = Network.from_equations({s.name: {} for s in sp}, eqs)
    db = detailed_balance(net.nu, net.Y, net.Yp, [1.0, 2.0, 1.0], [1.0, 1.0, 1.0], equations=eqs)
    assert not db.holds
    assert len(db.violated_cycles) == 1
    cyc = db.violated_cycles[0]
    assert sorted(cyc["reactions"]) == sorted(eqs)
    assert abs(abs(cyc["log_ratio_sum"]) - np.log(2)) < 1e-12


def test_only_the_bad_cycle_is_named():
    sp = [Species(n, visible=(n == "A")) for n in "ABCDEF"]
    eqs = ["A <-> B", "B <-> C", "C <-> A", "D <-> E", "E <-> F", "F <-> D"]
    kf = [2.0, 3.0, 1 / 6, 1.0, 1.0, 5.0]  # first triangle balanced (2 * 3 / 6 = 1), second not
    with pytest.raises(DetailedBalanceError) as exc:
        from_rate_constants(sp, eqs, kf, [1.0] * 6)
    msg = str(exc.value)
    assert all(f"({eq})" in msg for eq in eqs[3:])
    assert not any(f"({eq})" in msg for eq in eqs[:3])


def test_network_validation():
    with pytest.raises(ModelError, match="kappa"):
        Network.from_equations({"X": {}}, [("0 <-> X", -1.0)])
    with pytest.raises(ModelError, match="duplicate"):
        Network((Species("X"), Species("X")), Network.from_equations({"X": {}}, ["0 <-> X"]).reactions)
    with pytest.raises(ModelError, match="at least one reaction"):
        Network((Species("X"),), ())
    with pytest.raises(ModelError, match="k_forward and k_reverse must be positive"):
        from_rate_constants([Species("X")], ["0 <-> X"], [0.0], [1.0])
