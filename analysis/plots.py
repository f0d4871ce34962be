"""Figures of the stability report.

Every function takes data objects that :func:`crnfb.analysis.results.analyse`
already computed (or the dicts of ``report.json``), draws them and returns a
:class:`matplotlib.figure.Figure`; none recomputes any analysis. The values a
figure marks (crossover, margins, bandwidth, step metrics) are attached to it
as the dict ``fig.crnfb`` so that tests and scripts can check that what is
drawn is what is reported.

Figures are built with :class:`matplotlib.figure.Figure` directly (no
``pyplot`` state, any backend; PNG output goes through Agg), so the module
works headless and never opens windows. matplotlib is imported only inside
the functions: the analysis itself does not need it.

Units (docs/theory.md): time in units of ``1/kappa`` (the reference kinetic
constant, 1 unless given), frequency in rad per time unit, ``theta = -G/kT``
dimensionless, ``D`` in nats, magnitudes in dB, phases in degrees.
"""

from __future__ import annotations

import contextlib

import numpy as np

T_UNIT = "time  t  (units of 1/κ)"
W_UNIT = "frequency  ω  (rad per time unit)"

COLORS = {"L": "#1f5fa8", "S": "#c4452b", "G": "#2b8a3e", "lin": "#1f5fa8", "nl": "#e8590c",
          "qs": "#2b8a3e", "cl": "#1f5fa8", "flat": "#868e96", "Q": "#adb5bd", "P": "#c4452b",
          "mark": "#495057"}


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


def _figure(w: float = 6.6, h: float = 4.6):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), layout="constrained")
    fig.crnfb = {}
    return fig


def _num(d: dict | None, key: str):
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None


def _fmt(v, spec=".3g", none="n/a") -> str:
    return none if v is None else format(v, spec)


def placeholder(title: str, reason: str):
    """A figure that says why the real one is not available."""
    import textwrap
    with _style():
        fig = _figure(6.6, 2.6)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.set_title(title)
        ax.text(0.5, 0.5, "not available:\n" + textwrap.fill(reason, 70), ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="#495057")
        fig.crnfb = {"placeholder": True, "reason": reason}
    return fig


def _db(x):
    return 20.0 * np.log10(np.maximum(np.abs(x), 1e-300))


