"""Figures of notebook 05 (DeepSeek MLA): the KV cache of each layout against a memory budget, and the measured
decode speed of MLA with a naive vs an absorbed cache. Drawing only; the explorers of :mod:`lattn.widgets.mla`
update these views in place from plain data (the numbers come from :mod:`lattn.mla` and :mod:`lattn.bench.mla`).

* :class:`KVCacheView` — one horizontal bar per cache layout (GB), hatched when it does not fit the budget line.
* :class:`DecodeBenchView` — decode speed (with the speed-up per context along the bottom) | the cache read per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["COLORS", "DecodeBenchView", "KVCacheView", "fmt_gb"]

COLORS = {"MHA": "0.55", "GQA": "0.55", "MQA": "0.55", "MLA naive": "#d98c5f", "MLA": "#2a7ab0"}
MODE_STYLE = {
    "naive": {"color": COLORS["MLA naive"], "marker": "s"},
    "absorbed": {"color": COLORS["MLA"], "marker": "o"},
}


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
        self.labels = [ax.text(0, i, "", va="center", fontsize=9) for i in y]  # value at the end of each bar
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
        names = {"GQA": f"GQA, {state['groups']} groups", "MLA": "MLA (absorbed)"}
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
    """Decode speed of both cache modes against the cached tokens (log–log), the speed-up absorbed / naive under
    each context, and the cache of one layer; drawn once into ``fig``, updated in place.

    ``update(state)`` with ``contexts`` (C,), ``series`` {mode: (C,) values of ``metric``}, ``cache_bytes``
    {mode: (C,)}, ``speedup`` {context: ×}, ``metric`` ("tokens/s" or "ms per step"), ``config``, ``threads``,
    ``source``.
    """

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        self.ax_speed, self.ax_cache = fig.subplots(1, 2, width_ratios=[1.3, 1])
        self.lines = {m: self.ax_speed.plot([], [], label=f"{m} cache", **s)[0] for m, s in MODE_STYLE.items()}
        self.cache_lines = {m: self.ax_cache.plot([], [], label=m, **s)[0] for m, s in MODE_STYLE.items()}
        for ax in (self.ax_speed, self.ax_cache):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("cached tokens")
            ax.grid(True, which="major", alpha=0.3)
        self.ax_speed.legend(fontsize=8, loc="best")
        self.ax_cache.set_ylabel("cache of one layer (MB)")
        self.ax_cache.set_title("memory read per decode step", fontsize=10)
        self.notes: list[Any] = []

    def update(self, state: dict[str, Any]) -> None:
        c = state["contexts"]
        cache_mb = {m: np.asarray(b) / 1e6 for m, b in state["cache_bytes"].items()}
        for m, line in self.lines.items():
            line.set_data(c, state["series"][m])
            self.cache_lines[m].set_data(c, cache_mb[m])
        for ax, data in ((self.ax_speed, state["series"]), (self.ax_cache, cache_mb)):
            values = np.concatenate(list(data.values()))
            ax.set_xlim(c.min() / 1.5, c.max() * 1.5)
            ax.set_ylim(values.min() / (6 if ax is self.ax_speed else 2), values.max() * 2)  # room for the labels
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
