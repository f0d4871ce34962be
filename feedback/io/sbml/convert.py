"""Third-party models into our model file: SBML or Antimony in, TOML out (docs/sbml.md, ``crnfb convert``).

* :func:`antimony_to_sbml` -- Antimony text (Tellurium's language) to SBML
  through the ``antimony`` package (the ``convert`` extra); syntax errors
  name the Antimony line.
* :func:`model_file_text` -- a reversible, detailed-balanced network read by
  :func:`~crnfb.feedback.io.sbml.importer.read_network` written as a model file
  (docs/model-file.md): species with the derived energies, reactions with
  their kappas, ``[initial]``, and the ``[environment]`` section as a
  commented template the user fills in (the learning problem is not in the
  SBML). The text is checked by parsing it back with ``tomllib``.

* :func:`read_converted` -- :func:`~crnfb.feedback.io.sbml.importer.read_network`
  of an SBML or Antimony file, errors naming the SBML element or the
  Antimony line.
* :func:`sbml_model_text` / :func:`load_sbml_model` -- an SBML or Antimony
  model plus an environment file (the ``[environment]``, ``[learning]``,
  ``[truncation]``, ``[ensembles]`` tables of docs/model-file.md) as one
  model file in memory, parsed by the normal model-file parser (every other
  subcommand's ``--visible ... --environment-file ENV.toml``).

TOML is written by hand (a handful of keys, strings quoted as JSON, which is
valid TOML) because the template needs comments, which TOML writers drop.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path

from ...errors import ModelError
from ...model.model import Model
from ..modelfile import SBML_SUFFIXES, is_sbml_source, parse_model, read_model_bytes
from .importer import ImportedNetwork, read_network

__all__ = ["antimony_to_sbml", "antimony_line", "unnamed_reaction_lines", "is_antimony", "is_sbml_source", "model_file_text",
           "read_converted", "environment_tables", "sbml_model_text", "load_sbml_model", "SBML_SUFFIXES",
           "ENVIRONMENT_FILE_TABLES", "environment_owns", "units_line", "UNITS_PREFIX"]

#: The tables an environment file may hold (docs/model-file.md); ``[environment]`` is required.
#: ``[initial]`` is applied over the SBML's initial state (species it names get its counts).
ENVIRONMENT_FILE_TABLES = ("environment", "learning", "truncation", "ensembles", "initial")
#: The comment of a converted model file that states the unit rule applied (:mod:`.units`).
UNITS_PREFIX = "units: "


def is_antimony(path) -> bool:
    """Whether ``path`` names an Antimony file (``.ant`` / ``.antimony``, or text that is not XML)."""
    p = Path(path)
    if p.suffix.lower() in (".ant", ".antimony", ".txt"):
        return True
    if p.suffix.lower() in (".xml", ".sbml"):
        return False
    head = p.read_text(encoding="utf-8", errors="replace")[:200].lstrip() if p.is_file() else ""
    return not head.startswith("<")


def antimony_text(path) -> str:
    """The text of an Antimony file; :class:`ModelError` naming the file if it is binary or not UTF-8."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"not an Antimony text file: byte {e.start} is not UTF-8 (a binary file, or another "
                         "encoding: save it as UTF-8 text)", file=str(path)) from None
    if "\0" in text:   # the C library would stop at the first NUL; a text file has none
        raise ModelError(f"not an Antimony text file: it holds a NUL byte at {text.index(chr(0))} (a binary file)",
                         file=str(path))
    return text


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
    if antimony.loadAntimonyString(antimony_text(p)) < 0:
        msg = " ".join(antimony.getLastError().split())
        raise ModelError(f"not valid Antimony: {msg}", file=str(path))
    main = antimony.getMainModuleName()
    text = antimony.getSBMLString(main) if main else ""
    if not text:
        raise ModelError("the Antimony file defines no model", file=str(path))
    return text


def antimony_line(path, element_id: str) -> int | None:
    """Line (1-based) of an Antimony file where ``element_id`` is defined (``id:`` or ``id =``), if found.

    Unnamed reactions have the ids Antimony generates, ``_J0``, ``_J1``, ... in
    the order they appear; ``_Jk`` is found as the line of the ``k``-th reaction
    without a name (:func:`unnamed_reaction_lines`).
    """
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    pat = re.compile(rf"^\s*(?:species\s+|compartment\s+|const\s+|var\s+)?\$?{re.escape(element_id)}\s*(?::|=|\s+in\b)")
    for k, line in enumerate(lines, 1):
        if pat.match(line):
            return k
    m = re.fullmatch(r"_J(\d+)", element_id)
    if m:
        unnamed = unnamed_reaction_lines(lines)
        return unnamed[int(m.group(1))] if int(m.group(1)) < len(unnamed) else None
    return None


