"""SBML export and import (docs/theory.md §1 and §4; docs/sbml.md; docs/cli.md ``crnfb export``, ``crnfb convert``).

One module per job:

* :mod:`.labels` -- copy-state labels (:func:`state_label`) and SBML ids;
* :mod:`.massaction` -- :class:`MassActionNetwork`, an irreversible
  mass-action network with its exact ODE and Jacobian;
* :mod:`.learning` -- :func:`learning_network`, the learning CRN built from
  :class:`~crnfb.feedback.dynamics.ensembles.LearningNetwork` (fractions, or copy
  counts with copy-conserving resets; equilibrium clamping only as a stated
  speed-up approximation; optional pruning);
* :mod:`.export` -- SBML text of the model network C (:func:`model_sbml`)
  and of any mass-action network (:func:`network_to_sbml`,
  :func:`learning_sbml`), atomic writes;
* :mod:`.convert` -- Antimony to SBML, and an imported network as a model
  file with the environment as a commented template (``crnfb convert``), or
  with an environment file's tables in memory (:func:`load_sbml_model`);
* :mod:`.units` -- the one rule from SBML amounts and concentrations to
  copy numbers and stochastic rate constants (:class:`UnitConversion`);
* :mod:`.biocrnpyler` -- :func:`from_biocrnpyler`, a BioCRNpyler
  ``ChemicalReactionNetwork`` object as our model (``crnfb.from_biocrnpyler``);
* :mod:`.importer` -- :func:`read_sbml` (any mass-action SBML; kinetic-law
  ASTs walked node by node, function definitions expanded by libsbml,
  nothing evaluated as code), :func:`read_network` / :func:`import_sbml`
  (reversible, detailed-balanced networks).
"""

from ._libsbml import COMPARTMENT, CRNFB_NS, SBMLExportWarning
from .convert import (antimony_line, antimony_to_sbml, environment_tables, is_antimony, is_sbml_source,
                      load_sbml_model, model_file_text, read_converted, sbml_model_text)
from .export import export_model, learning_sbml, model_sbml, network_to_sbml, write_sbml
from .biocrnpyler import biocrnpyler_network, from_biocrnpyler
from .importer import ImportedNetwork, import_sbml, read_network, read_sbml
from .labels import check_ids, parse_state_label, state_label, to_sid
from .learning import AMOUNT_FLOOR, clamped_start, exported_network, largest_remainder, learning_network, path_mass
from .massaction import MassActionNetwork, MassActionReaction
from .units import UnitConversion

__all__ = [
    "CRNFB_NS", "COMPARTMENT", "AMOUNT_FLOOR", "SBMLExportWarning", "MassActionReaction", "MassActionNetwork",
    "ImportedNetwork", "state_label", "parse_state_label", "check_ids", "to_sid", "model_sbml",
    "learning_network", "exported_network", "largest_remainder", "learning_sbml", "network_to_sbml",
    "clamped_start", "path_mass", "write_sbml", "export_model", "read_sbml", "read_network", "import_sbml",
    "antimony_to_sbml", "antimony_line", "is_antimony", "model_file_text", "is_sbml_source", "read_converted",
    "environment_tables", "sbml_model_text", "load_sbml_model", "UnitConversion", "from_biocrnpyler",
    "biocrnpyler_network",
]
