"""crn-feedback: control-theory analysis of learning chemical reaction networks.

The package installs under this one root. ``crnfb.feedback`` is the system
(networks, state spaces, exact laws, environments, ensembles, the loop as
python-control systems, simulators, SBML); ``crnfb.analysis`` is what is
computed from it (fixed points, linearisation, stability, margins,
disturbance, validation, thermodynamics, reports, plots, the ``crnfb``
command line). The names below are the public API of both::

    import crnfb

    model = crnfb.load_model("examples/birth_death.toml")
    res = crnfb.analyse(model, validate=False)
    print(res.summary())
    an = crnfb.Analysis(model)      # one quantity at a time, each computed once
    an.stability, an.margins.eps_crit_value

``crnfb.load_model`` also reads SBML and Antimony, given the visible species
and an environment file: ``crnfb.load_model("bd.xml", visible=["X"],
environment="env.toml")`` (docs/sbml.md).

The mathematics is in ``docs/theory.md``.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from crnfb.feedback import (Binomial, DetailedBalanceError, Ensembles, Learning, Mixture, Model, ModelError,
                            Network, Poisson, Product, Reaction, Species, Table, TruncationError, load_model,
                            parse_model)
from crnfb.feedback.model.randomenv import MarkovEnvironment, telegraph
from crnfb.analysis import Analysis, Results, analyse
from crnfb.analysis.analyses.fluctuation import FluctuationResult, fluctuation
from crnfb.analysis.reporting.plots import fluctuation as plot_fluctuation

_LAZY = {"from_biocrnpyler": "crnfb.feedback.io.sbml.biocrnpyler", "import_sbml": "crnfb.feedback.io.sbml.importer"}


def __getattr__(name):
    """``crnfb.from_biocrnpyler`` and ``crnfb.import_sbml``, imported on first use (libsbml is not loaded
    by ``import crnfb``)."""
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crnfb' has no attribute {name!r}")


try:
    __version__ = _version("crn-feedback")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Binomial", "DetailedBalanceError", "Ensembles", "Learning", "Mixture", "Model", "ModelError",
           "Network", "Poisson", "Product", "Reaction", "Species", "Table", "TruncationError", "load_model",
           "parse_model", "Analysis", "Results", "analyse", "MarkovEnvironment", "telegraph", "FluctuationResult",
           "fluctuation", "plot_fluctuation", "from_biocrnpyler", "import_sbml", "__version__"]
