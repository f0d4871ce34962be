"""One model's analysis as one object: each derived quantity computed once, on first use.

:class:`Analysis` owns what is derived from one
:class:`~crnfb.feedback.model.model.Model` at one set of learning settings: the
learned fixed point, the loop's fixed point, the linearised loop, its
stability, the loop broken at ``theta``, the margins and the disturbance
analysis. Each is a read-only attribute computed the first time it is read
(statsmodels' ``cache_readonly`` pattern, :func:`functools.cached_property`)
by the one function that defines it, and passed down explicitly from there:
:func:`crnfb.analysis.reporting.pipeline.analyse` builds its report from one, and a
sweep point is one (docs/architecture.md, "Each quantity in one place").

A new learning rate or environment is a new analysis (:meth:`Analysis.with_eps`,
:meth:`Analysis.with_environment`) that shares what does not depend on the
change: the enumerated class, the tabulated environment and the landscape
(:meth:`crnfb.feedback.model.model.Model.replace`), and the learned fixed point when
only the overall scale of ``eps`` changed (the quasi-static flow's end point
depends on the ratios of the learning rates only, docs/theory.md §3).

Example
-------
>>> import crnfb
>>> a = crnfb.Analysis(crnfb.load_model("examples/isomerisation.toml"))  # doctest: +SKIP
>>> a.stability.stable, a.margins.eps_crit_value                          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from crnfb.analysis.analyses.disturbance import Disturbance, disturbance
from crnfb.analysis.linear.fixedpoints import LoopFixedPoint, StationaryPoint, learned_fixed_point, \
    loop_fixed_point, usable_optimum
from crnfb.analysis.linear.frequency import BrokenLoop
from crnfb.analysis.linear.linearise import LinearLoop, linearise
from crnfb.analysis.analyses.margins import Margins, margins
from crnfb.analysis.linear.stability import Stability, stability
from crnfb.feedback.model.environment import Environment
from crnfb.feedback.model.model import Model

__all__ = ["Analysis", "SAME_RATIOS_RTOL", "model_and_loop"]

#: Two learning-rate vectors have the same ratios (so the same learned fixed point) when
#: ``eps_new / eps_old`` is constant to this relative tolerance.
SAME_RATIOS_RTOL = 1e-12


@dataclass(frozen=True, eq=False)
class Analysis:
    """The derived quantities of ``model``, each computed once, on first read.

    Parameters
    ----------
    model : Model
        The learning problem at its learning settings.
    optimum_given : StationaryPoint or None
        The learned fixed point when already known (:meth:`with_eps` passes it on);
        None: found on first read of :attr:`optimum`.

    Notes
    -----
    Reading :attr:`optimum` raises :class:`~crnfb.analysis.linear.fixedpoints.NoFixedPoint`
    when the quasi-static flow reaches no isolated fixed point to linearise at (a
    plateau, or a non-finite ``D`` or ``theta``), as ``crnfb fit`` reports.
    """

    model: Model
    optimum_given: StationaryPoint | None = None

    @cached_property
    def optimum(self) -> StationaryPoint:
        """The learned fixed point: the minimum of ``D`` the quasi-static flow reaches
        (:func:`~crnfb.analysis.linear.fixedpoints.learned_fixed_point`)."""
        return usable_optimum(self.optimum_given if self.optimum_given is not None
                              else learned_fixed_point(self.model))

    @cached_property
    def fixed_point(self) -> LoopFixedPoint:
        """The loop's own fixed point (biased under dynamic clamping;
        :func:`~crnfb.analysis.linear.fixedpoints.loop_fixed_point`)."""
        return loop_fixed_point(self.model, optimum=self.optimum)

    @cached_property
    def loop(self) -> LinearLoop:
        """The loop linearised at :attr:`fixed_point` (:func:`~crnfb.analysis.linear.linearise.linearise`)."""
        return linearise(self.model, fixed_point=self.fixed_point)

    @cached_property
    def stability(self) -> Stability:
        """Local stability of :attr:`loop` (:func:`~crnfb.analysis.linear.stability.stability`)."""
        return stability(self.loop)

    @property
    def broken(self) -> BrokenLoop:
        """The loop broken at ``theta``: plant and controller (held by :attr:`loop`)."""
        return self.loop.broken

    @cached_property
    def margins(self) -> Margins:
        """Gain and phase margins and ``eps_crit`` (:func:`~crnfb.analysis.analyses.margins.margins`)."""
        return margins(self.loop)

    @cached_property
    def disturbance(self) -> Disturbance:
        """Rejection of the environment's change (:func:`~crnfb.analysis.analyses.disturbance.disturbance`)."""
        return disturbance(self.loop)

    def computed(self) -> tuple[str, ...]:
        """The quantities computed so far, in definition order (for tests and progress reports)."""
        names = ("optimum", "fixed_point", "loop", "stability", "margins", "disturbance")
        return tuple(n for n in names if n in self.__dict__)

    def with_eps(self, eps) -> Analysis:
        """The analysis at learning rates ``eps`` (a scalar: every learned species).

        Shares the class, environment and landscape; also the learned fixed
        point when it was found and ``eps`` is this one's scaled by one factor
        (only the ratios of the rates steer the quasi-static flow) with the
        flow starting where it did.
        """
        model = self.model.with_learning(eps=eps)
        ratio = model.eps / self.model.eps
        same = bool(np.allclose(ratio, ratio[0], rtol=SAME_RATIOS_RTOL, atol=0.0)
                    and np.array_equal(model.start_theta, self.model.start_theta))
        keep = self.__dict__.get("optimum") if same else None
        return Analysis(model, keep)

    def with_environment(self, environment: Environment | None = None, change: Environment | None = None) -> Analysis:
        """The analysis in another environment ``Q_1`` (and/or change ``Q_2``), sharing the class."""
        changes: dict[str, Environment] = {}
        if environment is not None:
            changes["environment"] = environment
        if change is not None:
            changes["change"] = change
        return Analysis(self.model.replace(**changes))


def model_and_loop(subject: Model | LinearLoop | Analysis,
                   loop: LinearLoop | None = None) -> tuple[Model, LinearLoop | None]:
    """``(model, loop)`` from what a caller gave: an :class:`Analysis` (its model and loop), a
    :class:`~crnfb.feedback.model.model.Model` with an optional loop, or a
    :class:`~crnfb.analysis.linear.linearise.LinearLoop` in the model's place (as
    :func:`~crnfb.analysis.analyses.margins.margins` and :func:`~crnfb.analysis.linear.stability.stability` take
    it; its model is the loop's own)."""
    if isinstance(subject, Analysis):
        if loop is not None and loop is not subject.loop:
            raise ValueError("an Analysis carries its loop: do not pass loop= beside it")
        return subject.model, subject.loop
    if isinstance(subject, LinearLoop):
        if loop is not None and loop is not subject:
            raise ValueError("give the loop once: as the first argument or as loop=, not both")
        return subject.net.model, subject
    return subject, loop