#: A reaction statement: reactants, an arrow (``->``, ``=>``), products, ``;`` and a rate law.
_REACTION = re.compile(r"(?:->|=>)")
_NAMED = re.compile(r"^\s*\$?[A-Za-z_][A-Za-z0-9_]*\s*:(?!=)")


def unnamed_reaction_lines(lines: list[str]) -> list[int]:
    """Lines (1-based) of the reactions without a ``name:`` prefix, in order: Antimony's ``_J0``, ``_J1``, ...

    Comments (``//``, ``#``, ``/* */`` on one line) are ignored. Only the
    lines of the main text are counted (the reactions of a model read by
    :func:`antimony_to_sbml`, one model per file as ``crnfb convert`` expects).
    """
    out = []
    for k, raw in enumerate(lines, 1):
        line = re.sub(r"/\*.*?\*/", "", raw).split("//")[0].split("#")[0]
        if _REACTION.search(line) and not _NAMED.match(line):
            out.append(k)
    return out


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
           *([f"# {UNITS_PREFIX}{imp.units.line()}"] if imp.units is not None else []),
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


# -- SBML / Antimony + environment file as one model, in memory -----------------------------------
def read_converted(path, visible, learned, *, volume=None, copies_per_unit=None) -> ImportedNetwork:
    """:func:`~crnfb.feedback.io.sbml.importer.read_network` of an SBML or Antimony file.

    ``volume`` / ``copies_per_unit``: the unit rule (:mod:`.units`). Errors
    are :class:`ModelError` naming the file and the SBML element, or for
    Antimony the line where the element is defined.
    """
    path = str(path)
    units = {"volume": volume, "copies_per_unit": copies_per_unit}
    if not is_antimony(path):
        try:
            return read_network(path, visible, learned, **units)
        except ModelError as e:  # the importer prefixes its messages with the source; keep it once
            raise ModelError(e.message.removeprefix(f"{path}: "), file=path, key=e.key, line=e.line) from None
    text = antimony_to_sbml(path)
    try:
        return read_network(text, visible, learned, **units)
    except ModelError as e:
        msg = e.message.replace("SBML string: ", "")
        m = re.search(r"reaction '([^']+)'|species '([^']+)'", msg)
        element = next(g for g in m.groups() if g) if m else None
        line = antimony_line(path, element) if element else None
        if element and line is not None and re.fullmatch(r"_J\d+", element):   # Antimony's name for an unnamed reaction
            msg = msg.replace(f"'{element}'", f"'{element}' (the unnamed reaction on line {line})")
        raise ModelError(f"{msg} (Antimony, read through SBML)", file=path, line=line) from None


