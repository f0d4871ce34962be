"""crn-feedback, the analysis: fixed points, linearisation, stability, margins,
disturbance rejection, validation, thermodynamics, reports, plots, CLI.

The public API of the analysis (``crnfb`` re-exports the most used names)::

    from crnfb.analysis import Analysis, analyse
    res = analyse(model)              # Results: res.summary(), res.to_json(), res.plot_bode(), ...
    an = Analysis(model)              # one quantity at a time, each computed once: an.loop, an.margins

The functions named like their module (``linearise``, ``stability``,
``margins``, ``disturbance``) are not re-exported here: the name would hide
the module (``from crnfb.analysis import margins`` is the module). Plotting
functions live in :mod:`crnfb.analysis.plots` (matplotlib is
imported only when a figure is drawn); the symbolic loop in
:mod:`crnfb.analysis.symbolic` (imports sympy).
"""

from crnfb.analysis.context import Analysis
from crnfb.analysis.disturbance import Disturbance, StepMetrics
from crnfb.analysis.fixedpoints import StationaryPoint, learned_fixed_point, stationary_points
from crnfb.analysis.frequency import BrokenLoop, LoopResponse, broken_loop
from crnfb.analysis.linearise import LinearLoop
from crnfb.analysis.fixedpoints import LoopFixedPoint, loop_fixed_point
from crnfb.analysis.margins import Margins
from crnfb.analysis.noise import NoisePrediction, parameter_noise
from crnfb.analysis.pipeline import analyse
from crnfb.analysis.results import Distribution, Results, StepResponse, LearningCurve, Unavailable
from crnfb.analysis.stability import Stability
from crnfb.analysis.summary import Summary
from crnfb.analysis.thermo import thermodynamics_report
from crnfb.analysis.validation import Check, validate

__all__ = ["Analysis", "BrokenLoop", "Check", "Distribution", "Disturbance", "LinearLoop", "LoopFixedPoint", "LoopResponse",
           "Margins", "NoisePrediction", "Results", "Stability", "StationaryPoint", "StepMetrics", "StepResponse",
           "Summary", "LearningCurve", "Unavailable", "analyse", "broken_loop", "learned_fixed_point",
           "loop_fixed_point", "parameter_noise", "stationary_points", "thermodynamics_report", "validate"]
