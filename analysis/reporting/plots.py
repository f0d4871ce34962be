"""Figures of the stability report.

Like python-control's plotting functions, each function takes the result
objects the analysis already computed (:class:`~crnfb.analysis.linear.frequency.LoopResponse`,
:class:`~crnfb.analysis.analyses.margins.Margins`, :class:`~crnfb.analysis.analyses.disturbance.Disturbance`,
:class:`~crnfb.analysis.linear.stability.Stability`, the data objects of
:mod:`crnfb.analysis.reporting.results`), draws them into ``ax`` (new axes when
``ax=None``) and returns the :class:`matplotlib.figure.Figure`; none
recomputes any analysis. The values a figure marks (crossover, margins,
bandwidth, step metrics) are attached to it as the dict ``fig.crnfb`` so that
scripts can read what was drawn.

Figures are built with :class:`matplotlib.figure.Figure` directly (no
``pyplot`` state, any backend; PNG output goes through Agg), so the module
works headless and never opens windows. matplotlib is imported only inside
the functions: the analysis itself does not need it.

Units (docs/theory.md): time in units of ``1/κ`` (the reference kinetic
constant, 1 unless given), rates in units of ``κ``, frequencies in rad·κ,
``theta = -G/kT`` dimensionless, ``D`` in nats, magnitudes in dB, phases in degrees.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from crnfb.analysis.analyses.disturbance import Disturbance, StepMetrics
    from crnfb.analysis.analyses.fluctuation import FluctuationResult
    from crnfb.analysis.linear.frequency import LoopResponse
    from crnfb.analysis.analyses.margins import Margins
    from crnfb.analysis.reporting.results import Distribution, StepResponse, LearningCurve
    from crnfb.analysis.linear.stability import Stability
    from crnfb.analysis.analyses.tradeoffs import TradeoffResult

T_UNIT = "time  t  (1/κ)"
W_UNIT = "frequency  ω  (rad·κ)"
RATE_UNIT = "rate (κ)"

COLORS = {"L": "#1f5fa8", "S": "#c4452b", "G": "#2b8a3e", "lin": "#1f5fa8", "nl": "#e8590c",
          "qs": "#2b8a3e", "cl": "#1f5fa8", "flat": "#868e96", "Q": "#adb5bd", "P": "#c4452b",
          "mark": "#495057"}

#: Line styles cycled with the colours so that many curves stay distinguishable in grey print too.
LINESTYLES = ("-", "--", "-.", ":")


@contextlib.contextmanager
def _style():
    import matplotlib as mpl
    rc = {
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8.5,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
        "grid.linewidth": 0.6, "lines.linewidth": 1.8, "axes.spines.top": False,
        "axes.spines.right": False, "figure.dpi": 100, "savefig.dpi": 150, "legend.framealpha": 0.9,
    }
    with mpl.rc_context(rc):
        yield


def _figure(w: float = 6.6, h: float = 4.6) -> Figure:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), layout="constrained")
    _marks(fig)
    return fig


def _marks(fig) -> dict[str, Any]:
    """``fig.crnfb``: the values a figure of this module marks (bandwidth, margins, ...), created empty
    on first use (an attribute of the figure, so that it travels with it)."""
    if not hasattr(fig, "crnfb"):
        setattr(fig, "crnfb", {})
    return getattr(fig, "crnfb")


def _axes(ax, n: int, w: float, h: float, **subplots) -> tuple[Figure, list]:
    """``n`` axes: the given ones (``ax`` an Axes or a sequence of ``n``), or a new figure's."""
    if ax is None:
        fig = _figure(w, h)
        axes = [fig.add_subplot()] if n == 1 else list(np.ravel(fig.subplots(n, 1, **subplots)))
        return fig, axes
    axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
    if len(axes) < n:
        raise ValueError(f"this figure needs {n} axes, got {len(axes)}")
    from matplotlib.figure import Figure

    owner = axes[0].figure
    while not isinstance(owner, Figure):     # axes of a SubFigure: its root Figure
        owner = owner.figure
    _marks(owner)
    return owner, axes[:n]


def _val(x) -> float | None:
    """A finite float, else ``None``."""
    if x is None or isinstance(x, bool):
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _fmt(v, spec=".3g", none="n/a") -> str:
    return none if v is None else format(v, spec)