def environment_tables(path) -> dict:
    """The tables of an environment file (TOML): ``[environment]`` (required), ``[learning]``,
    ``[truncation]``, ``[ensembles]``, ``[initial]``; anything else is a :class:`ModelError` naming the key.

    Only the shape is checked here; the values are validated by the model-file
    parser once they are merged with the network.
    """
    p = Path(path)
    try:
        raw = read_model_bytes(p)
    except ModelError as e:
        raise ModelError(e.message.replace("model file", "environment file"), file=e.file) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError("environment file is not UTF-8 text", file=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ModelError(f"TOML syntax error: {e}", file=str(p), line=int(m.group(1)) if m else None) from None
    extra = sorted(set(data) - set(ENVIRONMENT_FILE_TABLES))
    if extra:
        raise ModelError(f"unknown key(s) {extra}: an environment file holds only the tables "
                         f"{', '.join(f'[{t}]' for t in ENVIRONMENT_FILE_TABLES)} (the network comes from the "
                         "SBML/Antimony file)", file=str(p), key=extra[0])
    if "environment" not in data:
        raise ModelError("missing [environment] (the target law Q of the visible species, e.g. "
                         "family = \"poisson\", mean = 5.0; docs/model-file.md)", file=str(p), key="environment")
    for k, v in data.items():
        if not isinstance(v, dict):
            raise ModelError(f"must be a table, got {type(v).__name__} {v!r}", file=str(p), key=k)
    return data


def _toml_value(v, key: str) -> str:
    """One TOML value (inline form) of a value ``tomllib`` produced; dates are refused (no key takes one)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)  # inf / nan are TOML too; the parser refuses them with the key
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x, key) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x, f'{key}.{k}')}" for k, x in v.items()) + "}"
    raise ModelError(f"must be a number, string, boolean, array or table, got {type(v).__name__} {v!r}", key=key)


def sbml_model_text(path, visible, learned, environment_file, *, volume=None, copies_per_unit=None) -> str:
    """The model file (TOML text, in memory) of an SBML/Antimony model with an environment file's tables.

    The network part is :func:`model_file_text` of :func:`read_converted`
    (what ``crnfb convert`` writes); the environment file's tables follow as
    TOML tables. The text is checked to parse to exactly the merged document.
    ``volume`` / ``copies_per_unit``: the unit rule (:mod:`.units`), stated
    in the text's ``# units:`` comment (:func:`units_line`).
    """
    tables = environment_tables(environment_file)
    imp = read_converted(path, visible, learned, volume=volume, copies_per_unit=copies_per_unit)
    over = tables.get("initial", {})
    if over:    # the environment file's counts replace the SBML's for the species it names
        imp = dataclasses.replace(imp, initial={s: x for s, x in imp.initial.items() if s not in over})
    base = model_file_text(imp)
    base = base[:base.index("# -----")] if "# -----" in base else base  # drop the commented template
    try:
        if over:
            lines = [f"# from the environment file {Path(environment_file).name}"]
            lines += [f"{json.dumps(k)} = {_toml_value(v, f'initial.{k}')}" for k, v in over.items()]
            base = base.replace("[initial]\n", "[initial]\n" + "\n".join(lines) + "\n", 1)
        out = [base.rstrip("\n"), "", f"# from the environment file {Path(environment_file).name}"]
        for t in ENVIRONMENT_FILE_TABLES:
            if t in tables and t != "initial":
                out.append(f"[{t}]")
                out += [f"{json.dumps(k)} = {_toml_value(v, f'{t}.{k}')}" for k, v in tables[t].items()]
                out.append("")
    except ModelError as e:
        raise e.located(str(environment_file)) from None
    text = "\n".join(out) + "\n"
    merged = tomllib.loads(base) | {t: v for t, v in tables.items() if t != "initial"}
    canon = lambda d: json.dumps(d, sort_keys=True)  # noqa: E731 - order-free; nan compares equal as text
    if canon(tomllib.loads(text)) != canon(merged):  # pragma: no cover - a bug in the writer, not user input
        raise RuntimeError("the merged model text does not parse to the merged tables")
    return text


def environment_owns(key: str | None, environment_file) -> bool:
    """Whether an error under ``key`` of a joined model belongs to the environment file: a key of its
    tables (``[initial]`` only when the environment file has one; else the counts came from the SBML)."""
    top = (key or "").split(".")[0].split("[")[0]
    if top == "initial":
        try:
            return "initial" in environment_tables(environment_file)
        except ModelError:  # pragma: no cover - it was read a moment ago
            return False
    return top in ENVIRONMENT_FILE_TABLES


def units_line(text: str) -> str | None:
    """The unit rule stated in a converted model text (its ``# units:`` comment), if any."""
    m = re.search(rf"^# {re.escape(UNITS_PREFIX)}(.*)$", text, re.M)
    return m.group(1) if m else None


def load_sbml_model(path, visible, learned, environment_file, *, volume=None,
                    copies_per_unit=None) -> tuple[Model, str]:
    """The :class:`Model` (and its model-file text) of an SBML/Antimony file and an environment file.

    Parsed by :func:`~crnfb.feedback.io.modelfile.parse_model`, so every check of
    a model file applies. Errors under a key of the environment file's tables
    name the environment file; the others name the SBML/Antimony file.
    Nothing is written to disk.
    """
    text = sbml_model_text(path, visible, learned, environment_file, volume=volume, copies_per_unit=copies_per_unit)
    source = f"{path} + {environment_file}"
    try:
        return parse_model(tomllib.loads(text), source=source), text
    except ModelError as e:
        file = str(environment_file) if environment_owns(e.key, environment_file) else (
            e.file if e.file and e.file != source else str(path))
        raise ModelError(e.message, file=file, key=e.key) from None
