"""Models in and outputs out: model files, the one loader, SBML, safe output files.

* :mod:`.modelfile` -- model files (TOML) to a :class:`~crnfb.feedback.model.model.Model`;
* :mod:`.loading` -- one loader for every format (``crnfb.load_model``);
* :mod:`.sbml` -- SBML and Antimony in and out (a package of its own);
* :mod:`.files` -- atomic output files and directories, the output-directory rule.
"""