def curve_styles(n: int) -> list[dict]:
    """``n`` distinguishable ``(color, linestyle)`` pairs: 10 colours, then the line styles cycle."""
    import matplotlib as mpl
    cmap = mpl.colormaps["tab10"]
    return [{"color": cmap(j % 10), "ls": LINESTYLES[(j // 10 + j) % len(LINESTYLES)] if n > 4 else "-"}
            for j in range(n)]


#: With more learned parameters (or characteristic loci) than this, a figure names :data:`NAMED` of them in
#: colour and draws the rest as thin grey lines under one legend entry. Up to it, every curve has its own
#: colour and line style (10 colours times 4 line styles stay distinguishable; E3's 13 parameters do).
MANY = 15
#: How many curves such a figure names.
NAMED = 5
#: Style of the curves a figure does not name.
OTHER_STYLE: dict[str, Any] = {"color": "#adb5bd", "ls": "-", "lw": 0.6, "alpha": 0.8, "zorder": 1}


def pick_named(rankings: Sequence[tuple[str, Sequence[int]]], k: int = NAMED) -> list[tuple[int, str]]:
    """The curves a crowded figure names: ``k`` indices taken in turn from each ranking, best first.

    Parameters
    ----------
    rankings : sequence of (str, sequence of int)
        ``(why, order)``: the indices of the curves ordered by one criterion
        (``why`` names it, e.g. ``"slowest"``), the most notable first.
    k : int
        How many to name in all (fewer if there are fewer curves).

    Returns
    -------
    list of (int, str)
        ``(index, why)`` with no index twice, in the order taken.
    """
    out: list[tuple[int, str]] = []
    seen: set[int] = set()
    iters = [(why, iter(order)) for why, order in rankings]
    total = len({int(i) for _, order in rankings for i in order})
    while len(out) < min(k, total):
        for why, it in iters:
            for i in it:
                if int(i) not in seen:
                    seen.add(int(i))
                    out.append((int(i), why))
                    break
            if len(out) >= k:
                break
    return out


def placeholder(title: str, reason: str) -> Figure:
    """A figure that says why the real one is not available."""
    import textwrap
    with _style():
        fig = _figure(6.6, 2.6)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.set_title(title)
        ax.text(0.5, 0.5, "not available:\n" + textwrap.fill(reason, 70), ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="#495057")
        _marks(fig).update(placeholder=True, reason=reason)
    return fig


def _legend_right(ax, **kw) -> None:
    """The axes' legend outside it, to the right, top-aligned: never on the data (the layout makes room)."""
    kw = {k: v for k, v in kw.items() if v is not None}
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)


def _db(x):
    return 20.0 * np.log10(np.maximum(np.abs(x), 1e-300))


# ------------------------------------------------------------------------------------------
def _bode_siso(fig, ax1, ax2, fr: LoopResponse, margins: Margins | None) -> None:
    """Magnitude of ``L`` and ``S``, phase of ``L``; crossover, phase and gain margin marked."""
    w = fr.omega
    wc = _val(margins.crossover_frequency) if margins else None
    pm = _val(margins.phase_margin_deg) if margins else None
    gm = _val(margins.gain_margin) if margins else None
    L, S = fr.L[:, 0, 0], fr.S[:, 0, 0]
    ax1.semilogx(w, _db(L), color=COLORS["L"], label="loop transfer  |L(jω)|")
    ax1.semilogx(w, _db(S), color=COLORS["S"], ls="--", label="sensitivity  |S(jω)|")
    phase = np.degrees(np.unwrap(np.angle(L)))
    phase = phase - 360.0 * np.round((phase[0] + 90.0) / 360.0)   # an integrator loop starts near -90
    ax2.semilogx(w, phase, color=COLORS["L"], label="phase of L(jω)")
    ax2.axhline(-180.0, color=COLORS["mark"], lw=0.9, ls="--")
    ax2.set_ylabel("phase of L  (degrees)")
    ax2.set_ylim(min(-200.0, float(np.min(phase)) - 10), max(-60.0, float(np.max(phase)) + 10))
    if wc is not None:
        ph_c = float(np.interp(np.log(wc), np.log(w), phase))
        for ax in (ax1, ax2):
            ax.axvline(wc, color=COLORS["mark"], lw=0.9, ls=":")
        ax1.plot([wc], [0.0], "o", color=COLORS["mark"], ms=5, zorder=5)
        ax1.annotate(f"crossover ω_c = {wc:.3g}", (wc, 0.0), xytext=(8, 8), textcoords="offset points",
                     fontsize=8.5, color=COLORS["mark"])
        if pm is not None:
            ax2.annotate("", xy=(wc, -180.0 + pm), xytext=(wc, -180.0),
                         arrowprops=dict(arrowstyle="<->", color=COLORS["S"], lw=1.4))
            ax2.annotate(f"phase margin {pm:.1f}°", (wc, -180.0 + pm / 2), xytext=(8, 0),
                         textcoords="offset points", fontsize=8.5, color=COLORS["S"], va="center")
        _marks(fig).update(crossover_frequency=wc, phase_at_crossover_deg=ph_c)
    w180 = None
    if margins is not None:
        w180 = _val(margins.critical_frequency_freq) or _val(margins.critical_frequency)
    if gm is not None and w180 is not None and w[0] <= w180 <= w[-1]:
        # gain margin: how far |L| is below 0 dB where the phase reaches -180 degrees
        mag180 = float(np.interp(np.log(w180), np.log(w), _db(L)))
        ax1.annotate("", xy=(w180, 0.0), xytext=(w180, mag180),
                     arrowprops=dict(arrowstyle="<->", color=COLORS["G"], lw=1.4))
        ax1.annotate(f"gain margin {gm:.3g}\n({20 * np.log10(gm):.1f} dB)", (w180, mag180),
                     xytext=(10, -6), textcoords="offset points", fontsize=8.5, color=COLORS["G"],
                     va="top", bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
        ax2.axvline(w180, color=COLORS["G"], lw=0.9, ls=":")
        _marks(fig).update(phase_crossover_frequency=w180, magnitude_at_phase_crossover_db=mag180)
    _legend_right(ax2)


def _bode_mimo(ax1, ax2, fr: LoopResponse) -> None:
    """Singular values of ``L`` and ``S``; ``|G_ae| / |G_ae,frozen|`` (the bandwidth's definition)."""
    w = fr.omega
    sv = np.linalg.svd(fr.L, compute_uv=False)
    ss = np.linalg.svd(fr.S, compute_uv=False)
    ax1.semilogx(w, _db(sv[:, 0]), color=COLORS["L"], label="σ_max of L(jω)")
    ax1.semilogx(w, _db(sv[:, -1]), color=COLORS["L"], ls="--", label="σ_min of L(jω)")
    ax1.semilogx(w, _db(ss[:, 0]), color=COLORS["S"], ls="-.", label="σ_max of S(jω)")
    if fr.G_ae is not None and fr.G_frozen is not None:
        ratio = np.linalg.norm(fr.G_ae, axis=1) / np.maximum(np.linalg.norm(fr.G_frozen, axis=1), 1e-300)
        ax2.semilogx(w, _db(ratio), color=COLORS["G"], label="|G_ae(jω)| / |G_ae,frozen(jω)|")
        ax2.set_ylabel("magnitude  (dB)")
        _legend_right(ax2)
    ax2.set_title("environment → error, relative to frozen learning", fontsize=9.5)


def _eps_crit_text(ec) -> str:
    """``eps_crit`` for the Bode figure's box: the number, each species' value (up to three), or with more
    species the smallest and the species it belongs to."""
    if not isinstance(ec, dict):
        return _fmt(ec)
    if len(ec) <= 3:
        return ", ".join(f"{k} {v:.3g}" for k, v in ec.items())
    k = min(ec, key=lambda n: ec[n] if np.isfinite(ec[n]) else np.inf)
    return f"smallest {ec[k]:.3g} ({k}, of {len(ec)} species)"


def bode(response: LoopResponse, margins: Margins | None = None, disturbance: Disturbance | None = None,
         ax: Sequence[Axes] | None = None) -> Figure:
    """Bode plot of the loop transfer ``L`` and the sensitivity ``S``.

    Parameters
    ----------
    response : LoopResponse
        ``Results.frequency``.
    margins : Margins or None
        The crossover frequency, phase margin, gain margin and ``eps_crit`` marked.
    disturbance : Disturbance or None
        The bandwidth marked.
    ax : pair of Axes or None
        Magnitude and phase axes to draw into (a new figure when ``None``).

    Returns
    -------
    Figure
        ``fig.crnfb`` holds the marked values.

    Notes
    -----
    One learned direction: magnitude of ``L`` and ``S`` (dB) and phase of
    ``L`` (degrees). Several: singular values of ``L`` and the largest of
    ``S``, and ``|G_ae| / |G_ae,frozen|``.
    """
    fr = response
    w = fr.omega
    bw = _val(disturbance.bandwidth) if disturbance is not None else None
    with _style():
        fig, (ax1, ax2) = _axes(ax, 2, 8.6, 5.6, sharex=True, height_ratios=[1.25, 1])
        if fr.siso:
            _bode_siso(fig, ax1, ax2, fr, margins)
        else:
            _bode_mimo(ax1, ax2, fr)
        ax1.axhline(0.0, color=COLORS["mark"], lw=0.9)
        if bw is not None:
            target = ax1 if fr.siso else ax2
            target.axhline(-3.0103, color=COLORS["G"], lw=0.9, ls="--")
            target.axvline(bw, color=COLORS["G"], lw=0.9, ls="--")
            target.annotate(f"bandwidth {bw:.3g}  (−3 dB)", (bw, -3.0103), xytext=(-6, -14),
                            textcoords="offset points", fontsize=8.5, color=COLORS["G"], ha="right")
            _marks(fig)["bandwidth"] = bw
        ax1.set_ylabel("magnitude  (dB)")
        mags = _db(fr.L[:, 0, 0]) if fr.siso else _db(np.linalg.svd(fr.L, compute_uv=False)[:, 0])
        ax1.set_ylim(max(float(np.min(mags)), -120.0) - 5, min(float(np.max(mags)), 120.0) + 5)
        _legend_right(ax1)
        ax2.set_xlabel(W_UNIT)
        ax2.set_xlim(w[0], w[-1])
        gm = _val(margins.gain_margin) if margins else None
        ec = margins.eps_crit_value if margins else None
        pm = _val(margins.phase_margin_deg) if margins else None
        ec_txt = _eps_crit_text(ec)
        txt = [f"gain margin {_fmt(gm)}", f"ε_crit {ec_txt}"]
        if fr.siso:
            txt.insert(1, f"phase margin {pm:.1f}°" if pm is not None else "phase margin n/a")
        ax1.text(0.99, 0.97, "\n".join(txt), transform=ax1.transAxes, ha="right", va="top", fontsize=8.5,
                 bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="#ced4da"))
        if ax is None:
            fig.suptitle("Bode plot of the learning loop (broken at θ)")
        _marks(fig).update(phase_margin_deg=pm, gain_margin=gm, eps_crit=ec)
    return fig


def _loci_styles(loci: list[np.ndarray], R: float) -> tuple[list[dict], dict[int, str] | None]:
    """Each locus's style, and with more than :data:`MANY` loci the named ones ``{index: why}``: in turn
    those nearest -1 and of largest gain at the lowest frequency, never a dot at the origin (the
    locus stays within 1 % of the view's radius ``R``); the others get :data:`OTHER_STYLE`."""
    if len(loci) <= MANY:
        return curve_styles(len(loci)), None
    seen = [j for j, Lw in enumerate(loci) if np.max(np.abs(Lw)) > 0.01 * R]
    near = sorted(seen, key=lambda j: float(np.min(np.abs(1.0 + loci[j]))))
    gain = sorted(seen, key=lambda j: -float(np.abs(loci[j][0])))
    named = dict(pick_named([("nearest −1", near), ("largest gain", gain)]))
    styles = [OTHER_STYLE] * len(loci)
    for j, st in zip(named, curve_styles(max(len(named), 5))):     # line styles differ too (grey print)
        styles[j] = st
    return styles, named


def nyquist(response: LoopResponse, margins: Margins | None = None, ax: Axes | None = None) -> Figure:
    """Nyquist plot of ``L(jω)`` (characteristic loci when several directions are learned).

    The critical point ``-1``, the unit circle and the reported crossover
    (where the phase margin is read) are marked. Each locus has its own
    colour and line style; the legend sits outside the axes, clear of ``-1``.
    With several loci only ``ω > 0`` is drawn (the mirror adds no information
    and doubles the clutter). With more than :data:`MANY` loci, :data:`NAMED`
    are named in colour, taken in turn from those that come nearest ``-1``
    (smallest ``min_ω |1 + λ(jω)|``) and those of largest gain at the lowest
    frequency (:func:`pick_named`; a locus that stays within 1 % of the view's
    radius of 0, a dot at the origin, is never named), and the rest are thin and grey;
    ``fig.crnfb["named"]`` lists ``(locus, why)``.
    """
    fr = response
    wc = _val(margins.crossover_frequency) if margins else None
    pm = _val(margins.phase_margin_deg) if margins else None
    if fr.siso:
        loci = [fr.L[:, 0, 0]]
    else:
        ev = fr.loci
        ev = ev[:, np.argsort(-np.abs(ev[0]))]
        loci = [ev[:, j] for j in range(ev.shape[1])]
    R = 3.0
    view = (-R, R * 0.6, -R, R)
    styles, named = _loci_styles(loci, R)
    own = ax is None
    with _style():
        fig, (ax,) = _axes(ax, 1, 5.8, 6.8)
        for j, (Lw, st) in enumerate(zip(loci, styles)):
            col = COLORS["L"] if fr.siso else st["color"]
            lab = "L(jω), ω > 0" if fr.siso else f"locus {j + 1}" + (
                f"  ({named[j]})" if named and j in named else "")
            if named is not None and j not in named:
                ax.plot(*_in_view(Lw, view), **OTHER_STYLE)
                continue
            ax.plot(*_in_view(Lw, view), color=col, ls="-" if fr.siso else st["ls"], lw=1.5, label=lab)
            if fr.siso:
                ax.plot(*_in_view(np.conj(Lw), view), color=col, ls="--", lw=1.0, alpha=0.7,
                        label="ω < 0 (mirror)")
            idx = np.nonzero(np.abs(Lw) < R)[0]
            if idx.size > 10:      # direction of increasing ω
                i = idx[idx.size // 3]
                ax.annotate("", xy=(Lw[i + 1].real, Lw[i + 1].imag), xytext=(Lw[i].real, Lw[i].imag),
                            arrowprops=dict(arrowstyle="-|>", color=col, lw=1.2))
        if named is not None:
            ax.plot([], [], **OTHER_STYLE, label=f"other {len(loci) - len(named)} loci")
            _marks(fig)["named"] = [(j + 1, why) for j, why in named.items()]
        t = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(t), np.sin(t), color=COLORS["mark"], lw=0.8, ls=":", label="unit circle")
        ax.plot([-1], [0], "+", color=COLORS["S"], ms=14, mew=2.4, zorder=6, label="critical point −1")
        if fr.siso and wc is not None:
            L = fr.L[:, 0, 0]
            re = np.interp(np.log(wc), np.log(fr.omega), L.real)
            im = np.interp(np.log(wc), np.log(fr.omega), L.imag)
            ax.plot([re], [im], "o", color=COLORS["S"], ms=6, zorder=5,
                    label=f"crossover ω_c = {wc:.3g}" + (f", PM {pm:.1f}°" if pm is not None else ""))
            _marks(fig).update(crossover_point=(float(re), float(im)), crossover_frequency=wc)
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlim(view[0], view[1])
        ax.set_ylim(view[2], view[3])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("Re L(jω)  (dimensionless)")
        ax.set_ylabel("Im L(jω)  (dimensionless)")
        if own:      # a figure legend below: the equal-aspect axes leave no room beside them
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center",
                       ncol=2 if fr.siso else 3 if named else 4,
                       fontsize=8)
        else:
            _legend_right(ax, fontsize=8)
        ax.set_title("Nyquist plot of the loop transfer (zoom on −1)" if fr.siso else
                     f"Characteristic loci of L(jω), ω > 0 ({len(loci)} directions; zoom on −1)")
        _marks(fig)["phase_margin_deg"] = pm
    return fig


def _in_view(z: np.ndarray, view: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of the curve ``z`` inside the box ``view`` = (x0, x1, y0, y1).

    Points outside are NaN (the line breaks there), except each outside
    neighbour of an inside point, so that the line still runs to the edge,
    where the axes clip it: nothing is drawn far off the plot.
    """
    x, y = z.real.astype(float), z.imag.astype(float)
    inside = (x >= view[0]) & (x <= view[1]) & (y >= view[2]) & (y <= view[3])
    keep = inside.copy()
    keep[1:] |= inside[:-1]
    keep[:-1] |= inside[1:]
    return np.where(keep, x, np.nan), np.where(keep, y, np.nan)


def step(response: StepResponse, metrics: StepMetrics | None = None, ax: Axes | None = None) -> Figure:
    """Response of theta along ``dtheta/da`` to a unit step in the environment weight.

    Parameters
    ----------
    response : StepResponse
        ``Results.step``.
    metrics : StepMetrics or None
        ``Disturbance.step``: the rise time, settling time and overshoot marked.
    ax : Axes or None
    """
    sr = response
    rise = _val(metrics.rise_time) if metrics else None
    settle = _val(metrics.settling_time) if metrics else None
    over = _val(metrics.overshoot_pct) if metrics else None
    with _style():
        fig, (ax,) = _axes(ax, 1, 8.6, 4.4)
        final = float(sr.y[-1]) if sr.y.size else 1.0
        ax.axhspan(final * 0.98, final * 1.02, color=COLORS["G"], alpha=0.12, lw=0, label="±2 % of final value")
        ax.axhline(1.0, color=COLORS["mark"], lw=0.9, ls="--", label="new fixed point\n(perfect adaptation)")
        ax.plot(sr.t, sr.y, color=COLORS["lin"], label="linearised loop")
        if sr.t_nonlinear is not None and sr.y_nonlinear is not None:
            ax.plot(sr.t_nonlinear, sr.y_nonlinear, color=COLORS["nl"], ls="none", marker="o", ms=3.0,
                    alpha=0.8, label="nonlinear simulation" + (
                        f"\n(step a = {sr.amplitude:g}, rescaled)" if sr.amplitude else ""))
        if rise is not None:
            # the rise time is a duration: draw it as the bracket from the 10 % crossing
            above = np.nonzero(sr.y >= 0.1 * final)[0]
            t10 = float(np.interp(0.1 * final, sr.y[max(above[0] - 1, 0):above[0] + 1],
                                  sr.t[max(above[0] - 1, 0):above[0] + 1])) if above.size else 0.0
            ax.annotate("", xy=(t10 + rise, 0.5 * final), xytext=(t10, 0.5 * final),
                        arrowprops=dict(arrowstyle="|-|", color=COLORS["mark"], lw=1.1, mutation_scale=4))
            ax.text(t10 + rise + 0.01 * (sr.t[-1] - sr.t[0]), 0.5 * final, f"rise time (10–90 %) {rise:.3g}",
                    fontsize=8.5, va="center", color=COLORS["mark"])
            _marks(fig)["rise_bracket"] = (t10, t10 + rise)
        if settle is not None:
            ax.axvline(settle, color=COLORS["G"], lw=0.9, ls=":")
            ax.annotate(f"settling time (2 %) {settle:.3g}", (settle, 0.2 * final), xytext=(5, 0),
                        textcoords="offset points", fontsize=8.5, color=COLORS["G"])
        if over is not None:
            ax.text(0.99, 0.30, f"overshoot {over:.3g} %", transform=ax.transAxes, ha="right", fontsize=9)
        ax.set_xlim(sr.t[0], sr.t[-1])
        ax.set_xlabel(T_UNIT)
        ax.set_ylabel("θ along dθ/da, normalised  (1 = new fixed point)")
        _legend_right(ax)
        ax.set_title("Response to a step in the environment  (Q → Q + a (Q₂ − Q₁))")
        _marks(fig).update(rise_time=rise, settling_time=settle, overshoot_pct=over, final_value=final,
                         t=sr.t, y=sr.y)
    return fig


def multiplicities(ev: np.ndarray) -> list[tuple[complex, int]]:
    """Eigenvalues grouped into repeated roots: ``[(mean of the group, multiplicity), ...]``, slowest first.

    A root of multiplicity ``m`` whose eigenvectors are defective (E1's
    critically damped pair) comes out of an eigensolver split by round-off
    into ``m`` roots about ``(δ |λ|^(m-1))^(1/m)`` apart, ``δ = eps·max|λ|``
    (docs/theory.md §5). Two eigenvalues are one root when they are closer than
    ten times that split for ``m = 3`` (which bounds ``m = 2`` too); the groups
    are the connected components of that relation
    (:func:`scipy.sparse.csgraph.connected_components`). Closer eigenvalues
    cannot be told apart on a plot either.
    """
    from scipy.sparse.csgraph import connected_components

    ev = np.asarray(ev, complex).ravel()
    if ev.size == 0:
        return []
    scale = float(np.max(np.abs(ev)))
    delta = np.finfo(float).eps * scale
    tol = 10.0 * np.cbrt(delta * np.maximum(np.abs(ev), delta) ** 2)
    close = np.abs(ev[:, None] - ev[None, :]) <= np.maximum(tol[:, None], tol[None, :])
    n, label = connected_components(close, directed=False)
    groups = [ev[label == k] for k in range(n)]
    out = [(complex(np.mean(g)), int(g.size)) for g in groups]
    return sorted(out, key=lambda p: (-p[0].real, abs(p[0].imag)))


def _mark_multiplicities(ax, ev: np.ndarray) -> list[tuple[complex, int]]:
    """Write ``×m`` beside each repeated eigenvalue (drawn as one marker: its copies coincide)."""
    reps = [(z, m) for z, m in multiplicities(ev) if m > 1]
    for z, m in reps:
        ax.annotate(f"×{m}", (z.real, z.imag), xytext=(0, -9), textcoords="offset points", fontsize=9,
                    ha="center", va="top", fontweight="bold", color=COLORS["cl"])
    return reps


def poles(stability: Stability, ax: Axes | None = None) -> Figure:
    """Pole map: closed-loop eigenvalues, quasi-static rates ``-eig(E H)``, removed modes.

    The real axis is symmetric-logarithmic so that slow and fast modes are
    both visible; the right half plane (instability) is shaded.
    """
    stab = stability
    ev = np.asarray(stab.eigenvalues)
    qs = -np.asarray(stab.quasi_static_rates, float)
    flat = np.asarray(stab.flat_modes)
    removed = dict(stab.removed)
    with _style():
        fig, (ax,) = _axes(ax, 1, 8.6, 4.6)
        allre = np.concatenate([ev.real, qs, flat.real]) if ev.size else qs
        nz = np.abs(allre[np.abs(allre) > 0])
        # linear region of the symlog axis: the decade below the slowest mode (ticks stay apart from 0)
        lin = float(10.0 ** np.floor(np.log10(np.min(nz)) - 1e-9)) / 2 if nz.size else 1e-3
        span = float(np.max(nz) / np.min(nz)) if nz.size else 1.0
        if span > 50:
            ax.set_xscale("symlog", linthresh=lin, linscale=1.0)
        ax.axvspan(0, max(1.0, float(np.max(np.abs(allre))) if allre.size else 1.0) * 10, color=COLORS["S"],
                   alpha=0.06, lw=0)
        ax.axvline(0, color="k", lw=0.8)
        ax.axhline(0, color="k", lw=0.5)
        stable = ev.real < 0
        reps = multiplicities(ev)
        many = any(m > 1 for _, m in reps)
        ax.plot(ev.real[stable], ev.imag[stable], "x", color=COLORS["cl"], ms=7, mew=1.6,
                label=f"closed-loop eigenvalues ({ev.size})" + ("\n×m: a root of multiplicity m" if many else ""))
        if (~stable).any():
            ax.plot(ev.real[~stable], ev.imag[~stable], "x", color=COLORS["S"], ms=9, mew=2.2,
                    label=f"unstable eigenvalues ({int((~stable).sum())})")
        if qs.size:
            ax.plot(qs, np.zeros_like(qs), "o", mfc="none", mec=COLORS["qs"], ms=10, mew=1.6,
                    label="quasi-static rates  −eig(E H)")
        if flat.size:
            ax.plot(flat.real, flat.imag, "s", mfc="none", mec=COLORS["flat"], ms=8,
                    label=f"flat modes removed ({flat.size})")
        struct = np.asarray(stab.structural_modes)
        if struct.size:
            ax.plot(struct.real, struct.imag, "D", mfc="none", mec=COLORS["flat"], ms=8,
                    label=f"structural modes removed:\n{removed.get('normalisation', 0)} normalisation, "
                          f"{removed.get('neutral', 0)} neutral")
        if ev.size:
            slow = ev[0]
            cplx = abs(slow.imag) > 1e-6 * abs(slow)
            word = "slowest" if slow.real < 0 else "most unstable"
            ax.annotate(f"{word} {slow.real:.3g}" + (f" {slow.imag:+.3g}j" if cplx else ""),
                        (slow.real, slow.imag), xytext=(0, 14), textcoords="offset points", fontsize=8.5,
                        ha="center", color=COLORS["cl"])
        xmin = float(np.min(allre)) if allre.size else -1.0
        xmax = float(np.max(allre)) if allre.size else 0.0
        if span > 50:   # decade ticks outside the linear region, and 0: labels never collide
            lo_dec = int(np.ceil(np.log10(2 * lin)))
            ticks = [0.0]
            if xmin < 0:
                ticks += [-(10.0 ** k) for k in range(lo_dec, int(np.floor(np.log10(-xmin * 1.6))) + 1)]
            if xmax > 0:
                ticks += [10.0 ** k for k in range(lo_dec, int(np.floor(np.log10(xmax * 1.6))) + 1)]
            ax.set_xticks(sorted(ticks))
        ax.set_xlim(xmin * 1.6 if xmin < 0 else -lin, max(xmax * 1.6, lin) if xmax > 0 else
                    (lin if span > 50 else 0.15 * abs(xmin)))
        ymax = float(np.max(np.abs(ev.imag))) if ev.size else 0.0
        if ev.size:  # numerically real eigenvalues keep a readable imaginary axis
            ymax = max(ymax, 0.5 * float(np.min(np.abs(ev.real[ev.real != 0]))) if np.any(ev.real != 0) else 1.0)
        ymax = max(ymax, 1e-9)
        ax.set_ylim(-ymax * 1.4, ymax * 1.4 * 1.35)
        ax.set_xlabel("Re s  (κ)" + ("  [symmetric log]" if span > 50 else ""))
        ax.set_ylabel("Im s  (rad·κ)")
        _mark_multiplicities(ax, ev)
        _legend_right(ax, fontsize=8)
        ax.set_title("Pole map of the learning loop" + ("  —  STABLE" if stab.stable else "  —  UNSTABLE"))
        _marks(fig).update(eigenvalues=ev, quasi_static=qs, stable=bool(stab.stable), multiplicities=reps)
    return fig


def _time_axis(ax, t: np.ndarray) -> np.ndarray:
    """Log time axis when the episode spans more than two decades of sampled times, else linear;
    returns the mask of the samples drawn (``t > 0`` on a log axis)."""
    pos = t[t > 0]
    if pos.size > 2 and pos[-1] / pos[0] > 300:
        ax.set_xscale("log")
        ax.set_xlim(pos[0], pos[-1])
        return t > 0
    ax.set_xlim(t[0], t[-1])
    return np.ones(t.size, bool)


def learning_named(t: np.ndarray, theta: np.ndarray, k: int = NAMED,
                   sensitivity: np.ndarray | None = None) -> list[tuple[int, str]]:
    """The parameters a crowded learning figure names: the slowest to settle and the most sensitive.

    A parameter's settling time is the last sampled time at which it is
    farther from its final value than 5 % of the largest distance any
    parameter has from its own (one tolerance for all, the figure's scale:
    a parameter that never moves that far is never called slowest). The
    most sensitive are those of largest ``sensitivity`` (the diagonal of the
    Hessian of ``D`` at the fixed point: ``D`` rises most when they move);
    without it, those with the largest change (largest distance from their
    final value). Taken in turn from the two rankings (:func:`pick_named`).

    Parameters
    ----------
    t : ndarray (nt,)
    theta : ndarray (nt, k_learned)
    k : int
    sensitivity : ndarray (k_learned,) or None

    Returns
    -------
    list of (int, str)
        ``(column, "slowest" | "most sensitive" | "largest change")``.
    """
    dev = np.abs(theta - theta[-1])
    span = dev.max(axis=0)
    tol = 0.05 * max(float(span.max()), 1e-300)
    moves = span > tol
    late = np.array([t[np.nonzero(dev[:, j] > tol)[0][-1]] if moves[j] else -np.inf
                     for j in range(theta.shape[1])])
    slow = [int(j) for j in np.argsort(-late, kind="stable") if moves[j]]
    if sensitivity is not None and np.all(np.isfinite(sensitivity)):
        return pick_named([("slowest", slow), ("most sensitive", list(np.argsort(-np.asarray(sensitivity),
                                                                                 kind="stable")))], k)
    return pick_named([("slowest", slow), ("largest change", list(np.argsort(-span, kind="stable")))], k)


def _theta_curves(ax, t: np.ndarray, th: np.ndarray, names: Sequence[str], target, sensitivity=None) -> dict:
    """``theta_j(t)`` of every learned parameter: each in colour, or with more than :data:`MANY` the
    :func:`learning_named` few in colour and the rest thin grey (one legend entry). Returns what was named."""
    many = len(names) > MANY
    named = learning_named(t, th, sensitivity=sensitivity) if many else [(j, "") for j in range(len(names))]
    if many:
        rest = [j for j in range(len(names)) if j not in {i for i, _ in named}]
        ax.plot(t, th[:, rest], **OTHER_STYLE)
        ax.plot([], [], **OTHER_STYLE, label=f"other {len(rest)} parameters")
    for (j, why), st in zip(named, curve_styles(len(named))):
        ax.plot(t, th[:, j], label=f"θ_{names[j]}" + (f"  ({why})" if why else ""), lw=1.5, zorder=3, **st)
        if target is not None:
            ax.axhline(target[j], color=st["color"], ls=(0, (1, 3)), lw=0.8)
    return {"named": [names[j] for j, _ in named], "why": [w for _, w in named]} if many else {}


def learning(trajectory: LearningCurve, ax: Sequence[Axes] | None = None) -> Figure:
    """A learning episode: ``theta(t)`` (top) and ``D(t)`` above its minimum (bottom, log).

    Time is logarithmic when the episode's samples span several decades (a
    fast drop of ``D`` followed by slow learning along flat directions, E3),
    so that both time scales show. Each species has its own colour and line
    style; with many species the legend sits outside the axes. With more than
    :data:`MANY` learned parameters only :data:`NAMED` are named in colour
    (:func:`learning_named`: the slowest to settle and the most sensitive,
    each labelled with why), the rest drawn thin and grey;
    ``fig.crnfb["named"]`` lists the named ones.
    """
    traj = trajectory
    many = len(traj.names) > 6
    th = np.asarray(traj.theta)
    target = traj.theta_star if traj.theta_end is None else traj.theta_end
    with _style():
        fig, (ax1, ax2) = _axes(ax, 2, 8.6, 5.6, sharex=True)
        shown = _time_axis(ax2, np.asarray(traj.t))
        t = np.asarray(traj.t)[shown]
        _marks(fig).update(_theta_curves(ax1, t, th[shown], traj.names, target, traj.sensitivity))
        if target is not None:
            ax1.plot([], [], color=COLORS["mark"], ls=(0, (1, 3)), lw=0.8,
                     label=traj.target_label + ("  (of the named)" if "named" in _marks(fig) else ""))
        ax1.set_ylabel("θ = −G/kT  (dimensionless)")
        _legend_right(ax1, fontsize=7.5 if many else None)
        Dmin = traj.D_star if traj.D_star is not None else float(np.min(traj.D))
        Dmin = 0.0 if abs(Dmin) < 1e-12 else Dmin
        exc = np.maximum(np.asarray(traj.D)[shown] - Dmin, 1e-16)
        ax2.semilogy(t, exc, color=COLORS["S"], label=f"D(t) − D*\n(D* = {Dmin:.4g} nats, the optimum)")
        if traj.bias is not None and traj.bias > 1e-9:
            ax2.axhline(traj.bias, color=COLORS["mark"], ls="--", lw=0.9,
                        label=f"bias of the loop's fixed point\n{traj.bias:.3g} nats")
        ax2.set_ylabel("excess divergence  (nats)")
        ax2.set_xlabel(T_UNIT + ("  [log]" if ax2.get_xscale() == "log" else ""))
        _legend_right(ax2, fontsize=7.5 if many else None)
        _mark_outcome(ax1, ax2, traj)
        if ax is None:
            head = "Learning from the file's energies"
            if traj.outcome:
                head += f": {traj.outcome}" if traj.converged else f": {traj.outcome.upper()}"
            fig.suptitle(f"{head}\n{traj.source}", fontsize=10)   # no brackets around the source's own
        _marks(fig).update(t=traj.t, D=traj.D, theta=th, outcome=traj.outcome, t_settled=traj.t_settled)
    return fig


def _mark_outcome(ax1, ax2, traj: LearningCurve) -> None:
    """Mark whether learning converged (docs/theory.md §4a): a vertical line where the trajectory
    settled, or a red note naming what happened instead."""
    if traj.converged and traj.t_settled is not None and traj.t_settled > 0:
        for a in (ax1, ax2):
            a.axvline(traj.t_settled, color=COLORS["mark"], ls="-.", lw=0.9)
        ax1.text(traj.t_settled, 0.02, " settled", transform=ax1.get_xaxis_transform(), fontsize=8,
                 color=COLORS["mark"], va="bottom")
    elif traj.converged is False and traj.outcome:
        ax1.text(0.99, 0.97, traj.outcome, transform=ax1.transAxes, ha="right", va="top", fontsize=8.5,
                 color="#c92a2a", bbox=dict(boxstyle="round", fc="white", ec="#c92a2a", alpha=0.9))


def _visible_window(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    m = np.maximum(p, q)
    keep = m > 1e-4 * m.max()
    return float(x[keep].min()) - 0.8, float(x[keep].max()) + 0.8


def _marginal(S: np.ndarray, w: np.ndarray, cols: Sequence[int], empty: float = 0.0
              ) -> tuple[list[np.ndarray], np.ndarray]:
    """The marginal of the law ``w`` on the states ``S`` over the columns ``cols``: the copy numbers
    of each column (consecutive, from its least to its largest) and the probability array on their grid,
    ``empty`` where no state projects (NaN leaves a heatmap's unreachable cells blank)."""
    axes = [np.arange(S[:, c].min(), S[:, c].max() + 1) for c in cols]
    idx = tuple(S[:, c] - x[0] for c, x in zip(cols, axes))
    out, hit = np.zeros([x.size for x in axes]), np.zeros([x.size for x in axes])
    np.add.at(out, idx, w)
    np.add.at(hit, idx, 1.0)
    return axes, np.where(hit > 0, out, empty)


def _integer_ticks():
    """Ticks at whole copy numbers only."""
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(integer=True)


def _marginal_panel(ax, x: np.ndarray, pm: np.ndarray, qm: np.ndarray) -> None:
    """Bars of the environment's marginal ``qm``, markers of the learned ``pm``."""
    ax.bar(x, qm, width=0.8, color=COLORS["Q"], label="environment Q")
    ax.plot(x, pm, "o-", color=COLORS["P"], ms=4, lw=1.2, label="learned P")
    ax.set_xlim(*_visible_window(pm, qm, x))
    ax.set_ylim(0, max(pm.max(), qm.max()) * 1.22)
    ax.xaxis.set_major_locator(_integer_ticks())


def _joint_panel(ax, x0, x1, gp: np.ndarray, gq: np.ndarray, vmax: float | None = None):
    """Heatmap of the learned joint ``gp[x0, x1]`` (``x0`` across) with the environment's ``gq`` as white
    contours at 10, 37, 63 and 90 % of its peak; returns the image."""
    im = ax.imshow(gp.T, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax,
                   extent=(x0[0] - 0.5, x0[-1] + 0.5, x1[0] - 0.5, x1[-1] + 0.5))
    if gq.max() > 0 and min(gq.shape) > 1:
        ax.contour(x0, x1, gq.T, levels=np.linspace(0.1, 0.9, 4) * gq.max(), colors="white", linewidths=0.9)
    ax.set_xlim(*_visible_window(np.nansum(gp, 1), gq.sum(1), x0))
    ax.set_ylim(*_visible_window(np.nansum(gp, 0), gq.sum(0), x1))
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.grid(False)
    return im


def _corner(dist: Distribution, ax=None) -> Figure:
    """Corner plot of ``nv >= 3`` visible species: the 1-D marginals on the diagonal, every pair's joint
    marginal below it (learned ``P`` in colour, one scale for all, ``Q``'s contours in white)."""
    S, P, Q = np.asarray(dist.states), np.asarray(dist.P), np.asarray(dist.Q)
    nv = S.shape[1]
    pairs = [(i, j) for i in range(nv) for j in range(i)]          # row i (y: species i), column j (x)
    joints = {(i, j): (*_marginal(S, P, (j, i), np.nan), _marginal(S, Q, (j, i))[1]) for i, j in pairs}
    vmax = max(float(np.nanmax(gp)) for _, gp, _ in joints.values())
    cell = float(np.clip(9.0 / nv, 1.7, 2.5))
    if ax is None:
        fig = _figure(cell * nv + 1.0, cell * nv + 0.5)
        grid = np.asarray(fig.subplots(nv, nv), dtype=object)
    else:
        fig, flat = _axes(ax, nv * nv, 0, 0)
        grid = np.asarray(flat, dtype=object).reshape(nv, nv)
    for i in range(nv):
        x, pm = _marginal(S, P, (i,))
        qm = _marginal(S, Q, (i,))[1]
        _marginal_panel(grid[i, i], x[0], pm, qm)
        grid[i, i].set_title(f"marginal of {dist.names[i]}", fontsize=9)
        grid[i, i].set_ylabel("probability", fontsize=8.5)
        for j in range(i + 1, nv):           # above the diagonal: nothing, not even a background
            grid[i, j].axis("off")
            grid[i, j].patch.set_visible(False)
    for (i, j), ((x0, x1), gp, gq) in joints.items():
        im = _joint_panel(grid[i, j], x0, x1, gp, gq, vmax)
        if j == 0:
            grid[i, j].set_ylabel(f"{dist.names[i]}  (copies)")
    for j in range(nv):
        grid[nv - 1, j].set_xlabel(f"{dist.names[j]}  (copies)")
    corner = grid[0, nv - 1]
    cax = corner.inset_axes([0.08, 0.12, 0.84, 0.09])
    fig.colorbar(im, cax=cax, orientation="horizontal", label="learned P of the pair")
    cax.tick_params(labelsize=7.5)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.patheffects import withStroke
    handles = [Patch(color=COLORS["Q"]), Line2D([], [], color=COLORS["P"], marker="o", ms=4, lw=1.2),
               Line2D([], [], color="white", lw=1.2, path_effects=[withStroke(linewidth=3.2, foreground="#440154")])]
    corner.legend(handles, ["environment Q (marginal)", "learned P (marginal)", "Q of the pair (contours)"],
                  loc="upper center", bbox_to_anchor=(0.5, 1.0), fontsize=7.5)
    _marks(fig).update(corner_pairs=pairs, corner_diagonal=nv)
    return fig


def distribution(distribution: Distribution, ax: Sequence[Axes] | None = None) -> Figure:
    """Learned ``P(v)`` at the fixed point against the environment ``Q(v)``.

    One visible species: bars of ``Q`` and markers of ``P``. Two: the
    marginal of each species and a heatmap of the joint ``P`` with ``Q``'s
    contours. Three or more: a corner plot, the marginals on the diagonal
    and below it every pair's joint marginal of ``P`` (one colour scale)
    with that pair's ``Q`` as contours; ``ax`` then takes ``nv * nv`` axes
    (row by row; those above the diagonal are switched off) and
    ``fig.crnfb["corner_pairs"]`` lists the pairs ``(row, column)`` drawn.
    """
    dist = distribution
    own = ax is None            # a figure of our own gets the title
    S = np.asarray(dist.states)
    P, Q = np.asarray(dist.P), np.asarray(dist.Q)
    nv = S.shape[1]
    tv = 0.5 * float(np.abs(P - Q).sum())
    with _style():
        if nv >= 3:
            fig = _corner(dist, ax)
        else:
            fig = _distribution_few(dist, ax)
        if own:
            fig.suptitle(f"Learned law at the fixed point against the environment  (total variation {tv:.3g})",
                         fontsize=10.5)
        _marks(fig).update(total_variation=tv)
    return fig


def _distribution_few(dist: Distribution, ax) -> Figure:
    """One visible species (bars and markers) or two (both marginals and the joint heatmap)."""
    own = ax is None
    S, P, Q = np.asarray(dist.states), np.asarray(dist.P), np.asarray(dist.Q)
    nv = S.shape[1]
    panels = 1 if nv == 1 else 3
    if ax is not None:
        fig, axes = _axes(ax, panels, 0, 0)
    else:
        fig = _figure(7.8 if nv == 1 else 10.5, 4.2)
        axes = list(np.ravel(fig.subplots(1, panels))) if panels > 1 else [fig.add_subplot()]
    for j in range(nv):
        ax = axes[j]
        (x,), pm = _marginal(S, P, (j,))
        qm = _marginal(S, Q, (j,))[1]
        _marginal_panel(ax, x, pm, qm)
        ax.set_xlabel(f"copy number of {dist.names[j]}")
        ax.set_ylabel("probability" if nv == 1 else f"marginal of {dist.names[j]}")
        if j == 0 and (nv == 1 or not own):
            _legend_right(ax)
        elif j == 0:   # several panels: one figure legend below them, clear of every panel's data
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2)
    if nv == 2:
        ax = axes[2]
        (x0, x1), gp = _marginal(S, P, (0, 1), np.nan)
        gq = _marginal(S, Q, (0, 1))[1]
        im = _joint_panel(ax, x0, x1, gp, gq)
        fig.colorbar(im, ax=ax, label="learned P")
        ax.set_xlabel(f"copy number of {dist.names[0]}")
        ax.set_ylabel(f"copy number of {dist.names[1]}")
        ax.set_title("joint P (colour), Q (white contours)", fontsize=9.5)
    return fig


def lag_cost(disturbance: Disturbance | None, ax: Axes | None = None, reason: str | None = None) -> Figure:
    """Period-mean excess divergence per ``a1^2`` against the frequency of a sinusoidal environment.

    Parameters
    ----------
    disturbance : Disturbance or None
        Its ``lag_cost`` (``[[omega, cost], ...]``) and ``bandwidth``.
    ax : Axes or None
    reason : str or None
        Why there is no disturbance section (for the placeholder).
    """
    if disturbance is None or disturbance.lag_cost is None or not len(disturbance.lag_cost):
        why = reason if disturbance is None else (disturbance.lag_cost_reason or disturbance.reason)
        return placeholder("Lag cost of tracking a changing environment", why or "no lag cost was computed")
    arr = np.asarray(disturbance.lag_cost, float)
    w, c = arr[:, 0], arr[:, 1]
    ok = np.isfinite(w) & np.isfinite(c) & (c > 0) & (w > 0)
    bw = _val(disturbance.bandwidth)
    with _style():
        fig, (ax,) = _axes(ax, 1, 7.8, 4.2)
        ax.loglog(w[ok], c[ok], color=COLORS["S"], marker="o" if ok.sum() < 40 else None, ms=3.5,
                  label="lag cost")
        if bw is not None:
            ax.axvline(bw, color=COLORS["G"], ls="--", lw=0.9, label=f"bandwidth {bw:.3g}")
        _legend_right(ax)
        ax.set_xlabel(W_UNIT)
        ax.set_ylabel("excess divergence per a₁²  (nats)")
        ax.set_title("Lag cost:  a(t) = a₀ + a₁ sin(ωt),  period-mean D − min D")
        _marks(fig).update(omega=w, lag_cost=c)
    return fig


def fluctuation(result: FluctuationResult, ax: Axes | None = None) -> Figure:
    """Learning in a random environment (docs/theory.md §5a): the predicted mean excess divergence against
    the learning rate with its tracking, noise and bias parts, the simulated costs (SSA with 95 % intervals,
    ODE tracking term), ``eps_opt`` and ``eps_crit``; a second y axis on the right carries the dissipation
    rate.

    Parameters
    ----------
    result : FluctuationResult
        :func:`crnfb.analysis.analyses.fluctuation.fluctuation` (with its checks, if any).
    ax : Axes or None

    Returns
    -------
    Figure
        ``fig.crnfb`` holds the marked ``eps_opt`` and ``eps_crit`` (None when not found) and ``valid``.
    """
    with _style():
        fig, (ax,) = _axes(ax, 1, 6.6, 4.8)
        _fluctuation_axes(result, ax)
        _marks(fig).update(eps_opt=result.eps_opt, eps_crit=result.eps_crit, valid=bool(result.valid))
    return fig


def _fluctuation_axes(result: FluctuationResult, ax) -> None:
    ok = result.stable
    e = result.axis
    ax.loglog(e[ok], result.total[ok], "k-", lw=2.0, label="total (predicted)")
    ax.loglog(e[ok], result.tracking[ok], "--", color="tab:blue", label="tracking")
    ax.loglog(e[ok], result.noise[ok], "-.", color="tab:orange", label="noise (finite ensembles)")
    if np.any(result.bias[ok] > 0):
        ax.loglog(e[ok], result.bias[ok], ":", color="tab:green", label="bias (dynamic clamping)")
    made = [c for c in result.validation if c.get("simulated") is not None]
    sims = [c for c in made if "SSA" in c["quantity"]]
    if sims:
        x = np.array([result.axis_at(c["factor"]) for c in sims])
        y = np.array([c["simulated"] for c in sims])
        lo = np.array([c["ci"][0] for c in sims])
        hi = np.array([c["ci"][1] for c in sims])
        ax.errorbar(x, y, yerr=[y - np.maximum(lo, 1e-300), hi - y], fmt="o", color="tab:red", ms=5,
                    capsize=3, label="SSA (mean, 95 % CI)")
    odes = [c for c in made if "ODE" in c["quantity"]]
    if odes:
        ax.plot([result.axis_at(c["factor"]) for c in odes], [c["simulated"] for c in odes], "s", mfc="none",
                color="tab:blue", ms=6, label="ODE tracking (sampled paths)")
    if result.g_opt is not None:
        ax.axvline(result.axis_at(result.g_opt), color="0.3", lw=1.0)
        ax.annotate("ε_opt", (result.axis_at(result.g_opt), 0.03), xycoords=("data", "axes fraction"),
                    ha="center", va="bottom", fontsize=9, bbox=dict(fc="white", ec="none", pad=1.0))
    if result.g_crit is not None:
        ax.axvline(result.axis_at(result.g_crit), color="tab:purple", lw=1.0, ls=(0, (4, 2)))
        ax.annotate("ε_crit", (result.axis_at(result.g_crit), 0.03), xycoords=("data", "axes fraction"),
                    ha="center", va="bottom", fontsize=9, color="tab:purple",
                    bbox=dict(fc="white", ec="none", pad=1.0))
    ax.set_xlabel(result.axis_label)
    ax.set_ylabel("mean excess divergence (nats)")
    ax2 = ax.twinx()
    ax2.loglog(e, result.dissipation, color="0.55", lw=1.0, label="dissipation (right axis)")
    ax2.set_ylabel("dissipation rate  (kT·κ per cell)", color="0.4")
    ax2.tick_params(axis="y", colors="0.4")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
              frameon=False)
    title = "learning in a random environment"
    if not result.valid:
        title += " (OUT OF LINEAR RANGE)"
    ax.set_title(title)


