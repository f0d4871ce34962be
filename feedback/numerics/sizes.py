"""Every size switch of the package: the thresholds that pick a method by the size of a problem.

Each constant says what it switches between, the measurement that justifies
its value (or, where none was made, ``not measured`` and how the value was
chosen) and where the docs say more. docs/benchmarks.md, "Size switches",
tabulates them; tests/test_sizes.py checks that table against this module,
that no other module under ``feedback/`` or ``analysis/`` defines a switch of
its own, and that the tested networks run on both sides of each switch.

The code reads the switches from this module when it runs (``sizes.NAME``,
never ``from ... import NAME``), so one ``monkeypatch.setattr(sizes, NAME, v)``
moves a switch everywhere it is used.

This module lives in ``feedback/`` because the state space and the ODE
solver read some of the switches and ``feedback`` may not import ``analysis``.
"""

from __future__ import annotations

__all__ = [
    "STATESPACE_MAX_STATES", "SLICE_COUNT_MAX_STATES", "BOX_CELLS", "ND_ABOVE",
    "STABILITY_DENSE_LIMIT", "MARGINS_MODES_DENSE_LIMIT", "DENSE_SCAN_LIMIT", "DENSE_FALLBACK",
    "MAX_DENSE_STATES", "STEP_DENSE_LIMIT", "DENSE_LYAPUNOV_LIMIT", "CORRELATION_DENSE_LIMIT",
    "MAX_SYMBOLIC_STATES", "SAFE_FACTOR_MAX_STATES", "ROA_MAX_STATES",
    "BIFURCATION_DENSE_EIG_LIMIT", "BIFURCATION_MAX_STATES", "PRUNE_DENSE_LIMIT", "BLOCK_PLANT",
    "ROM_PLANT", "ROM_BASIS_PERCENT", "MODAL_PLANT_MAX", "LARGE_PLANT", "LARGE_POINTS_PER_DECADE",
]

# ---------------------------------------------------------------------------------------------
# State spaces (crnfb.feedback.model.statespace)

#: Refusal cap: a communicating class with more states than this is refused (``ModelError``,
#: "lower n_max") instead of enumerated. Not measured as a crossover: chosen as a memory cap (the
#: enumeration is linear in the class size; docs/benchmarks.md "State-space enumeration": 171,700
#: states of 100 species peak at 300 MiB).
STATESPACE_MAX_STATES = 2_000_000
#: Exact slice count vs looser bound: the class-size bound counts the lattice points on the
#: conservation-law slice exactly by dynamic programming while it keeps at most this many partial
#: sums, else it falls back to the free-coordinate product bound. Not measured: chosen as a cost
#: cap (a tenth of ``STATESPACE_MAX_STATES``); the exact count was needed for the T = 40 scaffold
#: (refused as "up to 4.3e7 states" by the loose bound; docs/decisions.md, commit 8132c74).
SLICE_COUNT_MAX_STATES = 200_000
#: Whole-box enumeration vs search from the initial state: boxes with at most this many cells
#: (states times species) are enumerated whole and split by one ``connected_components`` call.
#: Not measured as a crossover: chosen as a memory cap on the box's table of cells
#: (docs/decisions.md, docs/benchmarks.md "State-space enumeration": the chains' small boxes).
BOX_CELLS = 8_000_000

# ---------------------------------------------------------------------------------------------
# Sparse LU of loop-sized matrices (crnfb.feedback.numerics.sparselu: the integrator's Newton matrices, the
# slow-mode solver, shifted solves, ARPACK's shift-invert)

#: SuperLU in COLAMD order vs SuperLU in a METIS nested-dissection order (without row pivoting
#: when the matrix is column diagonally dominant, else with threshold pivoting): every sparse LU of
#: a loop-sized matrix with at least this many unknowns (crnfb.feedback.numerics.sparselu.sparse_lu and the
#: sparse block of BorderedLU). Measured (CPU, one factorisation): 20160 unknowns 0.07-0.12 s
#: (fill 1.5M) against MMD_AT_PLUS_A's 0.33 s (2.3M) and COLAMD's 0.70 s (5.4M); 5070 unknowns
#: 0.009-0.024 s (0.22M) against COLAMD's 0.016-0.033 s (0.49M); validation at 2535 states 35 -> 26 s;
#: a five-species open chain (16,807 states, a 5-D lattice) 1.8-2.4 s (6.9M) against MMD_AT_PLUS_A's
#: 200 s (12.9M) (docs/decisions.md, "Generator blocks factorised without pivoting in the ODE too"
#: and "One sparse LU for every loop-sized matrix"; docs/benchmarks.md). The crossover below 5070
#: was not measured.
ND_ABOVE = 2000

