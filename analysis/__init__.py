"""crn-feedback, the analysis: fixed points, linearisation, stability, margins,
disturbance rejection, validation, thermodynamics, reports, plots, CLI.

The public API of the analysis (``crnfb`` re-exports the most used names)::

    from crnfb.analysis import Analysis, analyse
    res = analyse(model)              # Results: res.summary(), res.to_json(), res.plot_bode(), ...
    an = Analysis(model)              # one quantity at a time, each computed once: an.loop, an.margins

The modules are in one sub-package per stage of the data flow:
:mod:`crnfb.analysis.linear` (fixed points, the linearised loop),
:mod:`crnfb.analysis.analyses` (margins, disturbance, noise, ...),
:mod:`crnfb.analysis.reporting` (``analyse``, ``Results``, figures) and
:mod:`crnfb.analysis.cli` (docs/architecture.md, "Folders"). The functions
named like their module (``linearise``, ``stability``, ``margins``,
``disturbance``) are not re-exported here; import them from their modules
(``from crnfb.analysis.analyses.margins import margins``). Plotting
functions live in :mod:`crnfb.analysis.reporting.plots` (matplotlib is
imported only when a figure is drawn); the symbolic loop in
:mod:`crnfb.analysis.linear.symbolic` (imports sympy).
"""

from crnfb.analysis.analyses.context import Analysis
from crnfb.analysis.analyses.disturbance import Disturbance, StepMetrics
from crnfb.analysis.linear.fixedpoints import StationaryPoint, learned_fixed_point, stationary_points
from crnfb.analysis.linear.frequency import BrokenLoop, LoopResponse, broken_loop
from crnfb.analysis.linear.linearise import LinearLoop
from crnfb.analysis.linear.fixedpoints import LoopFixedPoint, loop_fixed_point
from crnfb.analysis.analyses.margins import Margins
from crnfb.analysis.analyses.noise import NoisePrediction, parameter_noise
from crnfb.analysis.reporting.pipeline import analyse
from crnfb.analysis.reporting.results import Distribution, Results, StepResponse, LearningCurve, Unavailable
from crnfb.analysis.linear.stability import Stability
from crnfb.analysis.reporting.summary import Summary
from crnfb.analysis.analyses.thermo import thermodynamics_report
from crnfb.analysis.analyses.validation import Check, validate

__all__ = ["Analysis", "BrokenLoop", "Check", "Distribution", "Disturbance", "LinearLoop", "LoopFixedPoint", "LoopResponse",
           "Margins", "NoisePrediction", "Results", "Stability", "StationaryPoint", "StepMetrics", "StepResponse",
           "Summary", "LearningCurve", "Unavailable", "analyse", "broken_loop", "learned_fixed_point",
           "loop_fixed_point", "parameter_noise", "stationary_points", "thermodynamics_report", "validate"]
