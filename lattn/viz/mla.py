"""Figures of notebook 05 (DeepSeek MLA): the KV cache of each layout against a memory budget, absorption as matrix
shapes, the dataflow of a layer, YaRN's frequencies, and the measured speed of MLA's three modes. Drawing only, from
plain data (the numbers come from :mod:`lattn.mla` and :mod:`lattn.bench.mla`, which this module does not import);
the explorers of :mod:`lattn.widgets.mla` update the views in place.

* :class:`KVCacheView` — one horizontal bar per cache layout (GB), hatched when it does not fit the budget line.
* :class:`DecodeBenchView` — decode speed per mode (with absorbed / naive per context along the bottom) | the cache
  read per step, per layout.
* :func:`modes_figure` — ms per call of each mode, prefill | decode, medians with the range of the rounds.
* :func:`absorption_shapes_figure` — one head's scores two ways, drawn with :mod:`lattn.viz.shapes`.
* :func:`dataflow_figure` — MLA's dataflow for one token, naive | absorbed, with a box around what is cached.
* :func:`yarn_figure` — RoPE wavelength per rotary pair (0 = fastest), plain and with YaRN, against the two context
  lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from .shapes import Box, shapes_figure

if TYPE_CHECKING:
    from ..mla import MLAConfig

__all__ = [
    "COLORS",
    "DecodeBenchView",
    "KVCacheView",
    "absorption_shapes_figure",
    "dataflow_figure",
    "fmt_gb",
    "modes_figure",
    "yarn_figure",
]

COLORS = {"MHA": "0.55", "GQA": "0.55", "MQA": "0.55", "MLA naive": "#d98c5f", "MLA": "#2a7ab0"}
MODE_STYLE = {
    "naive": {"color": COLORS["MLA naive"], "marker": "s"},
    "absorbed": {"color": COLORS["MLA"], "marker": "o"},
    "auto": {"color": "0.1", "marker": "x", "ls": "--", "ms": 7},
}
LAYOUT_LABEL = {"naive": "per-head K, V (naive)", "absorbed": "latent [c_KV; k_R] (absorbed, auto)"}


def fmt_gb(gb: float) -> str:
    """A size in GB as printed on the bars: ``1,234 GB`` from 100 GB up, else 3 significant digits (``0.127 GB``)."""
    return f"{gb:,.0f} GB" if gb >= 100 else f"{gb:.3g} GB"


class KVCacheView:
    """Bars of KV-cache GB per layout in ``kinds`` (top to bottom) against a dashed budget line, drawn once into
    ``fig`` and updated in place.

    ``update(state)`` with ``gb`` {kind: GB}, ``fits`` {kind: bool}, ``per_token`` {kind: elements per token per
    layer}, ``groups`` (GQA's), ``budget`` (GB), ``log`` (log x axis), and for the title ``preset``,
    ``context_label``, ``batch``, ``layers``, ``bits``.
    """

    def __init__(self, fig: Figure, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self.ax = ax = fig.add_subplot()
        y = np.arange(len(self.kinds))
        self.bars = ax.barh(y, np.ones(len(self.kinds)), color=[COLORS[k] for k in self.kinds], height=0.62)
        ax.set_yticks(y, self.kinds)
        ax.invert_yaxis()
        ax.set_xlabel("KV cache (GB, 1 GB = 10⁹ bytes)")
        self.labels = [  # value at the end of each bar, on white so that the budget line never runs through it
            ax.text(0, i, "", va="center", fontsize=9, zorder=4, bbox={"fc": "white", "ec": "none", "pad": 1.5})
            for i in y
        ]
        ax.set_ylim(len(self.kinds) - 0.5, -1.0)  # room above the first bar for the budget's label
        self.budget_line = ax.axvline(1, color="crimson", ls="--", lw=1.5)
        self.budget_text = ax.text(1, -0.75, "", color="crimson", fontsize=9, ha="left", va="center")

    def update(self, state: dict[str, Any]) -> None:
        ax, gb, budget = self.ax, state["gb"], state["budget"]
        values = np.array([gb[k] for k in self.kinds])
        top = max(values.max(), budget)
        if state["log"]:
            ax.set_xscale("log")
            ax.set_xlim(max(values.min(), 1e-6) / 3, top * 30)
        else:
            ax.set_xscale("linear")
            ax.set_xlim(0, top * 1.3)
        for i, (bar, label, kind, v) in enumerate(zip(self.bars, self.labels, self.kinds, values)):
            fits = state["fits"][kind]
            bar.set_width(v)
            bar.set_alpha(1.0 if fits else 0.45)
            bar.set_hatch("" if fits else "//")
            label.set_position((v * 1.15 if state["log"] else v + top * 0.01, i))
            label.set_text(f"{fmt_gb(v)} " + ("fits" if fits else "too big"))
        names = {"GQA": f"GQA, {state['groups']} groups", "MLA": "MLA (latent cache)"}
        ax.set_yticks(
            range(len(self.kinds)),
            [f"{names.get(k, k)}\n{state['per_token'][k]:,} / token / layer" for k in self.kinds],
        )
        self.budget_line.set_xdata([budget, budget])
        self.budget_text.set_position((budget, -0.75))
        self.budget_text.set_text(f" fits in {budget} GB")
        ax.set_title(
            f"{state['preset']}: {state['context_label']} tokens × batch {state['batch']}, {state['layers']} layers, "
            f"{state['bits']} bits per element",
            fontsize=10,
        )


class DecodeBenchView:
    """Decode speed of each mode against the cached tokens (log–log), the speed-up absorbed / naive under each
    context, and the cache of one layer per layout; drawn once into ``fig``, updated in place.

    ``update(state)`` with ``contexts`` (C,), ``series`` {mode: (C,) values of ``metric``} (modes among
    ``naive``, ``absorbed``, ``auto``), ``cache_bytes`` {mode: (C,)}, ``speedup`` {context: ×}, ``metric``
    ("tokens/s" or "ms per step"), ``config``, ``threads``, ``source``.
    """

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.ax_speed, self.ax_cache = fig.subplots(1, 2, width_ratios=[1.3, 1])
        self.lines = {m: self.ax_speed.plot([], [], label=m, **s)[0] for m, s in MODE_STYLE.items()}
        self.cache_lines = {m: self.ax_cache.plot([], [], label=t, **MODE_STYLE[m])[0] for m, t in LAYOUT_LABEL.items()}
        for ax in (self.ax_speed, self.ax_cache):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("cached tokens")
            ax.grid(True, which="major", alpha=0.3)
        self.ax_speed.legend(fontsize=8, loc="upper right", title="mode", title_fontsize=8)
        self.ax_cache.legend(fontsize=7, loc="upper left")
        self.ax_cache.set_ylabel("cache of one layer (MB)")
        self.ax_cache.set_title("memory read per decode step", fontsize=10)
        self.notes: list[Any] = []

    def update(self, state: dict[str, Any]) -> None:
        c = state["contexts"]
        cache_mb = {m: np.asarray(b) / 1e6 for m, b in state["cache_bytes"].items() if m in self.cache_lines}
        for m, line in self.lines.items():
            line.set_data(c, state["series"][m]) if m in state["series"] else line.set_data([], [])
        for m, line in self.cache_lines.items():
            line.set_data(c, cache_mb[m])
        for ax, data in ((self.ax_speed, state["series"]), (self.ax_cache, cache_mb)):
            values = np.concatenate(list(data.values()))
            ax.set_xlim(c.min() / 1.5, c.max() * 1.5)
            top = 8 if ax is self.ax_cache else 6  # room for the legend
            ax.set_ylim(values.min() / (6 if ax is self.ax_speed else 2), values.max() * top)
            ax.set_xticks(c, [f"{n // 1024}K" if n >= 1024 else str(n) for n in c])
            ax.minorticks_off()
        for note in self.notes:
            note.remove()
        self.notes = [  # the speed-up under each context, along the bottom of the axes
            self.ax_speed.text(
                x,
                0.04,
                f"{s:.1f}×",
                transform=self.ax_speed.get_xaxis_transform(),
                ha="center",
                fontsize=8,
                color=COLORS["MLA"] if s >= 1 else COLORS["MLA naive"],
            )
            for x, s in state["speedup"].items()
        ]
        self.ax_speed.set_ylabel(state["metric"])
        better = "higher" if state["metric"] == "tokens/s" else "lower"
        self.ax_speed.set_title(f"decode {state['metric']} ({better} is better); bottom: absorbed / naive", fontsize=10)
        self.fig.suptitle(f"{state['config']}, {state['threads']} threads — {state['source']}", fontsize=10)


def modes_figure(summary: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """Milliseconds per call of each MLA mode, prefill (left) and decode (right): one group of bars per token count,
    the median with a line over the range of the rounds. ``summary``: entries with ``phase``, ``context``, ``ms``
    {mode: ms} and ``range`` {mode: (min, max)} (as :func:`lattn.bench.mla.summary` returns them)."""
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, width_ratios=[1, 2])
    modes = ("naive", "absorbed", "auto")
    width = 0.26
    for ax, phase in zip(axes, ("prefill", "decode")):
        entries = [e for e in summary if e["phase"] == phase]
        x = np.arange(len(entries))
        for j, mode in enumerate(modes):
            ms = np.array([e["ms"][mode] for e in entries])
            lo, hi = (np.array([e["range"][mode][k] for e in entries]) for k in (0, 1))
            style = MODE_STYLE[mode]
            ax.bar(x + (j - 1) * width, ms, width, color=style["color"], alpha=0.85 if mode != "auto" else 0.55,
                   hatch="//" if mode == "auto" else "", edgecolor="0.2", lw=0.6, label=mode)  # fmt: skip
            ax.vlines(x + (j - 1) * width, lo, hi, color="0.1", lw=1.2)
        ax.set_xticks(x, [f"{e['context']:,}" for e in entries])
        ax.set_yscale("log")
        ax.set_xlabel("prompt tokens" if phase == "prefill" else "cached tokens")
        ax.set_ylabel("ms per call (lower is better)")
        what = "read a prompt" if phase == "prefill" else "one decode step"
        ax.set_title(f"{phase}: {what}", fontsize=10)
        ax.grid(True, axis="y", which="major", alpha=0.3)
    axes[0].legend(fontsize=8, title="mode", title_fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --- the dataflow of one MLA layer ------------------------------------------------------------------------------------
ROLE_COLORS = {"input": "0.85", "query": "#f3d9a4", "latent": "#a9cfe8", "rotary": "#c9e3b5", "kv": "#f0c2a8"}
Point = tuple[float, float]
# where an arrow leaves or meets a node, as a fraction of the node's text box (nodes are Text artists)
SIDE = {"left": (0.0, 0.5), "right": (1.0, 0.5), "top": (0.5, 1.0), "bottom": (0.5, 0.0)}


def _node(ax: Axes, xy: Point, text: str, role: str) -> Text:
    return ax.text(*xy, text, ha="center", va="center", fontsize=8, zorder=3,
                   bbox={"boxstyle": "round,pad=0.35", "fc": ROLE_COLORS[role], "ec": "0.3", "lw": 0.8})  # fmt: skip


def _arrow(ax: Axes, a: Text | Point, b: Text | Point, sides: str = "right left", label: str = "",
           at: Point | None = None, ha: str = "center", va: str = "bottom") -> None:  # fmt: skip
    """An arrow from a to b (nodes, met on the given sides, or data points) with an optional label drawn at ``at``
    (data coordinates, placed by hand so that it sits clear of every line and box)."""
    side_a, side_b = sides.split()
    ends = [(SIDE[s], n) if isinstance(n, Text) else (n, "data") for n, s in ((a, side_a), (b, side_b))]
    (xy_a, coords_a), (xy_b, coords_b) = ends
    ax.annotate("", xy=xy_b, xycoords=coords_b, xytext=xy_a, textcoords=coords_a, zorder=2,
                arrowprops={"arrowstyle": "-|>", "color": "0.35", "lw": 0.9, "shrinkA": 4, "shrinkB": 4})  # fmt: skip
    if label:
        ax.text(*at, label, ha=ha, va=va, fontsize=7, color="0.2", zorder=4)


def _cache_box(ax: Axes, x0: float, y0: float, x1: float, y1: float, text: str) -> None:
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.05", fc="none", ec="crimson",
                                lw=1.6, ls="--", zorder=1))  # fmt: skip
    ax.text((x0 + x1) / 2, y0 - 0.14, text, ha="center", va="top", fontsize=8, color="crimson")


def _draw_dataflow(ax: Axes, c: MLAConfig, mode: str) -> None:
    H, d_head, dc, dr = c.heads, c.d_head, c.d_c, c.d_rope
    h = _node(ax, (0.0, 0.0), f"h\n{c.dim}", "input")
    # the query side: the same in both modes
    q_c = _node(ax, (2.45, 2.05), f"q_C\n{H}×{d_head}", "query")
    q_r = _node(ax, (2.45, 0.95), f"q_R\n{H}×{dr}", "rotary")
    if c.d_cq:  # query compression: c_Q = RMSNorm(W_DQ h) (eq. 12)
        c_q = _node(ax, (0.95, 1.5), f"c_Q\n{c.d_cq}", "query")
        _arrow(ax, h, c_q, "top left", "W_DQ,\nnorm", (0.3, 1.15), ha="right")
        _arrow(ax, c_q, q_c, "right left", "W_UQ", (1.62, 1.98), ha="right")
        _arrow(ax, c_q, q_r, "right left", "W_QR, RoPE", (1.62, 1.05), ha="right", va="top")
    else:  # queries straight from the token
        _arrow(ax, h, q_c, "top left", "W_Q", (0.55, 1.05), ha="right")
        _arrow(ax, h, q_r, "top left", "W_QR, RoPE", (1.95, 1.02), ha="right")
    # the key/value side: what each mode computes and keeps per token
    box_x = (2.5, 3.5) if mode == "naive" else (1.3, 1.9)
    kv_x = 1.4 if mode == "naive" else 1.6
    c_kv = _node(ax, (kv_x, -0.45), f"c_KV\n{dc}", "latent")
    k_r = _node(ax, (kv_x, -1.95), f"k_R\n{dr}", "rotary")
    _arrow(ax, h, c_kv, "right left", "W_DKV, norm", (0.42, 0.1), ha="left")
    _arrow(ax, h, k_r, "bottom left", "W_KR, RoPE", (0.38, -1.05), ha="right")
    att_y = 0.55
    if mode == "naive":  # every token's keys and values re-created per head and cached
        k_c = _node(ax, (3.0, -0.15), f"k_C\n{H}×{d_head}", "kv")
        v_c = _node(ax, (3.0, -1.05), f"v_C\n{H}×{d_head}", "kv")
        k_rh = _node(ax, (3.0, -1.95), f"k_R ×{H}\n{H}×{dr}", "rotary")
        _arrow(ax, c_kv, k_c, "right left", "W_UK", (2.05, -0.2), ha="center")
        _arrow(ax, c_kv, v_c, "right left", "W_UV", (2.15, -0.9), ha="center", va="top")
        _arrow(ax, k_r, k_rh, "right left", "copy to\nall heads", (2.02, -1.86), ha="center", va="bottom")
        n = c.kv_elements_per_token("MLA naive")
        _cache_box(ax, box_x[0], -2.3, box_x[1], 0.2, f"cached per token: {H}·(2·{d_head} + {dr}) = {n:,}")
        att = _node(ax, (4.5, att_y), f"attention\nper head\nscores {d_head}+{dr}", "input")
        _arrow(ax, q_c, att, "right top")
        reads_at, reads_va = (4.15, -0.75), "center"
    else:  # W_UK folded into the query, W_UV applied after attention: the cache holds [c_KV; k_R]
        q_lat = _node(ax, (3.85, 2.05), f"q_lat\n{H}×{dc}", "latent")
        _arrow(ax, q_c, q_lat, "right left", "× W_UK", (3.15, 2.12), ha="center")
        n = c.kv_elements_per_token("MLA")
        _cache_box(ax, box_x[0], -2.3, box_x[1], 0.0, f"cached per token: {dc} + {dr} = {n:,}")
        att = _node(ax, (4.5, att_y), f"attention\nshared key {dc}+{dr}\nvalue {dc}", "input")
        _arrow(ax, q_lat, att, "bottom top")
        reads_at, reads_va = (2.6, -0.75), "top"
    _arrow(ax, q_r, att, "right left")
    _arrow(ax, (box_x[1] + 0.05, -0.75), att, "right bottom", "all cached\ntokens", reads_at, ha="left", va=reads_va)
    if mode == "naive":
        out = _node(ax, (5.95, att_y), f"out\n{c.dim}", "input")
        _arrow(ax, att, out, "right left", "W_O", (5.38, att_y + 0.08), ha="center")
    else:  # the attention averages the cached c_KV; W_UV maps the average back to each head's value space
        o_lat = _node(ax, (4.5, -1.2), f"o_lat\n{H}×{dc}", "latent")
        _arrow(ax, att, o_lat, "bottom top")
        out = _node(ax, (5.95, -1.2), f"out\n{c.dim}", "input")
        _arrow(ax, o_lat, out, "right left", "W_UV\nthen W_O", (5.33, -1.12), ha="center")
    ax.set_xlim(-0.45, 6.35)
    ax.set_ylim(-2.85, 2.5)
    ax.set_axis_off()


def dataflow_figure(config: MLAConfig) -> Figure:
    """One token through an MLA layer with ``config``'s sizes: left naive (keys and values re-created and cached per
    head), right absorbed (only c_KV and k_R cached; W_UK moves to the query, W_UV after attention). Dashed box:
    what each mode keeps per token and layer."""
    fig = Figure(figsize=(11.5, 4.4), layout="constrained")
    for ax, mode, title in zip(
        fig.subplots(1, 2),
        ("naive", "absorbed"),
        ("naive: re-create k_C, v_C and cache them", "absorbed: cache [c_KV; k_R], move W_UK and W_UV"),
    ):
        _draw_dataflow(ax, config, mode)
        ax.set_title(title, fontsize=10)
    fig.suptitle(
        f"MLA dataflow for one token — {config.name} sizes (mode auto caches as on the right, reads a prompt "
        "as on the left)",
        fontsize=11,
    )
    return fig


# --- YaRN ---------------------------------------------------------------------------------------------------------------
def yarn_figure(config: MLAConfig) -> Figure:
    """Wavelength 2π / frequency (positions per full turn) of each rotary pair of ``config``, plain RoPE and with its
    YaRN scaling, against the original and the extended context; the ramp of pairs between is shaded."""
    yarn = config.rope_scaling
    if yarn is None:
        raise ValueError(f"{config.name} has no YaRN rope_scaling to draw")
    i = np.arange(config.d_rope // 2)
    plain = 2 * math.pi / config.without_yarn().rope_frequencies().numpy()
    scaled = 2 * math.pi / config.rope_frequencies().numpy()
    low, high = yarn.correction_range(config.d_rope, config.rope_theta)
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.axvspan(low, high, color="0.9", zorder=0)
    ax.text((low + high) / 2, 0.03, "ramp", ha="center", fontsize=8, color="0.35", transform=ax.get_xaxis_transform())
    ax.semilogy(i, plain, "o-", color=COLORS["MHA"], ms=3, label="plain RoPE")
    ax.semilogy(i, scaled, "o-", color=COLORS["MLA"], ms=3, label=f"YaRN ×{yarn.factor:g}")
    original = yarn.original_max_position_embeddings
    for n, text in ((original, "pre-training context"), (original * yarn.factor, "extended context")):
        ax.axhline(n, color="crimson", ls="--", lw=1)
        ax.text(0, n * 1.25, f"{text} {n:,.0f}", fontsize=8, color="crimson")
    ax.set_xlabel("rotary pair i (0 = fastest)")
    ax.set_ylabel("positions per full turn")
    ax.set_title(f"{config.name}: pairs {low} … {high} move from kept to ÷{yarn.factor:g}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    return fig


# --- absorption as matrix shapes ----------------------------------------------------------------------------------------
def absorption_shapes_figure(d_head: int = 128, d_c: int = 512) -> Figure:
    """One head's scores against L cached tokens, two ways (drawn with :mod:`lattn.viz.shapes`; d_c drawn 3.2× d_head,
    about DeepSeek's ratio): expanded — rebuild the keys K = c_KV·W_UKᵀ (L×d_head), then q·Kᵀ; absorbed — fold W_UK into
    the query, q_lat = q·W_UK (1×d_c), then q_lat·c_KVᵀ. The same 1×L scores (associativity); the softmax runs along
    them. ``d_head``, ``d_c``: the sizes written under the title."""
    sym_h, sym_c = r"$d_\mathrm{head}$", r"$d_\mathrm{c}$"  # mathtext symbols: subscripts keep the row labels narrow
    sizes = {"L": 10, sym_c: 8, sym_h: 2.5}
    lines = [
        [
            Box("c_KV", "L", sym_c, note="the cache"),
            Box("W_UKᵀ", sym_c, sym_h),
            Box("K", "L", sym_h, note="every step"),
        ],
        [Box("q", "1", sym_h), Box("Kᵀ", sym_h, "L"), Box("s", "1", "L", softmax="cols")],
        [Box("q", "1", sym_h), Box("W_UK", sym_h, sym_c), Box("q_lat", "1", sym_c, note="once per query")],
        [Box("q_lat", "1", sym_c), Box("c_KVᵀ", sym_c, "L", note="the cache"), Box("s", "1", "L", softmax="cols")],
    ]
    titles = ["expanded 1: rebuild\nevery cached key", "expanded 2: score", "absorbed 1: move\nW_UK to the query",
              "absorbed 2: score\nthe cache directly"]  # fmt: skip
    return shapes_figure(
        lines, sizes, titles=titles,
        title=f"one head, L cached tokens (d_head = {d_head}, d_c = {d_c}): q·(c_KV·W_UKᵀ)ᵀ = (q·W_UK)·c_KVᵀ",
    )  # fmt: skip
