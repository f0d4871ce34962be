"""One summary of a stability report, rendered to text, Markdown and HTML.

Like statsmodels' ``Summary``: :func:`build_summary` reads the ``report.json``
dictionary once into a :class:`Summary` (a title, a verdict line, a list of
:class:`Table`, notes), and the renderers only lay that content out.
``Results.summary()`` returns it (``print(res.summary())`` shows the text);
``crnfb report`` writes ``report.md`` and ``report.html`` from the same
object, so the terminal, the Markdown and the HTML never disagree.
"""

from __future__ import annotations

import base64
import html
import math
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Mapping, Sequence

__all__ = ["Table", "Figure", "Summary", "build_summary", "fmt", "fmt_residual", "rates_text", "reason_of"]

WIDTH = 78


@dataclass(frozen=True, kw_only=True)
class Table:
    """A titled table of strings (``header`` may be empty: a key/value table without one)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A figure to embed: file stem, caption and PNG bytes (``None``: link only)."""

    name: str
    caption: str
    png: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class Summary:
    """The content of a report; ``as_text``, ``as_markdown`` and ``as_html`` lay it out.

    Attributes
    ----------
    title : str
    verdict : str
        One line: stable or not, validation, exit code (``**bold**`` marks emphasis).
    ok : bool
        The verdict is good (exit code 0); only the HTML colouring uses it.
    tables : tuple[Table, ...]
    notes : tuple[str, ...]
        Why some headline numbers are n/a, timings.
    """

    title: str
    verdict: str
    ok: bool
    tables: tuple[Table, ...]
    notes: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.as_text()

    def _repr_html_(self) -> str:  # pragma: no cover - Jupyter display
        return self.as_html(standalone=False)

    # -- text ---------------------------------------------------------------------------------------
    def as_text(self, width: int = WIDTH) -> str:
        """Fixed-width text, no line longer than ``width``."""
        lines = ["=" * width, f"{self.title:^{width}}".rstrip(), "=" * width]
        lines += textwrap.wrap(self.verdict.replace("**", ""), width)
        for t in self.tables:
            lines += ["", t.title, "-" * min(width, max(len(t.title), 1))]
            lines += _text_table(t, width)
        if self.notes:
            lines.append("")
            for n in self.notes:
                lines += textwrap.wrap(n, width, subsequent_indent="    ")
        lines.append("=" * width)
        return "\n".join(lines)

    # -- Markdown -----------------------------------------------------------------------------------
    def as_markdown(self, figures: Sequence[Figure] = ()) -> str:
        """GitHub-flavoured Markdown; figures as image links ``name.png``."""
        out = [f"# {self.title}", "", self.verdict, ""]
        for t in self.tables:
            header = t.header or ("",) * max(len(r) for r in t.rows) if t.rows else ()
            out += [f"## {t.title}", ""]
            if not t.rows:
                out += ["(none)", ""]
                continue
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
            out.append("")
        if figures:
            out += ["## Figures", ""]
            for f in figures:
                out += [f"![{f.name}]({f.name}.png)", "", f"*{f.caption}*", ""]
        out += [n + "\n" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"

    # -- HTML ---------------------------------------------------------------------------------------
    def as_html(self, figures: Sequence[Figure] = (), standalone: bool = True) -> str:
        """HTML; with ``standalone`` a self-contained page (CSS inline, PNGs as base64)."""
        titles = [t.title for t in self.tables] + (["Figures"] if figures else [])
        body = [f"<h1>{html.escape(self.title)}</h1>",
                "<nav>" + "".join(f"<a href='#{_anchor(s)}'>{html.escape(s)}</a>" for s in titles) + "</nav>",
                f"<p class='{'verdict-ok' if self.ok else 'verdict-bad'}'>{_inline(self.verdict)}</p>"]
        for t in self.tables:
            body.append(f"<h2 id='{_anchor(t.title)}'>{html.escape(t.title)}</h2>")
            head = ("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr></thead>"
                    if t.header else "")
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in t.rows)
            body.append(f"<table>{head}<tbody>{rows}</tbody></table>")
        if figures:
            body.append(f"<h2 id='{_anchor('Figures')}'>Figures</h2>")
            for f in figures:
                src = (f"data:image/png;base64,{base64.b64encode(f.png).decode('ascii')}" if f.png is not None
                       else f"{f.name}.png")
                body.append(f"<figure><img alt='{html.escape(f.name)}' src='{src}'>"
                            f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")
        body += [f"<p>{_inline(n)}</p>" for n in self.notes]
        if not standalone:
            return "\n".join(body)
        return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")


CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:960px;margin:2em auto;
padding:0 1.2em;color:#212529;line-height:1.5;background:#fff}
h1{border-bottom:2px solid #1f5fa8;padding-bottom:.3em}
h2{margin-top:1.8em;border-bottom:1px solid #dee2e6;padding-bottom:.2em;color:#1f5fa8}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #dee2e6;padding:.35em .7em;text-align:left;vertical-align:top}
th{background:#f1f3f5}
tr:nth-child(even) td{background:#f8f9fa}
figure{margin:1.5em 0;text-align:center}
figure img{max-width:100%;border:1px solid #e9ecef}
figcaption{font-size:.9em;color:#495057;margin-top:.4em}
.verdict-ok{background:#ebfbee;border-left:5px solid #2b8a3e;padding:.6em 1em}
.verdict-bad{background:#fff5f5;border-left:5px solid #c92a2a;padding:.6em 1em}
nav a{margin-right:1em}
"""


# ---------------------------------------------------------------------------------------------------
# layout helpers
# ---------------------------------------------------------------------------------------------------
def _text_table(t: Table, width: int) -> list[str]:
    """Columns padded to their widest cell; the last column wraps so no line exceeds ``width``."""
    rows = ([t.header] if t.header else []) + list(t.rows)
    if not rows:
        return ["(none)"]
    n = max(len(r) for r in rows)
    rows = [tuple(r) + ("",) * (n - len(r)) for r in rows]
    widths = [max(len(r[j]) for r in rows) for j in range(n - 1)]
    while sum(widths) + 2 * (n - 1) > width * 2 // 3 and max(widths, default=0) > 12:
        widths[widths.index(max(widths))] -= 1       # the leading columns give way before the last one
    lead = sum(widths) + 2 * (n - 1)
    out = []
    for i, r in enumerate(rows):
        cells = [_cut(c, w).ljust(w) for c, w in zip(r[:-1], widths)]
        tail = textwrap.wrap(r[-1], max(width - lead, 10)) or [""]
        out.append(("  ".join(cells) + ("  " if cells else "") + tail[0]).rstrip())
        out += [(" " * lead + x).rstrip() for x in tail[1:]]
        if i == 0 and t.header:
            out.append("-" * min(width, max(len(x) for x in out)))
    return out


def _cut(s: str, w: int) -> str:
    return s if len(s) <= w else s[:w - 3] + "..."


def _md_cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _anchor(title: str) -> str:
    return "sec-" + "".join(ch if ch.isalnum() else "-" for ch in title.lower())


def _inline(text: str) -> str:
    """Escape, then render ``**bold**``."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def fmt(v, spec: str = ".4g", unit: str = "") -> str:
    """A number for a table: ``n/a`` for ``None``, ``yes``/``no`` for booleans, round-off zeros as 0."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and abs(v) < 1e-13:
        v = 0.0   # round-off around an exact zero
    if isinstance(v, (int, float)):
        return format(v, spec) + unit
    return str(v)


#: Residuals below this print as "< 1e-10": the fit's own gradient tolerance
#: (``learned_fixed_point(gtol=1e-10)``); below it the digits are round-off and differ between
#: machines and BLAS builds (report.json keeps the number).
RESIDUAL_FLOOR = 1e-10


def fmt_residual(v) -> str:
    """A residual (``|grad D|``): ``< 1e-10`` below :data:`RESIDUAL_FLOOR`, else three digits."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < RESIDUAL_FLOOR:
        return f"< {RESIDUAL_FLOOR:.0e}"
    return fmt(v, ".3g")


def real_parts_of_multiple_roots(ev) -> list[tuple[float, float]]:
    """Eigenvalues ``(re, im)`` with round-off imaginary parts of multiple real roots set to 0.

    A real eigenvalue of multiplicity ``m`` whose eigenvectors are defective is
    split by a round-off perturbation ``δ ≈ eps·|J|`` into ``m`` roots about
    ``(δ·|λ|^(m-1))^(1/m)`` apart (docs/theory.md §5): for a double root, an
    imaginary pair of size ``~sqrt(eps)·|λ|_max``, whose digits depend on the
    machine. Imaginary parts up to ``sqrt(eps)·max|λ|`` are shown as 0 (a damping
    ratio within ``1e-16`` of 1 is a real root for every purpose); report.json
    keeps the computed values.
    """
    pairs = [(float(re), float(im)) for re, im in ev]
    scale = max((math.hypot(re, im) for re, im in pairs), default=0.0)
    tiny = math.sqrt(sys.float_info.epsilon) * scale
    return [(re, 0.0 if abs(im) <= tiny else im) for re, im in pairs]


def reason_of(sec: Mapping | None, key: str) -> str:
    """``sec["<key>_reason"]``, or ``""``."""
    r = sec.get(f"{key}_reason") if isinstance(sec, Mapping) else None
    return r or ""


def _kv(title: str, pairs: list[tuple[str, str]]) -> Table:
    return Table(title=title, header=("quantity", "value"), rows=tuple((a, b) for a, b in pairs))


# ---------------------------------------------------------------------------------------------------
# content: one function per section of report.json
# ---------------------------------------------------------------------------------------------------
def _model_table(mo: Mapping) -> Table:
    return _kv("Model", [
        ("name", mo["name"]), ("source", mo.get("source") or "-"),
        ("species", ", ".join(mo["species"])), ("visible", ", ".join(mo["visible"]) or "-"),
        ("hidden", ", ".join(mo["hidden"]) or "-"), ("learned", ", ".join(mo.get("learned", []))),
        ("reactions", "; ".join(mo.get("reactions", []))),
        ("conservation laws", "; ".join(str(r) for r in mo["conservation_laws"]) or "none"),
        ("states in the class", fmt(mo["state_count"])),
        ("truncation mass (initial / fixed point)",
         f"{fmt(mo['truncation_mass'], '.3g')} / {fmt(mo.get('truncation_mass_at_fixed_point'), '.3g')}"),
        ("clamping", str(mo.get("clamping", ""))),
        ("eps", ", ".join(f"{k}: {v:g}" for k, v in mo["eps"].items())),
        ("gamma", fmt(mo.get("gamma"))), ("dmu (kT)", fmt(mo.get("dmu"))),
    ])


def _fixed_point_tables(fp: Mapping) -> list[Table]:
    opt = fp["optimum"]
    rows = tuple((n, fmt(v, ".6g"), fmt(opt["theta"].get(n), ".6g")) for n, v in fp["theta"].items())
    return [
        Table(title="Learned fixed point", header=("species", "θ at the loop's fixed point", "θ* (true optimum)"),
              rows=rows),
        _kv("Divergence at the fixed point", [
            ("D(Q||P) at the fixed point (nats)", fmt(fp["divergence"], ".6g")),
            ("D at the optimum (nats)", fmt(opt["divergence"], ".6g")),
            ("bias: excess D (nats)", fmt(fp["bias"], ".3g")),
            ("|grad D| at the fixed point", fmt_residual(fp["gradient_norm"])),
            ("optimum kind", str(opt.get("kind", ""))),
        ]),
    ]


def _quasi_static_table(qs: Mapping) -> Table:
    return _kv("Quasi-static learning", [
        ("Hessian eigenvalues (identifiable, ascending)", ", ".join(fmt(x) for x in qs["hessian_eigenvalues"])),
        ("rates eig(E H) (κ)", ", ".join(fmt(x) for x in qs["rates"])),
        ("slowest rate (κ)", fmt(qs.get("slowest_rate"))),
        ("neutral directions", "; ".join("(" + ", ".join(fmt(v, ".3g") for v in vec) + ")"
                                         for vec in qs["neutral_directions"]) or "none"),
        ("flat directions", fmt(qs.get("flat_directions", 0))),
    ])


def _closed_loop_tables(cl: Mapping) -> list[Table]:
    ev = cl["eigenvalues"]
    shown = real_parts_of_multiple_roots(ev)[:10]
    rows = tuple((str(i + 1), fmt(re, ".5g"), fmt(im, ".5g"), fmt(1 / abs(re) if re else None, ".4g"))
                 for i, (re, im) in enumerate(shown))
    title = "Slowest closed-loop eigenvalues" + (f" (10 of {len(ev)}; all in report.json)" if len(ev) > 10 else "")
    return [
        _kv("Closed loop", [
            ("stable", fmt(cl["stable"])),
            ("slowest rate −max Re(s) (κ)", fmt(cl["slowest_rate"])),
            ("minimum damping ratio", fmt(cl["damping_ratio_min"], ".3g")),
            ("reduced states", fmt(cl.get("reduced_states"))),
            ("removed modes", ", ".join(f"{k}: {v}" for k, v in (cl.get("removed_modes") or {}).items()) or "none"),
            ("zero tolerance |Re s|", _zero_tolerance_text(cl)),
        ]),
        Table(title=title, header=("#", "Re s", "Im s", "time constant"), rows=rows),
    ]


def _zero_tolerance_text(cl: Mapping) -> str:
    """``tol (slowest: bound)``: the zero tolerance and the slowest eigenvalue's own round-off bound."""
    tol, band = cl.get("zero_tolerance"), cl.get("slowest_error_bound")
    if band is None or tol is None or band >= tol:
        return "n/a" if tol is None else f"{tol:.2g}"
    return f"{tol:.2g} (slowest: {band:.2g})"


def rates_text(v) -> str:
    """A learning rate: one number, or ``species: value`` pairs when the rates differ."""
    if isinstance(v, Mapping):
        return ", ".join(f"{k}: {fmt(x)}" for k, x in v.items())
    return fmt(v)


def _margins_table(mg: Mapping) -> Table:
    return Table(title="Margins", header=("quantity", "value", "note"), rows=(
        ("gain margin (eps scale factor)", fmt(mg["gain_margin"]), reason_of(mg, "gain_margin")),
        ("phase margin (degrees)", fmt(mg["phase_margin_deg"], ".4g"), reason_of(mg, "phase_margin_deg")),
        ("eps_crit", rates_text(mg["eps_crit"]), reason_of(mg, "eps_crit")),
        ("gain crossover (rad·κ)", fmt(mg.get("crossover_frequency"), ".4g"),
         reason_of(mg, "crossover_frequency")),
        ("disk margin", fmt(mg.get("disk_margin"), ".4g"), reason_of(mg, "robust_margins")),
    ))


def _disturbance_table(di: Mapping) -> Table:
    st = di["step"]
    lag = di.get("lag_cost")
    return Table(title="Disturbance rejection", header=("quantity", "value", "note"), rows=(
        ("bandwidth (rad·κ, −3 dB)", fmt(di["bandwidth"]), reason_of(di, "bandwidth")),
        ("H∞ norm of environment → error", fmt(di["hinf_norm"]), reason_of(di, "hinf_norm")),
        ("step: rise time 10–90 % (1/κ)", fmt(st["rise_time"]), reason_of(st, "rise_time")),
        ("step: settling time 2 % (1/κ)", fmt(st["settling_time"]), reason_of(st, "settling_time")),
        # below 1e-6 % an overshoot is round-off of a monotone response (report.json keeps the number)
        ("step: overshoot (%)", fmt(_no_roundoff(st["overshoot_pct"], 1e-6), ".3g"), reason_of(st, "overshoot_pct")),
        ("lag cost", f"{len(lag)} frequencies" if lag else "n/a", reason_of(di, "lag_cost")),
    ))


def _no_roundoff(x, tiny: float):
    return 0.0 if isinstance(x, float) and abs(x) < tiny else x


def _validation_table(val: list | None, why: str | None) -> Table:
    title = "Validation against the nonlinear loop"
    if val is None:
        return Table(title=title, header=("status",), rows=((why or "not run",),))
    return Table(title=title, header=("quantity", "predicted", "simulated", "rel. error", "passed"), rows=tuple(
        (str(c.get("quantity")), _predicted_cell(c), fmt(c.get("simulated")), fmt(c.get("rel_error"), ".2g"),
         _passed_cell(c)) for c in val))


def _predicted_cell(c: Mapping) -> str:
    if (c.get("details") or {}).get("residual"):
        return fmt_residual(c.get("predicted"))
    return fmt(c.get("predicted"))


def _passed_cell(c: Mapping) -> str:
    if c.get("passed") is None:  # a check not made, with its reason
        return "not made: " + str((c.get("details") or {}).get("reason") or c.get("reason") or "")
    return "yes" if c["passed"] else "**NO**"


def _global_table(gl: Mapping) -> Table:
    """Does learning from the file's energies converge; the safe factor beside eps_crit (docs/theory.md §4a)."""
    ep = gl.get("episode")
    if ep:
        how = (ep.get("detail") or "") if ep["converged"] else f"{ep['mechanism_name']}: {ep.get('detail') or ''}"
        rows = [("learning converges", "yes" if ep["converged"] else "**NO**", how),
                ("settled at", fmt(ep.get("settled_at")),
                 f"within {ep['tolerance']:g} of the initial distance, held {ep['hold_time_constants']:g} time "
                 f"constants ({fmt(ep.get('hold'), '.3g')})"),
                ("time limit", fmt(ep.get("time_limit"), ".4g"),
                 f"{ep['time_limit_time_constants']:.4g} / slowest rate {fmt(ep.get('slowest_rate'), '.4g')}")]
    else:
        rows = [("learning converges", "n/a", reason_of(gl, "episode"))]
    br = gl.get("safe_factor_bracket")
    rows += [("safe factor of eps", fmt(gl.get("safe_factor")),
              f"ODE trisection: converges at {fmt(br[0])}, not at {fmt(br[1])}" if br else reason_of(gl, "safe_factor")),
             ("gain margin", fmt(gl.get("gain_margin")), "the local bound; eps_crit " +
              rates_text(gl.get("eps_crit"))),
             _region_row(gl),
             ("linear range (step of a)", fmt(gl.get("linear_range")), _linear_range_note(gl)),
             *_bifurcation_rows(gl)]
    return Table(title="Global behaviour", header=("quantity", "value", "note"), rows=tuple(rows))


def _bifurcation_rows(gl: Mapping) -> list[tuple[str, str, str]]:
    """The crossing at eps_crit and its orbit checks (docs/theory.md §4c)."""
    b = gl.get("bifurcation")
    if not b:
        return [("bifurcation", "n/a", reason_of(gl, "bifurcation"))]
    rows = [("bifurcation at eps_crit", b["type"], b.get("reason") or
             f"first Lyapunov coefficient {fmt(b.get('first_lyapunov_coefficient'), '.4g')}, frequency "
             f"{fmt(b.get('frequency'), '.4g')}")]
    amp = b.get("amplitude_coefficient")
    if amp:
        rows.append(("orbit amplitude coefficient", fmt(max(amp.values()), ".4g"),
                     "half peak-to-peak of theta = coefficient * sqrt(|eps/eps_crit - 1|)"))
    made = [c for c in b.get("checks", []) if c.get("passed") is not None]
    if made:
        ok = sum(bool(c["passed"]) for c in made)
        rows.append(("orbit checks (ODE)", f"{ok} of {len(made)}", "normal form and shooting vs ODE past eps_crit"))
    elif b.get("orbits_reason"):
        rows.append(("orbit past eps_crit", "n/a", b["orbits_reason"]))
    return rows


def _region_row(gl: Mapping) -> tuple[str, str, str]:
    """The largest step of ``a`` the loop returns from (docs/theory.md §4b), with bracket and run count."""
    roa = gl.get("region_of_attraction")
    if roa is None:
        return ("region of attraction (step of a)", "n/a", reason_of(gl, "region_of_attraction"))
    br = gl.get("region_of_attraction_bracket") or [roa, None]
    runs = gl.get("region_of_attraction_ode_runs")
    if br[1] is None:
        note = f"every step in [0,1] returns (ODE, {runs} run{'s' if runs != 1 else ''})"
    else:
        note = f"ODE trisection: returns at {fmt(br[0])}, not at {fmt(br[1])} ({runs} ODE runs)"
    return ("region of attraction (step of a)", fmt(roa), note)


def _linear_range_note(gl: Mapping) -> str:
    if gl.get("linear_range") is None:
        return reason_of(gl, "linear_range")
    q, qr = gl.get("linear_range_quadratic_estimate"), gl.get("region_of_attraction_quadratic_estimate")
    lower = "" if gl.get("linear_range_reached") else "a lower bound: 10 % not reached at a = 1; "
    return (f"{lower}10 % linear step error (validation); quadratic estimate {fmt(q)}, "
            f"second-order scale {fmt(qr)}")


def _verdict(d: Mapping) -> str:
    stable = d["closed_loop"]["stable"]
    ep = (d.get("global") or {}).get("episode") or {}
    if stable and ep and not ep.get("converged"):
        head = ("**Verdict: locally stable, but learning from the file's energies does not converge: "
                f"{ep['mechanism_name']}**")
    else:
        word = "STABLE" if stable else "MARGINAL" if d["closed_loop"].get("marginal") else "UNSTABLE"
        head = f"**Verdict: the learning loop is {word}**"
        if ep and not ep.get("converged"):
            head += f" (learning from the file's energies does not converge: {ep['mechanism_name']})"
    val = d.get("validation")
    if val is None:
        vtxt = f"validation: {d.get('validation_reason') or 'not run'}"
    else:
        ok = sum(1 for c in val if c.get("passed"))
        missing = sum(1 for c in val if c.get("passed") is None)
        vtxt = f"validation: {ok} of {len(val)} checks passed" + (f", {missing} not made" if missing else "")
    bug = d["verdict"].get("internal_errors") or []
    btxt = (f"; internal error in {', '.join(bug)} (those keys are null with the error as reason; "
            "please report it)" if bug else "")
    return f"{head}{_zero_mode_note(d)}; {vtxt}{btxt}. Exit code {d['verdict']['exit_code']}."


def _zero_mode_note(d: Mapping) -> str:
    """`` (with N neutral modes ...)`` when zero modes were explained, `` (marginal ...)`` when one was not."""
    cl = d["closed_loop"]
    n = int((cl.get("removed_modes") or {}).get("neutral", 0)) + int(cl.get("flat_mode_count") or 0)
    if cl.get("marginal"):
        return (" (not stable: the slowest eigenvalue's real part is within its round-off bound of zero, and no "
                "neutral or flat direction explains it)")
    if cl["stable"] and n:
        return (f" (with {n} neutral mode{'s' if n > 1 else ''}: a line of fixed points through the learned one "
                "along each; a local verdict)")
    return ""


def _notes(d: Mapping) -> tuple[str, ...]:
    notes = []
    t = d.get("meta", {}).get("timings_s", {})
    if t:
        notes.append("Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
    return tuple(notes)


def build_summary(d: Mapping, sections: Sequence[Table] = ()) -> Summary:
    """The :class:`Summary` of a ``report.json`` dictionary (``Results.to_dict()``).

    ``sections``: the tables of the registered sections (:data:`crnfb.analysis.reporting.sections.SECTIONS`, each
    from its own part of ``d``), after the built-in ones in registry order.
    """
    tables = [_model_table(d["model"]), *_fixed_point_tables(d["fixed_point"]),
              _quasi_static_table(d["quasi_static"]), *_closed_loop_tables(d["closed_loop"]),
              _margins_table(d["margins"]), _disturbance_table(d["disturbance"]),
              _validation_table(d.get("validation"), d.get("validation_reason")), *sections]
    if isinstance(d.get("global"), Mapping):
        # beside the margins: the safe factor is the global counterpart of the gain margin
        at = next(i for i, t in enumerate(tables) if t.title == "Margins") + 1
        tables.insert(at, _global_table(d["global"]))
    return Summary(title=f"Stability report: {d['model']['name']}", verdict=_verdict(d),
                   ok=d["verdict"]["exit_code"] == 0, tables=tuple(tables), notes=_notes(d))
