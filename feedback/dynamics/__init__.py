"""How the system evolves: the learning network at the ensemble level and its simulators.

* :mod:`.ensembles` -- the learning network at the ensemble level;
* :mod:`.loop` -- the loop as python-control blocks with named signals;
* :mod:`.integrate` -- deterministic simulation (the ODE of the full loop);
* :mod:`.bdf` -- the BDF integrator with the loop's structure in its Newton matrix
  (:class:`~crnfb.feedback.dynamics.bdf.ReuseBDF`);
* :mod:`.ssa` -- exact stochastic simulation of finite ensembles.
"""
