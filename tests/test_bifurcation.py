"""The bifurcation at eps_crit (docs/theory.md §4c): derivatives, Lyapunov coefficient, orbits against the ODE.

Independent references: finite differences of the analytic Jacobian (the
vector field's second and third derivatives), the planar closed form of the
first Lyapunov coefficient (Guckenheimer & Holmes, eq. 3.4.11), and long ODE
runs past eps_crit (amplitude and period of the attractor they reach).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from crnfb import load_model
from crnfb.analysis.analyses import bifurcation as bf
from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.analyses.margins import margins
from crnfb.analysis.reporting.pipeline import bifurcation_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import corpus_loop  # noqa: E402

EXAMPLES = ["chain.toml", "chain_telegraph.toml", "dimer.toml", "hidden_scaffold.toml"]


#: The examples, and one generated network per shape and clamping (``conftest.corpus_loop``: the first
#: with a loop fixed point).
DERIVATIVE_CASES = EXAMPLES + [f"{shape}/{clamping}" for shape in ("dimer", "scaffold", "binding", "walk")
                               for clamping in ("equilibrium", "dynamic")]


@pytest.mark.parametrize("case", DERIVATIVE_CASES)
def test_second_and_third_derivatives_equal_differences_of_the_jacobian(case):
    lo = linearise(load_model(ROOT / "examples" / case)) if case in EXAMPLES else corpus_loop(*case.split("/"))[1]
    net, x = lo.net, lo.fixed_point.x
    rng = np.random.default_rng(1)
    n = x.size

    def direction():
        u = rng.normal(size=n) + 1j * rng.normal(size=n)
        u[:net.n_f + net.n_c] *= 0.1 * max(x[:net.n_f].max(), 1e-3)
        return u

    u, v, w = direction(), direction(), direction()
    h = 1e-5

    def fd(fun, u):     # central difference of a map linear in its last arguments, along complex u
        return sum(c * (fun(x + h * d) - fun(x - h * d)) / (2 * h) for c, d in ((1, u.real), (1j, u.imag)))

    def tol(fun, ref):   # truncation (h^2, relative) and round-off of the differenced map (eps_mach |F| / h)
        return 1e-6 * np.abs(ref).max() + 1e2 * np.finfo(float).eps * np.abs(fun(x)).max() / h

    J2 = lambda y: net.jacobian(y) @ v  # noqa: E731
    d2, ref2 = net.rhs_derivative(x, [u, v]), fd(J2, u)
    assert np.abs(d2 - ref2).max() <= tol(J2, ref2)
    D3 = lambda y: net.rhs_derivative(y, [v, w])  # noqa: E731
    d3, ref3 = net.rhs_derivative(x, [u, v, w]), fd(D3, u)
    assert np.abs(d3 - ref3).max() <= tol(D3, ref3)
    # symmetric, as derivatives are
    assert np.allclose(net.rhs_derivative(x, [v, u]), d2, rtol=0, atol=1e-12 * np.abs(d2).max())


def _planar_l1(omega, f2, g2, f3, g3):
    """Guckenheimer-Holmes (3.4.11) for x' = -omega y + f, y' = omega x + g gives ``r' = a r^3`` in the plane's
    radius; Kuznetsov's ``z`` with ``x = 2 Re(z q)``, ``|q| = 1`` has ``|x| = sqrt(2) |z|``, so
    ``Re c1 = 2 a`` and ``l1 = Re c1 / omega = 2 a / omega``."""
    fxx, fxy, fyy = f2
    gxx, gxy, gyy = g2
    fxxx, fxyy = f3
    gxxy, gyyy = g3
    a = (fxxx + fxyy + gxxy + gyyy) / 16 + (fxy * (fxx + fyy) - gxy * (gxx + gyy) - fxx * gxx + fyy * gyy) / (16 * omega)
    return 2 * a / omega


@pytest.mark.parametrize("seed", range(5))
def test_lyapunov_coefficient_equals_the_planar_closed_form(seed):
    rng = np.random.default_rng(seed)
    omega = rng.uniform(0.3, 3.0)
    f2, g2 = rng.normal(size=3), rng.normal(size=3)
    f3, g3 = rng.normal(size=2), rng.normal(size=2)
    A = sparse.csr_matrix(np.array([[0.0, -omega], [omega, 0.0]]))

    def B(u, v):   # second derivative of (f, g) with f = fxx x^2/2 + fxy x y + fyy y^2/2
        q = lambda c: c[0] * u[0] * v[0] + c[1] * (u[0] * v[1] + u[1] * v[0]) + c[2] * u[1] * v[1]  # noqa: E731
        return np.array([q(f2), q(g2)])

    def C(u, v, w):   # f3 terms: fxxx x^3/6 + fxyy x y^2/2; g3: gxxy x^2 y/2 + gyyy y^3/6
        xyy = lambda a, b, c: (a[0] * b[1] * c[1] + a[1] * b[0] * c[1] + a[1] * b[1] * c[0])  # noqa: E731
        xxy = lambda a, b, c: (a[0] * b[0] * c[1] + a[0] * b[1] * c[0] + a[1] * b[0] * c[0])  # noqa: E731
        return np.array([f3[0] * u[0] * v[0] * w[0] + f3[1] * xyy(u, v, w),
                         g3[0] * xxy(u, v, w) + g3[1] * u[1] * v[1] * w[1]])

    q = np.array([1.0, -1j]) / math.sqrt(2)          # A q = i omega q
    p = np.array([1.0, -1j]) / math.sqrt(2)          # A^T p = -i omega p, <p, q> = 1
    assert np.allclose(A @ q, 1j * omega * q) and np.allclose(A.T @ p, -1j * omega * p)
    assert abs(np.vdot(p, q) - 1) < 1e-14
    assert bf._lyapunov(A, q, p, omega, B, C) == pytest.approx(_planar_l1(omega, f2, g2, f3, g3), rel=1e-10)


def test_real_crossing_and_no_crossing_are_reported_as_such():
    lo = linearise(load_model(ROOT / "examples" / "dimer.toml"))
    mg = margins(lo)
    out = bifurcation_section(lo, mg, orbits=False, deadline=None)
    assert out.get("bifurcation") is None and out["bifurcation_reason"].startswith("not computed: no crossing")


@pytest.mark.slow
def test_supercritical_hopf_orbit_matches_the_ode():
    """chain_telegraph (dynamic clamping): l1 < 0; past eps_crit the ODE settles on an orbit whose amplitude and
    period match the normal form (extrapolated to eps_crit) and the shooting continuation."""
    model = load_model(ROOT / "examples" / "chain_telegraph.toml")
    lo = linearise(model)
    mg = margins(lo)
    b = bf.bifurcation(lo, mg.gain_margin, mg.critical_frequency)
    assert b.hopf.kind == "supercritical Hopf" and b.hopf.l1 < 0
    assert b.hopf.omega == pytest.approx(mg.critical_frequency, rel=1e-6)
    assert len(b.ode) == 2 and len(b.orbits) == 2 and b.orbit_reason is None
    assert [c["passed"] for c in b.checks] == [True] * 4, b.checks
    i = int(np.argmax(b.hopf.amplitude))
    for o, s in zip(b.ode, bf.PROBE_STEPS):    # the square-root law itself, within its first-order correction
        assert o.amplitude[i] == pytest.approx(b.hopf.amplitude[i] * math.sqrt(s), rel=3 * s)
        assert o.period == pytest.approx(b.hopf.period, rel=3 * s)
    d = b.to_dict(model.learned_names, model.eps)
    assert d["type"] == "supercritical Hopf" and len(d["orbits"]) == 4


@pytest.mark.slow
def test_subcritical_hopf_loses_the_orbit_past_eps_crit():
    """chain.toml: l1 > 0. Just past eps_crit no small orbit exists: a run started on the would-be
    supercritical orbit grows far beyond its amplitude (an independent check of the sign)."""
    model = load_model(ROOT / "examples" / "chain.toml")
    lo = linearise(model)
    mg = margins(lo)
    h = bf.hopf_point(lo, mg.gain_margin, mg.critical_frequency)
    assert h.kind == "subcritical Hopf" and h.l1 > 0
    s = 0.02
    f = h.factor * (1 + s)
    small = 0.1 * h.amplitude * math.sqrt(s)      # start well inside where a supercritical orbit would be
    start = lo.fixed_point.x + (small[0] / h.amplitude[0] / math.sqrt(s)) * (bf._guess(h, lo, f) - lo.fixed_point.x)
    mu = h.speed * h.factor * s
    o = bf.ode_orbit(lo, h, f, start, periods=max(40, 6 / (mu * h.period)))
    # a supercritical orbit would hold it at K sqrt(s) within its first-order correction (3 s, as above)
    assert o.amplitude[0] > 1.5 * h.amplitude[0] * math.sqrt(s)


def test_report_section_and_summary_of_a_subcritical_crossing():
    """chain.toml: the report's global.bifurcation and the summary's rows (classification without orbits)."""
    import json

    from crnfb.analysis.analyses.globalbehaviour import global_report
    from crnfb.analysis.reporting.summary import _global_table

    lo = linearise(load_model(ROOT / "examples" / "chain.toml"))
    mg = margins(lo)
    g = global_report(None, None, "off", {"A": 0.1}, mg.eps_crit_value, mg.gain_margin,
                      bifurcation=bifurcation_section(lo, mg, orbits=True, deadline=None))
    json.dumps(g, allow_nan=False)
    b = g["bifurcation"]
    assert b["type"] == "subcritical Hopf" and b["first_lyapunov_coefficient"] > 0
    assert b["factor"] == pytest.approx(mg.gain_margin) and b["frequency"] == pytest.approx(mg.critical_frequency)
    assert b["orbits"] == [] and b["orbits_reason"].startswith("not computed: the orbit born at eps_crit is unstable")
    rows = {r[0]: r for r in _global_table(g).rows}
    assert rows["bifurcation at eps_crit"][1] == "subcritical Hopf"
    assert rows["orbit past eps_crit"][2] == b["orbits_reason"]
