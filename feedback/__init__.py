"""crn-feedback, the system: networks, state spaces, exact distributions,
environments, ensembles, the learning network and its feedback loop.

One sub-package per stage of the data flow: :mod:`crnfb.feedback.model` (what
a model is), :mod:`crnfb.feedback.io` (model files, SBML, output files),
:mod:`crnfb.feedback.dynamics` (the learning network, the loop, the
simulators) and :mod:`crnfb.feedback.numerics` (sparse LU, size switches,
workers); :mod:`crnfb.feedback.errors` is shared by all (docs/architecture.md,
"Folders").
"""

from .model.environment import Binomial, Mixture, Poisson, Product, Table
from .errors import DetailedBalanceError, ModelError, TruncationError
from .model.model import Ensembles, Learning, Model
from .io.loading import load_model
from .io.modelfile import parse_model
from .model.network import Network, Reaction, Species

__all__ = ["Binomial", "Mixture", "Poisson", "Product", "Table", "DetailedBalanceError", "ModelError",
           "TruncationError", "Ensembles", "Learning", "Model", "load_model", "parse_model", "Network",
           "Reaction", "Species"]