# ---------------------------------------------------------------------------------------------
# Eigenvalues of the reduced loop

#: Dense ``eig`` vs shift-invert Arnoldi at zero with block elimination (crnfb.analysis.linear.slowmodes)
#: for the slowest closed-loop modes; also dense vs block-eliminated / bordered-LU solves of the
#: reduced Jacobian (slowmodes.reduced_solve, validation). Measured: dense ``eig`` costs time ~ n^3
#: (exponent 2.8-3.1) and dominates the linearisation between 500 and 1500 reduced states
#: (docs/benchmarks.md (c)); the value 400 itself was not measured as a crossover: chosen below
#: that range (commit ce2f963, "dense eig limit 400"; docs/decisions.md "Slowest modes of large
#: loops").
STABILITY_DENSE_LIMIT = 400
#: Dense ``eigvals`` vs sparse rightmost Arnoldi for the modes of one spectrum in the margins'
#: eigenvalue scan (crnfb.analysis.analyses.margins.jacobian_modes). Not measured: chosen as the dense limit of the
#: original margins code (commit 90a0376); used only when a frequency-domain crossing does not
#: verify (docs/benchmarks.md "Parameter-noise LNA without dense algebra").
MARGINS_MODES_DENSE_LIMIT = 1500
#: eps_crit by a scan of spectra (dense Jacobians) vs from the characteristic loci verified by
#: sparse shift-invert at ``j w_c`` (crnfb.analysis.analyses.margins). Not measured as a crossover: chosen
#: equal to ``STABILITY_DENSE_LIMIT`` (commit ce2f963; docs/decisions.md "eps_crit without
#: eigenvalue scans").
DENSE_SCAN_LIMIT = 400
#: Refusal cap: the largest reduced loop whose dense spectrum replaces a failed ARPACK search in
#: the margins (else RuntimeError with the reason). Not measured: chosen by memory (a dense matrix
#: of 6000 states is 0.3 GB, of 2e4 states 3 GB; docs/decisions.md "ARPACK failures").
DENSE_FALLBACK = 6000

# ---------------------------------------------------------------------------------------------
# Dense models, step responses, noise

#: Refusal cap: dense python-control models (crnfb.analysis.linear.linblocks) are built up to this many
#: states (``LoopTooLargeError`` above). Not measured as a crossover: chosen as a memory and time
#: cap (the ``control.linearize`` route with dense ``eig`` took 40.6 s at 4231 and 59.9 s at 5286
#: reduced states, docs/benchmarks.md (c); docs/loop.md).
MAX_DENSE_STATES = 3000
#: Dense reduced-loop step response vs the closed loop through the verified reduced plant model
#: (crnfb.analysis.analyses.disturbance). Measured agreement, not a crossover: step responses equal to 4e-9
#: (T = 40) and 2e-8 (2535 states) against the sparse integration; the value 800 not measured:
#: chosen between the dense limits 400 and 1500 (docs/decisions.md "The disturbance step response
#: of large loops").
STEP_DENSE_LIMIT = 800
#: Dense Lyapunov solve vs the frequency integral (crnfb.analysis.analyses.noise_spectral) for the
#: parameter-noise covariance. Measured: E3 (361 reduced states) dense 1.5 s vs integral 2.9 s;
#: T = 40 scaffold (1321) dense 164 s vs integral 35 s; agreement 2e-9 to 5e-9
#: (docs/benchmarks.md "Parameter-noise LNA without dense algebra").
DENSE_LYAPUNOV_LIMIT = 400
#: Correlation times from the dense Lyapunov solve vs the noise check deciding from the slowest
#: rate and event rate before any covariance (crnfb.analysis.analyses.noise). Not measured as a crossover:
#: chosen so that the T = 40 scaffold (1321 states) and two_visible decide first (docs/decisions.md
#: "Large loops decide before the covariance").
CORRELATION_DENSE_LIMIT = 1000
#: Refusal cap: the largest reduced loop the exact symbolic linearisation accepts
#: (crnfb.analysis.linear.symbolic, ``SymbolicTooLargeError``). Not measured: chosen with the module
#: (commit 7c2f43a), whose tests run E1 at n_max 6 and E2 at T 3 (docs/loop.md).
MAX_SYMBOLIC_STATES = 16

# ---------------------------------------------------------------------------------------------
# Global behaviour (crnfb.analysis.reporting.pipeline, region, bifurcation)

