"""Model files (docs/model-file.md) and environments (docs/theory.md §2).

Error behaviour through the command line is in test_cli_check_fit.py; here
the Python API: defaults, every key, environment tables.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from crnfb.feedback import Binomial, Mixture, ModelError, Poisson, Product, Table, load_model, parse_model
from crnfb.feedback.model.environment import from_dict, tabulate
from crnfb.feedback.errors import EnvironmentModelError

from conftest import EXAMPLE_FILES, example

MINIMAL = """
[species.X]
visible = true

[[reactions]]
eq = "0 <-> X"

[truncation]
n_max = 40

[environment]
family = "poisson"
mean = 3.0
"""


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_examples_load(path):
    model = load_model(path)
    assert model.source == str(path)
    assert abs(model.q.sum() - 1) < 1e-12
    assert model.space.size > 0


def test_defaults(tmp_path):
    f = tmp_path / "minimal.toml"
    f.write_text(MINIMAL)
    m = load_model(f)
    assert m.name == "minimal"  # file stem when name is absent
    assert m.learning.eps == (0.05,)
    assert m.learning.clamping == "dynamic"
    assert m.learning.gamma == 1.0 and m.learning.dmu == 20.0
    assert m.network.kappa.tolist() == [1.0]
    assert m.network.energies.tolist() == [0.0]
    assert m.network.species[0].learn is True
    assert (m.ensembles.free, m.ensembles.clamped, m.ensembles.omega) == (1000, 1000, 1000.0)
    assert m.initial.tolist() == [0]  # missing species start at 0
    assert m.truncation_tol == 1e-6
    assert m.change is None and np.array_equal(m.q_change, m.q)


def test_every_key(tmp_path):
    text = """
name = "all-keys"
[species.A]
energy = 0.5
visible = true
learn = true
[species.B]
energy = -1.0
visible = true
learn = false
[species.C]
energy = 0.25
[[reactions]]
eq = "0 <-> A"
kappa = 2.0
[[reactions]]
eq = "A + B <-> C"
kappa = 0.5
[initial]
A = 1
B = 3
[truncation]
n_max = { A = 30 }
tol = 1e-5
[environment]
family = "table"
support = [[0, 3], [1, 2], [2, 1]]
probs = [0.5, 0.25, 0.25]
[environment.change]
family = "product"
components = [{ family = "poisson", mean = 1.0 }, { family = "binomial", n = 3, p = 0.5 }]
[learning]
eps = { A = 0.1, C = 0.2 }
clamping = "equilibrium"
gamma = 3.0
dmu = 5.0
[ensembles]
free = 10
clamped = 20
omega = 50.0
"""
    f = tmp_path / "all.toml"
    f.write_text(text)
    m = load_model(f)
    net = m.network
    assert m.name == "all-keys" and net.names == ["A", "B", "C"]
    assert net.energies.tolist() == [0.5, -1.0, 0.25]
    assert [s.visible for s in net.species] == [True, True, False]
    assert m.learned_names == ["A", "C"]
    assert net.kappa.tolist() == [2.0, 0.5]
    assert m.initial.tolist() == [1, 3, 0]
    assert m.space.bounds.tolist() == [30, 3, 3]
    assert m.truncation_tol == 1e-5
    assert isinstance(m.environment, Table) and isinstance(m.change, Product)
    assert m.learning == type(m.learning)((0.1, 0.2), "equilibrium", 3.0, 5.0)
    assert (m.ensembles.free, m.ensembles.clamped, m.ensembles.omega) == (10, 20, 50.0)
    np.testing.assert_allclose(m.eps, [0.1, 0.2])
    # environment table on the visible states (A, B): the listed points, nothing else
    vs = [tuple(v) for v in m.space.visible_states.tolist()]
    q = dict(zip(vs, m.q))
    assert q[(0, 3)] == 0.5 and q[(1, 2)] == 0.25 and q[(2, 1)] == 0.25
    assert abs(sum(q.values()) - 1) < 1e-15


def test_rate_constant_reactions(tmp_path):
    text = """
