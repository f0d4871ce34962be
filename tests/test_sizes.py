"""The size switches (issue 21, deliverable 3): one module, one table, both sides of each tested.

- Every constant of :mod:`crnfb.feedback.numerics.sizes` is in docs/benchmarks.md, "Size switches", with its value.
- No other module under ``feedback/`` or ``analysis/`` defines a size constant (a module-level integer
  whose name ends in ``_LIMIT``, ``MAX_STATES`` or ``_STATES``), so switches cannot creep back.
- Every switch has a test that runs both of its sides (here or in the file :data:`BOTH_SIDES` names);
  the switches no other file covered are tested here on small networks (examples and the generated
  corpus), each comparison within a tolerance that follows from what is compared.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.linear.stability import closed_loop_eigenvalues, spectral_scale, zero_tolerance
from crnfb.feedback import load_model, parse_model
from crnfb.feedback.numerics import sizes
from crnfb.feedback.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import box_slice, corpus_loop  # noqa: E402

SIZE_NAME = re.compile(r"(_LIMIT|MAX_STATES|_STATES)$")
EPS = np.finfo(float).eps

#: Where each switch's two sides are run: ``file::test`` (the test must name the switch).
BOTH_SIDES = {
    "STATESPACE_MAX_STATES": "test_sizes.py::test_class_size_cap_refuses_above_and_enumerates_below",
    "SLICE_COUNT_MAX_STATES": "test_sizes.py::test_slice_count_and_its_fallback_bound_the_true_class",
    "BOX_CELLS": "test_statespace.py::test_enumeration_equals_brute_force",
    "ND_ABOVE": "test_bdf.py::test_nested_dissection_without_pivoting_on_the_loop",
    "STABILITY_DENSE_LIMIT": "test_sizes.py::test_stability_dense_and_arnoldi_agree_on_corpus",
    "MARGINS_MODES_DENSE_LIMIT": "test_sizes.py::test_margins_modes_dense_and_arnoldi_agree",
    "DENSE_SCAN_LIMIT": "test_margins.py::test_sparse_eps_crit_matches_dense_scan_on_e3",
    "DENSE_FALLBACK": "test_odd_input.py::test_arpack_failure_falls_back_to_the_dense_spectrum",
    "MAX_DENSE_STATES": "test_loop.py::test_dense_models_refuse_large_loops",
    "STEP_DENSE_LIMIT": "test_sizes.py::test_step_response_dense_and_sparse_agree",
    "DENSE_LYAPUNOV_LIMIT": "test_noise_spectral.py::test_frequency_integral_matches_dense_lyapunov",
    "CORRELATION_DENSE_LIMIT": "test_sizes.py::test_correlation_times_dense_and_slowest_rate_bound",
    "MAX_SYMBOLIC_STATES": "test_sizes.py::test_symbolic_cap_refuses_above_and_computes_below",
    "SAFE_FACTOR_MAX_STATES": "test_sizes.py::test_safe_factor_cap_gives_its_reason",
    "ROA_MAX_STATES": "test_sizes.py::test_region_cap_gives_its_reason",
    "BIFURCATION_DENSE_EIG_LIMIT": "test_sizes.py::test_hopf_point_dense_and_arnoldi_agree",
    "BIFURCATION_MAX_STATES": "test_sizes.py::test_hopf_point_dense_and_arnoldi_agree",
    "PRUNE_DENSE_LIMIT": "test_sizes.py::test_prune_eigenvalues_cap",
    "BLOCK_PLANT": "test_frequency_blocks.py::test_block_factorisation_matches_the_whole_plant",
    "ROM_PLANT": "test_plantrom.py::test_broken_loop_plants_through_the_model_match_exact_solves",
    "ROM_BASIS_PERCENT": "test_plantrom.py::test_no_reduced_model_whose_basis_spans_the_plant",
    "MODAL_PLANT_MAX": "test_plantrom.py::test_no_reduced_model_whose_basis_spans_the_plant",
    "LARGE_PLANT": "test_margins.py::test_full_coordinate_plants_equal_reduced_ones_on_e3",
    "LARGE_POINTS_PER_DECADE": "test_sizes.py::test_grid_density_on_both_sides_of_large_plant",
}


def _switches() -> dict[str, int]:
    return {name: getattr(sizes, name) for name in sizes.__all__}


# -- the module, the table, no switch elsewhere ----------------------------------------------------
def _module_constants(source: str) -> dict[str, object]:
    """Module-level ``NAME = <constant expression>`` of a source file (the value where it can be evaluated)."""
    out = {}
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else [])
        for t in targets:
            if isinstance(t, ast.Name) and t.id.lstrip("_").isupper():
                try:
                    out[t.id] = eval(compile(ast.Expression(node.value), "<const>", "eval"), {"__builtins__": {}})
                except Exception:
                    out[t.id] = None
    return out


def _size_constants(source: str) -> list[str]:
    return [n for n, v in _module_constants(source).items()
            if SIZE_NAME.search(n) and isinstance(v, int) and not isinstance(v, bool)]


def test_all_names_every_constant_of_the_module():
    consts = _module_constants((ROOT / "feedback" / "numerics" / "sizes.py").read_text())
    assert set(consts) - {"__all__"} == set(sizes.__all__)
    assert all(isinstance(v, int) and v > 0 for v in _switches().values())


def _table() -> dict[str, str]:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    section = text.split("\n## Size switches\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.M)
    return {name: value.strip() for name, value in rows}


def test_every_switch_is_in_the_benchmarks_table_with_its_value():
    table = _table()
    assert set(table) == set(sizes.__all__)
    for name, value in _switches().items():
        assert int(table[name].replace(",", "")) == value, (name, table[name], value)


def test_no_size_constant_outside_the_sizes_module():
    # the check itself catches what it is meant to catch
    assert _size_constants("A_LIMIT = 400\n_B_STATES = 2 ** 10\nMAX_STATES: int = 3_000\n") == \
        ["A_LIMIT", "_B_STATES", "MAX_STATES"]
    assert _size_constants("EXP_LIMIT = 700.0\nX_LIMIT = (1, 2)\ndef f():\n    Y_LIMIT = 3\n") == []
    found = {}
    for folder in ("feedback", "analysis"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "feedback" / "numerics" / "sizes.py":
                continue
            names = _size_constants(path.read_text())
            if names:
                found[str(path.relative_to(ROOT))] = names
    assert found == {}, f"size switches belong in crnfb.feedback.numerics.sizes: {found}"


def test_every_switch_has_a_test_of_both_sides():
    assert set(BOTH_SIDES) == set(sizes.__all__)
    for name, where in BOTH_SIDES.items():
        file, test = where.split("::")
        funcs = {f.name: f for f in ast.parse((ROOT / "tests" / file).read_text()).body
                 if isinstance(f, ast.FunctionDef)}
        assert test in funcs, where
        # the test names the switch, or a helper of the same file that it calls (at any depth) does
        seen, todo = set(), [test]
        while todo:
            f = todo.pop()
            seen.add(f)
            todo += [c.func.id for c in ast.walk(funcs[f]) if isinstance(c, ast.Call) and
                     isinstance(c.func, ast.Name) and c.func.id in funcs and c.func.id not in seen]
        assert any(name in ast.unparse(funcs[f]) for f in seen), f"{where} does not name {name}"


# -- state spaces -----------------------------------------------------------------------------------
def test_class_size_cap_refuses_above_and_enumerates_below(monkeypatch):
    text = (ROOT / "examples" / "chain.toml").read_text()
    n = load_model(ROOT / "examples" / "chain.toml").space.size
    monkeypatch.setattr(sizes, "STATESPACE_MAX_STATES", n)
    assert parse_model(tomllib.loads(text)).space.size == n
    monkeypatch.setattr(sizes, "STATESPACE_MAX_STATES", n - 1)
    with pytest.raises(ModelError, match="lower n_max"):
        parse_model(tomllib.loads(text)).space


def test_slice_count_and_its_fallback_bound_the_true_class(monkeypatch):
    from crnfb.feedback.model.statespace import class_size_bound

    # two conservation laws over four species (A+B and C+D conserved), box 0..6
    L = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], float)
    bounds, initial = np.full(4, 6), np.array([2, 3, 1, 4])
    true = len(box_slice(L, initial, bounds))      # brute force (tests/conftest.py)
    assert class_size_bound(L, bounds, initial) == true              # exact slice count
    monkeypatch.setattr(sizes, "SLICE_COUNT_MAX_STATES", 1)
    loose = class_size_bound(L, bounds, initial)                     # the product bound
    assert loose >= true and loose == class_size_bound(L, bounds)


# -- eigenvalues --------------------------------------------------------------------------------------
#: Shapes whose first dynamically clamped network with a loop fixed point the eigenvalue tests take
#: (``conftest.corpus_loop``): a clamped block too.
CORPUS_LOOPS = ["scaffold", "dimer"]


def _dynamic_loop(shape: str):
    return corpus_loop(shape, "dynamic")[1]


@pytest.mark.parametrize("shape", CORPUS_LOOPS)
def test_stability_dense_and_arnoldi_agree_on_corpus(shape, monkeypatch):
    """The slowest modes by shift-invert Arnoldi (above ``STABILITY_DENSE_LIMIT``) are eigenvalues of the
    dense spectrum and the slowest agrees, within the one zero tolerance of the loop."""
    lp = _dynamic_loop(shape)
    n = lp.n_reduced
    monkeypatch.setattr(sizes, "STABILITY_DENSE_LIMIT", n)
    dense = closed_loop_eigenvalues(lp)
    assert dense.size == n
    monkeypatch.setattr(sizes, "STABILITY_DENSE_LIMIT", n - 1)
    found = closed_loop_eigenvalues(lp, count=min(6, n - 2))
    tol = zero_tolerance(dense, spectral_scale(lp.Jr))
    assert found.size >= 1
    assert max(np.min(np.abs(dense - z)) for z in found) <= tol
    assert abs(found[0].real - dense[0].real) <= tol


@pytest.mark.parametrize("name", CORPUS_LOOPS + ["hidden_scaffold"])
def test_margins_modes_dense_and_arnoldi_agree(name, monkeypatch):
    """margins' split of a spectrum (dense up to ``MARGINS_MODES_DENSE_LIMIT``, else the rightmost by
    Arnoldi): same verdict, same rightmost non-flat mode within the zero tolerance."""
    from crnfb.analysis.analyses.margins import jacobian_modes

    lp = (linearise(load_model(ROOT / "examples" / f"{name}.toml")) if name == "hidden_scaffold"
          else _dynamic_loop(name))
    n, n_flat = lp.n_reduced, lp.flat_count
    monkeypatch.setattr(sizes, "MARGINS_MODES_DENSE_LIMIT", n)
    dense = jacobian_modes(lp.Jr, n_flat)
    monkeypatch.setattr(sizes, "MARGINS_MODES_DENSE_LIMIT", n - 1)
    arnoldi = jacobian_modes(lp.Jr, n_flat)
    tol = zero_tolerance(np.linalg.eigvals(lp.Jr.toarray()), spectral_scale(lp.Jr))
    assert dense.stable == arnoldi.stable
    assert abs(dense.rest[0] - arnoldi.rest[0]) <= tol


def test_hopf_point_dense_and_arnoldi_agree(monkeypatch):
    """chain_telegraph's Hopf crossing classified with dense eigenvectors and with shift-invert Arnoldi
    (``BIFURCATION_DENSE_EIG_LIMIT``): same kind, the critical eigenvalue within the zero tolerance, the
    first Lyapunov coefficient to the accuracy of eigenvectors of a simple eigenvalue (1e-6 relative).
    The report's ``BIFURCATION_MAX_STATES`` cap: the reason above it, the analysis below."""
    from types import SimpleNamespace

    from scipy.optimize import brentq

    from crnfb.analysis.analyses.bifurcation import hopf_point
    from crnfb.analysis.analyses.margins import jacobian_modes, scaled_jacobian
    from crnfb.analysis.reporting.pipeline import bifurcation_section

    lp = linearise(load_model(ROOT / "examples" / "chain_telegraph.toml"))
    n, n_flat = lp.n_reduced, lp.flat_count
    # the crossing by bisection on the verdict of the scaled loop (a dense scan of margins' takes 25 s here)
    unstable = lambda g: -0.5 if jacobian_modes(scaled_jacobian(lp, g), n_flat).stable else 0.5  # noqa: E731
    assert unstable(1.0) < 0 < unstable(1e4)
    g = brentq(unstable, 1.0, 1e4, xtol=1e-12, rtol=1e-12)
    g = g * (1 + 1e-11) if unstable(g) < 0 else g
    ev = np.linalg.eigvals(scaled_jacobian(lp, g).toarray())
    mg = SimpleNamespace(gain_margin=g, critical_frequency=float(abs(ev[np.argmax(ev.real)].imag)),
                         eps_crit_reason=None)
    monkeypatch.setattr(sizes, "BIFURCATION_DENSE_EIG_LIMIT", n)
    dense = hopf_point(lp, mg.gain_margin, mg.critical_frequency)
    monkeypatch.setattr(sizes, "BIFURCATION_DENSE_EIG_LIMIT", n - 1)
    arnoldi = hopf_point(lp, mg.gain_margin, mg.critical_frequency)
    A = scaled_jacobian(lp, mg.gain_margin)
    tol = zero_tolerance(np.linalg.eigvals(A.toarray()), spectral_scale(A))
    assert dense.kind == arnoldi.kind == "supercritical Hopf"
    assert abs(dense.omega - arnoldi.omega) <= tol
    assert arnoldi.l1 == pytest.approx(dense.l1, rel=1e-6)

    monkeypatch.setattr(sizes, "BIFURCATION_MAX_STATES", n)
    assert bifurcation_section(lp, mg, orbits=False, deadline=None)["bifurcation"]["type"] == "supercritical Hopf"
    monkeypatch.setattr(sizes, "BIFURCATION_MAX_STATES", n - 1)
    assert bifurcation_section(lp, mg, orbits=False, deadline=None) == {
        "bifurcation_reason": f"not computed: loop too large ({n} states > {n - 1})"}