def _tradeoff_panel(ax, result: TradeoffResult, metric: str, cbar: bool = True, ylabel: bool = True) -> None:
    """One metric against the dissipation: every point coloured by the first swept parameter, the Pareto front."""
    import matplotlib as mpl
    from crnfb.analysis.analyses.tradeoffs import LABELS, OBJECTIVES, PARAM_LABELS, TITLES

    x, y = result.column(metric), result.column(result.cost)
    par = result.params[0]
    c = result.column(par)
    ok = np.isfinite(x) & np.isfinite(y)
    front = result.front(metric)
    logc = bool(np.all(c[ok] > 0) and np.nanmax(c[ok]) / np.nanmin(c[ok]) > 20)
    lo, hi = np.nanmin(c[ok]), np.nanmax(c[ok])
    norm = mpl.colors.LogNorm(lo, hi) if logc else mpl.colors.Normalize(lo, hi if hi > lo else lo + 1)
    dom = ok & ~front
    ax.scatter(x[dom], y[dom], c=c[dom], norm=norm, cmap="viridis", s=26, alpha=0.6, edgecolors="none", zorder=2)
    order = np.argsort(x[front])
    fx, fy = x[front][order], y[front][order]
    ax.plot(fx, fy, "-", color="crimson", lw=1.5, zorder=3)
    ax.scatter(fx, fy, c=c[front][order], norm=norm, cmap="viridis", s=58, edgecolors="crimson",
               linewidths=1.6, zorder=4)
    handles = [mpl.lines.Line2D([], [], color="crimson", lw=1.5, marker="o", markersize=7, markerfacecolor="0.6",
                                markeredgecolor="crimson", markeredgewidth=1.6, label="Pareto front")]
    if dom.any():
        handles.append(mpl.lines.Line2D([], [], ls="none", marker="o", markersize=5, markerfacecolor="0.6",
                                        markeredgecolor="none", alpha=0.6, label="dominated"))
    if cbar:
        cb = ax.figure.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, pad=0.02)
        cb.set_label(PARAM_LABELS.get(par, par))
    if np.all(y[ok] > 0) and np.nanmax(y[ok]) / np.nanmin(y[ok]) > 20:
        ax.set_yscale("log")
    if np.all(x[ok] > 0) and np.nanmax(x[ok]) / np.nanmin(x[ok]) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(LABELS.get(metric, metric))
    if ylabel:
        ax.set_ylabel(LABELS.get(result.cost, result.cost))
    better = "lower right" if OBJECTIVES.get(metric, "min") == "max" else "lower left"
    ax.set_title(f"{TITLES.get(metric, metric)}  (better: {better})", fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", frameon=False, fontsize="small")


def tradeoffs(result: TradeoffResult, ax=None, metrics: Sequence[str] | None = None) -> Figure:
    """Dissipation against each performance metric of a trade-off sweep, Pareto front highlighted.

    Parameters
    ----------
    result : TradeoffResult
        :func:`crnfb.analysis.analyses.tradeoffs.sweep`.
    ax : Axes, sequence of Axes, or None
        ``None``: a new figure with one panel per metric. One Axes: one panel
        (the first metric).
    metrics : sequence of str or None
        Among ``slowest_rate``, ``bandwidth``, ``bias``, ``noise``; default:
        those available and not constant over the sweep.

    Returns
    -------
    Figure
        ``fig.crnfb["metrics"]``: the metrics drawn.
    """
    from crnfb.analysis.analyses.tradeoffs import OBJECTIVES, PARAM_LABELS

    if metrics is None:
        metrics = [m for m in OBJECTIVES if result.complete(m) and not result.constant(m)]
        metrics = metrics or [m for m in OBJECTIVES if np.any(np.isfinite(result.column(m)))]
    if not metrics:
        raise ValueError("no performance metric available to plot against")
    single = ax is not None and hasattr(ax, "plot")
    metrics = list(metrics)[:1] if single else list(metrics)
    with _style():
        if ax is None:
            fig = _figure(4.6 * len(metrics) + 0.8, 4.2)
            axes = list(fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0])
        else:
            fig, axes = _axes(ax, 1 if single else len(np.ravel(ax)), 0, 0)
            metrics = metrics[:len(axes)]
        for i, (a, m) in enumerate(zip(axes, metrics)):
            _tradeoff_panel(a, result, m, cbar=(i == len(metrics) - 1), ylabel=(i == 0 or ax is not None))
        if result.model_name:
            over = ", ".join(PARAM_LABELS.get(p, p) for p in result.params)
            fig.suptitle(f"{result.model_name}: dissipation trade-offs, sweep of {over}")
        _marks(fig)["metrics"] = list(metrics)
    return fig


