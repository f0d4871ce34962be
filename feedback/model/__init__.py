"""The system as a value: what a model is, before anything runs.

* :mod:`.network` -- detailed-balanced reaction networks;
* :mod:`.statespace` -- the irreducible class of one copy and its truncation;
* :mod:`.landscape` -- exact distributions and the divergence landscape;
* :mod:`.environment` -- environments ``Q(v)``;
* :mod:`.signals` -- environment signals ``a(t)``;
* :mod:`.randomenv` -- random environments: ``a(t)`` as a stationary Markov chain;
* :mod:`.model` -- :class:`~crnfb.feedback.model.model.Model`, the learning problem as one value object.

Read by :mod:`crnfb.feedback.io` (model files, SBML), run by
:mod:`crnfb.feedback.dynamics`; nothing here imports either.
"""