# -- step response, noise -----------------------------------------------------------------------------
@pytest.mark.parametrize("name,rom", [("chain", False), ("dimer", False), ("hidden_scaffold", True)])
def test_step_response_dense_and_sparse_agree(name, rom, monkeypatch):
    """The disturbance step response: dense reduced loop (up to ``STEP_DENSE_LIMIT``) against the sparse
    ODE (rtol 1e-8, atol 1e-12 on states of order 1: global error well below 1e-6 of the unit step), or
    against the closed loop through the verified reduced plant (each frequency within ``ROM_TOL`` of
    an exact solve). Rise and settling times within one sample of the step's time grid."""
    from crnfb.analysis.analyses.disturbance import _slowest, _step
    from crnfb.analysis.linear.frequency import broken_loop, dc_response
    from crnfb.analysis.linear.plantrom import ROM_TOL

    monkeypatch.setattr(sizes, "ROM_PLANT", 5 if rom else 10 ** 9)   # before the loop's plant is cached
    monkeypatch.setattr(sizes, "ROM_BASIS_PERCENT", 10 ** 9)          # a model even where it spans the plant
    lp = linearise(load_model(ROOT / "examples" / f"{name}.toml"))
    n = lp.n_reduced
    v, rate = dc_response(lp, "theta"), -_slowest(lp)[0].real      # as disturbance() steps
    monkeypatch.setattr(sizes, "STEP_DENSE_LIMIT", n)
    dense, _ = _step(lp, v, rate, broken_loop(lp))
    monkeypatch.setattr(sizes, "STEP_DENSE_LIMIT", n - 1)
    other, _ = _step(lp, v, rate, broken_loop(lp))
    assert ("reduced model" in other.method) == rom and "reduced model" not in dense.method
    assert dense.method != other.method
    # the model's plant is within ROM_TOL of the exact one at every frequency; 100x allows for the closed
    # loop's sensitivity peak. The ODE's rtol 1e-8 accumulates over the run: 1e-6 of the unit step.
    tol = 100 * ROM_TOL if rom else 1e-6
    assert other.t.shape == dense.t.shape and np.allclose(other.t, dense.t)
    assert np.max(np.abs(other.y - dense.y)) <= tol
    dt = dense.t[1] - dense.t[0]
    assert abs(other.rise_time - dense.rise_time) <= dt
    assert abs(other.settling_time - dense.settling_time) <= dt