#: Outcome classes of the global figure: (label, mechanisms, marker style).
OUTCOMES = (
    ("converged", ("converged",), {"marker": "o", "color": "#1f5fa8", "mfc": "#1f5fa8"}),
    ("relaxation oscillation", ("relaxation_oscillation",), {"marker": "^", "color": "#e8590c", "mfc": "none"}),
    ("lost", ("divergence", "depletion", "far_attractor", "not_settled", None),
     {"marker": "X", "color": "#c92a2a", "mfc": "#c92a2a"}),
)
#: Amplitudes below this (kT) are drawn at it on the log axis (a run that started at its fixed point).
AMPLITUDE_FLOOR = 1e-12


def outcome_runs(glob: dict) -> list[dict]:
    """The ODE runs the global figure draws: ``global.safe_factor_runs`` entries with an amplitude, or
    without a safe-factor search (``--no-validate``) the report's episode alone, as a run at factor 1."""
    runs = [r for r in glob.get("safe_factor_runs") or [] if r.get("amplitude") is not None]
    ep = glob.get("episode")
    if not glob.get("safe_factor_runs") and ep and ep.get("amplitude") is not None:
        runs = [{"factor": 1.0, "converged": ep["converged"], "mechanism": ep["mechanism"],
                 "how": "the report's episode", "amplitude": ep["amplitude"]}]
    return runs


