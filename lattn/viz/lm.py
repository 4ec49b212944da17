"""Figures of notebook 06: the pre-norm block with its attention slot, the route by which the naive latent decoder
reads its answer, and the explorers' views (generated text with the next-character distributions, the leak bars).

Views draw once and update in place (``update(...)``); every function takes plain data (strings, arrays), never a
model. Positions and latents are numbered from 0, as in the code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

from . import OKABE_ITO, as_array, heatmap, line_chart, text_panel, wrap_text
from .diagram import COLORS, SUB
from .family import distinguish
from .flow import draw_flow

__all__ = ["GenerationView", "LeakView", "block_diagram", "curves", "leak_route", "shown", "text_samples"]


def _box(ax: Axes, x0: float, x1: float, y: float, text: str, *, fc: str, ec: str = "0.3", lw: float = 1.2) -> None:
    """A rounded box from x0 to x1 centred on height y, with centred text."""
    ax.add_patch(FancyBboxPatch((x0, y - 0.36), x1 - x0, 0.72, boxstyle="round,pad=0.04,rounding_size=0.12", fc=fc,
                                ec=ec, lw=lw, zorder=2))  # fmt: skip
    ax.text((x0 + x1) / 2, y, text, ha="center", va="center", fontsize=10, zorder=3)


def _arrow(ax: Axes, points: Sequence[tuple[float, float]], color: str = "0.25") -> None:
    """A polyline through ``points`` ending in an arrowhead."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1], ys[:-1], color=color, lw=1.6, zorder=1, solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2], zorder=1,
                arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.6, "shrinkA": 0, "shrinkB": 0})  # fmt: skip


def block_diagram(slots: Sequence[str], *, mlp_mult: int = 4) -> Figure:
    """The pre-norm Transformer block (:class:`lattn.blocks.Block`), drawn left to right: the residual stream x → h →
    out along the bottom; above it two branches, LayerNorm → attention → ⊕ and LayerNorm → MLP → ⊕. The attention
    box is the slot where positions mix, listing ``slots`` (the mechanisms that fit it); the MLP is
    D → ``mlp_mult``·D → D, each position on its own."""
    if not slots or not all(isinstance(n, str) and n for n in slots):
        raise ValueError(f"slots must name at least one attention mechanism (non-empty strings), got {slots!r}")
    fig = Figure(figsize=(11.0, 2.55), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-0.2, 13.4)
    ax.set_ylim(-0.05, 2.75)
    ax.set_axis_off()
    stream, branch = 0.45, 1.75  # heights of the residual stream and of the two branches
    grey, slot_fc, mlp_fc = "0.25", "#FBE3BF", "#D6E9F8"  # latents' orange and tokens' blue, lightened
    ax.text(0.0, stream, "x\n(B, N, D)", ha="center", va="center", fontsize=10)
    for start, (ln0, ln1), (b0, b1), plus, name, text, fc, note in (
        (0.75, (1.2, 2.5), (3.0, 5.6), 6.3, "attention", "attention (the slot)", slot_fc,
         "the only place where positions mix"),
        (7.1, (7.5, 8.8), (9.3, 11.0), 11.7, "MLP", f"MLP  D → {mlp_mult}D → D\n(GELU)", mlp_fc,
         "each position on its own"),
    ):  # fmt: skip
        _arrow(ax, [(start, stream), (start, branch), (ln0, branch)], grey)  # the branch leaves the stream
        _box(ax, ln0, ln1, branch, "LayerNorm", fc="white")
        _arrow(ax, [(ln1, branch), (b0, branch)], grey)
        _box(ax, b0, b1, branch, text, fc=fc, ec=COLORS["latents"] if name == "attention" else "0.3",
             lw=2.4 if name == "attention" else 1.2)  # fmt: skip
        ax.text((b0 + b1) / 2, branch + 0.45, note, ha="center", va="bottom", fontsize=9.5, style="italic",
                color=COLORS["focus"] if name == "attention" else "0.25")  # fmt: skip
        _arrow(ax, [(b1, branch), (plus, branch), (plus, stream + 0.2)], grey)  # … and is added back
        ax.add_patch(Circle((plus, stream), 0.2, fc="white", ec=grey, lw=1.6, zorder=2))
        ax.text(plus, stream, "+", ha="center", va="center", fontsize=13, zorder=3)
    ax.text(4.3, branch - 0.5, "fits: " + " · ".join(slots), ha="center", va="top", fontsize=9, color="0.2")
    _arrow(ax, [(0.45, stream), (6.1, stream)], grey)  # the residual stream: x, unchanged, to the first ⊕
    _arrow(ax, [(6.5, stream), (11.5, stream)], grey)
    _arrow(ax, [(11.9, stream), (12.55, stream)], grey)
    ax.text(6.7, stream - 0.12, "h", ha="left", va="top", fontsize=11, style="italic")
    ax.text(13.05, stream, "out\n(B, N, D)", ha="center", va="center", fontsize=10)
    ax.text(3.4, stream - 0.12, "residual: x passes unchanged", ha="center", va="top", fontsize=8.5, color="0.35")
    ax.text(9.0, stream - 0.12, "residual: h passes unchanged", ha="center", va="top", fontsize=8.5, color="0.35")
    ax.set_title("the pre-norm block: h = x + attention(LayerNorm(x)),  out = h + MLP(LayerNorm(h))", fontsize=10.5)
    return fig


