"""From SBML amounts and concentrations to copy numbers and stochastic rate constants (docs/sbml.md, "Units").

One rule for every SBML species and kinetic law. With ``V`` the compartment
volume and ``u`` the number of copies per SBML substance unit:

* a species' copy number is ``N = u * n``, ``n`` its SBML amount
  (``n = c * V`` for a species given as a concentration ``c``): ``N = c V u``;
* SBML kinetic laws are extents per time (substance / time), whatever the
  species' units; a species symbol in a law stands for its concentration
  ``c = N / (u V)`` (``hasOnlySubstanceUnits = false``) or its amount
  ``n = N / u`` (``true``). The copy-number rate is ``u`` times the law, so a
  mass-action law ``k * prod x^y`` of order ``m`` (``m_c`` of it in species
  read as concentrations) is, in copies,

      dN/dt = nu * k * u^(1-m) * V^(-m_c) * prod N^y,

  i.e. ``k_stoch = k * u^(1-m) * V^(-m_c)``. For a law written as a
  concentration rate ``dc/dt = k' prod c^y`` (SBML law ``k' * V * prod c^y``)
  this is the familiar ``k_stoch = k' (V u)^(1-m)``. Our propensities are
  ``k_stoch * prod N!/(N-y)!`` (falling factorials, no ``1/y!``: docs/theory.md
  §1), whose large-``N`` limit is the mean-field law above, so no
  stoichiometric factorial enters; a tool using Gillespie's ``c * prod
  binom(N, y)`` has ``c = k_stoch * prod y!``.

Defaults: ``V`` is the file's compartment size; ``u = 1 / V``, one copy per
unit of concentration (the numbers of a concentration-valued model read as
copy numbers; ``V u = 1``), which keeps state spaces small (a physical
``u``, Avogadro's number times the substance unit, gives about 1e13 copies
for 20 uM in 1 uL; docs/decisions.md, "SBML units").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import ModelError

__all__ = ["UnitConversion", "check_unit_option"]


def check_unit_option(value, flag: str, example: str | None = None):
    """``value`` as a positive finite float (None stays None); :class:`ModelError` naming ``flag`` otherwise.

    ``example`` is the right form quoted in the message (default ``"{flag} 1"``, a command-line flag).
    """
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if not (math.isfinite(x) and x > 0):
        raise ModelError(f"{flag} must be a positive finite number, got {value!r} (e.g. {example or flag + ' 1'})",
                         key=flag)
    return x


@dataclass(frozen=True)
class UnitConversion:
    """The unit rule applied to one SBML model (module docstring).

    Attributes
    ----------
    volume : float              ``V`` used
    file_volume : float         the compartment size the file gives
    compartment : str           its id
    copies_per_unit : float     ``u`` used
    volume_given, copies_given : bool   whether ``V`` / ``u`` were set by the caller
    factors : tuple             ``(m, m_c, u^(1-m) V^(-m_c))`` of each reaction direction
    """

    volume: float
    file_volume: float
    compartment: str
    copies_per_unit: float
    volume_given: bool = False
    copies_given: bool = False
    factors: tuple = ()

    @classmethod
    def choose(cls, file_volume: float, compartment: str, volume=None, copies_per_unit=None) -> "UnitConversion":
        V = check_unit_option(volume, "--volume")
        u = check_unit_option(copies_per_unit, "--copies-per-unit")
        V_used = file_volume if V is None else V
        return cls(V_used, float(file_volume), compartment, 1.0 / V_used if u is None else u,
                   V is not None, u is not None)

    def factor(self, order: int, concentration_order: int) -> float:
        """``u^(1-m) V^(-m_c)``: from an SBML rate constant to a stochastic one."""
        if not self.copies_given:   # u = 1/V: V^(m - 1 - m_c), without the rounding of 1/V
            return self.volume ** (order - 1 - concentration_order)
        return self.copies_per_unit ** (1 - order) * self.volume ** (-concentration_order)

    def copies(self, *, amount: float | None = None, concentration: float | None = None) -> float:
        """Copy number ``N = n u`` of an SBML amount, or ``N = c V u`` of a concentration.

        With the default ``u = 1/V`` this is ``n / V`` or ``c`` itself; with a
        given ``u`` a product within 1e-12 (relative) of a whole number is that
        number (the float noise of ``c V u``, not a rounding of the data).
        """
        if amount is not None:
            x = amount * self.copies_per_unit if self.copies_given else amount / self.volume
        elif concentration is not None:
            x = concentration * self.volume * self.copies_per_unit if self.copies_given else float(concentration)
        else:
            raise TypeError("copies() needs an amount or a concentration")
        if not self.copies_given:
            return x
        r = round(x) if math.isfinite(x) else x
        return float(r) if math.isfinite(x) and abs(x - r) <= 1e-12 * max(1.0, abs(x)) else x

    def line(self) -> str:
        """One line: the rule, ``V`` and ``u`` with where they came from, and the factor on the rate constants."""
        V, u = self.volume, self.copies_per_unit
        vsrc = "--volume" if self.volume_given else f"compartment {self.compartment!r}"
        if self.volume_given and self.volume != self.file_volume:
            vsrc += f", file {self.file_volume:g}"
        usrc = "--copies-per-unit" if self.copies_given else "default 1/V: one copy per unit concentration"
        fs = sorted(set((m, mc, float(f"{f:.12g}")) for m, mc, f in self.factors))
        mixed = len({(m, mc) for m, mc, _ in fs}) > len({m for m, _, _ in fs})
        if not fs:
            fac = "no reactions"
        elif len({f for *_, f in fs}) == 1:
            fac = f"x{fs[0][2]:g} on every rate constant"
        else:
            fac = ", ".join(f"x{f:g} (order {m}" + (f", {mc} in concentrations)" if mixed else ")")
                            for m, mc, f in fs)
        return (f"N = c*V*u = n*u copies, V = {V:g} ({vsrc}), u = {u:g} per substance unit ({usrc}); "
                f"k_stoch = k*u^(1-m)*V^(-m_c): {fac}")