#: Refusal cap: the safe-factor trisection runs on loop states (ensembles + theta) up to this
#: many ("not computed: ... exceed a report's time"). Measured: the 10^4-state two_visible example
#: spent over 15 minutes in it; chain30 at eps 0.63 takes 143 s on two busy cores
#: (docs/decisions.md "Budget: the safe factor's 3000-state limit").
SAFE_FACTOR_MAX_STATES = 3000
#: Refusal cap: the region-of-attraction search runs up to this many loop states ("not computed:
#: loop too large"). Not measured separately: chosen equal to SAFE_FACTOR_MAX_STATES (3 to 12
#: nonlinear runs near the boundary; docs/decisions.md "One time budget for the global searches").
ROA_MAX_STATES = 3000
#: Dense eigenvectors vs shift-invert Arnoldi at ``i omega`` for the Newton-Picard basis of the
#: bifurcation (crnfb.analysis.analyses.bifurcation). Not measured: chosen equal to
#: MARGINS_MODES_DENSE_LIMIT (commit 5ab3dc3).
BIFURCATION_DENSE_EIG_LIMIT = 1500
#: Refusal cap: the orbit analysis (ODE runs of many periods) runs on reduced loops of at most
#: this many states ("not computed: loop too large"). Not measured: chosen equal to
#: SAFE_FACTOR_MAX_STATES (commit 5ab3dc3).
BIFURCATION_MAX_STATES = 3000

# ---------------------------------------------------------------------------------------------
# Pruned-network export (crnfb.analysis.cli.export_prune)

#: Dense Newton with minimum-norm steps and dense eigenvalues vs continuation without eigenvalues
#: for the pruned network's steady state (species). Not measured: chosen as "dense above 2000
#: species is too slow" (docs/decisions.md, commit 2e411fd).
PRUNE_DENSE_LIMIT = 2000

# ---------------------------------------------------------------------------------------------
# Frequency responses (crnfb.analysis.linear.frequency, plantrom, noise_spectral)

#: Whole-plant SuperLU vs one unpivoted LU per ensemble in a METIS order (``BlockShiftedLU``) for
#: ``jw I - A`` of the full plant (copy states). Measured: 10^4 states (20,160 plant states) 0.54 s
#: a frequency against 1.8 s; T = 40 (below): 2.9 ms either way (docs/decisions.md "Frequency
#: responses of large plants block by block"; docs/benchmarks.md).
BLOCK_PLANT = 5000
#: Exact solves at every frequency vs the verified reduced plant model (crnfb.analysis.linear.plantrom).
#: Measured at 2535 copy states (5068 plant states): margins 21.5 -> 2.7 s, disturbance 6.9 ->
#: 0.7 s, model agreeing with every exact solve to 4e-11 (docs/benchmarks.md (d), with the earlier
#: exact-solve verification; the model is now verified by a residual bound from real-shift solves,
#: cheaper still); the crossover below 5068 not measured: chosen equal to LARGE_PLANT.
ROM_PLANT = 500
#: Reduced plant model vs exact solves, by the number of learned parameters: the model is built only
#: when its first shifts' basis (``3k + 1`` vectors a shift: inputs and output duals) has fewer vectors
#: than this percentage of the plant's states. Derived, not tuned: at 100 % the "reduced" model spans
#: the whole plant (it is exact, at the cost of dense algebra on the plant). walk200 (205 learned,
#: 2000 plant states, 14 shifts of 616 vectors): the model's QR had not ended after 2 minutes, the
#: exact solves take about 30 ms a frequency (docs/decisions.md "Many learned parameters").
ROM_BASIS_PERCENT = 100
#: Exact modal form of the plant (dense ``eigh``) vs exact sparse solves at every frequency, where a
#: reduced model would span the plant (``ROM_BASIS_PERCENT``): plants up to this many states. Not
#: measured as a crossover: chosen by memory (a dense block of 6000 states is 0.3 GB, as
#: ``DENSE_FALLBACK``); walk200 (1998 plant states, 205 learned): see docs/benchmarks.md "Cost targets".
MODAL_PLANT_MAX = 6000
#: Reduced-coordinate vs full copy-state solves at ``w != 0``, the dense grid (2000/7 points a
#: decade) vs every 7th point (LARGE_POINTS_PER_DECADE), and dense vs sparse plant rate range.
#: Measured: full solves 2-4x cheaper a frequency on the T = 40 scaffold, while on E3 they moved
#: the low-frequency lag cost by 3e-6 relative; the value 500 between them not measured
#: (docs/decisions.md "Research-scale networks", "Grid density").
LARGE_PLANT = 500
#: Points a decade of the frequency grid above LARGE_PLANT (every 7th point of the 2000/7 a decade
#: grid): crossings and extrema are refined with exact single-frequency evaluations, so the grid
#: only brackets them. Not measured: chosen (docs/decisions.md "Grid density").
LARGE_POINTS_PER_DECADE = 40