[species.X]
visible = true
[species.Y]
[[reactions]]
eq = "X <-> Y"
k_forward = 2.0
k_reverse = 0.5
[initial]
X = 10
[environment]
family = "binomial"
n = 10
p = 0.5
"""
    f = tmp_path / "rates.toml"
    f.write_text(text)
    m = load_model(f)
    kf, kr = m.network.rate_constants()
    np.testing.assert_allclose([kf[0], kr[0]], [2.0, 0.5])
    # minimum-norm energies: G_X = -G_Y, G_Y - G_X = -ln 4
    np.testing.assert_allclose(m.network.energies, [np.log(4) / 2, -np.log(4) / 2])
    assert m.describe()["detailed_balance"] is True


def test_parse_model_api_errors_carry_file_and_key():
    data = tomllib.loads(MINIMAL.replace("mean = 3.0", "mean = -3.0"))
    with pytest.raises(ModelError) as exc:
        parse_model(data, source="m.toml")
    assert exc.value.file == "m.toml" and exc.value.key == "environment.mean"
    assert str(exc.value).startswith("m.toml [environment.mean]:")


def test_no_model_text_is_evaluated(tmp_path):
    # a string where a number belongs is refused, never evaluated
    sentinel = tmp_path / "pwned"
    f = tmp_path / "evil.toml"
    f.write_text(MINIMAL.replace("mean = 3.0", f'mean = "__import__(\'os\').system(\'touch {sentinel}\')"'))
    with pytest.raises(ModelError, match="must be a number"):
        load_model(f)
    assert not sentinel.exists()


# -- environments ------------------------------------------------------------------------------

@given(st.lists(st.floats(0, 1), min_size=1, max_size=21).filter(lambda w: sum(w) > 1e-3),
       st.randoms(use_true_random=False))
def test_table_from_random_probability_vector_sums_to_one(w, rnd, ):
    e2 = example("isomerisation")
    probs = np.asarray(w) / np.sum(w)
    points = rnd.sample(range(21), len(w))
    env = from_dict({"family": "table", "support": [[p] for p in points], "probs": probs.tolist()})
    tab = tabulate(env, e2.space)
    assert abs(tab.q.sum() - 1) < 1e-12
    assert (tab.q >= 0).all()
    x = e2.space.visible_states[:, 0]
    for p, pr in zip(points, probs):
        assert tab.q[x == p][0] == pytest.approx(pr, abs=1e-15)
    assert tab.q[~np.isin(x, points)].sum() == 0


@given(st.floats(0.1, 8), st.integers(1, 20), st.floats(0, 1), st.floats(0, 1))
def test_family_tables_sum_to_one(mean, n, p, a):
    e1, e2, dimer = example("birth_death"), example("isomerisation"), example("dimer")
    for env, space in [(Poisson(mean), e1.space), (Binomial(n, p), e2.space),
                       (Mixture((Binomial(n, p), Binomial(20, 1 - p)), (a, 1 - a)), e2.space),
                       (Product((Poisson(min(mean, 3.0)), Binomial(4, p))), dimer.space)]:
        tab = tabulate(env, space)
        assert abs(tab.q.sum() - 1) < 1e-12 and (tab.q >= 0).all()
        assert 0 <= tab.tail_mass <= 1e-6
    tab = tabulate(Poisson(mean), e1.space)
    np.testing.assert_allclose(tab.q, stats.poisson.pmf(np.arange(61), mean) / stats.poisson.cdf(60, mean),
                               rtol=1e-12, atol=1e-300)


def test_environment_mass_outside_the_class_is_refused(e2):
    with pytest.raises(EnvironmentModelError, match="outside the reachable class"):
        tabulate(Binomial(30, 0.3), e2.space)
    with pytest.raises(EnvironmentModelError, match=r"points \[\(25,\)\]"):
        tabulate(Table(((0,), (25,)), (0.5, 0.5)), e2.space)
    with pytest.raises(EnvironmentModelError, match="2 species"):
        tabulate(Product((Poisson(1.0), Poisson(1.0))), e2.space)


@pytest.mark.parametrize("d, key", [
    ({"family": "table", "support": [[0], [1]], "probs": [0.6, 0.6]}, "environment.probs"),
    ({"family": "table", "support": [[0], [1]], "probs": [1.5, -0.5]}, "environment.probs[1]"),
    ({"family": "table", "support": [[0], [0]], "probs": [0.5, 0.5]}, "environment.support"),
    ({"family": "table", "support": [[0]], "probs": [0.5, 0.5]}, "environment.probs"),
    ({"family": "mixture", "components": [{"family": "poisson", "mean": 1.0}], "weights": [0.5]},
     "environment.weights"),
    ({"family": "binomial", "n": 3, "p": 1.5}, "environment.p"),
    ({"family": "binomial", "n": 2.5, "p": 0.5}, "environment.n"),
    ({"family": "poisson", "mean": 0}, "environment.mean"),
    ({"family": "poisson"}, "environment.mean"),
    ({"family": "poisson", "mean": 1.0, "sd": 2.0}, "environment"),
    ({"family": "gaussian", "mean": 1.0}, "environment.family"),
    ({"family": "mixture", "components": [{"family": "poisson", "mean": -1.0}], "weights": [1.0]},
     "environment.components[0].mean"),
])
def test_environment_errors_name_the_key(d, key):
    with pytest.raises(ModelError) as exc:
        from_dict(d)
    assert exc.value.key == key


@pytest.mark.parametrize("p", [1e-308, 5e-324, 0.0, 1.0])
def test_binomial_with_extreme_p(e2, p):
    # regression: scipy's binom.pmf raised OverflowError for p = 1e-308
    tab = tabulate(Binomial(20, p), e2.space)
    assert abs(tab.q.sum() - 1) < 1e-12
    assert tab.q[0 if p < 0.5 else 20] == pytest.approx(1.0)
