"""Model files (TOML, docs/model-file.md) to :class:`~crnfb.feedback.model.model.Model`.

Parsed with the standard library's ``tomllib``; every value is checked for
type and range, and every error names the file, the key (and the line when
the TOML parser gives one), what was wrong and what would be right. Nothing
in a model file is ever evaluated as code.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

from ..model import environment as envmod
from ..model.randomenv import parse_fluctuation
from ..errors import ModelError
from ..errors import check_number as _number
from ..model.model import Ensembles, Learning, Model
from ..model.network import Network, Reaction, Species, from_rate_constants, parse_equation

TOP_KEYS = {"name", "species", "reactions", "initial", "truncation", "environment", "learning", "ensembles"}
SPECIES_KEYS = {"energy", "visible", "learn"}
REACTION_KEYS = {"eq", "kappa", "k_forward", "k_reverse"}
LEARNING_KEYS = {"eps", "clamping", "gamma", "dmu"}
ENSEMBLE_KEYS = {"free", "clamped", "omega"}
DEFAULTS = {"eps": 0.05, "clamping": "dynamic", "gamma": 1.0, "dmu": 20.0, "kappa": 1.0}


def _bool(v, key):
    if not isinstance(v, bool):
        raise ModelError(f"must be true or false, got {v!r}", key=key)
    return v


def _table(v, key):
    if not isinstance(v, dict):
        raise ModelError(f"must be a table, got {type(v).__name__} {v!r}", key=key)
    return v


def _no_extra(d, allowed, key):
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise ModelError(f"unknown key(s) {extra}; allowed: {sorted(allowed)}", key=key)


def load_model(path: str | Path) -> Model:
    """Read and validate a model file (TOML only; :func:`crnfb.load_model` also reads SBML and Antimony).

    Raises
    ------
    ModelError
        With ``file``, ``key`` and (for TOML syntax errors) ``line`` set.
    """
    path = Path(path)
    text = read_model_bytes(path)
    if text.startswith(b"\xef\xbb\xbf"):
        raise ModelError("model file starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; "
                         "save it as UTF-8 without BOM", file=str(path), line=1)
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError("model file is not UTF-8 text", file=str(path)) from None
    except RecursionError:
        raise ModelError("model file nests arrays or tables too deeply to parse; a model file needs at most a "
                         "few levels", file=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ModelError(f"TOML syntax error: {e}", file=str(path),
                         line=int(m.group(1)) if m else None) from None
    return parse_model(data, source=str(path))


#: File endings read as SBML or Antimony (:func:`crnfb.feedback.io.loading.load_model`, every subcommand);
#: anything else is a model file.
SBML_SUFFIXES = (".xml", ".sbml", ".ant", ".antimony")


def is_sbml_source(path) -> bool:
    """Whether ``path`` is read as SBML / Antimony rather than a model file (by its ending, :data:`SBML_SUFFIXES`)."""
    return Path(path).suffix.lower() in SBML_SUFFIXES


#: Largest model file read (a model file is a few kilobytes; this only stops runaway input).
MAX_FILE_BYTES = 10 * 2**20


def read_model_bytes(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a model file: a regular file of at most ``limit`` bytes (:class:`ModelError` otherwise).

    FIFOs, devices and sockets are refused before they are opened (reading
    ``/dev/zero`` never ends, opening a FIFO blocks).
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise ModelError(f"cannot read model file: {e.strerror}", file=str(path)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelError("is a directory; give a model file (.toml)", file=str(path))
    if not stat.S_ISREG(st.st_mode):
        raise ModelError("is not a regular file (a FIFO, device or socket); give a model file (.toml)",
                         file=str(path))
    if st.st_size > limit:
        raise ModelError(f"model file is {st.st_size} bytes, more than the {limit // 2**20} MiB a model file "
                         "may have", file=str(path))
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        raise ModelError(f"cannot read model file: {e.strerror}", file=str(path)) from None
    if len(data) > limit:
        raise ModelError(f"model file is larger than {limit // 2**20} MiB", file=str(path))
    return data


def parse_model(data: dict, source: str | None = None) -> Model:
    """Build a :class:`Model` from the parsed TOML document."""
    try:
        return _parse(data, source)
    except ModelError as e:
        raise e.located(source) from None


def _parse(data: dict, source: str | None) -> Model:
    # Sections are read in file-format order, so the first error a user sees is the earliest one.
    _no_extra(data, TOP_KEYS, "(top level)")
    name = data.get("name", Path(source).stem if source else "model")
    if not isinstance(name, str) or not name:
        raise ModelError(f"must be a non-empty string, got {name!r}", key="name")
    species, energies_given = _parse_species(data)
    names = [s.name for s in species]
    net, residual = _parse_reactions(data, species, energies_given, name)
    initial = _parse_initial(data, names)
    n_max, trunc_tol = _parse_truncation(data, names)
    env, change, fluctuation = _parse_environment(data)
    learning = _parse_learning(data, species)
    ens = _parse_ensembles(data)
    return Model(net, initial, n_max, env, change, learning, ens, trunc_tol, source, residual, fluctuation)


def _parse_species(data: dict) -> tuple[list[Species], list[bool]]:
    """The ``[species.*]`` tables, and for each species whether its energy was given."""
    sp_tab = _table(data.get("species", None) or {}, "species")
    if not sp_tab:
        raise ModelError("no species; add a table per species, e.g. [species.X] with visible = true",
                         key="species")
    species = []
    energies_given = []
    for sname, opts in sp_tab.items():
        key = f"species.{sname}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", sname):
            raise ModelError("species names must be identifiers (letters, digits, _; not starting with a digit)",
                             key=key)
        opts = _table(opts, key)
        _no_extra(opts, SPECIES_KEYS, key)
        energies_given.append("energy" in opts)
        species.append(Species(
            sname,
            _number(opts["energy"], f"{key}.energy") if "energy" in opts else 0.0,
            _bool(opts.get("visible", False), f"{key}.visible"),
            _bool(opts.get("learn", True), f"{key}.learn"),
        ))
    return species, energies_given


def _parse_reactions(data: dict, species: list[Species], energies_given: list[bool],
                     name: str) -> tuple[Network, float]:
    """The ``[[reactions]]`` list as a network, with the detailed-balance residual of given rates."""
    names = [s.name for s in species]
    rx_list = data.get("reactions")
    if not isinstance(rx_list, list) or not rx_list:
        raise ModelError("no reactions; add [[reactions]] tables with eq = \"A <-> B\"", key="reactions")
    by_kappa, by_rates = [], []
    for i, r in enumerate(rx_list):
        key = f"reactions[{i}]"
        r = _table(r, key)
        _no_extra(r, REACTION_KEYS, key)
        if "eq" not in r or not isinstance(r["eq"], str):
            raise ModelError("needs eq = \"A + 2 B <-> C\" (a string)", key=f"{key}.eq")
        try:
            y, yp = parse_equation(r["eq"], names)
        except ModelError as e:
            raise ModelError(e.message, key=f"{key}.eq") from None
        has_rates = "k_forward" in r or "k_reverse" in r
        if has_rates:
            if "kappa" in r:
                raise ModelError("give either kappa or k_forward/k_reverse, not both", key=key)
            if not ("k_forward" in r and "k_reverse" in r):
                raise ModelError("k_forward and k_reverse go together; give both", key=key)
            by_rates.append((i, r["eq"], _number(r["k_forward"], f"{key}.k_forward", positive=True),
                             _number(r["k_reverse"], f"{key}.k_reverse", positive=True)))
        else:
            by_kappa.append((i, Reaction(y, yp, _number(r.get("kappa", DEFAULTS["kappa"]), f"{key}.kappa",
                                                        positive=True), r["eq"])))
    if by_rates and by_kappa:
        raise ModelError("mixes kappa (energy-based) reactions with k_forward/k_reverse ones; "
                         "describe every reaction one way", key="reactions")
    if by_rates and any(energies_given) and not all(energies_given):
        missing = [s.name for s, g in zip(species, energies_given) if not g]
        raise ModelError(f"with k_forward/k_reverse, give energy for every species or for none "
                         f"(then they are derived); missing for {', '.join(missing)}", key="species")
    if not by_rates:
        return Network(tuple(species), tuple(r for _, r in by_kappa), name), 0.0
    try:
        net, db = from_rate_constants(species, [e for _, e, _, _ in by_rates],
                                      [kf for *_, kf, _ in by_rates], [kr for *_, kr in by_rates],
                                      name=name, energies_given=all(energies_given))
    except ModelError as e:
        raise ModelError(e.message, key="reactions") from None
    return net, db.residual


def _parse_initial(data: dict, names: list[str]) -> dict:
    """The ``[initial]`` copy numbers, keyed by species name."""
    init = _table(data.get("initial", {}), "initial")
    initial = {}
    for k, v in init.items():
        if k not in names:
            raise ModelError(f"unknown species {k!r}; species are {', '.join(names)}", key=f"initial.{k}")
        initial[k] = _number(v, f"initial.{k}", integer=True, nonneg=True)
    return initial


def _parse_truncation(data: dict, names: list[str]) -> tuple[int | dict | None, float]:
    """The ``[truncation]`` table: ``n_max`` (one bound, one per species, or None) and ``tol``."""
    n_max: int | dict[str, int] | None = None
    if "truncation" in data:
        tr = _table(data["truncation"], "truncation")
        _no_extra(tr, {"n_max", "tol"}, "truncation")
        if "n_max" in tr:
            nm = tr["n_max"]
            if isinstance(nm, dict):
                n_max = {}
                for k, v in nm.items():
                    if k not in names:
                        raise ModelError(f"unknown species {k!r}; species are {', '.join(names)}",
                                         key=f"truncation.n_max.{k}")
                    n_max[k] = _number(v, f"truncation.n_max.{k}", integer=True, positive=True)
            else:
                n_max = _number(nm, "truncation.n_max", integer=True, positive=True)
    trunc_tol = 1e-6
    if "truncation" in data and "tol" in data["truncation"]:
        trunc_tol = _number(data["truncation"]["tol"], "truncation.tol", positive=True)
    return n_max, trunc_tol


def _parse_environment(data: dict):
    """The ``[environment]`` table: target law, optional step change and optional fluctuation."""
    if "environment" not in data:
        raise ModelError("missing [environment] (the target law Q of the visible species)", key="environment")
    env_tab = _table(data["environment"], "environment")
    env = envmod.from_dict({k: v for k, v in env_tab.items() if k not in ("change", "fluctuation")}, "environment")
    change = None
    if "change" in env_tab:
        change = envmod.from_dict(_table(env_tab["change"], "environment.change"), "environment.change")
    fluctuation = None
    if "fluctuation" in env_tab:
        fluctuation = parse_fluctuation(env_tab["fluctuation"], change is not None)
    return env, change, fluctuation


def _parse_learning(data: dict, species: list[Species]) -> Learning:
    """The ``[learning]`` table; ``eps`` is a scalar or one rate per learned species."""
    lt = _table(data.get("learning", {}), "learning")
    _no_extra(lt, LEARNING_KEYS, "learning")
    learned = [s.name for s in species if s.learn]
    eps_v = lt.get("eps", DEFAULTS["eps"])
    if isinstance(eps_v, dict):
        for k in eps_v:
            if k not in learned:
                raise ModelError(f"{k!r} is not a learned species; learned: {', '.join(learned)}",
                                 key=f"learning.eps.{k}")
        missing = [n for n in learned if n not in eps_v]
        if missing:
            raise ModelError(f"no learning rate for learned species {missing}; give one per learned species "
                             "or a scalar", key="learning.eps")
        eps = tuple(_number(eps_v[n], f"learning.eps.{n}", positive=True) for n in learned)
    else:
        eps = tuple([_number(eps_v, "learning.eps", positive=True)] * len(learned))
    clamping = lt.get("clamping", DEFAULTS["clamping"])
    if clamping not in ("dynamic", "equilibrium"):
        raise ModelError(f"must be \"dynamic\" or \"equilibrium\", got {clamping!r}", key="learning.clamping")
    return Learning(eps, clamping,
                    _number(lt.get("gamma", DEFAULTS["gamma"]), "learning.gamma", positive=True),
                    _number(lt.get("dmu", DEFAULTS["dmu"]), "learning.dmu", positive=True))


def _parse_ensembles(data: dict) -> Ensembles:
    """The ``[ensembles]`` table: free and clamped ensemble sizes and the volume ``omega``."""
    et = _table(data.get("ensembles", {}), "ensembles")
    _no_extra(et, ENSEMBLE_KEYS, "ensembles")
    return Ensembles(_number(et.get("free", 1000), "ensembles.free", integer=True, positive=True),
                     _number(et.get("clamped", 1000), "ensembles.clamped", integer=True, positive=True),
                     _number(et.get("omega", 1000.0), "ensembles.omega", positive=True))


__all__ = ["load_model", "parse_model", "SBML_SUFFIXES", "is_sbml_source"]
