"""crn-feedback, the system: networks, state spaces, exact distributions,
environments, ensembles, the learning network and its feedback loop."""

from .environment import Binomial, Mixture, Poisson, Product, Table
from .errors import DetailedBalanceError, ModelError, TruncationError
from .model import Ensembles, Learning, Model
from .loading import load_model
from .modelfile import parse_model
from .network import Network, Reaction, Species

__all__ = ["Binomial", "Mixture", "Poisson", "Product", "Table", "DetailedBalanceError", "ModelError",
           "TruncationError", "Ensembles", "Learning", "Model", "load_model", "parse_model", "Network",
           "Reaction", "Species"]
