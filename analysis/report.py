"""``crnfb report MODEL -o DIR``: the full stability report on disk.

Writes ``DIR/report.json`` (every docs/cli.md key), ``DIR/report.md`` (the
tables), ``DIR/report.html`` (self-contained: figures embedded as base64
PNG) and the figures ``bode.png``, ``step.png``, ``poles.png``,
``learning.png``, ``nyquist.png``, ``distribution.png``, ``lag_cost.png``.

Nothing is half-written: the model is loaded and analysed first (bad input
raises :class:`~crnfb.feedback.errors.ModelError`, exit 2, before any file
exists); the files go to a temporary directory next to ``DIR`` that is
renamed into place at the end. Exit code 1 when the loop is unstable or a
validation check failed (the report is still written), else 0.
"""

from __future__ import annotations

import base64
import html
import os
import sys
from pathlib import Path

from crnfb.analysis.results import Results, Unavailable, analyse, get_path
from crnfb.feedback.files import atomic_dir, check_output_dir

FIGURES = ("bode", "step", "poles", "learning", "nyquist", "distribution", "lag_cost")

FIGURE_CAPTIONS = {
    "bode": "Bode plot of the loop transfer L (broken at θ) and the sensitivity S, with the reported "
            "crossover, phase margin and bandwidth marked.",
    "step": "Response of θ along dθ*/da to a unit step in the environment weight a (linearised loop; "
            "the full nonlinear loop's response to a small step, rescaled, when validation ran).",
    "poles": "Closed-loop eigenvalues, quasi-static rates −eig(E H) and the structural or flat modes "
             "removed before stability is judged.",
    "learning": "A learning episode from the file's energies: θ(t) and the excess divergence D(t) − D*.",
    "nyquist": "Nyquist plot of L(jω) near the critical point −1.",
    "distribution": "The learned law P(v) at the loop's fixed point against the environment Q(v).",
    "lag_cost": "Lag cost: period-mean excess divergence per a₁² for a(t) = a₀ + a₁ sin(ωt).",
}


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------
def make_figures(res: Results, d: dict | None = None) -> dict:
    """``{name: Figure}`` for :data:`FIGURES`; a figure that cannot be drawn says why instead."""
    from crnfb.analysis import plots

    d = d or res.to_dict()
    titles = {"bode": "Bode plot", "step": "Step response", "poles": "Pole map", "learning": "Learning",
              "nyquist": "Nyquist plot", "distribution": "Learned distribution", "lag_cost": "Lag cost"}
    makers = {
        "bode": lambda: plots.bode(_need(res.frequency, res, "frequency"), d["margins"], d["disturbance"]),
        "step": lambda: plots.step(_need(res.step, res, "step"), d["disturbance"]["step"]),
        "poles": lambda: plots.poles(res.stability, res.model.learned_names),
        "learning": lambda: plots.learning(_need(res.trajectory, res, "trajectory")),
        "nyquist": lambda: plots.nyquist(_need(res.frequency, res, "frequency"), d["margins"]),
        "distribution": lambda: plots.distribution(_need(res.distribution, res, "distribution")),
        "lag_cost": lambda: plots.lag_cost(d["disturbance"]),
    }
    out = {}
    for name in FIGURES:
        try:
            out[name] = makers[name]()
        except Unavailable as e:
            out[name] = plots.placeholder(titles[name], str(e))
    return out


def _need(obj, res: Results, key: str):
    if obj is None:
        raise Unavailable(res.reasons.get(key, f"{key} was not computed"))
    return obj


# ----------------------------------------------------------------------------------------------
# documents: one list of blocks, rendered to Markdown and to HTML
# ----------------------------------------------------------------------------------------------
def _f(v, spec=".4g"):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return format(v, spec)
    return str(v)


def _reason(sec: dict, key: str) -> str:
    r = sec.get(f"{key}_reason") if isinstance(sec, dict) else None
    return r or ""


def _passed_cell(c: dict) -> str:
    if c.get("passed") is None:  # a check not made, with its reason
        return "not made: " + str((c.get("details") or {}).get("reason") or c.get("reason") or "")
    return "yes" if c["passed"] else "**NO**"