def _outcome_class(run: dict) -> int:
    mech = run.get("mechanism") or ("converged" if run.get("converged") else None)
    return next(i for i, (_, mechs, _) in enumerate(OUTCOMES) if mech in mechs or i == len(OUTCOMES) - 1)


def _outcome_points(ax, runs: list[dict]) -> list[str]:
    """One marker per run, styled by its outcome class; the legend labels, lost runs' mechanisms named."""
    labels = []
    for i, (label, _, style) in enumerate(OUTCOMES):
        rs = [r for r in runs if _outcome_class(r) == i]
        if not rs:
            continue
        if label == "lost":
            names = sorted({(r.get("mechanism") or "unknown").replace("_", " ") for r in rs})
            label = "lost: " + ", ".join(names)
        x = [r["factor"] for r in rs]
        y = [max(r["amplitude"], AMPLITUDE_FLOOR) for r in rs]
        ax.plot(x, y, ls="none", ms=7, mew=1.4, zorder=3, label=f"{label} ({len(rs)})", **style)
        labels.append(label)
    return labels


def _outcome_lines(ax, glob: dict, eps0: float) -> dict:
    """Vertical lines at the gain margin (eps_crit's factor) and at the safe factor; what was drawn."""
    gm, sf = _val(glob.get("gain_margin")), _val(glob.get("safe_factor"))
    if gm is not None:
        ax.axvline(gm, color=COLORS["S"], ls="--", lw=1.2,
                   label=f"gain margin {gm:.4g}\n(ε_crit = {_eps_crit_text(glob.get('eps_crit'))})")
    if sf is not None:
        ax.axvline(sf, color=COLORS["G"], ls="-.", lw=1.2, label=f"safe factor {sf:.4g}\n(ε = {sf * eps0:.4g})")
    return {"gain_margin": gm, "safe_factor": sf}


