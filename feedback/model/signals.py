"""Environment signals ``a(t)``: the mixing weight of ``Q(t) = (1-a) Q_1 + a Q_2``.

Small frozen value objects with ``__call__(t)`` (scalar or array ``t``) and
:meth:`Signal.breakpoints` (times where ``a`` jumps, so the stiff integrator
restarts there instead of stepping across a discontinuity). The command-line
form is parsed by :func:`parse_signal`::

    constant            a = 0 throughout (the file's environment Q_1)
    constant:A          a = A throughout
    step:A[,T0]         a = 0 before T0, A from T0 on (T0 defaults to t_end / 2)
    sine:A0,A1,OMEGA    a = A0 + A1 sin(OMEGA t)
    telegraph:RATE      a switches between 0 and 1 at rate RATE (both ways),
                        starting at 0; switch times drawn from the seed

Values of ``a`` must stay in ``[0, 1]`` (outside, ``Q`` can be negative and
``D`` is undefined); every violation is a :class:`ValueError` (the command line
reports it as a bad ``--environment``, exit 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


__all__ = ["Signal", "Constant", "Step", "Sine", "Telegraph", "parse_signal"]

def _finite(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return float(x)


def _in_unit(lo: float, hi: float, what: str) -> None:
    tol = 1e-12
    if lo < -tol or hi > 1 + tol:
        raise ValueError(f"{what} takes a from {lo:g} to {hi:g}, outside [0, 1]; the mixing weight a "
                         "of Q = (1-a) Q_1 + a Q_2 must stay in [0, 1]")


class Signal:
    """Base class of environment signals."""

    #: True when ``a`` is constant between breakpoints (the integrator then
    #: evaluates it once per segment).
    piecewise_constant: bool = True

    def __call__(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def breakpoints(self, t0: float, t1: float) -> tuple[float, ...]:
        """Times strictly inside ``(t0, t1)`` where ``a`` jumps."""
        return ()

    def max_step(self) -> float:
        """Largest integrator step that resolves the signal (inf: no limit)."""
        return math.inf

    def bounds(self) -> tuple[float, float]:  # pragma: no cover - abstract
        """Smallest and largest value of ``a``."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        """The command-line form."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Signal):
    """``a(t) = a``."""

    a: float = 0.0

    def __post_init__(self):
        _in_unit(_finite(self.a, "constant a"), self.a, "constant")

    def __call__(self, t):
        return self.a if np.ndim(t) == 0 else np.full(np.shape(t), self.a)

    def bounds(self):
        return (self.a, self.a)

    def describe(self):
        return f"constant:{self.a:g}"


@dataclass(frozen=True)
class Step(Signal):
    """``a = a0`` for ``t < t0``, ``a1`` from ``t0`` on."""

    a0: float
    a1: float
    t0: float = 0.0

    def __post_init__(self):
        for name in ("a0", "a1", "t0"):
            _finite(getattr(self, name), f"step {name}")
        if self.t0 < 0:
            raise ValueError(f"step time must be >= 0, got {self.t0:g}")
        _in_unit(min(self.a0, self.a1), max(self.a0, self.a1), "step")

    def __call__(self, t):
        out = np.where(np.asarray(t) < self.t0, self.a0, self.a1)
        return float(out) if np.ndim(t) == 0 else out

    def breakpoints(self, t0, t1):
        return (self.t0,) if t0 < self.t0 < t1 else ()

    def bounds(self):
        return (min(self.a0, self.a1), max(self.a0, self.a1))

    def describe(self):
        return f"step:{self.a1 - self.a0:g},{self.t0:g}" if self.a0 == 0 else \
            f"step({self.a0:g}->{self.a1:g} at {self.t0:g})"


@dataclass(frozen=True)
class Sine(Signal):
    """``a(t) = a0 + a1 sin(omega t)``."""

    a0: float
    a1: float
    omega: float

    piecewise_constant = False

    def __post_init__(self):
        for name in ("a0", "a1", "omega"):
            _finite(getattr(self, name), f"sine {name}")
        if self.omega <= 0:
            raise ValueError(f"sine OMEGA must be > 0 (rad per time unit), got {self.omega:g}")
        _in_unit(self.a0 - abs(self.a1), self.a0 + abs(self.a1), "sine")

    def __call__(self, t):
        out = self.a0 + self.a1 * np.sin(self.omega * np.asarray(t, float))
        return float(out) if np.ndim(t) == 0 else out

    def max_step(self):
        return 2 * math.pi / self.omega / 8.0   # the solver must not step over a period

    def bounds(self):
        return (self.a0 - abs(self.a1), self.a0 + abs(self.a1))

    def describe(self):
        return f"sine:{self.a0:g},{self.a1:g},{self.omega:g}"


