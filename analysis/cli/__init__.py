"""The ``crnfb`` command line (docs/cli.md): one module per subcommand.

* :mod:`.entry` -- :func:`main`: the parser, ``crnfb check`` and ``crnfb fit``, errors to exit codes;
* :mod:`.report` -- ``crnfb report``: the report directory, written atomically;
* :mod:`.sweep` -- ``crnfb sweep``;
* :mod:`.simulate` -- ``crnfb simulate``;
* :mod:`.sbml_commands` -- ``crnfb export`` and ``crnfb convert``; :mod:`.export_prune` -- ``--prune``;
* :mod:`.model_input` -- the model argument every subcommand reads.

``from crnfb.analysis.cli import main`` is :func:`crnfb.analysis.cli.entry.main`, the ``crnfb`` script.
"""

from .entry import main

__all__ = ["main"]