def _hopf_branch(ax, glob: dict) -> dict:
    """The normal form's orbit past (supercritical) or before (subcritical) eps_crit, and the orbits
    computed by shooting and ODE (``global.bifurcation``, docs/theory.md §4c); what was drawn."""
    b = glob.get("bifurcation") or {}
    K, gc = b.get("amplitude_coefficient"), _val(b.get("factor"))
    if not K or gc is None or b.get("type") not in ("supercritical Hopf", "subcritical Hopf"):
        return {"hopf": None}
    k = max(K.values())
    sup = b["type"] == "supercritical Hopf"
    g = gc * (1.0 + np.linspace(1e-3, 0.1, 60) * (1 if sup else -1))
    ax.plot(g, k * np.sqrt(np.abs(g / gc - 1.0)), color=COLORS["S"], ls="-" if sup else ":", lw=1.4,
            label=f"{b['type']}: normal-form orbit" + ("" if sup else " (unstable)"))
    orbits = _orbit_points(ax, b, label=True)
    if orbits:     # the orbits sit within 5 % of eps_crit: a linear zoom where the square-root law shows
        ins = ax.inset_axes([0.3, 0.1, 0.36, 0.4])
        top = max(f for f, _ in orbits) * 1.01
        gz = np.linspace(gc, top, 80)
        ins.plot(gz, k * np.sqrt(gz / gc - 1.0), color=COLORS["S"], lw=1.4)
        _orbit_points(ins, b, label=False)
        ins.set_xlim(gc * 0.995, top)
        ins.set_ylim(0.0, 1.15 * max(a for _, a in orbits))
        ins.set_xlabel("factor on ε", fontsize=7)
        ins.set_ylabel("amplitude (kT)", fontsize=7)
        ins.tick_params(labelsize=7)
    return {"hopf": b["type"]}


