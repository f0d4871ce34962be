"""``crnfb export`` and ``crnfb convert``: the command-line side of SBML (docs/cli.md, docs/sbml.md).

The library (:mod:`crnfb.feedback.io.sbml`) raises :class:`ValueError`-style
errors and :class:`~crnfb.feedback.io.sbml.SBMLExportWarning`; this module
prints the warnings on stderr and lets :class:`~crnfb.feedback.errors.ModelError`
reach :func:`crnfb.analysis.cli.entry.main`, which maps it to exit 2.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crnfb.analysis.linear.linearise import linearise
from crnfb.analysis.linear.fixedpoints import loop_fixed_point
from crnfb.analysis.cli.export_prune import learning_path_mass, prune_deviation
from crnfb.analysis.analyses.margins import critical_rates
from crnfb.feedback.errors import ModelError
from crnfb.analysis.cli.model_input import input_paths, load_cli_model, names_option, unit_options
from crnfb.feedback.io.files import check_output_file
from crnfb.feedback.io.sbml import (SBMLExportWarning, exported_network, learning_network, model_file_text, model_sbml,
                                    network_to_sbml, read_converted, write_sbml)

__all__ = ["ExportDeviation", "export_deviation", "run_export_command", "run_convert_command"]


@dataclass(frozen=True, kw_only=True)
class ExportDeviation:
    """How far the exported learning network is from the analysed loop (equilibrium clamping, docs/sbml.md).

    Attributes
    ----------
    speedup : float
        Factor on the clamped hidden-only jumps of the export.
    learned : tuple of str
    lambda_report, lambda_export : ndarray
        ``exp(theta*)`` at the report's loop fixed point and at the exported
        network's (a steady state of the exported ODE).
    eps_crit_report, eps_crit_export : ndarray or None
        Critical learning rates (all rates scaled together) of both loops;
        None where the loop stays stable up to the searched factor.
    """

    speedup: float
    learned: tuple
    lambda_report: np.ndarray
    lambda_export: np.ndarray
    eps_crit_report: np.ndarray | None
    eps_crit_export: np.ndarray | None

    @property
    def lambda_deviation(self) -> float:
        """Largest relative deviation of ``lambda`` (exported vs report)."""
        return float(np.max(np.abs(self.lambda_export / self.lambda_report - 1.0)))

    @property
    def eps_crit_deviation(self) -> float | None:
        """Relative deviation of ``eps_crit`` (None if either is None)."""
        if self.eps_crit_report is None or self.eps_crit_export is None:
            return None
        return float(np.max(np.abs(self.eps_crit_export / self.eps_crit_report - 1.0)))

    def lines(self) -> list[str]:
        """Human-readable summary, one line per quantity."""
        out = [f"exported with clamped hidden reactions {self.speedup:g}x faster (dynamic clamping) instead of "
               "equilibrium clamping:"]
        for n, a, b in zip(self.learned, self.lambda_report, self.lambda_export):
            out.append(f"  lambda_{n}: exported {b:.6g}, report {a:.6g} (relative deviation {b / a - 1:+.2e})")
        fmt = lambda e: "none (stable)" if e is None else ", ".join(f"{v:.6g}" for v in np.atleast_1d(e))  # noqa: E731
        dev = self.eps_crit_deviation
        out.append(f"  eps_crit: exported {fmt(self.eps_crit_export)}, report {fmt(self.eps_crit_report)}"
                   + ("" if dev is None else f" (relative deviation {dev:.2e})"))
        return out


def export_deviation(model, speedup: float) -> ExportDeviation:
    """Fixed point and ``eps_crit`` of the exported network (``speedup``) against the report's loop.

    The exported network is ``LearningNetwork(model, "dynamic",
    clamped_speedup=speedup)`` exactly (its ODE is the SBML's, tested), so
    both are computed with the same solvers as the report: the loop fixed
    point (:func:`~crnfb.analysis.linear.fixedpoints.loop_fixed_point`) and the
    ``eps_crit`` of the reduced Jacobian (:func:`~crnfb.analysis.analyses.margins.critical_rates`).
    """
    ref = linearise(model)
    net = exported_network(model, speedup)
    fp = loop_fixed_point(model, net)
    exp_loop = linearise(model, fixed_point=fp, net=net)
    return ExportDeviation(speedup=float(speedup), learned=tuple(model.learned_names),
                           lambda_report=np.exp(ref.fixed_point.theta), lambda_export=np.exp(fp.theta),
                           eps_crit_report=critical_rates(ref).eps_crit,
                           eps_crit_export=critical_rates(exp_loop).eps_crit)


def _print_export_warnings(caught) -> None:
    for w in caught:
        if issubclass(w.category, SBMLExportWarning):
            print(f"crnfb export: warning: {w.message}", file=sys.stderr)
        else:  # pragma: no cover
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def run_export_command(args) -> int:
    """``crnfb export MODEL --sbml FILE [--learning [--copies] [--speedup S] [--prune P]]`` (docs/cli.md).

    Export warnings (unreachable hidden states) go to stderr; with
    ``--speedup`` the deviation of the exported network's fixed point and
    ``eps_crit`` from the report's is printed; with ``--prune`` copy states
    are kept by their mass on the learning path
    (:func:`~crnfb.analysis.cli.export_prune.learning_path_mass`) and the pruned
    network's fixed point and slowest eigenvalues are printed against the
    unpruned export's (:func:`~crnfb.analysis.cli.export_prune.prune_deviation`).
    :class:`~crnfb.feedback.errors.ModelError` propagates (exit 2).
    """
    force, inputs = bool(getattr(args, "force", False)), input_paths(args)
    check_output_file(args.sbml, inputs, force, flag="--sbml")   # before any work
    model = load_cli_model(args)
    learning = bool(getattr(args, "learning", False))
    speedup, copies, prune = getattr(args, "speedup", None), bool(getattr(args, "copies", False)), \
        getattr(args, "prune", 0.0) or 0.0
    if not learning and (speedup is not None or copies or prune):
        raise ModelError("--speedup, --copies and --prune apply to the learning network; add --learning",
                         key="--learning")
    if speedup is not None and not (np.isfinite(speedup) and speedup > 0):
        raise ModelError(f"--speedup must be a positive number, got {speedup!r}", key="--speedup")
    if not 0.0 <= prune < 1.0:
        raise ModelError(f"--prune must be a probability in [0, 1), got {prune!r}", key="--prune")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SBMLExportWarning)
        if learning:
            path = _prune_path(model, speedup) if prune else None
            mnet = learning_network(model, speedup=speedup, copies=copies, prune=prune,
                                    keep_mass=None if path is None else path[0])
            text = network_to_sbml(mnet)
        else:
            text = model_sbml(model)
    _print_export_warnings(caught)
    out = write_sbml(text, args.sbml, overwrite=force, inputs=inputs)
    what = "learning network" if learning else "model network"
    print(f"wrote {what} of '{model.name}' to {out}")
    if not learning:
        return 0
    info = mnet.info
    print(f"  {info['species']} species, {info['reactions']} reactions"
          + (" (copy counts, copy-conserving resets)" if copies else ""))
    code = _print_prune(model, out, prune, speedup, copies, info, path) if prune else 0
    if speedup is not None:
        try:
            dev = export_deviation(model, speedup)
        except RuntimeError as e:   # an eigenvalue search that failed: a stated limitation, not a crash
            print(f"crnfb export: wrote {out}, but the deviation of the exported network could not be "
                  f"computed: {e} (exit 1)", file=sys.stderr)
            return 1
        for line in dev.lines():
            print(line)
    return code


def _prune_path(model, speedup):
    """``(keep_mass, fixed point, episode info)`` of the learning path, or None when it cannot be computed."""
    try:
        net = exported_network(model, speedup)
        fp = loop_fixed_point(model, net)
        mass, info = learning_path_mass(model, net, fp)
    except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
        print(f"crnfb export: warning: the learning path could not be computed ({e}); copy states are pruned "
              "by their start probability only", file=sys.stderr)
        return None
    return mass, fp, info


def _print_prune(model, out, prune, speedup, copies, info, path) -> int:
    """Print what ``--prune`` left out and the measured deviation of the pruned network (exit 1 if unmeasured)."""
    d, (kf, kc), (nf, nc) = info["dropped_mass"], info["kept_states"], info["states"]
    by = "on the learning path" if path is not None else "at the start"
    print(f"  pruned copy states whose mass {by} stays below {prune:g}: kept {kf} of {nf} free, {kc} of {nc} "
          f"clamped; dropped start mass free {d['free']:.3g}, clamped {d['clamped']:.3g}")
    if path is not None and not path[2]["settled"]:
        ep = path[2]
        print(f"  note: the learning episode did not settle ({ep['failure']}); states are kept by their mass at the "
              "start and the fixed point" if ep["t_end"] == 0.0 else
              f"  note: the learning episode did not settle by t = {ep['t_end']:.4g}"
              + (f" ({ep['failure']})" if ep["failure"] else "") + "; the states it reached are kept")
    try:
        dev = prune_deviation(model, prune, speedup=speedup, copies=copies,
                              keep_mass=None if path is None else path[0], fp=None if path is None else path[1])
    except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
        print(f"crnfb export: wrote {out}, but the deviation of the pruned network could not be computed: {e} "
              "(exit 1)", file=sys.stderr)
        return 1
    for line in dev.lines():
        print(line)
    if not dev.converged:
        print(f"crnfb export: wrote {out}, but the pruned network's steady state was not found near the "
              f"unpruned one's (residual {dev.residual:.2g}); lower --prune (exit 1)", file=sys.stderr)
        return 1
    return 0


def run_convert_command(args) -> int:
    """``crnfb convert MODEL.xml|MODEL.ant -o model.toml --visible X[,Y] [--learn A,B]`` (docs/cli.md).

    Reads a reversible mass-action SBML (or Antimony) model, checks detailed
    balance, derives the energies and writes our model file with the
    ``[environment]`` section as a commented template. Nothing is written on
    error (exit 2).
    """
    visible = names_option(args.visible, "--visible")
    learned = names_option(getattr(args, "learn", None), "--learn")
    units = unit_options(args)
    out, force = Path(args.output), bool(getattr(args, "force", False))
    check_output_file(out, (args.model,), force)
    if out.suffix.lower() != ".toml":
        raise ModelError(f"-o {out}: the model file must end in .toml", key="--output")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SBMLExportWarning)
        imp = read_converted(args.model, visible, learned, **units)
    _print_export_warnings(caught)
    text = model_file_text(imp)
    write_sbml(text, out, overwrite=force, inputs=(args.model,))
    net = imp.network
    print(f"wrote {out}: {net.n_species} species, {len(net.reactions)} reactions, detailed balance holds "
          f"(residual {imp.balance.residual:.2g} kT)")
    if imp.units is not None:
        print(f"  units: {imp.units.line()}")
    _print_learn_flags(imp, args.model)
    print(f"  next: fill in [environment] (the law of {', '.join(net.names[i] for i in net.visible)}) and "
          f"[learning] in {out}, then run crnfb check {out}")
    return 0


def _print_learn_flags(imp, source) -> None:
    """Say where the learn flags came from when ``--learn`` was not given (Antimony drops the annotations)."""
    net = imp.network
    learned = ", ".join(net.names[i] for i in net.learned) or "none"
    if imp.flags == "notes":
        print(f"  learned species {learned}: from the model notes written by crnfb export (the crnfb annotations "
              "are not in the file, e.g. dropped by an Antimony round trip; energies derived from the rate constants)")
    elif imp.flags == "none":
        print(f"crnfb convert: warning: {source} holds no learn flags (no crnfb annotations and no 'Visible "
              "species: ...; learned: ...' line in the model notes; an Antimony round trip drops the annotations), "
              f"so every species is learned ({learned}); give --learn A,B to choose", file=sys.stderr)