def test_correlation_times_dense_and_slowest_rate_bound(monkeypatch, e2):
    """Up to ``CORRELATION_DENSE_LIMIT`` the integrated correlation times of the compared coordinates come
    from a Lyapunov solve; checked here against a direct quadrature of ``C(t) = a^T exp(Jr t) S a``
    (an ODE integrated to 60 slowest time constants at rtol 1e-10: 1e-7 relative). Above, both are
    ``1/slowest rate`` by definition (the plan's conservative time)."""
    from scipy.integrate import solve_ivp

    from crnfb.analysis.analyses.noise import _coordinate_matrix, _reduced_covariance, correlation_times, parameter_noise

    pred = parameter_noise(e2)
    loop = pred.loop
    n = loop.n_reduced
    monkeypatch.setattr(sizes, "CORRELATION_DENSE_LIMIT", n)
    tau_c, tau_2 = correlation_times(pred)
    Jr, S = loop.Jr.toarray(), _reduced_covariance(pred)
    A = loop.V.toarray()[loop.net.n_f + loop.net.n_c:].T @ _coordinate_matrix(pred)
    for j in range(A.shape[1]):
        a = A[:, j]
        c0 = a @ S @ a

        def rhs(t, z):
            c = a @ z[:n]
            return np.concatenate([Jr @ z[:n], [c, c * c]])
        sol = solve_ivp(rhs, (0.0, 60.0 / pred.slowest_rate), np.concatenate([S @ a, [0.0, 0.0]]),
                        method="LSODA", rtol=1e-10, atol=1e-14 * abs(c0))
        assert tau_c[j] == pytest.approx(sol.y[n, -1] / c0, rel=1e-7)
        assert tau_2[j] == pytest.approx(2 * sol.y[n + 1, -1] / c0 ** 2, rel=1e-7)
    monkeypatch.setattr(sizes, "CORRELATION_DENSE_LIMIT", n - 1)
    big_c, big_2 = correlation_times(pred)
    assert np.all(big_c == 1.0 / pred.slowest_rate) and np.all(big_2 == 1.0 / pred.slowest_rate)


