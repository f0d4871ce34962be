"""One analysis, computed once (issue 19, deliverable 1): :class:`crnfb.Analysis` and the derived data
that :meth:`Model.replace` shares between models, on generated networks of every shape (tests/corpus.py)."""

from __future__ import annotations

import dataclasses
import re
from functools import cached_property

import numpy as np
import pytest

from corpus import SHAPES, make
from crnfb.analysis.analyses import context as C
from crnfb.analysis.analyses.context import Analysis
from crnfb.analysis.reporting.pipeline import analyse
from crnfb.feedback.model.model import DERIVED_FROM, Model
from crnfb.feedback.io.modelfile import load_model

NETS = [make(shape, 0) for shape in SHAPES]


def _load(net, tmp_path, eps: float | None = None) -> Model:
    text = net.text if eps is None else re.sub(r"(?m)^eps = .*$", f"eps = {eps!r}", net.text)
    path = tmp_path / f"{net.name}.toml"
    path.write_text(text)
    return load_model(path)


def test_every_derived_value_of_a_model_says_what_it_is_computed_from():
    cached = {k for k, v in vars(Model).items() if isinstance(v, cached_property)}
    assert cached == set(DERIVED_FROM)
    fields = {f.name for f in dataclasses.fields(Model)}
    assert all(inputs <= fields for inputs in DERIVED_FROM.values())


@pytest.mark.parametrize("net", NETS, ids=lambda n: n.name)
def test_a_new_eps_shares_the_class_and_landscape_and_equals_a_model_read_with_it(net, tmp_path):
    model = _load(net, tmp_path)
    theta = model.start_theta + 0.3
    D0 = model.divergence(theta)           # computes the landscape, so that there is something to share
    new = model.with_learning(eps=3.0 * net.eps)
    assert new.space is model.space and new.landscape is model.landscape and new.env_table is model.env_table
    fresh = _load(net, tmp_path, eps=3.0 * net.eps)       # read from the file, nothing shared
    assert np.array_equal(new.eps, fresh.eps) and np.array_equal(new.start_theta, fresh.start_theta)
    assert new.divergence(theta) == fresh.divergence(theta) == D0
    assert np.array_equal(new.gradient(theta), fresh.gradient(theta))


@pytest.mark.parametrize("net", NETS[:3], ids=lambda n: n.name)
def test_a_new_environment_keeps_the_class_and_rebuilds_the_landscape(net, tmp_path):
    model = _load(net, tmp_path)
    theta = model.start_theta
    model.divergence(theta)
    new = model.replace(environment=model.change)
    assert new.space is model.space and new.landscape is not model.landscape
    fresh = dataclasses.replace(model, environment=model.change)      # rebuilds everything
    assert fresh.space is not model.space
    assert np.array_equal(new.q, fresh.q)
    assert new.divergence(theta) == pytest.approx(fresh.divergence(theta), rel=1e-14)
    assert new.divergence(theta) != pytest.approx(model.divergence(theta), rel=1e-6)


def test_a_new_initial_state_rebuilds_the_class_and_a_bad_change_is_refused(tmp_path):
    net = next(n for n in NETS if n.shape == "pool")
    model = _load(net, tmp_path)
    model.space
    new = model.replace(initial=dict(net.initial))
    assert new.space is not model.space and np.array_equal(new.space.states, model.space.states)
    with pytest.raises(TypeError, match="no field"):
        model.replace(eps=1.0)
    with pytest.raises(Exception, match="eps"):
        model.with_learning(eps=(0.1,) * (len(model.learned) + 1))


def test_each_quantity_is_computed_once_on_first_read(monkeypatch, tmp_path):
    calls = {"margins": 0, "learned_fixed_point": 0}
    for name in calls:
        orig = getattr(C, name)

        def counted(*a, _orig=orig, _name=name, **k):
            calls[_name] += 1
            return _orig(*a, **k)
        monkeypatch.setattr(C, name, counted)
    an = Analysis(_load(next(n for n in NETS if n.shape == "binding"), tmp_path))
    assert an.computed() == ()
    assert an.margins is an.margins
    assert an.computed() == ("optimum", "fixed_point", "loop", "margins")
    res = analyse(an, validate=False, figures=False)
    assert res.loop is an.loop and res.fixed_point is an.fixed_point and res.stability is an.stability
    assert res.margins is an.margins and res.disturbance is an.disturbance
    assert calls == {"margins": 1, "learned_fixed_point": 1}


# learnable draws (a fixed point to linearise at) with several learned energies, both clampings
LEARNABLE = [make("scaffold", 3), make("walk", 2), make("open_chain", 2), make("dimer", 1), make("pool", 2)]


@pytest.mark.parametrize("net", LEARNABLE, ids=lambda n: n.name)
def test_a_scaled_eps_reuses_the_learned_fixed_point_and_other_ratios_do_not(net, tmp_path):
    an = Analysis(_load(net, tmp_path))
    opt = an.optimum
    scaled = an.with_eps(an.model.eps * 4.0)
    assert scaled.optimum is opt and scaled.model.space is an.model.space
    # independent: the same rates read from a file, the flow run again
    fresh = Analysis(_load(net, tmp_path, eps=4.0 * net.eps)).optimum
    assert np.allclose(fresh.theta, opt.theta, atol=1e-7)
    assert scaled.loop.net.eps == pytest.approx(4.0 * an.model.eps)
    ratios = an.model.eps * np.linspace(1.0, 2.0, an.model.eps.size)
    other = an.with_eps(ratios)
    assert other.optimum_given is None or ratios.size == 1


def test_no_fixed_point_is_the_verdict_of_crnfb_fit(tmp_path):
    from crnfb.analysis.linear.fixedpoints import NoFixedPoint
    from crnfb.analysis.cli.entry import main
    net = make("scaffold", 0)          # a target the scaffold cannot represent: D falls to a plateau
    an = Analysis(_load(net, tmp_path))
    with pytest.raises(NoFixedPoint, match="plateau"):
        an.optimum
    assert an.computed() == ()
    assert main(["fit", str(tmp_path / f"{net.name}.toml")]) == 1
