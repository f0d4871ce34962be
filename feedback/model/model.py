"""The learning problem as one value object: network, class, environment, settings.

:class:`Model` is what the model file describes (docs/model-file.md) and what
every analysis takes. Build it from a file with
:func:`crnfb.feedback.io.modelfile.load_model` or in Python::

    from crnfb.feedback import Model, Network, Poisson
    net = Network.from_equations({"X": dict(visible=True)}, ["0 <-> X"])
    model = Model(net, initial={"X": 0}, n_max=60, environment=Poisson(5.0))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .environment import Environment, EnvironmentTable, tabulate
from ..errors import ModelError
from .randomenv import MarkovEnvironment
from .landscape import Landscape, identifiable_basis, neutral_anchor, neutral_directions, start_problem
from .network import Network
from .statespace import StateSpace

CLAMPING = ("dynamic", "equilibrium")


@dataclass(frozen=True)
class Learning:
    """Learning settings (``[learning]``).

    ``eps`` has one entry per learned species (file order).
    """

    eps: tuple[float, ...]
    clamping: str = "dynamic"
    gamma: float = 1.0
    dmu: float = 20.0

    def __post_init__(self):
        if self.clamping not in CLAMPING:
            raise ModelError(f"clamping must be one of {CLAMPING}, got {self.clamping!r}", key="learning.clamping")
        for name, v in (("gamma", self.gamma), ("dmu", self.dmu)):
            if not (np.isfinite(v) and v > 0):
                raise ModelError(f"must be a positive number, got {v!r}", key=f"learning.{name}")
        if not all(np.isfinite(e) and e > 0 for e in self.eps):
            raise ModelError(f"learning rates must be positive numbers, got {list(self.eps)}", key="learning.eps")


@dataclass(frozen=True)
class Ensembles:
    """Finite-ensemble sizes for stochastic runs (``[ensembles]``)."""

    free: int = 1000
    clamped: int = 1000
    omega: float = 1000.0

    def __post_init__(self):
        for name in ("free", "clamped"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ModelError(f"must be a whole number >= 1, got {v!r}", key=f"ensembles.{name}")
        if not (np.isfinite(self.omega) and self.omega > 0):
            raise ModelError(f"must be a positive number, got {self.omega!r}", key="ensembles.omega")


@dataclass(frozen=True, eq=False)
class Model:
    """A learning CRN: network, initial state, truncation, environment, settings.

    Parameters
    ----------
    network : Network
    initial : dict[str, int] or array
        A state of the class every copy lives in (missing species: 0).
    n_max : int or dict[str, int] or None
        Truncation of open species.
    environment : Environment
        The target ``Q`` (``Q_1``).
    change : Environment or None
        The changed environment ``Q_2`` for disturbance analysis.
    learning : Learning or None
        Defaults: eps 0.05 for every learned species, dynamic clamping,
        gamma 1, dmu 20.
    ensembles : Ensembles or None
    truncation_tol : float
        Largest stationary mass the box may drop (at the initial energies).
    source : str or None
        File the model came from (for messages).
    balance_residual : float
        Wegscheider residual (kT) when the network came from raw rate
        constants; 0 for energy-based kinetics (detailed balanced by construction).
    fluctuation : MarkovEnvironment or None
        A random environment (``[environment.fluctuation]``): the mixing weight
        ``a(t)`` as a stationary Markov chain (:mod:`crnfb.feedback.model.randomenv`).
    """

    network: Network
    initial: object
    n_max: object = None
    # None is refused (environment) or replaced by the defaults (learning) in __post_init__, so that the
    # attributes of a Model are never None
    environment: Environment = None  # type: ignore[assignment]  # required: __post_init__ refuses None
    change: Environment | None = None
    learning: Learning = None  # type: ignore[assignment]  # None: __post_init__ sets the defaults
    ensembles: Ensembles = field(default_factory=Ensembles)
    truncation_tol: float = 1e-6
    source: str | None = None
    balance_residual: float = 0.0
    fluctuation: MarkovEnvironment | None = None

    def __post_init__(self):
        net = self.network
        init = self.initial
        if isinstance(init, dict):
            unknown = set(init) - set(net.names)
            if unknown:
                raise ModelError(f"unknown species {sorted(unknown)}; species are {', '.join(net.names)}",
                                 key="initial", file=self.source)
            init = [init.get(n, 0) for n in net.names]
        object.__setattr__(self, "initial", np.asarray(init, dtype=np.int64))
        if self.learning is None:
            object.__setattr__(self, "learning", Learning(tuple([0.05] * len(net.learned))))
        if len(self.learning.eps) != len(net.learned):
            raise ModelError(f"eps needs one value per learned species ({len(net.learned)})",
                             key="learning.eps", file=self.source)
        if len(net.learned) == 0:
            raise ModelError("no species is learned; set learn = true on at least one species",
                             key="species", file=self.source)
        if self.environment is None:
            raise ModelError("the model needs an [environment]", key="environment", file=self.source)
        try:
            _ = self.env_table, self.change_table
            what = "at the initial energies " if self.start_note is None else "at the flow's starting point "
            self.space.check_truncation(self.full_theta(self.start_theta), self.truncation_tol, what)
        except ModelError as e:
            raise e.located(self.source) from None

    # -- derived objects --------------------------------------------------------------
    @cached_property
    def space(self) -> StateSpace:
        return StateSpace(self.network, self.initial, self.n_max)

    @cached_property
    def env_table(self) -> EnvironmentTable:
        return tabulate(self.environment, self.space, self.truncation_tol, "environment")

    @cached_property
    def change_table(self) -> EnvironmentTable | None:
        if self.change is None:
            return None
        return tabulate(self.change, self.space, self.truncation_tol, "environment.change")

    @property
    def q(self) -> np.ndarray:
        return self.env_table.q

    @property
    def q_change(self) -> np.ndarray:
        """``Q_2`` tabulated; if no change was given, ``Q_1`` itself (zero disturbance)."""
        return self.q if self.change_table is None else self.change_table.q

    def q_at(self, a: float) -> np.ndarray:
        """``Q(a) = (1-a) Q_1 + a Q_2``."""
        return (1.0 - a) * self.q + a * self.q_change

    @cached_property
    def landscape(self) -> Landscape:
        return Landscape(self.space, self.q)

    @property
    def learned(self) -> np.ndarray:
        return self.network.learned

    @property
    def learned_names(self) -> list[str]:
        return [self.network.names[i] for i in self.learned]

    @property
    def eps(self) -> np.ndarray:
        return np.asarray(self.learning.eps, float)

    @property
    def theta0(self) -> np.ndarray:
        """Initial learned parameters (``-G`` of the learned species)."""
        return self.network.theta0[self.learned]

    @cached_property
    def _start(self) -> tuple[np.ndarray, str | None]:
        theta0 = self.theta0
        why = start_problem(self.space, self.network.theta0, self.learned, self.truncation_tol)
        if why is None:
            return theta0, None
        anchor = neutral_anchor(theta0, self.neutral, self.eps)
        if start_problem(self.space, self.full_theta(anchor), self.learned, self.truncation_tol) is not None:
            return theta0, None  # no better start: the checks downstream report the file's problem
        note = (f"the file's energies are a poor start ({why}); the flow starts from theta = "
                f"{np.round(anchor, 6).tolist()} on the same neutral leaf (docs/decisions.md)")
        return anchor, note

    @property
    def start_theta(self) -> np.ndarray:
        """Where the quasi-static flow starts (learned coordinates).

        The file's energies, unless the law there cannot start a flow
        (:func:`~crnfb.feedback.model.landscape.start_problem`); then the point of
        the same neutral leaf with no identifiable component
        (:func:`~crnfb.feedback.model.landscape.neutral_anchor`), which leads to the
        same minimum whenever D has a single one.
        """
        return self._start[0]

    @property
    def start_note(self) -> str | None:
        """Why the flow does not start at the file's energies (None when it does)."""
        return self._start[1]

    def full_theta(self, theta: np.ndarray) -> np.ndarray:
        """Embed learned parameters into the full ``theta`` (others from the file)."""
        full = self.network.theta0.copy()
        full[self.learned] = theta
        return full

    @cached_property
    def neutral(self) -> np.ndarray:
        """Orthonormal neutral directions (columns) in learned coordinates."""
        return neutral_directions(self.network.conservation_laws, self.learned, self.network.n_species)

    @cached_property
    def identifiable(self) -> np.ndarray:
        """Orthonormal basis of the identifiable subspace (Euclidean complement of the neutral one)."""
        return identifiable_basis(self.neutral, len(self.learned))

    # -- D and derivatives in learned coordinates --------------------------------------
    def divergence(self, theta: np.ndarray, a: float = 0.0) -> float:
        return self.landscape.divergence(self.full_theta(theta), self.q_at(a))

    def gradient(self, theta: np.ndarray, a: float = 0.0) -> np.ndarray:
        return self.landscape.gradient(self.full_theta(theta), self.q_at(a))[self.learned]

    def hessian(self, theta: np.ndarray, a: float = 0.0) -> np.ndarray:
        H = self.landscape.hessian(self.full_theta(theta), self.q_at(a))
        return H[np.ix_(self.learned, self.learned)]

    def replace(self, **changes) -> "Model":
        """Copy with fields replaced (e.g. ``learning=...``), validated as a new model is.

        Derived data that does not depend on the changed fields is shared with
        this model, not rebuilt (:data:`DERIVED_FROM`): a new ``eps`` keeps the
        enumerated class, the tabulated environment and the landscape; a new
        environment keeps the class.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"Model has no field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes) if "network" in changes else _copy_with(self, changes)

    def with_learning(self, **changes) -> "Model":
        """Copy with learning settings replaced; ``eps`` may be a scalar (the class, environment and
        landscape are shared with this model: :meth:`replace`)."""
        if "eps" in changes and np.ndim(changes["eps"]) == 0:
            changes["eps"] = tuple([float(changes["eps"])] * len(self.learned))
        elif "eps" in changes:
            changes["eps"] = tuple(float(e) for e in changes["eps"])
        return self.replace(learning=dataclasses.replace(self.learning, **changes))

    @property
    def name(self) -> str:
        return self.network.name

    def describe(self) -> dict:
        """The model described as ``crnfb check --json`` prints it (docs/model-file.md): names, roles,
        reactions, conservation laws, state count, truncation. (A :class:`Summary` is a results object's
        ``summary()``; a model is described, not summarised.)"""
        net = self.network
        return {
            "name": net.name,
            "species": net.names,
            "visible": [net.names[i] for i in net.visible],
            "hidden": [net.names[i] for i in net.hidden],
            "learned": self.learned_names,
            "reactions": [net.equation(r) for r in range(len(net.reactions))],
            "conservation_laws": net.conservation_laws.tolist(),
            "state_count": int(self.space.size),
            "truncation_mass": float(self.space.truncation_mass(self.full_theta(self.start_theta))),
            "start_note": self.start_note,
            "environment_tail_mass": float(self.env_table.tail_mass),
            "detailed_balance": True,
            "detailed_balance_residual": float(self.balance_residual),
        }


#: The fields each derived value of a :class:`Model` (a ``cached_property``) is computed from:
#: :meth:`Model.replace` keeps a value when none of them changed. A new ``network`` rebuilds all.
DERIVED_FROM: dict[str, frozenset[str]] = {
    "space": frozenset({"initial", "n_max"}),
    "env_table": frozenset({"initial", "n_max", "environment", "truncation_tol"}),
    "change_table": frozenset({"initial", "n_max", "change", "truncation_tol"}),
    "landscape": frozenset({"initial", "n_max", "environment", "truncation_tol"}),
    "_start": frozenset({"initial", "n_max", "learning", "truncation_tol"}),
    "neutral": frozenset(),
    "identifiable": frozenset(),
}


def _copy_with(model: Model, changes: dict) -> Model:
    """``model`` with ``changes`` (not ``network``), sharing the derived values they leave valid."""
    new = object.__new__(Model)
    for f in dataclasses.fields(model):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(model, f.name)))
    for name, inputs in DERIVED_FROM.items():
        if name in model.__dict__ and not inputs & changes.keys():
            new.__dict__[name] = model.__dict__[name]
    new.__post_init__()        # the same validation (and truncation check) as a new model
    return new


__all__ = ["DERIVED_FROM", "Ensembles", "Learning", "Model"]
