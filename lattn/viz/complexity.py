"""Figures of notebook 02 (the complexity lab): FLOPs and memory curves of full vs latent attention, measured times
against the formulas, and what M and the projections cost. Arrays and cost results in, figures out: the numbers come
from :mod:`lattn.complexity` (formulas) and, prepared by :mod:`lattn.bench.complexity` (e.g.
:func:`~lattn.bench.complexity.honest_data`), from measurements; this module never imports ``bench``. The controls
are :mod:`lattn.widgets.complexity`'s. The two explorer views update their artists in place.

Memory has one definition here, as in the whole course: the bytes an attention call must hold at its peak — q, k,
v, its output and, on a teaching path, its float32 maps (:attr:`lattn.complexity.Cost.peak_bytes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import LogLocator

from ..complexity import Shape, human_bytes, method_cost

__all__ = [
    "MEMORY_LABEL",
    "PATH_STEPS",
    "STYLE",
    "BenchView",
    "CostView",
    "FlopsPanel",
    "MemoryPanel",
    "cost_overview",
    "honest_figure",
    "log_axes",
    "paths_figure",
]

STYLE = {  # one look per method, in every figure of the notebook
    "full-sdpa": {"color": "0.15", "marker": "o", "label": "full, fused SDPA"},
    "full-explicit": {"color": "0.6", "marker": "s", "label": "full, explicit N×N"},
    "latent-fast": {"color": "#2a7ab0", "marker": "o", "label": "latent, fast path"},
    "latent-teaching": {"color": "#d98c5f", "marker": "s", "label": "latent, teaching path"},
}


MEMORY_LABEL = "bytes the attention call must hold:\nq, k, v, output (+ maps on teaching paths)"
PAD = 1.35  # the x axis reaches this factor beyond the first and last N, so markers there stay inside the axes


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


class FlopsPanel:
    """FLOPs of full and latent attention against N on one axes, with the crossover and the chosen N marked.
    ``update(state)`` redraws in place (state keys: see :class:`CostView`)."""

    def __init__(self, ax: Axes, ns: Sequence[int]) -> None:
        self.ax, self.ns = ax, np.asarray(ns)
        self.lines = {
            "full": ax.plot([], [], color=STYLE["full-sdpa"]["color"], label="full attention")[0],
            "latent": ax.plot([], [], color=STYLE["latent-fast"]["color"], label="latent attention")[0],
        }
        (self.dots,) = ax.plot([], [], "o", color="crimson", ms=6, zorder=3, label="the chosen N")
        self.cross = ax.axvline(1, color="0.4", ls="--", lw=1)
        self.cross_label = ax.text(1, 0.04, "", transform=ax.get_xaxis_transform(), fontsize=8)
        log_axes(ax, self.ns)
        ax.set_ylabel("FLOPs (2 per multiply-add)")
        ax.legend(fontsize=8, loc="lower right")

    def update(self, state: dict[str, Any], title: str | None = None) -> None:
        curves, n, ax = state["curves"], state["n"], self.ax
        for key, line in self.lines.items():
            line.set_data(self.ns, curves[key])
        self.dots.set_data([n, n], [state["full_flops"], state["latent_flops"]])
        x = state["crossover"]
        self.cross.set_xdata([x, x])
        self.cross_label.set_position((x * 1.15, 0.04))
        self.cross_label.set_text(f"crossover\nN = {x:,}")
        values = np.concatenate([curves["full"], curves["latent"]])
        ax.set_xlim(self.ns[0] / PAD, self.ns[-1] * PAD)
        ax.set_ylim(values.min() / 3, values.max() * 3)
        r = state["ratio"]
        winner = f"latent needs {r:,.1f}× fewer" if r >= 1 else f"full attention needs {1 / r:,.1f}× fewer"
        ax.set_title(title or f"{state['scope']}, M = {state['m']}, N = {n:,}:\n{winner} FLOPs", fontsize=10)


class MemoryPanel:
    """The bytes each method's attention call must hold at its peak (q, k, v, output, kept maps) against N, with the
    size of full attention's N×N weights at the chosen N. ``update(state)`` redraws in place (state keys: see
    :class:`CostView`)."""

    def __init__(self, ax: Axes, ns: Sequence[int]) -> None:
        self.ax, self.ns = ax, np.asarray(ns)
        dashes = {"full-sdpa": "--", "latent-fast": "-"}  # teaching paths dotted; SDPA dashed on top of latent
        self.lines = {
            k: ax.plot([], [], color=s["color"], ls=dashes.get(k, ":"), zorder=3 if k == "full-sdpa" else 2,
                       lw=1.8, label=s["label"])[0]
            for k, s in STYLE.items()
        }  # fmt: skip
        self.marker = ax.axvline(1, color="crimson", lw=1)
        self.nxn_text = ax.text(0.02, 0.97, "", transform=ax.transAxes, va="top", fontsize=8)
        log_axes(ax, self.ns)
        ax.set_ylabel(MEMORY_LABEL, fontsize=9)
        ax.legend(fontsize=8, loc="lower right")

    def update(self, state: dict[str, Any], title: str | None = None) -> None:
        curves, n, ax = state["curves"], state["n"], self.ax
        for key, line in self.lines.items():
            line.set_data(self.ns, curves[key])
        self.marker.set_xdata([n, n])
        self.nxn_text.set_text(f"at N = {n:,} (red line): full attention's\nN×N float32 weights = "
                               f"{human_bytes(state['nxn_bytes'])}")  # fmt: skip
        values = np.concatenate([curves[k] for k in STYLE])
        ax.set_xlim(self.ns[0] / PAD, self.ns[-1] * PAD)
        ax.set_ylim(values.min() / 3, values.max() * 3)
        ax.set_title(title or "memory an attention call must hold —\nonly the explicit N×N map grows like N²",
                     fontsize=10)  # fmt: skip


class CostView:
    """Two panels against N: FLOPs of full and latent attention (with the crossover and the chosen N marked) and
    the bytes each method must hold at its peak. ``update(state)`` redraws in place from a state with ``curves``
    ({"full", "latent", *STYLE}: values at ``ns``), ``n``, ``m``, ``full_flops``, ``latent_flops``, ``ratio``,
    ``crossover``, ``nxn_bytes`` and ``scope`` ("attention core" or "whole module")."""

    def __init__(self, fig: Figure, ns: Sequence[int]) -> None:
        ax_flops, ax_mem = fig.subplots(1, 2)
        self.flops, self.memory = FlopsPanel(ax_flops, ns), MemoryPanel(ax_mem, ns)

    def update(self, state: dict[str, Any]) -> None:
        self.flops.update(state)
        self.memory.update(state)


def cost_overview(flop_states: Sequence[dict[str, Any]], memory_state: dict[str, Any], ns: Sequence[int],
                  titles: Sequence[str] = ()) -> Figure:  # fmt: skip
    """Static figure: one FLOPs panel per state of ``flop_states`` and one memory panel for ``memory_state``
    (states as in :class:`CostView`), two per row; ``titles`` (one per panel, FLOPs panels first) replace the
    automatic titles. At most 7 FLOPs panels."""
    if not 1 <= len(flop_states) <= 7:
        raise ValueError(f"flop_states: expected 1 to 7 states, got {len(flop_states)}")
    count = len(flop_states) + 1
    rows = -(-count // 2)
    fig = Figure(figsize=(10.0, 3.6 * rows), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, 2)).ravel())
    titles = list(titles) + [None] * (count - len(titles))
    for ax, state, title in zip(axes, flop_states, titles):
        FlopsPanel(ax, ns).update(state, title)
    MemoryPanel(axes[len(flop_states)], ns).update(memory_state, titles[-1])
    for ax in axes[count:]:
        fig.delaxes(ax)
    return fig


class BenchView:
    """Measured time (or peak memory) of the four attention cores against N over the formula curves (left); right,
    for time: full-sdpa / latent-fast time against the FLOPs ratio N / 3M; for memory: the bytes the core creates
    (output, maps; q, k, v are views of its input), measured / formula, per method. ``update(state)`` redraws in place from a state with ``points`` and ``curves``
    ({method: (N values, values)}), ``held`` ({method: (N values, measured / formula bytes the core creates)},
    memory only), ``slopes``,
    ``speedup`` ({N: ratio}), ``ns``, ``m``, ``sizes``, ``threads``, ``source`` and ``y`` ("time" or
    "peak memory")."""

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.ax, self.ax_ratio = fig.subplots(1, 2, width_ratios=[1.35, 1])
        self.dots = {
            k: self.ax.plot([], [], ls="none", marker=s["marker"], color=s["color"])[0] for k, s in STYLE.items()
        }
        self.fits = {k: self.ax.plot([], [], ls="--", lw=1, color=s["color"])[0] for k, s in STYLE.items()}
        (self.ratio_dots,) = self.ax_ratio.plot([], [], "o-", color=STYLE["latent-fast"]["color"], label="measured")
        (self.ratio_formula,) = self.ax_ratio.plot([], [], "--", color="0.5", lw=1, label="FLOPs ratio N / (3M)")
        self.held = {
            k: self.ax_ratio.plot([], [], marker=s["marker"], color=s["color"], label=s["label"])[0]
            for k, s in STYLE.items()
        }
        self.one = self.ax_ratio.axhline(1, color="crimson", lw=1)

    def update(self, state: dict[str, Any]) -> None:
        time = state["y"] == "time"
        for method, line in self.dots.items():
            xs, ys = state["points"][method]
            line.set_data(xs, ys)
            slope = state["slopes"][method]
            fit = "" if not time or slope is None else f" (slope {slope:.2f})"
            line.set_label(STYLE[method]["label"] + fit)
            self.fits[method].set_data(*state["curves"][method])
        values = [v for xs, ys in state["points"].values() for v in ys]
        ns = state["ns"]
        for ax in (self.ax, self.ax_ratio):
            log_axes(ax, ns)
        self.ax.set_xlim(ns[0] / 1.5, ns[-1] * 1.5)
        self.ax.set_ylim(min(values) / 3, max(values) * 3)
        self.ax.set_ylabel("median time (s)" if time else "bytes the core creates at its peak\n(output, maps, scratch)",
                           fontsize=9 if not time else None)  # fmt: skip
        what = ("time: full attention climbs with slope ≈ 2, latent ≈ 1" if time else
                "created by each core (q, k, v are its inputs)")  # fmt: skip
        self.ax.set_title(what, fontsize=10)
        self.ax.legend(fontsize=8, loc="upper left")
        self.ratio_dots.set_visible(time)
        self.ratio_formula.set_visible(time)
        for line in self.held.values():
            line.set_visible(not time)
        if time:
            self._speedup(state)
        else:
            self._held(state)
        s = state["sizes"]
        self.fig.suptitle(
            f"attention cores, B={s['batch']}, H={s['heads']}, d_head={s['d_head']}, M={state['m']}, float32, "
            f"{state['threads']} threads — {state['source']}",
            fontsize=10,
        )

    def _speedup(self, state: dict[str, Any]) -> None:
        speed, ax = state["speedup"], self.ax_ratio
        xs = np.array(list(speed), dtype=float)
        self.ratio_dots.set_data(xs, list(speed.values()))
        self.ratio_formula.set_data(xs, xs / (3 * state["m"]))
        if len(xs):
            both = [*speed.values(), *(xs / (3 * state["m"]))]
            ax.set_xlim(xs.min() / 1.5, xs.max() * 1.5)
            ax.set_ylim(min(min(both), 1) / 2, max(both) * 2)
        ax.set_ylabel("full-sdpa time / latent-fast time")
        ax.set_title("speed-up: latent wins above the red line", fontsize=10)
        ax.legend(handles=[self.ratio_dots, self.ratio_formula], fontsize=8, loc="upper left")

    def _held(self, state: dict[str, Any]) -> None:
        ax, ratios = self.ax_ratio, []
        for method, line in self.held.items():
            xs, ys = state["held"][method]
            line.set_data(xs, ys)
            ratios.extend(ys)
        ns = state["ns"]
        ax.set_yscale("linear")
        ax.set_xlim(ns[0] / 1.5, ns[-1] * 1.5)
        ax.set_ylim(0, max([*ratios, 2.0]) * 1.15)
        ax.set_ylabel("created: measured / formula (red: 1)")
        ax.set_title(f"measured / formula (output + maps): up to {max(ratios, default=1):.1f}×", fontsize=10)
        ax.legend(handles=list(self.held.values()), fontsize=8, loc="lower center", ncols=2)  # below 1: empty


def honest_figure(
    m_sweep: dict[str, tuple[Sequence[int], Sequence[float]]],
    *,
    n: int | None,
    sdpa_seconds: float | None = None,
    m_slope: float | None = None,
    m_even: float | None = None,
    m_flops_even: float | None = None,
    ratios: dict[str, float] | None = None,
    ratio_n: int | None = None,
) -> Figure:
    """Two panels (the arguments are :func:`lattn.bench.complexity.honest_data`'s keys). Left, what M costs: the
    latent paths' time against M at N = ``n`` (``m_sweep`` {method: (M values, seconds)}), fused full attention's
    time at that N, and — dotted, labelled as such — the latent-fast trend (slope ``m_slope``) extrapolated to
    ``m_even``, where it would reach full attention's time, beside ``m_flops_even`` = N / 3, where the FLOPs are
    equal. Right: full / latent time of the attention cores and of the whole modules at N = ``ratio_n``."""
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    ax_m, ax_mod = fig.subplots(1, 2, width_ratios=[1.3, 1])
    for method, (ms, seconds) in m_sweep.items():
        s = STYLE[method]
        ax_m.plot(ms, seconds, marker=s["marker"], color=s["color"], label=s["label"] + " (measured)")
    all_ms = [m for ms, _ in m_sweep.values() for m in ms] or [1, 2]
    if sdpa_seconds is not None:
        ax_m.axhline(sdpa_seconds, color=STYLE["full-sdpa"]["color"], ls="--", lw=1, label="full, fused SDPA (any M)")
    if m_even is not None and "latent-fast" in m_sweep:
        ms, seconds = m_sweep["latent-fast"]
        ax_m.plot([ms[-1], m_even], [seconds[-1], sdpa_seconds], ls=":", lw=1.6, color=STYLE["latent-fast"]["color"],
                  label=f"latent-fast trend (slope {m_slope:.2f}), extrapolated")  # fmt: skip
        ax_m.plot([m_even], [sdpa_seconds], marker="X", ms=8, color=STYLE["latent-fast"]["color"], ls="none")
        ax_m.annotate(f"× as slow as fused full attention at M ≈ {m_even:,.0f} (extrapolated)", (m_even, sdpa_seconds),
                      xytext=(-6, 7), textcoords="offset points", ha="right", va="bottom", fontsize=8)  # fmt: skip
        all_ms.append(m_even)
    if m_flops_even is not None and m_even is not None:
        ax_m.axvline(m_flops_even, color="0.5", ls="-.", lw=1, label=f"equal FLOPs: M = N/3 = {m_flops_even:,.0f}")
        all_ms.append(m_flops_even)
    log_axes(ax_m, [min(all_ms), 2 ** np.ceil(np.log2(max(all_ms)))], xlabel="M latents")
    ax_m.set_xlim(min(all_ms) / PAD, max(all_ms) * PAD)
    times = [t for _, ts in m_sweep.values() for t in ts] + ([sdpa_seconds] if sdpa_seconds is not None else [])
    if times:
        ax_m.set_ylim(min(times) / 2, max(times) * 3)  # room above full attention's time for the annotation
    ax_m.set_ylabel("median time (s)")
    ax_m.set_title(f"what M costs at N = {n:,}: latent time grows with M" if n else "no M grid in this run",
                   fontsize=10)  # fmt: skip
    if ax_m.get_lines():
        ax_m.legend(fontsize=7.5, loc="lower right")
    if ratios:
        labels = ["attention cores", "whole modules\n(+ Linear projections)"]
        values = [ratios["attention cores"], ratios["whole modules"]]
        bars = ax_mod.bar(labels, values, color=[STYLE["latent-fast"]["color"], "0.6"], width=0.55)
        ax_mod.bar_label(bars, [f"{r:.1f}×" for r in values], fontsize=9)
        ax_mod.set_ylim(0, max(values) * 1.2)
        ax_mod.set_title(f"full / latent time at N = {ratio_n:,}:\nthe projections shrink the gain", fontsize=10)
    else:
        ax_mod.set_axis_off()
        ax_mod.set_title("no whole-module run", fontsize=10)
    return fig


PATH_STEPS = {  # what each path runs, in the learner's words (one line per step)
    "full-explicit": "scores QKᵀ (N×N) → softmax → weights·V:\nthree passes, each writes or reads all N×N numbers",
    "full-sdpa": "one fused kernel: takes K, V in tiles,\nkeeps a running softmax; no N×N in memory",
    "latent-teaching": "3 stages, each scores → softmax → weighted sum\nwith an N×M map (kept: the maps are returned)",
    "latent-fast": "3 stages of thin products (N×d_head)·(d_head×M);\nmaps streamed, never whole; softmax memory-bound",
}


def paths_figure(shape: Shape) -> Figure:
    """The memory each of the four paths' attention call must hold at its peak (q, k, v, output, maps), drawn to a
    linear scale of MiB, with what the path computes written beside it. Bytes from
    :func:`lattn.complexity.method_cost` (what must exist; eager PyTorch may hold somewhat more)."""
    fig = Figure(figsize=(11.0, 3.4), layout="constrained")
    ax, ax_text = fig.subplots(1, 2, width_ratios=[1.5, 1])
    colours = {"q": "#cfd8e3", "k": "#aebdd0", "v": "#8ea3bd", "output": "#6b8aa8", "weights": "#d55e00"}
    methods = list(PATH_STEPS)
    for row, method in enumerate(methods):
        c = method_cost(method, shape)
        left = 0.0
        parts = {**c.inputs, **c.tensors}
        for name, nbytes in parts.items():
            kind = name.split(": ")[-1].split(" ")[0]  # "q", "k", "v", "weights" or "output"
            ax.barh(row, nbytes / 2**20, left=left, color=colours[kind], edgecolor="white", lw=0.8, height=0.6)
            left += nbytes / 2**20
        ax.text(left, row, f" {human_bytes(sum(parts.values()))}", va="center", fontsize=8)
        ax_text.text(0, row, PATH_STEPS[method], va="center", fontsize=8.5)
    ax.set_yticks(range(len(methods)), [STYLE[m]["label"] for m in methods])
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)
    ax.set_xlabel("MiB the attention call must hold at its peak: q, k, v, output (+ maps) — linear scale")
    handles = [Patch(color=c, label="weights (float32 map)" if k == "weights" else k) for k, c in colours.items()]
    ax.legend(handles=handles, fontsize=8, loc="lower right", ncols=2)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"memory at the peak: N = {shape.seq_len:,}, M = {shape.num_latents}, {shape.heads} heads of "
                 f"{shape.d_head}, B = {shape.batch}, float32", fontsize=10)  # fmt: skip
    for a in (ax, ax_text):
        a.set_ylim(len(methods) - 0.5, -0.5)
    ax_text.set_xlim(0, 1)
    ax_text.set_axis_off()
    ax_text.set_title("what the path computes", fontsize=10)
    return fig