# ------------------------------------------------------------------------------------------
def bode(fr, margins: dict | None = None, disturbance: dict | None = None):
    """Bode plot of the loop transfer ``L`` and the sensitivity ``S``.

    Parameters
    ----------
    fr : crnfb.analysis.results.FrequencyResponse
    margins : dict
        ``report.json["margins"]``: the crossover frequency, phase margin,
        gain margin and ``eps_crit`` drawn are these values.
    disturbance : dict
        ``report.json["disturbance"]``: the bandwidth drawn is this value.

    Returns
    -------
    Figure
        ``fig.crnfb`` holds the marked values.

    Notes
    -----
    One learned direction: magnitude of ``L`` and ``S`` (dB) and phase of
    ``L`` (degrees). Several: singular values of ``L`` and the largest of
    ``S``, and ``|G_ae| / |G_ae,frozen|`` (the bandwidth's definition).
    """
    w = fr.omega
    wc = _num(margins, "crossover_frequency")
    pm = _num(margins, "phase_margin_deg")
    gm = _num(margins, "gain_margin")
    ec = _num(margins, "eps_crit")
    bw = _num(disturbance, "bandwidth")
    with _style():
        fig = _figure(6.6, 5.6)
        ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1.25, 1])
        if fr.siso:
            L = fr.L[:, 0, 0]
            S = fr.S[:, 0, 0]
            ax1.semilogx(w, _db(L), color=COLORS["L"], label="loop transfer  |L(jω)|")
            ax1.semilogx(w, _db(S), color=COLORS["S"], label="sensitivity  |S(jω)|")
            phase = np.degrees(np.unwrap(np.angle(L)))
            # put the low-frequency phase of an integrator loop near -90
            shift = 360.0 * np.round((phase[0] + 90.0) / 360.0)
            phase = phase - shift
            ax2.semilogx(w, phase, color=COLORS["L"], label="phase of L(jω)")
            ax2.axhline(-180.0, color=COLORS["mark"], lw=0.9, ls="--")
            ax2.set_ylabel("phase of L  (degrees)")
            lo = min(-200.0, float(np.min(phase)) - 10)
            hi = max(-60.0, float(np.max(phase)) + 10)
            ax2.set_ylim(lo, hi)
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
                fig.crnfb.update(crossover_frequency=wc, phase_at_crossover_deg=ph_c)
            w180 = _num(margins, "crossing_frequency_frequency_domain") or _num(margins, "crossing_frequency")
            if gm is not None and w180 is not None and w[0] <= w180 <= w[-1]:
                # gain margin: how far |L| is below 0 dB where the phase reaches -180 degrees
                mag180 = float(np.interp(np.log(w180), np.log(w), _db(L)))
                ax1.annotate("", xy=(w180, 0.0), xytext=(w180, mag180),
                             arrowprops=dict(arrowstyle="<->", color=COLORS["G"], lw=1.4))
                ax1.annotate(f"gain margin {gm:.3g}\n({20 * np.log10(gm):.1f} dB)", (w180, mag180),
                             xytext=(10, -6), textcoords="offset points", fontsize=8.5, color=COLORS["G"],
                             va="top", bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
                ax2.axvline(w180, color=COLORS["G"], lw=0.9, ls=":")
                fig.crnfb.update(phase_crossover_frequency=w180, magnitude_at_phase_crossover_db=mag180)
            ax2.legend(loc="lower left")
        else:
            sv = np.linalg.svd(fr.L, compute_uv=False)
            ss = np.linalg.svd(fr.S, compute_uv=False)
            ax1.semilogx(w, _db(sv[:, 0]), color=COLORS["L"], label="σ_max of L(jω)")
            ax1.semilogx(w, _db(sv[:, -1]), color=COLORS["L"], ls="--", label="σ_min of L(jω)")
            ax1.semilogx(w, _db(ss[:, 0]), color=COLORS["S"], label="σ_max of S(jω)")
            if fr.G_ae is not None and fr.G_frozen is not None:
                ratio = np.linalg.norm(fr.G_ae, axis=1) / np.maximum(np.linalg.norm(fr.G_frozen, axis=1), 1e-300)
                ax2.semilogx(w, _db(ratio), color=COLORS["G"], label="|G_ae(jω)| / |G_ae,frozen(jω)|")
                ax2.set_ylabel("magnitude  (dB)")
                ax2.legend(loc="lower right")
            ax2.set_title("environment → error, relative to frozen learning", fontsize=9.5)
        ax1.axhline(0.0, color=COLORS["mark"], lw=0.9)
        if bw is not None:
            target = ax1 if fr.siso else ax2
            target.axhline(-3.0103, color=COLORS["G"], lw=0.9, ls="--")
            target.axvline(bw, color=COLORS["G"], lw=0.9, ls="--")
            target.annotate(f"bandwidth {bw:.3g}  (−3 dB)", (bw, -3.0103), xytext=(-6, -14),
                            textcoords="offset points", fontsize=8.5, color=COLORS["G"], ha="right")
            fig.crnfb["bandwidth"] = bw
        ax1.set_ylabel("magnitude  (dB)")
        mags = _db(fr.L[:, 0, 0]) if fr.siso else _db(np.linalg.svd(fr.L, compute_uv=False)[:, 0])
        ax1.set_ylim(max(float(np.min(mags)), -120.0) - 5, min(float(np.max(mags)), 120.0) + 5)
        ax1.legend(loc="lower left")
        ax2.set_xlabel(W_UNIT)
        ax2.set_xlim(w[0], w[-1])
        txt = [f"gain margin {_fmt(gm)}", f"ε_crit {_fmt(ec)}"]
        if pm is not None:
            txt.insert(1, f"phase margin {pm:.1f}°")
        elif isinstance(margins, dict) and margins.get("phase_margin_deg_reason") and fr.siso:
            txt.insert(1, "phase margin n/a")
        ax1.text(0.99, 0.97, "\n".join(txt), transform=ax1.transAxes, ha="right", va="top", fontsize=8.5,
                 bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="#ced4da"))
        fig.suptitle("Bode plot of the learning loop (broken at θ)")
        fig.crnfb.update(phase_margin_deg=pm, gain_margin=gm, eps_crit=ec)
    return fig