def build_blocks(d: dict, summary: str) -> list[tuple]:
    """The report as blocks: ``("h", level, text)``, ``("p", text)``, ``("pre", text)``,
    ``("table", header, rows)``, ``("fig", name, caption)``."""
    mo, fp, qs, cl = d["model"], d["fixed_point"], d["quasi_static"], d["closed_loop"]
    mg, di, th = d["margins"], d["disturbance"], d["thermodynamics"]
    B: list[tuple] = [("h", 1, f"Stability report: {mo['name']}")]
    verdict = "STABLE" if cl["stable"] else "UNSTABLE"
    val = d.get("validation")
    if val is None:
        vtxt = f"validation: {d.get('validation_reason') or 'not run'}"
    else:
        ok = sum(1 for c in val if c.get("passed"))
        skipped = sum(1 for c in val if c.get("passed") is None)
        vtxt = f"validation: {ok} of {len(val)} checks passed" + (f", {skipped} not made" if skipped else "")
    B.append(("p", f"**Verdict: the learning loop is {verdict}**; {vtxt}. Exit code {d['verdict']['exit_code']}."))
    B.append(("pre", summary))

    B.append(("h", 2, "Model"))
    B.append(("table", ["quantity", "value"], [
        ["name", mo["name"]], ["source", mo.get("source") or "-"],
        ["species", ", ".join(mo["species"])], ["visible", ", ".join(mo["visible"]) or "-"],
        ["hidden", ", ".join(mo["hidden"]) or "-"], ["learned", ", ".join(mo.get("learned", []))],
        ["reactions", "; ".join(mo.get("reactions", []))],
        ["conservation laws", "; ".join(str(r) for r in mo["conservation_laws"]) or "none"],
        ["states in the class", _f(mo["state_count"])],
        ["truncation mass (initial / fixed point)",
         f"{_f(mo['truncation_mass'], '.3g')} / {_f(mo.get('truncation_mass_at_fixed_point'), '.3g')}"],
        ["clamping", mo.get("clamping", "")], ["eps", ", ".join(f"{k}: {v:g}" for k, v in mo["eps"].items())],
        ["gamma", _f(mo.get("gamma"))], ["dmu (kT)", _f(mo.get("dmu"))],
    ]))

    B.append(("h", 2, "Learned fixed point"))
    opt = fp["optimum"]
    rows = [[n, _f(v, ".6g"), _f(opt["theta"].get(n), ".6g")] for n, v in fp["theta"].items()]
    B.append(("table", ["species", "θ at the loop's fixed point", "θ* (true optimum)"], rows))
    B.append(("table", ["quantity", "value"], [
        ["D(Q‖P) at the fixed point (nats)", _f(fp["divergence"], ".6g")],
        ["D at the optimum (nats)", _f(opt["divergence"], ".6g")],
        ["bias: excess D (nats)", _f(fp["bias"], ".3g")],
        ["|grad D| at the fixed point", _f(fp["gradient_norm"], ".3g")],
        ["optimum kind", opt.get("kind", "")],
    ]))

    B.append(("h", 2, "Quasi-static learning"))
    B.append(("table", ["quantity", "value"], [
        ["Hessian eigenvalues (identifiable, ascending)", ", ".join(_f(x) for x in qs["hessian_eigenvalues"])],
        ["rates eig(E H) (per time unit)", ", ".join(_f(x) for x in qs["rates"])],
        ["neutral directions", "; ".join("(" + ", ".join(_f(v, ".3g") for v in vec) + ")"
                                         for vec in qs["neutral_directions"]) or "none"],
        ["flat directions", _f(qs.get("flat_directions", 0))],
    ]))

    B.append(("h", 2, "Closed loop"))
    B.append(("table", ["quantity", "value"], [
        ["stable", _f(cl["stable"])],
        ["slowest rate −max Re(s) (per time unit)", _f(cl["slowest_rate"])],
        ["minimum damping ratio", _f(cl["damping_ratio_min"], ".3g")],
        ["reduced states", _f(cl.get("reduced_states"))],
        ["removed modes", ", ".join(f"{k}: {v}" for k, v in (cl.get("removed_modes") or {}).items())],
    ]))
    ev = cl["eigenvalues"][:10]
    B.append(("table", ["#", "Re s", "Im s", "time constant"],
              [[str(i + 1), _f(re, ".5g"), _f(im, ".5g"), _f(1 / abs(re) if re else None, ".4g")]
               for i, (re, im) in enumerate(ev)]))
    if len(cl["eigenvalues"]) > 10:
        B.append(("p", f"(slowest 10 of {len(cl['eigenvalues'])} eigenvalues; all are in report.json)"))

    B.append(("h", 2, "Margins"))
    B.append(("table", ["quantity", "value", "note"], [
        ["gain margin (eps scale factor)", _f(mg["gain_margin"]), _reason(mg, "gain_margin")],
        ["phase margin (degrees)", _f(mg["phase_margin_deg"], ".4g"), _reason(mg, "phase_margin_deg")],
        ["eps_crit", _f(mg["eps_crit"]), _reason(mg, "eps_crit")],
        ["gain crossover (rad per time unit)", _f(mg.get("crossover_frequency"), ".4g"),
         _reason(mg, "crossover_frequency")],
    ]))

    B.append(("h", 2, "Disturbance rejection"))
    st = di["step"]
    lag = di.get("lag_cost")
    B.append(("table", ["quantity", "value", "note"], [
        ["bandwidth (rad per time unit, −3 dB)", _f(di["bandwidth"]), _reason(di, "bandwidth")],
        ["H∞ norm of environment → error", _f(di["hinf_norm"]), _reason(di, "hinf_norm")],
        ["step: rise time 10–90 % (time units)", _f(st["rise_time"]), _reason(st, "rise_time")],
        ["step: settling time 2 % (time units)", _f(st["settling_time"]), _reason(st, "settling_time")],
        ["step: overshoot (%)", _f(st["overshoot_pct"], ".3g"), _reason(st, "overshoot_pct")],
        ["lag cost", f"{len(lag)} frequencies (lag_cost.png)" if lag else "n/a", _reason(di, "lag_cost")],
    ]))

    B.append(("h", 2, "Validation against the nonlinear loop"))
    if val is None:
        B.append(("p", f"Not run: {d.get('validation_reason', '')}"))
    elif not val:
        B.append(("p", "No checks were returned."))
    else:
        B.append(("table", ["quantity", "predicted", "simulated", "rel. error", "passed"],
                  [[str(c.get("quantity")), _f(c.get("predicted")), _f(c.get("simulated")),
                    _f(c.get("rel_error"), ".2g"), _passed_cell(c)] for c in val]))

    B.append(("h", 2, "Thermodynamics"))
    tfp = th["fixed_point"]
    B.append(("table", ["part", "dissipation at the fixed point (kT per time unit)", "note"], [
        [k, _f(tfp.get(k)), _reason(tfp, k)] for k in ("free", "clamped", "learning", "total")
    ] + [["episode total (kT)", _f(th["episode_total"]), _reason(th, "episode_total")]]))

    B.append(("h", 2, "Figures"))
    for name in FIGURES:
        B.append(("fig", name, FIGURE_CAPTIONS[name]))
    t = d.get("meta", {}).get("timings_s", {})
    if t:
        B.append(("p", "Timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items())))
    return B


def _md_cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "pre":
            out.append("```text\n" + b[1] + "\n```")
        elif b[0] == "table":
            header, rows = b[1], b[2]
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out.extend("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows)
        elif b[0] == "fig":
            out.append(f"![{b[1]}]({b[1]}.png)\n\n*{b[2]}*")
        out.append("")
    return "\n".join(out)


CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:960px;margin:2em auto;
padding:0 1.2em;color:#212529;line-height:1.5;background:#fff}
h1{border-bottom:2px solid #1f5fa8;padding-bottom:.3em}
h2{margin-top:1.8em;border-bottom:1px solid #dee2e6;padding-bottom:.2em;color:#1f5fa8}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #dee2e6;padding:.35em .7em;text-align:left;vertical-align:top}
th{background:#f1f3f5}
tr:nth-child(even) td{background:#f8f9fa}
pre{background:#f8f9fa;border:1px solid #dee2e6;padding:.8em;overflow-x:auto;font-size:.82em;line-height:1.3}
figure{margin:1.5em 0;text-align:center}
figure img{max-width:100%;border:1px solid #e9ecef}
figcaption{font-size:.9em;color:#495057;margin-top:.4em}
.verdict-ok{background:#ebfbee;border-left:5px solid #2b8a3e;padding:.6em 1em}
.verdict-bad{background:#fff5f5;border-left:5px solid #c92a2a;padding:.6em 1em}
nav a{margin-right:1em}
"""


def _inline(text: str) -> str:
    """Escape, then render ``**bold**``."""
    import re
    t = html.escape(text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)


def render_html(blocks: list[tuple], images: dict[str, bytes], title: str, ok: bool) -> str:
    body = []
    first_p = True
    sections = [b[2] for b in blocks if b[0] == "h" and b[1] == 2]
    for b in blocks:
        if b[0] == "h":
            hid = "sec-" + "".join(ch if ch.isalnum() else "-" for ch in b[2].lower())
            body.append(f"<h{b[1]} id='{hid}'>{html.escape(b[2])}</h{b[1]}>")
            if b[1] == 1:
                body.append("<nav>" + "".join(
                    f"<a href='#sec-{''.join(ch if ch.isalnum() else '-' for ch in s.lower())}'>{html.escape(s)}</a>"
                    for s in sections) + "</nav>")
        elif b[0] == "p":
            cls = f" class='{'verdict-ok' if ok else 'verdict-bad'}'" if first_p else ""
            first_p = False
            body.append(f"<p{cls}>{_inline(b[1])}</p>")
        elif b[0] == "pre":
            body.append(f"<pre>{html.escape(b[1])}</pre>")
        elif b[0] == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "fig":
            data = base64.b64encode(images[b[1]]).decode("ascii")
            body.append(f"<figure><img alt='{html.escape(b[1])}' src='data:image/png;base64,{data}'>"
                        f"<figcaption>{html.escape(b[2])}</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def write_report(res: Results, out_dir: str | os.PathLike, progress: bool = False, force: bool = False) -> Path:
    """Write the whole report into ``out_dir`` atomically (:func:`crnfb.feedback.files.atomic_dir`).

    An existing ``out_dir`` is replaced as a whole only if a previous report
    wrote it (or with ``force``); anything else raises
    :class:`~crnfb.feedback.files.OutputError`.
    """
    from crnfb.analysis import plots

    out = check_output_dir(out_dir, force)
    d = res.to_dict()
    summary = res.summary()
    figs = make_figures(res, d)
    with atomic_dir(out, force) as tmp:
        images = {}
        items = list(figs.items())
        bar = _bar(len(items), "figures", progress)
        for name, fig in items:
            images[name] = plots.png_bytes(fig)
            (tmp / f"{name}.png").write_bytes(images[name])
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        res.to_json(tmp / "report.json")
        blocks = build_blocks(d, summary)
        (tmp / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
        (tmp / "report.html").write_text(
            render_html(blocks, images, f"crn-feedback report: {d['model']['name']}", res.exit_code == 0),
            encoding="utf-8")
    return out


def _bar(total: int, desc: str, progress: bool):
    from crnfb.analysis.results import _progress_enabled
    if not _progress_enabled(progress):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def run_report_command(args) -> int:
    """``crnfb report MODEL -o DIR [--no-validate] [--seed N]`` (exit 0 / 1 / 2)."""
    from crnfb.feedback.modelfile import load_model

    model = load_model(args.model)
    force = bool(getattr(args, "force", False))
    check_output_dir(args.output, force)   # fail before the (long) analysis
    res = analyse(model, validate=not getattr(args, "no_validate", False), seed=getattr(args, "seed", 0) or 0,
                  progress=True)
    out = write_report(res, args.output, progress=True, force=force)
    print(res.summary())
    print(f"wrote {out}/report.json, report.md, report.html and {len(FIGURES)} figures")
    if not res.stable:
        print("crnfb report: the learning loop is UNSTABLE at its fixed point (exit 1)", file=sys.stderr)
    if res.validation_failed:
        failed = [c.get("quantity") for c in res.to_dict()["validation"] if c.get("passed") is False]
        print(f"crnfb report: validation failed: {', '.join(map(str, failed))} (exit 1)", file=sys.stderr)
    return res.exit_code


__all__ = ["run_report_command", "write_report", "make_figures", "build_blocks", "render_markdown",
           "render_html", "FIGURES", "get_path"]
