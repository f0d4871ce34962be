"""The machinery under both packages: sparse LU, size switches, worker processes, progress bars, signals.

* :mod:`.sparselu` -- fill-reducing orders, unpivoted LU of generator blocks, the bordered LU
  (:class:`~crnfb.feedback.numerics.sparselu.BorderedLU`);
* :mod:`.sizes` -- every size switch (the thresholds that pick a method by size);
* :mod:`.parallel` -- independent runs on every core (forked workers);
* :mod:`.progress` -- one progress-bar helper;
* :mod:`.signals_guard` -- Python's signal handlers restored around native libraries.
"""
