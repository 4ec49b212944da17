"""Figures of notebook 06: the route by which the naive latent decoder reads its answer, and the explorers' views
(generated text with the next-character distribution, the leak bars).

Views draw once and update in place (``update(...)``); every function takes plain data (strings, arrays), never a
model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import as_array, heatmap, line_chart, text_panel, wrap_text
from .diagram import COLORS
from .family import distinguish
from .flow import draw_flow

__all__ = ["GenerationView", "LeakView", "curves", "leak_route", "shown", "text_samples"]


def curves(series: Mapping[str, tuple[Any, Any]], *, figsize: tuple[float, float] = (7.5, 3.2), **chart: Any) -> Figure:
    """A figure of :func:`lattn.viz.line_chart` curves ({label: (xs, ys)}; ``chart`` = its keyword arguments), the
    lines told apart by Okabe–Ito colour *and* dash style."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    distinguish(line_chart(series, ax, **chart))
    ax.legend(fontsize=9)  # again, so the legend shows the new styles
    return fig


def text_samples(texts: Mapping[str, str], *, width: int = 52, height: float = 1.9) -> Figure:
    """Generated texts side by side ({title: text}), monospace, wrapped at ``width`` characters."""
    if not texts:
        raise ValueError("text_samples() needs at least one {title: text}, got none")
    fig = Figure(figsize=(5.2 * len(texts), height), layout="constrained")
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
    ax_flow.set_ylim(-0.85, 1.85)  # room for the two labels below the captions
    art.title.set_text(
        f"the route of the answer: {shown(chars[i + 1])!r} at {i + 1} → latent {art.layout.latent_labels[relay]} → position {i} "
        f"(gather {gat[relay, i + 1]:.2f}, broadcast {bro[i, relay]:.2f})"
    )
    return fig


def shown(c: str) -> str:
    """A character as a readable label: space → '␣', newline → '⏎'."""
    return {" ": "␣", "\n": "⏎"}.get(c, c)


class GenerationView:
    """Left: prompt + generated text, wrapped at ``wrap`` characters; right: the ``top_k`` most likely next characters
    (horizontal bars). ``update(text, title, top_chars, top_probs, last_char)``."""

    def __init__(self, fig: Figure, *, top_k: int = 12, wrap: int = 76) -> None:
        self.top_k, self.wrap = top_k, wrap
        ax_text, self.ax_bars = fig.subplots(1, 2, width_ratios=[2.6, 1])
        self.text = text_panel("", ax_text, width=wrap, fontsize=10)
        self.bars = self.ax_bars.barh(np.arange(top_k), np.zeros(top_k), color="tab:blue")
        self.ax_bars.invert_yaxis()
        self.ax_bars.set_xlabel("probability")

    def update(self, text: str, title: str, top_chars: Sequence[str], top_probs: np.ndarray, last_char: str) -> None:
        self.text.set_text(wrap_text(text, self.wrap))
        self.text.axes.set_title(title, fontsize=10, loc="left")
        for bar, p in zip(self.bars, top_probs):
            bar.set_width(float(p))
        self.ax_bars.set_xlim(0, max(0.05, 1.1 * float(top_probs[0])))
        self.ax_bars.set_yticks(np.arange(self.top_k), [shown(c) for c in top_chars], family="monospace")
        self.ax_bars.set_title(f"next char after {shown(last_char)!r}", fontsize=10)


class LeakView:
    """One bar per position: max |Δ logit| when the character at ``position`` changes. Bars before the change turn
    crimson when they moved (the model reads the future), the changed position and later ones are blue.
    ``update(delta (N,), position, model_label)``."""

    def __init__(self, fig: Figure, chars: str) -> None:
        self.ax = fig.subplots()
        n = len(chars)
        self.bars = self.ax.bar(np.arange(n), np.zeros(n), color="0.6")
        self.marker = self.ax.axvline(0, color="crimson", ls="--", lw=1.5)
        self.ax.set_xticks(np.arange(n), [shown(c) for c in chars], family="monospace")
        self.ax.set_xlabel("position (the character at each input position)")
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