def curves(series: Mapping[str, tuple[Any, Any]], *, figsize: tuple[float, float] = (7.5, 3.2), **chart: Any) -> Figure:
    """A figure of :func:`lattn.viz.line_chart` curves ({label: (xs, ys)}; ``chart`` = its keyword arguments), the
    lines told apart by Okabe–Ito colour *and* dash style."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    distinguish(line_chart(series, ax, **chart))
    ax.legend(fontsize=9)  # again, so the legend shows the new styles
    return fig


def text_samples(texts: Mapping[str, str], *, width: int = 52) -> Figure:
    """Generated texts side by side ({title: text}), monospace, wrapped at ``width`` characters; the figure is as
    tall as the longest text needs."""
    if not texts:
        raise ValueError("text_samples() needs at least one {title: text}, got none")
    lines = max(wrap_text(t, width).count("\n") + 1 for t in texts.values())
    fig = Figure(figsize=(5.2 * len(texts), 0.42 + 0.19 * lines), layout="constrained")
    for ax, (title, text) in zip(np.atleast_1d(fig.subplots(1, len(texts))), texts.items()):
        text_panel(text, ax, title=title, width=width, fontsize=10)
    return fig


def leak_route(effective: Any, gather: Any, broadcast: Any, position: int, chars: str, *, head: int = 0) -> Figure:
    """How position i reads the character at i + 1 through the latents of one head of a naive latent decoder.

    Left: the head's effective map broadcast @ gather (N, N) (row i = reading position, column j = source), the
    future (j > i) hatched and the cells (i, i + 1) outlined, the chosen ``position`` thickest. Right: the flow view
    of the gather and broadcast stages with the *relay* latent highlighted, the latent m that carries most of
    gather[m, i + 1] · broadcast[i, m]. ``effective`` (N, N), ``gather`` (M, N), ``broadcast`` (N, M): one head,
    one sequence; ``chars`` the N input characters.
    """
    eff, gat, bro = as_array(effective), as_array(gather), as_array(broadcast)
    N, M = bro.shape
    if eff.shape != (N, N) or gat.shape != (M, N) or len(chars) != N:
        raise ValueError(
            f"expected effective (N, N), gather (M, N), broadcast (N, M) and N characters; got {eff.shape}, "
            f"{gat.shape}, {bro.shape} and {len(chars)} characters"
        )
    if not 0 <= position < N - 1:
        raise ValueError(f"position must be in [0, {N - 1}) so that position + 1 exists, got {position}")
    i = position
    relay = int(np.argmax(gat[:, i + 1] * bro[i]))
    fig = Figure(figsize=(12.5, 4.6), layout="constrained")
    ax_map, ax_flow = fig.subplots(1, 2, width_ratios=[1, 2.1])
    labels = [f"{k} {shown(c)}" for k, c in enumerate(chars)]
    heatmap(eff, ax_map, vmax=1.0, cbar_label="weight (0–1)", xlabel="source position j (character)",
            ylabel="reading position i")  # fmt: skip
    ax_map.set_xticks(np.arange(N), labels, rotation=90, fontsize=7, family="monospace")
    ax_map.set_yticks(np.arange(N), labels, fontsize=7, family="monospace")
    for r in range(N - 1):  # the future of row r: columns r + 1 … N − 1, hatched
        ax_map.add_patch(Rectangle((r + 0.5, r - 0.5), N - 1 - r, 1, fill=False, hatch="///", lw=0,
                                   edgecolor="white", alpha=0.35))  # fmt: skip
        wide = r == i
        ax_map.add_patch(Rectangle((r + 0.5, r - 0.5), 1, 1, fill=False, edgecolor=COLORS["focus"],
                                   lw=2.6 if wide else 0.9, zorder=3))  # fmt: skip
    ax_map.set_title(
        f"head {head}: effective map broadcast @ gather\nhatched: the future (j > i); outlined: j = i + 1, the answer of row i",
        fontsize=10,
    )
    art = draw_flow({"gather": gat[None], "broadcast": bro[None]}, head=0, latent=relay,
                    token_labels=[shown(c) for c in chars], ax=ax_flow)  # fmt: skip
    names = {shown(c) for c in chars}  # the diagram names only some tokens (just below their row) …
    for t in [t for t in ax_flow.texts if -0.3 < t.get_position()[1] < 0 and t.get_text() in names]:
        t.remove()
    for p in art.layout.panels:  # … here every token is named, the two of the route in the focus colour
        k = i + 1 if p.stage.name == "gather" else i  # the answer i + 1 (read in gather), the reader i (broadcast)
        for n, x in enumerate(p.bottom_x):
            ax_flow.text(x, -0.07, shown(chars[n]), ha="center", va="top", fontsize=8, family="monospace", zorder=4,
                         color=COLORS["focus"] if n == k else "black", weight="bold" if n == k else "normal",
                         bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})  # fmt: skip
        ax_flow.annotate(
            f"{'answer' if k == i + 1 else 'reader'} {k} {shown(chars[k])!r}", xy=(p.bottom_x[k], -0.2),
            xytext=(p.bottom_x[k], -0.72), ha="center", fontsize=9, color=COLORS["focus"], weight="bold",
            arrowprops={"arrowstyle": "-|>", "color": COLORS["focus"], "lw": 1.5},
        )  # fmt: skip
    names = {label: f"z{str(m).translate(SUB)}" for m, label in enumerate(art.layout.latent_labels)}
    for t in ax_flow.texts:  # latents numbered from 0, as in the code (z₀ is latent 0)
        if t.get_text() in names:
            t.set_text(names[t.get_text()])
    ax_flow.set_ylim(-0.85, 1.85)  # room for the two labels below the captions
    art.title.set_text(
        f"the route of the answer: {shown(chars[i + 1])!r} at {i + 1} → latent z{str(relay).translate(SUB)} → position"
        f" {i} (gather {gat[relay, i + 1]:.2f}, broadcast {bro[i, relay]:.2f})"
    )
    return fig


def shown(c: str) -> str:
    """A character as a readable label: space → '␣', newline → '⏎'."""
    return {" ": "␣", "\n": "⏎"}.get(c, c)


class GenerationView:
    """Top: prompt + generated text, wrapped at ``wrap`` characters, newlines shown as ⏎, at most ``lines`` lines (a
    longer text shows its end, after "…"). Bottom: the ``top_k`` most likely characters
    after the prompt, two bars each: the model's own distribution, softmax(logits) (filled), and the distribution
    generation samples from at the chosen temperature T, softmax(logits / T) (hatched; at T = 0 all its mass is on
    the arg-max); the character that was drawn is marked.
    ``update(text, title, top_chars, model_probs, sampled_probs, drawn, last_char, temperature)``."""

    def __init__(self, fig: Figure, *, top_k: int = 12, wrap: int = 100, lines: int = 4) -> None:
        self.top_k, self.wrap, self.lines = top_k, wrap, lines
        ax_text, self.ax_bars = fig.subplots(2, 1, height_ratios=[0.35 + 0.19 * lines, 1.9])
        self.text = text_panel("", ax_text, width=wrap, fontsize=9.5)
        x = np.arange(top_k)
        self.model_bars = self.ax_bars.bar(x - 0.2, np.zeros(top_k), width=0.4, color=OKABE_ITO[4],
                                           label="the model: softmax(logits)")  # fmt: skip
        self.sampled_bars = self.ax_bars.bar(x + 0.2, np.zeros(top_k), width=0.4, color="white", hatch="////",
                                             edgecolor=OKABE_ITO[5], label="sampled from: softmax(logits / T)")  # fmt: skip
        self.marker = self.ax_bars.annotate("drawn", xy=(0, 0), xytext=(0, 14), textcoords="offset points",
                                            ha="center", fontsize=8.5, color=OKABE_ITO[5], weight="bold",
                                            arrowprops={"arrowstyle": "-|>", "color": OKABE_ITO[5]})  # fmt: skip
        self.ax_bars.set_ylabel("probability")
        self.ax_bars.legend(fontsize=8, loc="upper right", frameon=False)
        self.ax_bars.spines[["top", "right"]].set_visible(False)

    def update(
        self,
        text: str,
        title: str,
        top_chars: Sequence[str],
        model_probs: np.ndarray,
        sampled_probs: np.ndarray,
        drawn: str,
        last_char: str,
        temperature: float,
    ) -> None:
        text = text.replace("\n", "⏎")  # one line per `wrap` characters, whatever the text holds
        room = self.lines * self.wrap
        self.text.set_text(wrap_text(text if len(text) <= room else "…" + text[-(room - 1) :], self.wrap))
        self.text.axes.set_title(title, fontsize=10, loc="left")
        for bar, p in zip(self.model_bars, model_probs):
            bar.set_height(float(p))
        for bar, p in zip(self.sampled_bars, sampled_probs):
            bar.set_height(float(p))
        top = max(float(np.max(model_probs)), float(np.max(sampled_probs)))
        self.ax_bars.set_ylim(0, 1.3 * top)  # room for the marker above the tallest bar
        self.ax_bars.set_xticks(np.arange(self.top_k), [shown(c) for c in top_chars], family="monospace")
        inside = drawn in top_chars
        if inside:
            k = list(top_chars).index(drawn)
            self.marker.xy = (k, max(float(model_probs[k]), float(sampled_probs[k])))
        self.marker.set_visible(inside)
        where = "" if inside else f" (not among the {self.top_k} most likely)"
        self.ax_bars.set_title(
            f"the character after {shown(last_char)!r}: the model's distribution and the one sampled at T = "
            f"{temperature:g}; drawn: {shown(drawn)!r}{where}", fontsize=10, loc="left",
        )  # fmt: skip


class LeakView:
    """One bar per position: max |Δ logit| when the character at ``position`` changes. Bars before the change turn
    crimson when they moved (the model reads the future), the changed position and later ones are blue.
    ``update(delta (N,), position, model_label)``."""

    def __init__(self, fig: Figure, chars: str) -> None:
        self.ax = fig.subplots()
        n = len(chars)
        self.bars = self.ax.bar(np.arange(n), np.zeros(n), color="0.6")
        self.marker = self.ax.axvline(0, color="crimson", ls="--", lw=1.5)
        self.ax.set_xticks(np.arange(n), [f"{i}\n{shown(c)}" for i, c in enumerate(chars)], family="monospace")
        self.ax.set_xlabel("position (from 0) and the character there")
        self.ax.set_ylabel("max |Δ logit|")

    def update(self, delta: np.ndarray, position: int, model_label: str) -> None:
        p = position
        for i, (bar, d) in enumerate(zip(self.bars, delta)):
            bar.set_height(float(d))
            bar.set_color("crimson" if i < p and d > 0 else ("tab:blue" if i >= p else "0.6"))
        self.marker.set_xdata([p - 0.5, p - 0.5])
        self.ax.set_ylim(0, max(float(delta.max()) * 1.1, 1e-6))
        earlier = float(delta[:p].max()) if p else 0.0
        verdict = "earlier positions moved: it reads the future" if earlier > 0 else "earlier: exactly 0"
        self.ax.set_title(f"{model_label}: change position {p} → {verdict}", fontsize=10)
