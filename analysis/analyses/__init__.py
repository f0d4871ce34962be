"""What is computed from the linear loop (and, for checks, from the nonlinear one): one question per module.

* :mod:`.context` -- :class:`~crnfb.analysis.analyses.context.Analysis` (``crnfb.Analysis``): one model's
  fixed point, loop, stability, margins and disturbance, each computed once;
* :mod:`.margins` -- gain and phase margins, ``eps_crit``;
* :mod:`.disturbance` -- disturbance rejection;
* :mod:`.noise`, :mod:`.noise_spectral` -- the linear noise approximation;
* :mod:`.thermo` -- thermodynamic costs;
* :mod:`.fluctuation` -- learning in a random environment;
* :mod:`.validation` -- the linear predictions against the nonlinear loop;
* :mod:`.globalbehaviour`, :mod:`.region`, :mod:`.bifurcation` -- does learning succeed, how large a
  step is safe, what happens past ``eps_crit``;
* :mod:`.grids`, :mod:`.tradeoffs` -- parameter grids and the dissipation trade-offs along them.
"""