def _orbit_points(ax, b: dict, label: bool) -> list[tuple[float, float]]:
    """The orbits of ``global.bifurcation`` (shooting: diamonds, ODE: crosses) at their largest amplitude."""
    out = []
    for how, marker in (("shooting", "D"), ("ODE", "x")):
        pts = [(o["factor"], max(o["amplitude"].values())) for o in b.get("orbits", [])
               if o.get("how") == how and o.get("amplitude") and None not in o["amplitude"].values()]
        if pts:
            ax.plot(*zip(*pts), ls="none", marker=marker, ms=7, mfc="none" if marker == "D" else None,
                    mec=COLORS["S"], label=f"orbit past ε_crit ({how})" if label else None)
            out += pts
    return out


def _eps_axis(ax, eps: dict) -> float:
    """The top axis in eps itself (factor times the file's eps); the eps it is measured in."""
    names = list(eps)
    e0 = float(eps[names[0]])
    same = all(abs(float(v) - e0) <= 1e-12 * abs(e0) for v in eps.values())
    top = ax.secondary_xaxis("top", functions=(lambda f: f * e0, lambda e: e / e0))
    top.set_xlabel("learning rate  ε  (κ)" if same else f"learning rate  ε_{names[0]}  (κ; the others in proportion)")
    return e0


def _outcome_title(ax, glob: dict) -> None:
    """The title; without a safe factor, the reason below it."""
    import textwrap
    head = "Outcome of learning from the file's energies, by factor on ε"
    why = glob.get("safe_factor_reason") if glob.get("safe_factor") is None else None
    ax.set_title(head + ("\n" + textwrap.fill(f"(safe factor {why})", 90) if why else ""),
                 fontsize=10 if not why else 8.5)


