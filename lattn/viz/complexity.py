"""Figures of notebook 02 (the complexity lab): FLOPs and memory curves of full vs latent attention, measured times
against the formulas, and what M and the projections cost. Arrays and benchmark rows in, figures out; the numbers
come from :mod:`lattn.complexity` and :mod:`lattn.bench.complexity`, the controls from
:mod:`lattn.widgets.complexity`. The two explorer views update their artists in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from ..bench.complexity.report import human_bytes, module_ratios, series, speedups

__all__ = ["STYLE", "BenchView", "CostView", "honest_figure", "log_axes"]

STYLE = {  # one look per method, in every figure of the notebook
    "full-sdpa": {"color": "0.15", "marker": "o", "label": "full, fused SDPA"},
    "full-explicit": {"color": "0.6", "marker": "s", "label": "full, explicit N×N"},
    "latent-fast": {"color": "#2a7ab0", "marker": "o", "label": "latent, fast path"},
    "latent-teaching": {"color": "#d98c5f", "marker": "s", "label": "latent, teaching path"},
}


def _tokens_label(n: float) -> str:
    n = round(n)
    return f"{n // 2**20}M" if n >= 2**20 else f"{n // 1024}K" if n >= 1024 else str(n)


def log_axes(ax: Axes, xs: Any, xlabel: str = "sequence length N") -> None:
    """Log-log axes with few ticks: N at powers of 4 (or 2 when few) in plain text, at most 6 powers of 10 on y,
    no minor ticks (laying out dozens of math tick labels made each render take seconds)."""
    lo, hi = max(float(np.min(xs)), 1.0), float(np.max(xs))
    ks = range(int(np.ceil(np.log2(lo))), int(np.floor(np.log2(hi))) + 1)
    ticks = [2**k for k in ks if len(ks) <= 8 or k % 2 == 0]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ticks, [_tokens_label(t) for t in ticks])
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.grid(True, which="major", alpha=0.3)


class CostView:
    """Two panels against N: FLOPs of full and latent attention (with the crossover and the chosen N marked) and
    the bytes each method must hold at its peak. ``update(state)`` redraws in place from a state with ``curves``
    ({"full", "latent", *STYLE}: values at ``ns``), ``n``, ``full_flops``, ``latent_flops``, ``ratio``,
    ``crossover``, ``nxn_bytes`` and ``scope`` ("attention core" or "whole module")."""

    def __init__(self, fig: Figure, ns: Sequence[int]) -> None:
        self.ns = np.asarray(ns)
        self.ax_flops, self.ax_mem = fig.subplots(1, 2)
        self.flop_lines = {
            "full": self.ax_flops.plot([], [], color=STYLE["full-sdpa"]["color"], label="full attention")[0],
            "latent": self.ax_flops.plot([], [], color=STYLE["latent-fast"]["color"], label="latent attention")[0],
        }
        (self.flop_dots,) = self.ax_flops.plot([], [], "o", color="crimson", ms=6, zorder=3)
        self.cross = self.ax_flops.axvline(1, color="0.4", ls="--", lw=1)
        self.cross_label = self.ax_flops.text(1, 0.04, "", transform=self.ax_flops.get_xaxis_transform(), fontsize=8)
        dashes = {"full-sdpa": "--", "latent-fast": "-"}  # teaching paths dotted; SDPA dashed on top of latent
        self.mem_lines = {
            k: self.ax_mem.plot([], [], color=s["color"], ls=dashes.get(k, ":"), zorder=3 if k == "full-sdpa" else 2,
                                label=s["label"])[0]
            for k, s in STYLE.items()
        }  # fmt: skip
        self.mem_marker = self.ax_mem.axvline(1, color="crimson", lw=1)
        self.nxn_text = self.ax_mem.text(0.02, 0.97, "", transform=self.ax_mem.transAxes, va="top", fontsize=8)
        for ax, ylabel in ((self.ax_flops, "FLOPs (2 per multiply-add)"), (self.ax_mem, "bytes that must exist")):
            log_axes(ax, self.ns)
            ax.set_ylabel(ylabel)
        self.ax_flops.legend(fontsize=8, loc="lower right")
        self.ax_mem.legend(fontsize=7, loc="lower right")

    def update(self, state: dict[str, Any]) -> None:
        curves, n, ns = state["curves"], state["n"], self.ns
        for key, line in self.flop_lines.items():
            line.set_data(ns, curves[key])
        self.flop_dots.set_data([n, n], [state["full_flops"], state["latent_flops"]])
        x = state["crossover"]
        self.cross.set_xdata([x, x])
        self.cross_label.set_position((x * 1.15, 0.04))
        self.cross_label.set_text(f"crossover\nN = {x:,}")
        for key, line in self.mem_lines.items():
            line.set_data(ns, curves[key])
        self.mem_marker.set_xdata([n, n])
        self.nxn_text.set_text(
            f"at N = {n:,}: full attention's N×N\nfloat32 weights = {human_bytes(state['nxn_bytes'])}"
        )
        for ax, keys in ((self.ax_flops, ("full", "latent")), (self.ax_mem, tuple(STYLE))):
            values = np.concatenate([curves[k] for k in keys])
            ax.set_xlim(ns[0], ns[-1])
            ax.set_ylim(values.min() / 3, values.max() * 3)
        r, scope = state["ratio"], state["scope"]
        winner = f"latent needs {r:,.1f}× fewer" if r >= 1 else f"full attention needs {1 / r:,.1f}× fewer"
        self.ax_flops.set_title(f"{scope} at N={n:,}: {winner} FLOPs", fontsize=10)
        self.ax_mem.set_title(f"{scope}: memory at the peak (B = 1, float32)", fontsize=10)


class BenchView:
    """Measured time (or peak memory) of the four attention cores against N over the formula curves (left), and
    full-sdpa / latent-fast time against the FLOPs ratio N / 3M (right). ``update(state)`` redraws in place from a
    state with ``points`` and ``curves`` ({method: (N values, values)}), ``slopes``, ``speedup`` ({N: ratio}),
    ``ns``, ``m``, ``sizes``, ``threads``, ``source`` and ``y`` ("time" or "peak memory")."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.ax, self.ax_ratio = fig.subplots(1, 2, width_ratios=[1.35, 1])
        self.dots = {
            k: self.ax.plot([], [], ls="none", marker=s["marker"], color=s["color"])[0] for k, s in STYLE.items()
        }
        self.fits = {k: self.ax.plot([], [], ls="--", lw=1, color=s["color"])[0] for k, s in STYLE.items()}
        (self.ratio_dots,) = self.ax_ratio.plot([], [], "o-", color=STYLE["latent-fast"]["color"], label="measured")
        (self.ratio_formula,) = self.ax_ratio.plot([], [], "--", color="0.5", lw=1, label="FLOPs ratio N / (3M)")
        self.ax_ratio.axhline(1, color="crimson", lw=1)
        self.ax_ratio.set_ylabel("full-sdpa time / latent-fast time")
        self.ax_ratio.set_title("latent wins above the red line", fontsize=10)
        self.ax_ratio.legend(fontsize=8, loc="upper left")

    def update(self, state: dict[str, Any]) -> None:
        for method, line in self.dots.items():
            xs, ys = state["points"][method]
            line.set_data(xs, ys)
            slope = state["slopes"][method]
            fit = "" if state["y"] != "time" or slope is None else f" (slope {slope:.2f})"
            line.set_label(STYLE[method]["label"] + fit)
            self.fits[method].set_data(*state["curves"][method])
        values = [v for xs, ys in state["points"].values() for v in ys]
        ns = state["ns"]
        for ax in (self.ax, self.ax_ratio):
            log_axes(ax, ns)
        self.ax.set_xlim(ns[0] / 1.5, ns[-1] * 1.5)
        self.ax.set_ylim(min(values) / 3, max(values) * 3)
        self.ax.set_ylabel("median time (s)" if state["y"] == "time" else "peak bytes held (measured)")
        what = (
            "time: points measured, dashed = FLOPs / own FLOP/s" if state["y"] == "time" else "memory: dashed = formula"
        )
        self.ax.set_title(what, fontsize=10)
        self.ax.legend(fontsize=7, loc="upper left")
        speed = state["speedup"]
        xs = np.array(list(speed), dtype=float)
        self.ratio_dots.set_data(xs, list(speed.values()))
        self.ratio_formula.set_data(xs, xs / (3 * state["m"]))
        if len(xs):
            both = [*speed.values(), *(xs / (3 * state["m"]))]
            self.ax_ratio.set_xlim(xs.min() / 1.5, xs.max() * 1.5)
            self.ax_ratio.set_ylim(min(min(both), 1) / 2, max(both) * 2)
        s = state["sizes"]
        self.fig.suptitle(
            f"attention cores, B={s['batch']}, H={s['heads']}, d_head={s['dim_head']}, M={state['m']}, float32, "
            f"{state['threads']} threads — {state['source']}",
            fontsize=10,
        )


