"""crn-feedback, the analysis: fixed points, linearisation, stability, margins,
disturbance rejection, validation, thermodynamics, reports, plots, CLI.

The public API of the analysis (``crnfb`` re-exports the most used names)::

    from crnfb.analysis import analyse
    res = analyse(model)              # Results: res.summary(), res.to_json(), res.plot_bode(), ...

Plotting functions live in :mod:`crnfb.analysis.plots` (matplotlib is
imported only when a figure is drawn); the symbolic loop in
:mod:`crnfb.analysis.symbolic` (imports sympy).
"""

from crnfb.analysis.disturbance import Disturbance, StepMetrics, disturbance
from crnfb.analysis.fixedpoints import StationaryPoint, learned_fixed_point, stationary_points
from crnfb.analysis.frequency import BrokenLoop, LoopResponse, broken_loop
from crnfb.analysis.linearise import LinearLoop, LoopFixedPoint, linearise, loop_fixed_point
from crnfb.analysis.margins import Margins, margins
from crnfb.analysis.noise import NoisePrediction, parameter_noise
from crnfb.analysis.pipeline import analyse
from crnfb.analysis.results import Distribution, Results, StepResponse, LearningCurve, Unavailable
from crnfb.analysis.stability import Stability, stability
from crnfb.analysis.summary import Summary
from crnfb.analysis.thermo import thermodynamics_report
from crnfb.analysis.validation import Check, validate

__all__ = ["BrokenLoop", "Check", "Distribution", "Disturbance", "LinearLoop", "LoopFixedPoint", "LoopResponse",
           "Margins", "NoisePrediction", "Results", "Stability", "StationaryPoint", "StepMetrics", "StepResponse",
           "Summary", "LearningCurve", "Unavailable", "analyse", "broken_loop", "disturbance", "learned_fixed_point",
           "linearise", "loop_fixed_point", "margins", "parameter_noise", "stability", "stationary_points",
           "thermodynamics_report", "validate"]
