"""``crnfb sweep MODEL --param NAME=START:STOP:N[:log10|lin] ... -o DIR``: parameter sweeps.

Each point of the grid (the product of every ``--param``) gets the report's
scalar results (:data:`crnfb.analysis.reporting.results.SCALAR_KEYS`, from
``analyse(..., validate=False)``) and :func:`crnfb.analysis.analyses.tradeoffs.point_metrics`
(columns ``metrics.*``), from the one analysis of the point that the sweep
engine builds (:func:`crnfb.analysis.analyses.grids.sweep_grid`; this module is
its command-line front end: files, resume, processes). Points run in
parallel local processes (``--workers``, default ``os.cpu_count()``; the parsed
model goes to each process once, through the pool's initializer) or on a Dask
cluster (``--scheduler ADDRESS``, optional ``dask`` extra; the model file's text
travels with each point).

Resumable: every finished point is appended to ``DIR/sweep.csv`` at once
(flushed per row), keyed by its parameter values; a rerun with the same
grid skips the points already there. ``DIR/sweep.png`` shows each scalar
against the (first) swept parameter, on log axes where the grid is log.

Parameters
----------
``eps``      every learning rate (``eps.X`` for one learned species)
``gamma``    reset rate of clamped copies
``dmu``      fuel per learning event (kT)
``kappa``    factor on every reaction's kappa (time-scale of the model network)
``free``, ``clamped``, ``M``   ensemble sizes (``M`` sets both; whole numbers)
``omega``    volume for parameter species counts
``switching`` factor on every rate of ``[environment.fluctuation]`` (the random
             environment changes that many times faster; its law is unchanged)
``k_01``, ``k_10``  the two rates of a telegraph ``[environment.fluctuation]``

With ``[environment.fluctuation]`` each row also carries ``fluctuation.*``
columns (docs/theory.md §5a): ``eps_opt``, ``eps_crit``, ``valid`` and, at the
point's eps, ``tracking``, ``noise``, ``bias``, ``total`` (nats) and
``dissipation``; so ``--param switching=...`` maps ``eps_opt`` against how
fast the environment changes.

With ``safe_factor`` (``--safe-factor``) each row also carries the safe
factor of eps (docs/global.md): ``safe_factor`` and ``safe_factor_reason``
(empty when the search reached its bracket; the reason when there is no
value, or the time budget's note when the search was stopped and the value
is the bracket's converging end), searched within ``--global-budget``
wall seconds per point, as the report does.

Grid specs: ``START:STOP:N[:log10|lin]`` (default ``lin``),
``START:STOP:log10`` (10 points), a single value, or a list ``V1,V2,...``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from functools import partial
from typing import Any, Callable, Iterator, TextIO

import numpy as np

from crnfb.analysis.analyses.context import Analysis
from crnfb.analysis.analyses.grids import PARAMS, ParamSpec, apply_params, build_grid, grid_point_row, parse_param, \
    sweep_grid
from crnfb.analysis.analyses.tradeoffs import point_metrics
from crnfb.feedback.io.files import OutputError, atomic_file, same_file, write_bytes, write_text
from crnfb.feedback.errors import ModelError
from crnfb.feedback.model.model import Model
from crnfb.feedback.numerics.progress import progress_bar

STATUS = "status"
ERROR = "error"


def fluctuation_columns(m: Model, result=None) -> dict:
    """``fluctuation.*`` columns of a sweep row (module docstring); empty without a random environment.

    ``result``: the :class:`~crnfb.analysis.analyses.fluctuation.FluctuationResult` the
    report pipeline already computed for ``m`` (else it is computed here).
    """
    if m.fluctuation is None:
        return {}
    from crnfb.analysis.analyses.fluctuation import analyse_fluctuation

    r = result if result is not None else analyse_fluctuation(m, validate=False, quick=True)
    i = int(np.argmin(np.abs(r.factor - 1.0)))
    ok = bool(r.stable[i])

    def num(x):
        return float(x) if x is not None and ok and math.isfinite(float(x)) else None

    def rate(v):      # per-species rates (a dict) are not one column, as for margins.eps_crit
        return None if isinstance(v, dict) else v

    return {"fluctuation.eps_opt": rate(r.eps_opt), "fluctuation.eps_crit": rate(r.eps_crit),
            "fluctuation.valid": 1.0 if r.valid else 0.0, "fluctuation.tracking": num(r.tracking[i]),
            "fluctuation.noise": num(r.noise[i]), "fluctuation.bias": num(r.bias[i]),
            "fluctuation.total": num(r.total[i]), "fluctuation.dissipation": float(r.dissipation[i])}


# ----------------------------------------------------------------------------------------------
# one point: the sweep engine (crnfb.analysis.analyses.grids.sweep_grid) with the report's columns
# ----------------------------------------------------------------------------------------------
def safe_factor_columns(glob: dict | None) -> dict:
    """``safe_factor`` and ``safe_factor_reason`` of a sweep row from the report's ``global`` section:
    the reason empty when the search reached its bracket, the time budget's note when it was stopped
    (the value is then the bracket's converging end), why there is no value otherwise."""
    g = glob or {}
    sf = g.get("safe_factor")
    if sf is not None:
        return {"safe_factor": float(sf), "safe_factor_reason": g.get("safe_factor_note") or ""}
    return {"safe_factor": None, "safe_factor_reason": g.get("safe_factor_reason") or "not computed"}


def metrics_columns(an: Analysis) -> dict:
    """``metrics.*`` columns: :func:`~crnfb.analysis.analyses.tradeoffs.point_metrics` of the point's analysis,
    without the parameters (columns of their own) and with non-finite values empty."""
    try:
        pm = point_metrics(an)
    except ModelError:
        pm = {}
    return {f"metrics.{k}": float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else None
            for k, v in pm.items() if k not in ("eps", "gamma", "dmu", "free", "clamped", "omega")}


def report_columns(an: Analysis, metrics: bool = True, safe_budget: float | None = None) -> dict:
    """The columns of one point from its :class:`~crnfb.analysis.analyses.context.Analysis`:
    ``{SCALAR_KEYS..., fluctuation.*, safe_factor*, metrics.*}`` (the sweep engine's evaluator).

    Uses ``analyse(an, validate=False, figures=False, quick=True)`` (``quick``:
    the thermodynamic episode integrated with looser tolerances). With
    ``safe_budget`` (wall seconds, ``--global-budget``) also the safe factor
    of eps (:func:`safe_factor_columns`; the outcome at factor 1 is the quick
    episode's).
    """
    from crnfb.analysis.reporting.pipeline import analyse

    safe = safe_budget is not None
    res = analyse(an, validate=False, figures=False, quick=True, safe_factor=safe, global_budget=safe_budget)
    row: dict = {k: (1.0 if v else 0.0) if isinstance(v, bool) else v for k, v in res.scalars().items()}
    row.update(fluctuation_columns(an.model, res.fluctuation))
    if safe:
        row.update(safe_factor_columns(res.global_behaviour))
    if metrics:
        row.update(metrics_columns(an))
    return row


def evaluate_point(model: Model, point: dict, metrics: bool = True, safe_budget: float | None = None) -> dict:
    """Scalar results of one grid point: ``{SCALAR_KEYS..., metrics.*}`` (:func:`report_columns` of the
    point's one analysis, :func:`crnfb.analysis.analyses.grids.grid_point_row`)."""
    return grid_point_row(model, point, partial(report_columns, metrics=metrics, safe_budget=safe_budget))


def _ok_row(an: Analysis, metrics: bool, safe_budget: float | None) -> dict:
    return {**report_columns(an, metrics, safe_budget), STATUS: "ok"}


def _error_row(exc: Exception) -> dict:
    return {STATUS: "error", ERROR: str(exc)}


def sweep_rows(model: Model, points: list[dict], metrics: bool = True,
               safe_budget: float | None = None) -> Iterator[tuple[dict, dict]]:
    """``(point, row)`` of ``crnfb sweep`` for each point, in order, where they run (this process or a
    worker): the sweep engine with :func:`report_columns` and a ``status`` column; a point whose model is
    invalid or has no fixed point is a row with ``status=error`` and the message."""
    return sweep_grid(model, points, partial(_ok_row, metrics=metrics, safe_budget=safe_budget),
                      on_error=_error_row)


# ----------------------------------------------------------------------------------------------
# the CSV (resumable)
# ----------------------------------------------------------------------------------------------
def _key(point: dict, names: list[str]) -> tuple:
    return tuple(float(point[n]) for n in names)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


FINGERPRINT = "sweep.json"
#: largest grid run without ``--max-points`` (each point is a report without validation)
MAX_POINTS = 10_000


def check_grid_size(specs: list[ParamSpec], model: Model, max_points: int = MAX_POINTS) -> int:
    """The number of grid points; :class:`ModelError` (exit 2) with the cost estimate above ``max_points``.

    Counted from the specs before the grid is built (a product of large
    grids would not fit in memory). The estimate is points x states, the
    size of one point's analysis (a sparse solve on the reachable class),
    and the time at about 0.5 s per point of a small model.
    """
    n = math.prod(len(s.values) for s in specs)
    if n > max_points:
        states = model.space.size if hasattr(model.space, "size") else None
        per = f" of a {states}-state model" if states else ""
        raise ModelError(f"the grid has {n:.3g} points ({' x '.join(str(len(s.values)) for s in specs)}), "
                         f"more than --max-points {max_points}; each point is one analysis{per}, about "
                         f"{0.5 * n / 3600:.3g} CPU hours at 0.5 s per point: use a coarser grid or pass "
                         f"--max-points {n} to run it", key="--param")
    return n


def sweep_fingerprint(model_text: str, specs: list[ParamSpec], safe_budget: float | None = None) -> dict:
    """What a resumed sweep must share with the rows it reuses: model text, grid, package version and,
    with ``--safe-factor``, its time budget (``safe_factor``; absent without it, as in older sweeps)."""
    from crnfb import __version__
    out: dict[str, object] = {
        "model_sha256": hashlib.sha256(model_text.encode("utf-8")).hexdigest(),
        "grid": [{"name": s.name, "values": [repr(float(v)) for v in s.values]} for s in specs],
        "package_version": __version__}
    if safe_budget is not None:
        out["safe_factor"] = {"global_budget": float(safe_budget)}
    return out


def check_resume(out: Path, fingerprint: dict) -> None:
    """Refuse to resume from rows another model, grid or version produced (:class:`ModelError`)."""
    import json
    csv_path, fp_path = out / "sweep.csv", out / FINGERPRINT
    if not csv_path.exists():
        return
    try:
        old = json.loads(fp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"{csv_path} has no readable fingerprint ({FINGERPRINT}), so its rows cannot be "
                         "matched to this model and grid; use a new output directory", key="--output") from None
    what = {"model_sha256": "the model file's content", "grid": "the --param grid",
            "package_version": "the crnfb version", "safe_factor": "--safe-factor and its --global-budget"}
    diff = [what[k] for k in what if old.get(k) != fingerprint.get(k)]
    if diff:
        raise ModelError(f"{csv_path} was written for a different sweep ({' and '.join(diff)} differ); resuming "
                         "would reuse rows of another computation: use a new output directory", key="--output")


def read_csv(path: Path, names: list[str]) -> tuple[list[str], list[dict]]:
    """Header and the complete rows of an existing ``sweep.csv`` (malformed rows are dropped)."""
    if not path.exists():
        return [], []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return [], []
        rows = []
        for cells in reader:
            if len(cells) != len(header):
                continue       # a row cut short by an interruption
            r: dict[str, Any] = dict(zip(header, cells))       # the cells, then numbers where they parse
            try:
                for n in names:
                    r[n] = float(r[n])
            except (KeyError, ValueError):
                continue
            if r.get(STATUS) not in ("ok", "error"):
                continue
            for k, v in list(r.items()):
                if k in names or k in (STATUS, ERROR):
                    continue
                try:
                    r[k] = float(v) if v != "" else None
                except ValueError:
                    pass
            rows.append(r)
    return header, rows


class CsvSink:
    """Appends rows to ``sweep.csv``, flushing each; widens the header when new columns appear."""

    def __init__(self, path: Path, names: list[str], header: list[str], rows: list[dict]):
        self.path = path
        self.names = names
        self.rows = list(rows)
        self.header = header or []
        self._fh: TextIO | None = None
        if self.header and self._needs_rewrite():
            self._rewrite()
        elif self.header:
            self._fh = open(self.path, "a", newline="")

    def _needs_rewrite(self) -> bool:
        # a partly written last line: rewrite from the rows that parsed
        with open(self.path, newline="") as fh:
            lines = fh.read().splitlines()
        return len(lines) - 1 != len(self.rows) or not lines or lines[0].split(",") != self.header

    def _columns_for(self, row: dict) -> list[str]:
        cols = list(self.header) if self.header else list(self.names) + [STATUS]
        for k in row:
            if k not in cols and k != ERROR:
                cols.append(k)
        if ERROR not in cols:
            cols.append(ERROR)
        # keep ERROR last
        cols = [c for c in cols if c != ERROR] + [ERROR]
        return cols

    def _rewrite(self):
        if self._fh:
            self._fh.close()
        with atomic_file(self.path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(self.header)
            for r in self.rows:
                w.writerow([_cell(r.get(c)) for c in self.header])
        self._fh = open(self.path, "a", newline="")

    def add(self, point: dict, row: dict):
        full = {**point, **row}
        cols = self._columns_for(full)
        self.rows.append(full)
        if cols != self.header or self._fh is None:
            self.header = cols
            self._rewrite()
        else:
            csv.writer(self._fh).writerow([_cell(full.get(c)) for c in self.header])
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self):
        if self._fh:
            self._fh.close()
            self._fh = None


# ----------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class SweepOutcome:
    """What :func:`run_sweep` did: grid size, points found done, points evaluated, errors, files."""

    total: int
    skipped: int
    evaluated: int
    errors: int
    csv: Path
    png: Path | None
    seconds: float


def _progress(total: int, enabled: bool):
    return progress_bar(total, "sweep", enabled, unit="pt", leave=True)


SWEEP_FILES = ("sweep.csv", FINGERPRINT, "sweep.png")


def _check_sweep_dir(out: Path, fingerprint: dict, force: bool, inputs: tuple) -> bool:
    """The output rule for a sweep directory (docs/cli.md, "Output files"); True to start afresh.

    Its files are ours when ``sweep.json`` is a readable fingerprint. A
    ``sweep.csv``/``sweep.png`` without one, or another sweep's rows, are
    refused unless ``force`` (then replaced); a file of the sweep that is an
    input of the command is refused always.
    """
    if out.exists() and not out.is_dir():
        raise ModelError(f"output {out} exists and is not a directory")
    for name in SWEEP_FILES:
        if any(same_file(out / name, i) for i in inputs):
            raise OutputError(f"{out / name} is an input of this command; crnfb never writes over its own input, "
                              "not even with --force: name a new output directory")
    present = [n for n in SWEEP_FILES if os.path.lexists(out / n)]
    if not present:
        return False
    try:
        check_resume(out, fingerprint)
        if (out / FINGERPRINT).exists() and isinstance(json.loads((out / FINGERPRINT).read_text("utf-8")), dict):
            return False
        problem = f"{', '.join(present)} without a readable fingerprint ({FINGERPRINT})"
    except ModelError as e:
        problem = e.message
    except (OSError, ValueError):
        problem = f"an unreadable {FINGERPRINT}"
    if not force:
        raise OutputError(f"output {out}: {problem}; crnfb does not replace files it did not write for this sweep: "
                          "name a new output directory, or pass --force to start afresh there")
    return True


def _open_output(out: Path, text: str, specs: list[ParamSpec], names: list[str], force: bool = False,
                 inputs: tuple = (), safe_budget: float | None = None) -> tuple[Path, list[str], list[dict]]:
    """Create or reopen the output directory; the CSV path and the header and rows already there.

    A directory holding another model's or grid's sweep, or sweep files without a
    fingerprint, is refused (unless ``force``: then they are replaced), so a resume never
    mixes rows of two sweeps and nothing crnfb did not write is replaced silently.
    """
    fingerprint = sweep_fingerprint(text, specs, safe_budget)
    fresh = _check_sweep_dir(out, fingerprint, force, inputs)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "sweep.csv"
    if fresh or not csv_path.exists():
        write_text(out / FINGERPRINT, json.dumps(fingerprint, indent=1) + "\n", inputs=inputs)
    if fresh:
        write_text(csv_path, "", inputs=inputs)
        (out / "sweep.png").unlink(missing_ok=True)
    header, rows = read_csv(csv_path, names)
    if header and any(n not in header for n in names):
        raise ModelError(f"{csv_path} holds a sweep over {[h for h in header if h not in ('status',)][:3]}..., "
                         f"not over {names}; use another output directory")
    return csv_path, header, rows


#: The base model of a pool worker process, set once by the pool's initializer (:func:`_start_worker`) so
#: that the model is sent to each worker once, not with every point; never set in the process running the sweep.
_worker_model: Model | None = None


def _start_worker(model: Model) -> None:
    """Pool initializer: keep the model this worker evaluates every point on."""
    global _worker_model
    _worker_model = model


def _pool_point(point: dict, metrics: bool, safe_budget: float | None) -> tuple[dict, dict]:
    """One point in a pool worker, on the model its initializer received."""
    if _worker_model is None:          # only a pool started by _evaluate_in_processes runs this
        raise RuntimeError("a sweep worker without a model: start the pool with initializer=_start_worker")
    return next(sweep_rows(_worker_model, [point], metrics, safe_budget))


def _dask_point(text: str, source: str, point: dict, metrics: bool,
                safe_budget: float | None) -> tuple[dict, dict]:
    """One point on a Dask worker, the model parsed from the text sent with it: nothing is kept on the
    worker, so one that replaces a dead worker (or a batch job past its wall time) needs only the task."""
    from crnfb.feedback.io.modelfile import parse_model

    return next(sweep_rows(parse_model(tomllib.loads(text), source=source), [point], metrics, safe_budget))


def _evaluate_on_dask(client, todo: list[dict], text: str, source: str, metrics: bool,
                      record: Callable[[dict, dict], bool], safe_budget: float | None = None) -> int:
    """Evaluate the points on a Dask cluster, recording each as it finishes; the number that failed."""
    from dask.distributed import as_completed

    futs = [client.submit(_dask_point, text, source, p, metrics, safe_budget, pure=False) for p in todo]
    return sum(record(*fut.result()) for fut in as_completed(futs))


def _evaluate_in_processes(n: int, todo: list[dict], model: Model, metrics: bool,
                           record: Callable[[dict, dict], bool], safe_budget: float | None = None) -> int:
    """Evaluate the points in ``n`` spawned processes, recording each as it finishes; the number that failed.

    The parsed model goes to each process once, as the argument of its initializer (:func:`_start_worker`).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing as mp

    errors = 0
    saved = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for k in saved:          # one BLAS thread per process: the processes are the parallelism
        os.environ[k] = "1"
    try:
        with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn"), initializer=_start_worker,
                                 initargs=(model,)) as ex:
            futs = [ex.submit(_pool_point, p, metrics, safe_budget) for p in todo]
            try:
                for fut in as_completed(futs):
                    errors += record(*fut.result())
            except BaseException:
                for f in futs:
                    f.cancel()
                raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return errors


def _read_model(model_path, model_text: str | None) -> tuple[Model, str]:
    """The model and its text (the file's, or ``model_text``): the fingerprint's, and what Dask workers parse."""
    from crnfb.feedback.io.modelfile import load_model, parse_model

    if model_text is None:
        return load_model(model_path), Path(model_path).read_text(encoding="utf-8")
    return parse_model(tomllib.loads(model_text), source=str(model_path)), model_text


def _dask_client():
    """``dask.distributed.Client``; a bad-input error without the ``dask`` extra."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise ModelError("--scheduler needs Dask: pip install 'crn-feedback[dask]' "
                         "(or pip install 'dask[distributed]')") from None
    return Client


def run_sweep(model_path: str | os.PathLike, params: list[str], out_dir: str | os.PathLike,
              workers: int | None = None, scheduler: str | None = None, progress: bool = False,
              metrics: bool = True, limit: int | None = None, model_text: str | None = None,
              force: bool = False, inputs: tuple = (), max_points: int = MAX_POINTS,
              safe_budget: float | None = None) -> SweepOutcome:
    """Run (or resume) a sweep; see the module docstring.

    Parameters
    ----------
    model_path : path of the model file
    params : list of ``NAME=START:STOP:N[:log10|lin]`` specs
    out_dir : output directory (created after the inputs are checked)
    workers : local processes (default ``os.cpu_count()``; 1 runs in this process)
    scheduler : Dask scheduler address (needs the ``dask`` extra)
    metrics : also record :func:`crnfb.analysis.analyses.tradeoffs.point_metrics`
    limit : evaluate at most this many of the missing points (then stop, resumable)
    model_text : the model-file text, when it is not the file at ``model_path`` (an SBML model with an
        environment file, converted in memory by :func:`crnfb.analysis.cli.model_input.model_input`)
    force : start afresh in a directory holding sweep files without this sweep's fingerprint
    inputs : the command's input files (never written over; the model file is always one)
    max_points : refuse a larger grid before any work (:func:`check_grid_size`)
    safe_budget : seconds per point for the safe factor of eps (``--safe-factor``; None: not searched)
    """
    t0 = time.perf_counter()
    source = str(model_path)
    model, text = _read_model(model_path, model_text)
    specs = [parse_param(p, model) for p in params]
    check_grid_size(specs, model, max_points)
    grid = build_grid(specs)
    names = [s.name for s in specs]
    apply_params(model, grid[0])       # bad combinations fail here, before anything is written
    if workers is not None and workers < 1:
        raise ModelError(f"--workers must be >= 1, got {workers}")
    client, Client = None, _dask_client() if scheduler else None
    out = Path(out_dir)
    csv_path, header, rows = _open_output(out, text, specs, names, force, tuple(inputs) + (source,), safe_budget)
    done = {_key(r, names) for r in rows}
    todo = [p for p in grid if _key(p, names) not in done]
    skipped = len(grid) - len(todo)
    if limit is not None:
        todo = todo[:max(0, int(limit))]
    sink = CsvSink(csv_path, names, header, [r for r in rows])
    bar = _progress(len(grid), progress)
    if bar is not None:
        bar.update(skipped)
    errors = 0

    def record(point, row) -> bool:
        """Append one finished point to the CSV; True if it failed."""
        sink.add(point, row)
        if bar is not None:
            bar.update(1)
        return row.get(STATUS) == "error"

    try:
        if Client is not None and todo:      # a scheduler given
            client = Client(scheduler)
            errors = _evaluate_on_dask(client, todo, text, source, metrics, record, safe_budget)
        elif todo and (workers or os.cpu_count() or 1) > 1 and len(todo) > 1:
            n = min(workers or os.cpu_count() or 1, len(todo))
            errors = _evaluate_in_processes(n, todo, model, metrics, record, safe_budget)
        else:
            for p, row in sweep_rows(model, todo, metrics, safe_budget):
                errors += record(p, row)
    finally:
        sink.close()
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
    png = None
    ok_rows = [r for r in sink.rows if r.get(STATUS) == "ok"]
    if ok_rows:
        png = write_sweep_png(ok_rows, specs, sink.header, out / "sweep.png")
    return SweepOutcome(total=len(grid), skipped=skipped, evaluated=len(todo), errors=errors, csv=csv_path, png=png,
                        seconds=time.perf_counter() - t0)


#: columns drawn in sweep.png (those present and not constant)
PLOT_COLUMNS = ("closed_loop.slowest_rate", "closed_loop.damping_ratio_min", "margins.eps_crit", "safe_factor",
                "margins.phase_margin_deg", "disturbance.bandwidth", "disturbance.hinf_norm",
                "disturbance.step.settling_time", "disturbance.step.overshoot_pct", "fixed_point.bias",
                "thermodynamics.fixed_point.total", "thermodynamics.episode_total", "metrics.noise",
                "metrics.dissipation_ensemble", "fluctuation.eps_opt", "fluctuation.total",
                "fluctuation.tracking")


def write_sweep_png(rows: list[dict], specs: list[ParamSpec], header: list[str], path: Path) -> Path:
    from crnfb.analysis.reporting import plots

    def varies(c):
        # numbers that differ only by round-off (1e-9 relative) do not vary
        vals = [r.get(c) for r in rows if r.get(c) is not None]
        nums = [float(v) for v in vals if isinstance(v, (int, float))]
        if len(nums) == len(vals) and nums:
            return max(nums) - min(nums) > 1e-9 * max(abs(x) for x in nums)
        return len(set(vals)) > 1
    cols = [c for c in PLOT_COLUMNS if c in header and varies(c)]
    if not cols:
        cols = [c for c in header if c not in [s.name for s in specs] and c not in (STATUS, ERROR) and varies(c)][:9]
    fig = plots.sweep(rows, [s.name for s in specs], {s.name: s.scale for s in specs}, cols)
    write_bytes(path, plots.png_bytes(fig))
    return path


def _safe_budget(args) -> float | None:
    """``--safe-factor``'s time budget per point (``--global-budget``, default the report's), or None."""
    from crnfb.analysis.reporting.pipeline import GLOBAL_BUDGET

    budget = getattr(args, "global_budget", None)
    if budget is not None and not (math.isfinite(budget) and budget >= 0):
        raise ModelError(f"--global-budget must be a number of seconds >= 0, got {budget!r}", key="--global-budget")
    if not getattr(args, "safe_factor", False):
        if budget is not None:
            raise ModelError("--global-budget is the time of the --safe-factor search: give --safe-factor too",
                             key="--global-budget")
        return None
    return GLOBAL_BUDGET if budget is None else float(budget)


def run_sweep_command(args) -> int:
    """``crnfb sweep`` (exit 0; 2 on bad input)."""
    from crnfb.analysis.cli.model_input import check_learned_truncation, model_input

    inp = model_input(args)     # a model file, or SBML/Antimony with an environment file (docs/cli.md)
    check_learned_truncation(inp.model, source=args.model)   # the one truncation policy (docs/cli.md)
    from crnfb.analysis.cli.model_input import input_paths
    max_points = getattr(args, "max_points", None)
    if max_points is not None and max_points < 1:
        raise ModelError(f"--max-points must be a whole number >= 1, got {max_points}", key="--max-points")
    safe_budget = _safe_budget(args)
    out = run_sweep(inp.source, args.param, args.output, workers=getattr(args, "workers", None),
                    scheduler=getattr(args, "scheduler", None), progress=True,
                    model_text=None if inp.source == str(args.model) else inp.text,
                    force=bool(getattr(args, "force", False)), inputs=input_paths(args),
                    max_points=MAX_POINTS if max_points is None else max_points, safe_budget=safe_budget)
    print(f"sweep: {out.total} grid points, {out.skipped} already in {out.csv}, evaluated {out.evaluated}"
          + (f" ({out.errors} with errors)" if out.errors else "") + f" in {out.seconds:.1f} s")
    print(f"wrote {out.csv}" + (f" and {out.png}" if out.png else ""))
    return 0


__all__ = ["parse_param", "build_grid", "apply_params", "evaluate_point", "safe_factor_columns", "run_sweep",
           "run_sweep_command", "metrics_columns", "report_columns", "sweep_rows",
           "ParamSpec", "SweepOutcome", "PARAMS"]