def honest_figure(rows: list[dict]) -> Figure:
    """Two panels from a benchmark run: what M costs (latent time and memory against M at one N, with fused full
    attention's time at that N when measured) and core vs whole-module speed-ups (the projections are shared), at
    the largest N where both were measured."""
    fig = Figure(figsize=(10.0, 3.4), layout="constrained")
    ax_m, ax_mod = fig.subplots(1, 2, width_ratios=[1.3, 1])
    mgrid = [r for r in rows if r["section"] == "m-grid" and r["seconds"] is not None]
    n = mgrid[0]["n"] if mgrid else None
    for method in ("latent-fast", "latent-teaching"):
        ms, seconds = series(rows, method, section="m-grid")
        if ms:
            s = STYLE[method]
            ax_m.plot(ms, seconds, marker=s["marker"], color=s["color"], label=s["label"])
    sdpa = dict(zip(*series(rows, "full-sdpa")))
    if n in sdpa:
        ax_m.axhline(sdpa[n], color=STYLE["full-sdpa"]["color"], ls="--", lw=1, label="full, fused SDPA (any M)")
    log_axes(ax_m, [r["m"] for r in mgrid] or [1, 2], xlabel="M latents")
    ax_m.set_ylabel("median time (s)")
    ax_m.set_title(f"what M costs at N = {n:,}" if n else "no M grid in this run", fontsize=10)
    if ax_m.get_lines():
        ax_m.legend(fontsize=8)
    cores, modules = speedups(rows), module_ratios(rows)
    both = [nm for nm in modules if nm in cores]
    if both:
        nm = max(both)
        labels = ["attention cores", "whole modules\n(+ Linear projections)"]
        ratios = [cores[nm], modules[nm]["time"]]
        bars = ax_mod.bar(labels, ratios, color=[STYLE["latent-fast"]["color"], "0.6"], width=0.55)
        ax_mod.bar_label(bars, [f"{r:.1f}×" for r in ratios], fontsize=9)
        ax_mod.set_ylim(0, max(ratios) * 1.2)
        ax_mod.set_title(f"full / latent time at N = {nm:,}", fontsize=10)
    else:
        ax_mod.set_axis_off()
        ax_mod.set_title("no whole-module run", fontsize=10)
    return fig