@dataclass(frozen=True)
class Telegraph(Signal):
    """Random telegraph: ``a`` switches between 0 and 1 at ``rate`` (both ways), starting at 0.

    The switch times on ``[0, t_end]`` are drawn once from
    ``numpy.random.default_rng(seed)`` (exponential waiting times), so the
    same seed gives the same signal.
    """

    rate: float
    seed: int
    t_end: float
    switches: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        _finite(self.rate, "telegraph RATE")
        _finite(self.t_end, "telegraph t_end")
        if self.rate <= 0:
            raise ValueError(f"telegraph RATE must be > 0, got {self.rate:g}")
        if self.t_end <= 0:
            raise ValueError(f"telegraph needs t_end > 0, got {self.t_end:g}")
        expected = self.rate * self.t_end
        if expected > 1e6:
            raise ValueError(f"telegraph RATE * t_end = {expected:.3g} switches expected; at most 1e6 "
                             "(each switch restarts the integrator)")
        rng = np.random.default_rng(int(self.seed))
        times = []
        t = 0.0
        while True:
            t += rng.exponential(1.0 / self.rate)
            if t >= self.t_end:
                break
            times.append(t)
        object.__setattr__(self, "switches", tuple(times))

    def __call__(self, t):
        k = np.searchsorted(np.asarray(self.switches), np.asarray(t, float), side="right")
        out = (k % 2).astype(float)
        return float(out) if np.ndim(t) == 0 else out

    def breakpoints(self, t0, t1):
        return tuple(s for s in self.switches if t0 < s < t1)

    def bounds(self):
        return (0.0, 1.0 if self.switches else 0.0)

    def describe(self):
        return f"telegraph:{self.rate:g}"


def _numbers(text: str, body: str, count: tuple[int, ...], form: str) -> list[float]:
    parts = [p.strip() for p in body.split(",")] if body.strip() else []
    if len(parts) not in count:
        raise ValueError(f"{text!r}: expected {form}")
    out = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"{text!r}: {p!r} is not a number; expected {form}") from None
        if not math.isfinite(v):
            raise ValueError(f"{text!r}: {p!r} is not finite; expected {form}")
        out.append(v)
    return out


def parse_signal(text: str, t_end: float | None = None, seed: int = 0) -> Signal:
    """Parse the command-line form (module docstring) into a :class:`Signal`.

    Parameters
    ----------
    text : str
        ``constant`` | ``constant:A`` | ``step:A[,T0]`` | ``sine:A0,A1,OMEGA`` | ``telegraph:RATE``.
    t_end : float or None
        Length of the run: the default step time (``t_end / 2``) and the
        telegraph horizon.
    seed : int
        Seed of the telegraph signal.

    Raises
    ------
    ValueError
        Unknown kind, wrong number of values, non-numbers, ``a`` outside [0, 1].
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty environment signal; use constant | step:A | sine:A0,A1,OMEGA | "
                         "telegraph:RATE")
    text = text.strip()
    kind, _, body = text.partition(":")
    kind = kind.strip().lower()
    if kind == "constant":
        vals = _numbers(text, body, (0, 1), "constant or constant:A")
        return Constant(vals[0] if vals else 0.0)
    if kind == "step":
        vals = _numbers(text, body, (1, 2), "step:A or step:A,T0 (a jumps from 0 to A at T0)")
        if len(vals) == 1:
            if t_end is None:
                raise ValueError(f"{text!r}: give the step time (step:A,T0) or a run length")
            vals.append(0.5 * float(t_end))
        return Step(0.0, vals[0], vals[1])
    if kind == "sine":
        a0, a1, om = _numbers(text, body, (3,), "sine:A0,A1,OMEGA (a = A0 + A1 sin(OMEGA t))")
        return Sine(a0, a1, om)
    if kind == "telegraph":
        (rate,) = _numbers(text, body, (1,), "telegraph:RATE (switching rate between a = 0 and 1)")
        if t_end is None:
            raise ValueError(f"{text!r}: the telegraph signal needs the run length t_end")
        return Telegraph(rate, int(seed), float(t_end))
    raise ValueError(f"unknown environment signal {kind!r} in {text!r}; use constant | step:A | "
                     "sine:A0,A1,OMEGA | telegraph:RATE")
