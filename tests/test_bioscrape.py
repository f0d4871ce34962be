"""bioscrape (a compiled SSA) as a stochastic peer of our SSA (marker ``peers``).

The finite-ensemble learning network of E1 (examples/birth_death.toml) is
exported as SBML with ``--copies`` amounts (``sbml.learning_sbml(m,
copies=True, state=...)``, what ``crnfb export --sbml F --learning --copies``
writes) and simulated by bioscrape's SSA from that file; our SSA simulates
the model directly. Both start at the file's start (theta = 0, integer
copies), run past the learning transient, and the mean of ``theta =
ln(Lambda_X / Omega)`` must agree within the confidence interval of the
difference (and be near the loop's fixed point). bioscrape's SBML reader needs two changes to a valid
file (see :func:`for_bioscrape`); the network is not changed.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

libsbml = pytest.importorskip("libsbml")

from crnfb.feedback.io import sbml  # noqa: E402
from crnfb.feedback.model.model import Ensembles  # noqa: E402
from crnfb.feedback.io.modelfile import load_model  # noqa: E402
from crnfb.feedback.dynamics.ssa import simulate_ssa  # noqa: E402

EX = Path(__file__).resolve().parents[1] / "examples"


def for_bioscrape(text: str) -> str:
    """The same SBML with what bioscrape 1.4's reader cannot parse rewritten.

    Its kinetic laws go through ``libsbml.formulaToL3String`` and sympy, so a
    number carrying ``sbml:units`` becomes ``-1 dimensionless`` (a syntax
    error) and an id that names a sympy function (``gamma``) is read as
    that function: the units are dropped and such ids get a trailing ``_``.
    """
    import sympy
    doc = libsbml.readSBMLFromString(text)
    m = doc.getModel()
    ids = [m.getParameter(i).getId() for i in range(m.getNumParameters())]
    ids += [m.getSpecies(i).getId() for i in range(m.getNumSpecies())]
    renamed = {sid: sid + "_" for sid in ids if not isinstance(sympy.sympify(sid), sympy.Symbol)}
    for old, new in renamed.items():
        m.getElementBySId(old).setId(new)
    elements = doc.getListOfAllElements()
    for k in range(elements.getSize()):
        for old, new in renamed.items():
            elements.get(k).renameSIdRefs(old, new)
    return re.sub(r'\s+sbml:units="[^"]*"', "", libsbml.writeSBMLToString(doc))


def batch_means(th: np.ndarray, per: int) -> np.ndarray:
    nb = th.shape[1] // per
    return th[:, :nb * per].reshape(-1, per).mean(axis=1)


@pytest.mark.peers
def test_bioscrape_theta_mean_at_fixed_point(tmp_path):
    pytest.importorskip("bioscrape.simulator", reason="bioscrape is not installed (pip install bioscrape)")
    from bioscrape.random import py_seed_random
    from bioscrape.simulator import py_simulate_model
    from bioscrape.types import Model as BModel

    from crnfb.analysis.linear.fixedpoints import loop_fixed_point
    from crnfb.feedback.dynamics.ensembles import LearningNetwork

    # E1 with dynamic clamping, smaller ensembles and faster learning (theta's correlation
    # time 1 / (eps E_Q[x]) = 1) so that the test takes seconds
    omega = 200.0
    m = (load_model(EX / "birth_death.toml").with_learning(clamping="dynamic", eps=0.2)
         .replace(n_max=20, change=None, ensembles=Ensembles(200, 200, omega)))
    lnet = LearningNetwork(m)
    fp = loop_fixed_point(m, lnet)
    theta_fp = fp.x[lnet.n_f + lnet.n_c:]
    f = tmp_path / "e1-copies.xml"
    # the default start: copies rounded to integers (a start passed as state= keeps fractions)
    f.write_text(for_bioscrape(sbml.learning_sbml(m, copies=True)))
    with warnings.catch_warnings():  # "Compartments ... are not recognized by bioscrape"
        warnings.simplefilter("ignore", UserWarning)
        bm = BModel(sbml_filename=str(f))

    t_burn, t_end, dt, per = 10.0, 60.0, 0.5, 10   # batches of 5 time units
    times = np.arange(0.0, t_end + dt / 2, dt)
    keep = times > t_burn
    R = 2
    ours = simulate_ssa(m, t_end, times.size, seed=3, replicates=8, progress=False,
                        threads=1).theta[:, keep, 0]
    ix = bm.get_species2index()["Lambda_X"]
    peer = []
    for r in range(R):
        py_seed_random(17 + r)
        res = py_simulate_model(times, Model=bm, stochastic=True, return_dataframe=False)
        peer.append(np.log(res.py_get_result()[:, ix] / omega))
    peer = np.array(peer)[:, keep]
    a, b = batch_means(ours, per), batch_means(peer, per)
    se = np.hypot(a.std(ddof=1) / np.sqrt(a.size), b.std(ddof=1) / np.sqrt(b.size))
    assert abs(peer.mean() - theta_fp[0]) < 0.1        # bioscrape is at the fixed point, not elsewhere
    assert abs(peer.mean() - ours.mean()) < 3.0 * se, (peer.mean(), ours.mean(), se)