# -- caps that refuse ------------------------------------------------------------------------------------
def test_symbolic_cap_refuses_above_and_computes_below(monkeypatch, e2):
    from crnfb.analysis.linear.symbolic import SymbolicTooLargeError, symbolic_loop

    monkeypatch.setattr(sizes, "MAX_SYMBOLIC_STATES", 0)
    with pytest.raises(SymbolicTooLargeError) as err:
        symbolic_loop(e2)
    n = int(re.search(r"the reduced loop has (\d+) states", str(err.value)).group(1))
    assert n == linearise(e2).n_reduced
    monkeypatch.setattr(sizes, "MAX_SYMBOLIC_STATES", n - 1)
    with pytest.raises(SymbolicTooLargeError, match=f"limited to {n - 1} "):
        symbolic_loop(e2)
    monkeypatch.setattr(sizes, "MAX_SYMBOLIC_STATES", n)
    assert len(symbolic_loop(e2).rest) == n


def test_safe_factor_cap_gives_its_reason(monkeypatch, chain):
    """``SAFE_FACTOR_MAX_STATES`` lowered below the chain's loop: the stated reason; at its size the
    search is not refused for size (a zero time budget then stops it, so no ODE run is made)."""
    from crnfb.analysis.reporting.pipeline import global_section
    from crnfb.analysis.analyses.thermo import episode

    fp, ep = loop_fixed_point(chain), episode(chain)
    n = fp.x.size
    monkeypatch.setattr(sizes, "SAFE_FACTOR_MAX_STATES", n)
    g = global_section(chain, fp, None, ep, True, {}, budget=0.0, region=False)
    assert g["safe_factor"] is None and "time budget of 0 s" in g["safe_factor_reason"]
    monkeypatch.setattr(sizes, "SAFE_FACTOR_MAX_STATES", n - 1)
    g = global_section(chain, fp, None, ep, True, {}, budget=0.0, region=False)
    assert g["safe_factor_reason"] == (f"not computed: the trisection's ~30 nonlinear runs of a {n}-state loop "
                                       f"exceed a report's time (done up to {n - 1} states)")


