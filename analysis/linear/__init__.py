"""The loop at its fixed point, linearised: what every analysis starts from.

* :mod:`.fixedpoints` -- the learned optimum and the loop's own fixed point;
* :mod:`.linearise` -- :class:`~crnfb.analysis.linear.linearise.LinearLoop`, the loop linearised at its fixed point;
* :mod:`.linblocks` -- the loop's blocks linearised;
* :mod:`.stability` -- closed-loop eigenvalues, stability and convergence;
* :mod:`.slowmodes` -- slow modes of large loops by shift-invert;
* :mod:`.frequency` -- frequency responses, the loop broken at theta;
* :mod:`.plantrom` -- verified reduced plant models for frequency sweeps;
* :mod:`.symbolic` -- the linearised loop in symbols (sympy).
"""