def global_outcome(glob: dict, eps: dict, ax: Axes | None = None) -> Figure:
    """The outcome of learning from the file's energies against the factor on ``eps`` (docs/global.md).

    Parameters
    ----------
    glob : dict
        report.json's ``global`` section: ``safe_factor_runs`` (each ODE run's
        ``factor``, ``converged``, ``mechanism`` and late-time ``amplitude`` of
        ``theta - theta_fp`` in kT), ``gain_margin``, ``eps_crit``, ``safe_factor``;
        without safe-factor runs the ``episode`` alone is drawn at factor 1.
    eps : dict
        The file's learning rates ``{species: eps}`` (the top axis: eps itself).
    ax : Axes or None

    Returns
    -------
    Figure
        One marker per ODE run (:func:`outcome_runs`; factors decided by the
        linearisation have no run and no marker), styled by outcome: converged,
        relaxation oscillation, lost (divergence, depletion, far attractor, not
        settled); vertical lines at the gain margin and the safe factor; for a
        Hopf crossing the normal form's orbit amplitude (solid past eps_crit when
        supercritical, dotted before it when subcritical) and the orbits computed
        by shooting and ODE. The
        factor axis is logarithmic when the runs and lines span more than a
        decade; the amplitude axis is logarithmic (amplitudes below
        :data:`AMPLITUDE_FLOOR` are drawn at it). ``fig.crnfb``: ``factors``,
        ``amplitudes``, ``outcomes``, ``gain_margin``, ``safe_factor``.
    """
    runs = outcome_runs(glob)
    if not runs:
        return placeholder("Outcome of learning against the factor on ε",
                           glob.get("episode_reason") or "no learning episode and no safe-factor runs")
    with _style():
        fig, (ax,) = _axes(ax, 1, 7.8, 4.4)
        labels = _outcome_points(ax, runs)
        lines = _outcome_lines(ax, glob, _eps_axis(ax, eps))
        lines.update(_hopf_branch(ax, glob))
        xs = [r["factor"] for r in runs] + [v for v in lines.values() if isinstance(v, float)]
        if max(xs) / min(xs) > 10.0:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("factor on the file's ε  (dimensionless)")
        ax.set_ylabel("late amplitude of θ − θ_fp  (kT)")
        _legend_right(ax, title="ODE runs from the\nfile's energies")
        _outcome_title(ax, glob)
        _marks(fig).update(factors=[r["factor"] for r in runs], amplitudes=[r["amplitude"] for r in runs],
                         outcomes=[OUTCOMES[_outcome_class(r)][0] for r in runs], labels=labels, **lines)
    return fig


#: Human titles and y labels, each with its unit in parentheses, of the scalar results ``crnfb sweep``
#: tabulates (docs/cli.md): times in 1/κ, rates in κ, divergences in nats, energies in kT.
SWEEP_LABELS: dict[str, tuple[str, str]] = {
    "fixed_point.divergence": ("divergence at the fixed point", "D(Q‖P)  (nats)"),
    "fixed_point.bias": ("bias of the loop's fixed point", "excess D  (nats)"),
    "fixed_point.gradient_norm": ("gradient at the fixed point", "|∇D|  (nats)"),
    "quasi_static.slowest_rate": ("slowest quasi-static rate", RATE_UNIT),
    "closed_loop.stable": ("stable", "stable  (1 = yes, 0 = no)"),
    "closed_loop.slowest_rate": ("slowest closed-loop rate", RATE_UNIT),
    "closed_loop.damping_ratio_min": ("minimum damping ratio", "ζ  (dimensionless)"),
    "margins.gain_margin": ("gain margin", "factor on ε  (dimensionless)"),
    "margins.phase_margin_deg": ("phase margin", "phase margin  (degrees)"),
    "margins.eps_crit": ("critical learning rate ε_crit", "ε_crit  (κ)"),
    "safe_factor": ("safe factor of ε (ODE runs)", "factor on ε  (dimensionless)"),
    "disturbance.bandwidth": ("tracking bandwidth", "ω  (rad·κ)"),
    "disturbance.hinf_norm": ("H∞ norm, environment → error", "gain  (θ per unit a)"),
    "disturbance.step.rise_time": ("step rise time (10–90 %)", "time  (1/κ)"),
    "disturbance.step.settling_time": ("step settling time (2 %)", "time  (1/κ)"),
    "disturbance.step.overshoot_pct": ("step overshoot", "overshoot  (%)"),
    "thermodynamics.fixed_point.free": ("free-ensemble dissipation", "rate  (kT·κ per copy)"),
    "thermodynamics.fixed_point.clamped": ("clamped-ensemble dissipation", "rate  (kT·κ per copy)"),
    "thermodynamics.fixed_point.learning": ("learning dissipation", "rate  (kT·κ per volume)"),
    "thermodynamics.fixed_point.total": ("total dissipation", "rate  (kT·κ)"),
    "thermodynamics.episode_total": ("dissipation of an episode", "heat  (kT)"),
    "metrics.noise": ("parameter noise (LNA)", "RMS of θ  (dimensionless)"),
    "metrics.dissipation_ensemble": ("dissipation of the cell", "rate  (kT·κ)"),
    "fluctuation.eps_opt": ("best learning rate ε_opt, random environment", "ε_opt  (κ)"),
    "fluctuation.eps_crit": ("critical learning rate ε_crit, random environment", "ε_crit  (κ)"),
    "fluctuation.valid": ("random environment in the linear range", "valid  (1 = yes, 0 = no)"),
    "fluctuation.total": ("mean excess divergence, total", "excess D  (nats)"),
    "fluctuation.tracking": ("mean excess divergence, tracking part", "excess D  (nats)"),
    "fluctuation.noise": ("mean excess divergence, noise part", "excess D  (nats)"),
    "fluctuation.bias": ("mean excess divergence, bias part", "excess D  (nats)"),
    "fluctuation.dissipation": ("dissipation rate, random environment", "rate  (kT·κ per cell)"),
}

#: Axis labels of the sweep parameters.
SWEEP_PARAMS = {"eps": "learning rate  ε  (κ)", "kappa": "factor on every κ  (dimensionless)", "gamma": "reset rate  γ  (κ)", "dmu": "fuel  Δμ  (kT)",
                "M": "ensemble size  M  (copies)", "free": "free copies  M_f  (copies)",
                "clamped": "clamped copies  M_c  (copies)", "omega": "volume  Ω  (λ = L / Ω)", "switching": "switching factor  (dimensionless)",
                "k_01": "switching rate  k_01  (κ)", "k_10": "switching rate  k_10  (κ)"}


def _sweep_label(key: str) -> tuple[str, str]:
    """Title and y label of a sweep panel; a column without an entry is labelled by its report.json key
    (whose unit docs/cli.md gives)."""
    if key in SWEEP_LABELS:
        return SWEEP_LABELS[key]
    leaf = key.rsplit(".", 1)[-1].replace("_", " ")
    return leaf, f"{key}  (docs/cli.md)"


def sweep(rows: list[dict], params: list[str], scales: dict[str, str], columns: list[str]):
    """Each scalar result against the (first) swept parameter; one line per value of the others."""
    import math
    cols = [c for c in columns if any(isinstance(r.get(c), (int, float)) and r.get(c) is not None for r in rows)]
    n = max(len(cols), 1)
    ncol = 3 if n > 4 else 2 if n > 1 else 1
    nrow = math.ceil(n / ncol)
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
    x = params[0]
    # parameters with one value label nothing
    others = [p for p in params[1:] if len({r[p] for r in rows}) > 1]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[o] for o in others), []).append(r)
    with _style():
        fig = _figure(3.6 * ncol, 2.6 * nrow + 0.6)
        axes = np.atleast_1d(fig.subplots(nrow, ncol)).ravel()
        for ax, c in zip(axes, cols):
            for key, rs in sorted(groups.items()):
                rs = sorted(rs, key=lambda r: r[x])
                xs = np.array([r[x] for r in rs], float)
                ys = np.array([np.nan if r.get(c) is None else float(r[c]) for r in rs], float)
                lab = ", ".join(f"{o}={v:g}" for o, v in zip(others, key)) or None
                ax.plot(xs, ys, marker="o", ms=3, lw=1.3, label=lab)
            if scales.get(x) == "log10":
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
                xv = [r[x] for r in rows]
                if max(xv) / min(xv) < 1e3:      # short log range: 1-2-5 ticks with plain numbers
                    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ys_all = np.array([float(r[c]) for r in rows if isinstance(r.get(c), (int, float))], float)
            if ys_all.size and np.all(ys_all > 0) and ys_all.max() / max(ys_all.min(), 1e-300) > 100:
                ax.set_yscale("log")
                ax.yaxis.set_minor_formatter(NullFormatter())
            title, unit = _sweep_label(c)
            ax.set_title(title, fontsize=9)
            ax.set_ylabel(unit, fontsize=8.5)
            ax.set_xlabel(SWEEP_PARAMS.get(x, x))
        for ax in axes[len(cols):]:
            ax.axis("off")
        if others and len(groups) <= 8:    # one legend for every panel, beside them
            fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=7.5)
        fig.suptitle("Sweep over " + ", ".join(SWEEP_PARAMS.get(p, p) for p in params), fontsize=11)
    return fig


def save(fig, path, dpi: int = 150) -> None:
    """Write ``fig`` as PNG (Agg)."""
    fig.savefig(path, dpi=dpi, facecolor="white")


def png_bytes(fig, dpi: int = 150) -> bytes:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


__all__ = ["bode", "nyquist", "step", "poles", "multiplicities", "learning", "distribution", "lag_cost", "fluctuation", "tradeoffs", "sweep",
           "placeholder",
           "global_outcome", "outcome_runs", "OUTCOMES", "AMPLITUDE_FLOOR",
           "save", "png_bytes", "curve_styles", "pick_named", "learning_named", "MANY", "NAMED", "SWEEP_LABELS",
           "T_UNIT", "W_UNIT"]