def test_region_cap_gives_its_reason(monkeypatch, chain):
    """As the safe factor's: ``ROA_MAX_STATES`` below the loop refuses with the reason; at its size the
    search passes the size check (and stops at the spent budget)."""
    import time

    from crnfb.analysis.reporting.pipeline import region_section

    fp = loop_fixed_point(chain)
    n = fp.x.size
    monkeypatch.setattr(sizes, "ROA_MAX_STATES", n)
    out = region_section(chain, fp, True, [], None, {}, deadline=time.monotonic() - 1.0, budget=0.0)
    assert out["region_of_attraction"] is None and "time budget of 0 s" in out["region_of_attraction_reason"]
    monkeypatch.setattr(sizes, "ROA_MAX_STATES", n - 1)
    out = region_section(chain, fp, True, [], None, {}, deadline=time.monotonic() - 1.0, budget=0.0)
    assert out["region_of_attraction_reason"] == f"not computed: loop too large ({n} states > {n - 1})"


def test_prune_eigenvalues_cap(monkeypatch):
    """``PRUNE_DENSE_LIMIT``: Newton with dense eigenvalues up to it, continuation without them above.
    The two steady states agree to what their residuals allow: ``|dx| <= (r1 + r2) max(1, |x|) / |slowest|``
    per component (times sqrt(n) for the norm)."""
    from crnfb.analysis.cli.export_prune import mass_action_steady_state, slowest_modes
    from crnfb.feedback.io.sbml import exported_network, learning_network

    model = load_model(ROOT / "examples" / "birth_death.toml").replace(n_max=30, change=None)
    fp = loop_fixed_point(model, exported_network(model, 1e3))
    full = learning_network(model, speedup=1e3, state=fp.x)
    n = full.stoichiometry.shape[0]
    monkeypatch.setattr(sizes, "PRUNE_DENSE_LIMIT", n)
    xd, rd, okd = mass_action_steady_state(full)
    modes, _ = slowest_modes(full, xd)
    assert okd and modes is not None and modes.size
    monkeypatch.setattr(sizes, "PRUNE_DENSE_LIMIT", n - 1)
    xc, rc, okc = mass_action_steady_state(full)
    assert okc and slowest_modes(full, xc) == (None, 0)
    bound = np.sqrt(n) * (rd + rc + EPS) * max(1.0, float(np.max(np.abs(xd)))) / abs(modes[0])
    assert np.linalg.norm(xc - xd) <= 10 * bound


# -- frequency grid --------------------------------------------------------------------------------------
def test_grid_density_on_both_sides_of_large_plant(monkeypatch, e3):
    """The grid has 2000/7 points a decade up to ``LARGE_PLANT`` plant states and
    ``LARGE_POINTS_PER_DECADE`` (within the rounding of its stride) above."""
    from crnfb.analysis.linear.frequency import POINTS_PER_DECADE, broken_loop, spec_grid

    blocks = broken_loop(linearise(e3))
    monkeypatch.setattr(sizes, "LARGE_PLANT", blocks.n_p)
    w = spec_grid(blocks)
    assert w.size / np.log10(w[-1] / w[0]) == pytest.approx(POINTS_PER_DECADE, rel=1e-12)
    monkeypatch.setattr(sizes, "LARGE_PLANT", blocks.n_p - 1)
    w = spec_grid(blocks)
    assert abs(w.size / np.log10(w[-1] / w[0]) - sizes.LARGE_POINTS_PER_DECADE) < 1.0
