"""crn-feedback, the analysis: fixed points, linearisation, stability, margins,
disturbance rejection, validation, thermodynamics, reports, plots, CLI."""
