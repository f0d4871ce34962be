"""Third-party models into our model file: SBML or Antimony in, TOML out (docs/sbml.md, ``crnfb convert``).

* :func:`antimony_to_sbml` -- Antimony text (Tellurium's language) to SBML
  through the ``antimony`` package (the ``convert`` extra); syntax errors
  name the Antimony line.
* :func:`model_file_text` -- a reversible, detailed-balanced network read by
  :func:`~crnfb.feedback.sbml.importer.read_network` written as a model file
  (docs/model-file.md): species with the derived energies, reactions with
  their kappas, ``[initial]``, and the ``[environment]`` section as a
  commented template the user fills in (the learning problem is not in the
  SBML). The text is checked by parsing it back with ``tomllib``.

TOML is written by hand (a handful of keys, strings quoted as JSON, which is
valid TOML) because the template needs comments, which TOML writers drop.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path

from ..errors import ModelError
from .importer import ImportedNetwork

__all__ = ["antimony_to_sbml", "antimony_line", "is_antimony", "model_file_text"]


def is_antimony(path) -> bool:
    """Whether ``path`` names an Antimony file (``.ant`` / ``.antimony``, or text that is not XML)."""
    p = Path(path)
    if p.suffix.lower() in (".ant", ".antimony", ".txt"):
        return True
    if p.suffix.lower() in (".xml", ".sbml"):
        return False
    head = p.read_text(encoding="utf-8", errors="replace")[:200].lstrip() if p.is_file() else ""
    return not head.startswith("<")


def antimony_to_sbml(path) -> str:
    """SBML text of the main module of an Antimony file (raises :class:`ModelError` naming the line)."""
    try:
        import antimony
    except ImportError:
        raise ModelError("reading Antimony needs the antimony package: pip install 'crn-feedback[convert]'",
                         file=str(path)) from None
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"cannot read Antimony file {path}: no such file")
    antimony.clearPreviousLoads()
    if antimony.loadAntimonyString(p.read_text(encoding="utf-8")) < 0:
        msg = " ".join(antimony.getLastError().split())
        raise ModelError(f"not valid Antimony: {msg}", file=str(path))
    main = antimony.getMainModuleName()
    text = antimony.getSBMLString(main) if main else ""
    if not text:
        raise ModelError("the Antimony file defines no model", file=str(path))
    return text


def antimony_line(path, element_id: str) -> int | None:
    """Line (1-based) of an Antimony file where ``element_id`` is defined (``id:`` or ``id =``), if found."""
    pat = re.compile(rf"^\s*(?:species\s+|compartment\s+|const\s+|var\s+)?\$?{re.escape(element_id)}\s*(?::|=|\s+in\b)")
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if pat.match(line):
            return k
    return None


def _q(s: str) -> str:
    return json.dumps(s)


def _num(x: float) -> str:
    if not math.isfinite(x):  # pragma: no cover - the importer refuses these
        raise ModelError(f"cannot write the non-finite number {x!r}")
    return repr(float(x))


def _environment_template(visible: list[str]) -> list[str]:
    one = visible[0] if visible else "X"
    lines = [
        "# ---------------------------------------------------------------------------------------------",
        "# REQUIRED before this file can be analysed: the environment Q, the law of the visible species "
        f"({', '.join(visible) or 'none is visible: set visible = true on one'}),",
        "# and the learning settings. Uncomment and fill in one form (docs/model-file.md, [environment]):",
        "#",
        "# [environment]",
        "# family = \"poisson\"          # one visible species: mean",
        "# mean = 5.0",
        "# # family = \"binomial\"  n = 10  p = 0.3",
        "# # family = \"table\"  support = [[0], [1], [2]]  probs = [0.2, 0.5, 0.3]   (one count per visible species)",
        "# # family = \"product\"  components = [{ family = \"poisson\", mean = 2.0 }, ...]",
        "#",
        "# [environment.change]       # optional second law Q_2 for disturbance analysis",
        "# family = \"poisson\"",
        "# mean = 8.0",
        "#",
        "# [learning]",
        "# eps = 0.05",
        "# clamping = \"equilibrium\"   # or \"dynamic\" (with gamma)",
        "#",
        f"# [truncation]               # needed if a species is open (not fixed by a conservation law), e.g. {one}",
        "# n_max = 60",
    ]
    return lines


def model_file_text(imp: ImportedNetwork, *, name: str | None = None) -> str:
    """The model file (TOML text) of an imported network, the environment left as a commented template."""
    net = imp.network
    names = list(net.names)
    out = [f"# Converted by crnfb convert from {imp.source}.",
           "# Energies G_i (kT) derived from the rate constants (minimum-norm solution of the detailed-balance",
           f"# conditions; Wegscheider residual {imp.balance.residual:.2g}); kappa from kf = kappa*lambda^y'.",
           f"name = {_q(name or net.name)}", ""]
    for i, s in enumerate(net.species):
        out += [f"[species.{s.name}]", f"energy = {_num(s.energy)}",
                f"visible = {'true' if s.visible else 'false'}", f"learn = {'true' if s.learn else 'false'}", ""]
    for r in range(len(net.reactions)):
        ids = ", ".join(imp.reaction_ids[r])
        out += ["[[reactions]]", f"eq = {_q(net.equation(r))}   # SBML reaction {ids}",
                f"kappa = {_num(net.kappa[r])}", ""]
    counts = {s: x for s, x in imp.initial.items() if x}
    whole = {s: x for s, x in counts.items() if isinstance(x, int)}
    out.append("[initial]")
    out += [f"{s} = {x}" for s, x in whole.items()]
    for s, x in counts.items():
        if s not in whole:
            out.append(f"# {s} = {x!r}   # not a whole molecule count in the SBML: give one (docs/model-file.md)")
    out.append("")
    out += _environment_template([n for n, s in zip(names, net.species) if s.visible])
    text = "\n".join(out) + "\n"
    tomllib.loads(text)  # what we write must parse (an error here is a bug, not a user mistake)
    return text