def nyquist(fr, margins: dict | None = None):
    """Nyquist plot of ``L(jω)`` (characteristic loci when several directions are learned).

    The critical point ``-1``, the unit circle and the reported crossover
    (where the phase margin is read) are marked.
    """
    wc = _num(margins, "crossover_frequency")
    pm = _num(margins, "phase_margin_deg")
    with _style():
        fig = _figure(5.8, 5.4)
        ax = fig.add_subplot()
        if fr.siso:
            loci = [fr.L[:, 0, 0]]
        else:
            ev = np.linalg.eigvals(fr.L)
            ev = ev[:, np.argsort(-np.abs(ev[0]))]
            loci = [ev[:, j] for j in range(ev.shape[1])]
        R = 3.0
        palette = [COLORS["L"], "#e8590c", "#2b8a3e", "#862e9c", "#c2255c", "#1098ad", "#5c940d", "#495057"]
        for j, Lw in enumerate(loci):
            col = palette[j % len(palette)]
            inside = np.abs(Lw) < 50 * R
            lab = "L(jω), ω > 0" if fr.siso else f"locus {j + 1}, ω > 0"
            ax.plot(Lw.real[inside], Lw.imag[inside], color=col, label=lab)
            ax.plot(Lw.real[inside], -Lw.imag[inside], color=col, ls="--", lw=1.0,
                    alpha=0.7, label="ω < 0 (mirror, dashed)" if j == 0 else None)
            # direction arrow at mid-curve
            idx = np.nonzero(np.abs(Lw) < R)[0]
            if idx.size > 10:
                i = idx[idx.size // 3]
                ax.annotate("", xy=(Lw[i + 1].real, Lw[i + 1].imag), xytext=(Lw[i].real, Lw[i].imag),
                            arrowprops=dict(arrowstyle="-|>", color=col, lw=1.2))
        t = np.linspace(0, 2 * np.pi, 400)
        ax.plot(np.cos(t), np.sin(t), color=COLORS["mark"], lw=0.8, ls=":", label="unit circle")
        ax.plot([-1], [0], "+", color=COLORS["S"], ms=12, mew=2, label="critical point −1")
        if fr.siso and wc is not None:
            L = fr.L[:, 0, 0]
            re = np.interp(np.log(wc), np.log(fr.omega), L.real)
            im = np.interp(np.log(wc), np.log(fr.omega), L.imag)
            ax.plot([re], [im], "o", color=COLORS["S"], ms=6, zorder=5,
                    label=f"crossover ω_c = {wc:.3g}" + (f", PM {pm:.1f}°" if pm is not None else ""))
            fig.crnfb.update(crossover_point=(float(re), float(im)), crossover_frequency=wc)
        ax.axhline(0, color="k", lw=0.6)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlim(-R, R * 0.6)
        ax.set_ylim(-R, R)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("Re L(jω)")
        ax.set_ylabel("Im L(jω)")
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title("Nyquist plot of the loop transfer (zoom on −1)")
        fig.crnfb["phase_margin_deg"] = pm
    return fig


def step(sr, metrics: dict | None = None):
    """Response of theta along ``dtheta*/da`` to a unit step in the environment weight.

    Parameters
    ----------
    sr : crnfb.analysis.results.StepResponse
    metrics : dict
        ``report.json["disturbance"]["step"]``: the rise time, settling time
        and overshoot marked are these values.
    """
    rise = _num(metrics, "rise_time")
    settle = _num(metrics, "settling_time")
    over = _num(metrics, "overshoot_pct")
    with _style():
        fig = _figure(6.6, 4.4)
        ax = fig.add_subplot()
        final = float(sr.y[-1]) if sr.y.size else 1.0
        ax.axhspan(final * 0.98, final * 1.02, color=COLORS["G"], alpha=0.12, lw=0, label="±2 % of final value")
        ax.axhline(1.0, color=COLORS["mark"], lw=0.9, ls="--", label="new fixed point (perfect adaptation)")
        ax.plot(sr.t, sr.y, color=COLORS["lin"], label="linearised loop")
        if sr.t_nonlinear is not None and sr.y_nonlinear is not None:
            ax.plot(sr.t_nonlinear, sr.y_nonlinear, color=COLORS["nl"], ls="none", marker="o", ms=3.0,
                    alpha=0.8, label="nonlinear simulation" + (
                        f" (step a = {sr.amplitude:g}, rescaled)" if getattr(sr, "amplitude", None) else ""))
        if rise is not None:
            # the rise time is a duration: draw it as the bracket from the 10 % crossing
            above = np.nonzero(sr.y >= 0.1 * final)[0]
            t10 = float(np.interp(0.1 * final, sr.y[max(above[0] - 1, 0):above[0] + 1],
                                  sr.t[max(above[0] - 1, 0):above[0] + 1])) if above.size else 0.0
            ax.annotate("", xy=(t10 + rise, 0.5 * final), xytext=(t10, 0.5 * final),
                        arrowprops=dict(arrowstyle="|-|", color=COLORS["mark"], lw=1.1, mutation_scale=4))
            ax.text(t10 + rise + 0.01 * (sr.t[-1] - sr.t[0]), 0.5 * final, f"rise time (10–90 %) {rise:.3g}",
                    fontsize=8.5, va="center", color=COLORS["mark"])
            fig.crnfb["rise_bracket"] = (t10, t10 + rise)
        if settle is not None:
            ax.axvline(settle, color=COLORS["G"], lw=0.9, ls=":")
            ax.annotate(f"settling time (2 %) {settle:.3g}", (settle, 0.2 * final), xytext=(5, 0),
                        textcoords="offset points", fontsize=8.5, color=COLORS["G"])
        if over is not None:
            ax.text(0.99, 0.30, f"overshoot {over:.3g} %", transform=ax.transAxes, ha="right", fontsize=9)
        ax.set_xlim(sr.t[0], sr.t[-1])
        ax.set_xlabel(T_UNIT)
        ax.set_ylabel("θ along dθ/da, normalised  (1 = new fixed point)")
        ax.legend(loc="lower right")
        ax.set_title("Response to a step in the environment  (Q → Q + a (Q₂ − Q₁))")
        fig.crnfb.update(rise_time=rise, settling_time=settle, overshoot_pct=over, final_value=final,
                         t=sr.t, y=sr.y)
    return fig


def poles(stab, names: list | None = None):
    """Pole map: closed-loop eigenvalues, quasi-static rates ``-eig(E H)``, removed modes.

    The real axis is symmetric-logarithmic so that slow and fast modes are
    both visible; the right half plane (instability) is shaded.
    """
    ev = np.asarray(stab.eigenvalues)
    qs = -np.asarray(stab.quasi_static_rates, float)
    flat = np.asarray(stab.flat_modes)
    removed = dict(stab.removed)
    with _style():
        fig = _figure(6.6, 4.6)
        ax = fig.add_subplot()
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
        ax.plot(ev.real[stable], ev.imag[stable], "x", color=COLORS["cl"], ms=7, mew=1.6,
                label=f"closed-loop eigenvalues ({ev.size})")
        if (~stable).any():
            ax.plot(ev.real[~stable], ev.imag[~stable], "x", color=COLORS["S"], ms=9, mew=2.2,
                    label=f"unstable eigenvalues ({int((~stable).sum())})")
        if qs.size:
            ax.plot(qs, np.zeros_like(qs), "o", mfc="none", mec=COLORS["qs"], ms=10, mew=1.6,
                    label="quasi-static rates  −eig(E H)")
        if flat.size:
            ax.plot(flat.real, flat.imag, "s", mfc="none", mec=COLORS["flat"], ms=8,
                    label=f"flat modes removed ({flat.size})")
        struct = np.asarray(getattr(stab, "structural_modes", np.zeros(0)))
        if struct.size:
            ax.plot(struct.real, struct.imag, "D", mfc="none", mec=COLORS["flat"], ms=8,
                    label=f"structural modes removed: {removed.get('normalisation', 0)} normalisation, "
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
        ax.set_xlabel("Re s  (rate per time unit)" + ("  [symmetric log]" if span > 50 else ""))
        ax.set_ylabel("Im s  (rad per time unit)")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title("Pole map of the learning loop" + ("  —  STABLE" if stab.stable else "  —  UNSTABLE"))
        fig.crnfb.update(eigenvalues=ev, quasi_static=qs, stable=bool(stab.stable))
    return fig


def learning(traj):
    """A learning episode: ``theta(t)`` (top) and ``D(t)`` above its minimum (bottom, log)."""
    many = len(traj.names) > 6
    with _style():
        fig = _figure(8.2 if many else 6.6, 5.4)
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        th = np.asarray(traj.theta)
        target = getattr(traj, "theta_end", None)
        target = traj.theta_star if target is None else target
        import matplotlib as mpl
        cmap = mpl.colormaps["tab20" if len(traj.names) > 10 else "tab10"]
        for j, n in enumerate(traj.names):
            line, = ax1.plot(traj.t, th[:, j], label=f"θ_{n}", color=cmap(j % cmap.N))
            if target is not None:
                ax1.axhline(target[j], color=line.get_color(), ls="--", lw=0.9)
        if target is not None:
            ax1.plot([], [], color=COLORS["mark"], ls="--", lw=0.9, label=getattr(traj, "target_label", "optimum θ*"))
        ax1.set_ylabel("θ = −G/kT  (dimensionless)")
        if many:
            ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, borderaxespad=0)
        else:
            ax1.legend(loc="best")
        Dmin = traj.D_star if traj.D_star is not None else float(np.min(traj.D))
        Dmin = 0.0 if abs(Dmin) < 1e-12 else Dmin
        exc = np.maximum(np.asarray(traj.D) - Dmin, 1e-16)
        ax2.semilogy(traj.t, exc, color=COLORS["S"], label=f"D(t) − D*   (D* = {Dmin:.4g} nats, the optimum)")
        bias = getattr(traj, "bias", None)
        if bias is not None and bias > 1e-9:
            ax2.axhline(bias, color=COLORS["mark"], ls="--", lw=0.9,
                        label=f"bias of the loop's fixed point  {bias:.3g} nats")
        ax2.set_ylabel("excess divergence  (nats)")
        ax2.set_xlabel(T_UNIT)
        ax2.set_xlim(traj.t[0], traj.t[-1])
        ax2.legend(loc="upper right")
        fig.suptitle(f"Learning from the file's energies  ({traj.source})", fontsize=10.5)
        fig.crnfb.update(t=traj.t, D=traj.D, theta=th)
    return fig


def _visible_window(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    m = np.maximum(p, q)
    keep = m > 1e-4 * m.max()
    return float(x[keep].min()) - 0.8, float(x[keep].max()) + 0.8


def distribution(dist):
    """Learned ``P(v)`` at the fixed point against the environment ``Q(v)``.

    One visible species: bars of ``Q`` and markers of ``P``. Several: the
    marginal of each species, and for two a heatmap of the joint ``P`` with
    ``Q``'s contours.
    """
    S = np.asarray(dist.states)
    P, Q = np.asarray(dist.P), np.asarray(dist.Q)
    nv = S.shape[1]
    with _style():
        if nv == 1:
            fig = _figure(6.6, 4.2)
            axes = [fig.add_subplot()]
        elif nv == 2:
            fig = _figure(10.5, 3.8)
            axes = list(fig.subplots(1, 3))
        else:
            fig = _figure(3.6 * min(nv, 4), 3.8)
            axes = list(fig.subplots(1, min(nv, 4)))
        tv = 0.5 * float(np.abs(P - Q).sum())
        for j in range(min(nv, 4)):
            ax = axes[j]
            x = np.arange(S[:, j].min(), S[:, j].max() + 1)
            pm = np.array([P[S[:, j] == v].sum() for v in x])
            qm = np.array([Q[S[:, j] == v].sum() for v in x])
            ax.bar(x, qm, width=0.8, color=COLORS["Q"], label="environment Q")
            ax.plot(x, pm, "o-", color=COLORS["P"], ms=4, lw=1.2, label="learned P")
            ax.set_xlim(*_visible_window(pm, qm, x))
            ax.set_xlabel(f"copy number of {dist.names[j]}")
            ax.set_ylabel("probability" if nv == 1 else f"marginal of {dist.names[j]}")
            ax.set_ylim(0, max(pm.max(), qm.max()) * 1.22)
            if j == 0:
                ax.legend(loc="upper left" if nv > 1 else "upper right", ncol=2 if nv > 1 else 1)
        if nv == 2:
            ax = axes[2]
            x0 = np.arange(S[:, 0].min(), S[:, 0].max() + 1)
            x1 = np.arange(S[:, 1].min(), S[:, 1].max() + 1)
            grid_p = np.full((x1.size, x0.size), np.nan)
            grid_q = np.zeros((x1.size, x0.size))
            grid_p[S[:, 1] - x1[0], S[:, 0] - x0[0]] = P
            grid_q[S[:, 1] - x1[0], S[:, 0] - x0[0]] = Q
            im = ax.imshow(grid_p, origin="lower", aspect="auto", cmap="viridis",
                           extent=(x0[0] - 0.5, x0[-1] + 0.5, x1[0] - 0.5, x1[-1] + 0.5))
            if grid_q.max() > 0:
                ax.contour(x0, x1, grid_q, levels=np.linspace(0.1, 0.9, 4) * grid_q.max(), colors="white",
                           linewidths=0.9)
            fig.colorbar(im, ax=ax, label="learned P")
            ax.set_xlim(*_visible_window(P.sum() * 0 + np.nansum(grid_p, 0), grid_q.sum(0), x0))
            ax.set_ylim(*_visible_window(np.nansum(grid_p, 1), grid_q.sum(1), x1))
            ax.set_xlabel(f"copy number of {dist.names[0]}")
            ax.set_ylabel(f"copy number of {dist.names[1]}")
            ax.set_title("joint P (colour), Q (white contours)", fontsize=9.5)
            ax.grid(False)
        fig.suptitle(f"Learned law at the fixed point against the environment  (total variation {tv:.3g})",
                     fontsize=10.5)
        fig.crnfb.update(total_variation=tv)
    return fig


def lag_cost(disturbance: dict | None):
    """Period-mean excess divergence per ``a1^2`` against the frequency of a sinusoidal environment.

    Parameters
    ----------
    disturbance : dict
        ``report.json["disturbance"]`` (uses ``lag_cost`` and ``bandwidth``).
    """
    data = disturbance.get("lag_cost") if isinstance(disturbance, dict) else None
    if not data:
        reason = (disturbance or {}).get("lag_cost_reason", "no lag cost in the report")
        return placeholder("Lag cost of tracking a changing environment", reason)
    arr = np.array([[np.nan if v is None else v for v in row] for row in data], float)
    w, c = arr[:, 0], arr[:, 1]
    ok = np.isfinite(w) & np.isfinite(c) & (c > 0) & (w > 0)
    bw = _num(disturbance, "bandwidth")
    with _style():
        fig = _figure(6.6, 4.2)
        ax = fig.add_subplot()
        ax.loglog(w[ok], c[ok], color=COLORS["S"], marker="o" if ok.sum() < 40 else None, ms=3.5)
        if bw is not None:
            ax.axvline(bw, color=COLORS["G"], ls="--", lw=0.9, label=f"bandwidth {bw:.3g}")
            ax.legend(loc="lower right")
        ax.set_xlabel(W_UNIT)
        ax.set_ylabel("excess divergence per a₁²  (nats)")
        ax.set_title("Lag cost:  a(t) = a₀ + a₁ sin(ωt),  period-mean D − min D")
        fig.crnfb.update(omega=w, lag_cost=c)
    return fig


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
            ax.set_title(c, fontsize=9)
            ax.set_xlabel(x)
            if others and len(groups) <= 8 and ax is axes[0]:
                ax.legend(fontsize=7)
        for ax in axes[len(cols):]:
            ax.axis("off")
        fig.suptitle(f"Sweep over {', '.join(params)}", fontsize=11)
    return fig


def save(fig, path, dpi: int = 150) -> None:
    """Write ``fig`` as PNG (Agg)."""
    fig.savefig(path, dpi=dpi, facecolor="white")


def png_bytes(fig, dpi: int = 150) -> bytes:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


__all__ = ["bode", "nyquist", "step", "poles", "learning", "distribution", "lag_cost", "sweep", "placeholder",
           "save", "png_bytes"]

