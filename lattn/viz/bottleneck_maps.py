"""The figure of :class:`~lattn.widgets.bottleneck.TrainedLatentExplorer` (notebook 03): one trained latent
model's maps on one sequence, drawn once and updated in place. The static figures of the shipped results are
:mod:`lattn.viz.bottleneck`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter

from . import heatmap, update_heatmap

__all__ = ["GROUP_CMAP", "STAGE_VIEWS", "VERDICT_CMAP", "LatentMapsView", "short_group_names"]

VERDICT_CMAP = ListedColormap(["#D55E00", "#0072B2"])  # wrong = vermillion, right = blue (not red/green)
GROUP_CMAP = "tab20"  # up to 20 token groups (clusters, or fact keys + query + filler)
STAGE_VIEWS = {  # what each choice shows, always with tokens as rows so the colour strips line up
    "write": "write: how each token splits itself over the latents (rows sum to 1)",
    "gather": "gather, transposed: each latent's weights over the tokens (columns sum to 1)",
    "broadcast": "broadcast: which latents each token reads (rows sum to 1)",
    "effective": "effective token→token map broadcast @ gather (rank ≤ M); right: what each group reads",
}


def _distinct(groups: np.ndarray) -> np.ndarray:
    """Group g → a tab20 index such that neighbouring groups get different hues (tab20 comes in light/dark pairs)."""
    g = groups.astype(int) % 20
    return (2 * g) % 20 + (2 * g) // 20


def short_group_names(names: list[str]) -> list[str]:
    """Group names as the figure writes them: "fact k3" → "k3", "cluster 2" → "c2"."""
    return [n.replace("fact ", "").replace("cluster ", "c") for n in names]


class LatentMapsView:
    """The trained-latents figure, drawn once and updated in place.

    Left: the token groups ("grp", colours explained by the legend below the figure) and whether the model answered
    each scored token right ("ok": blue right, orange wrong, blank not scored); middle: the map (tokens along the
    rows); right: for each latent, its weight per token of each group (rows sum to 1), so a bright cell = a
    specialisation. ``update(state, task=, stage=, head=)`` with ``state``: ``groups`` (N,), ``names``, ``verdict``
    (N,) (1 right, 0 wrong, nan not scored), ``map`` (N, M) or (N, N), ``profile`` (M, G) or (G, G).
    """

    def __init__(self, fig: Figure) -> None:
        self.fig = fig
        ax_g, ax_v, ax_map, ax_prof = fig.subplots(1, 4, width_ratios=[0.07, 0.07, 1.0, 1.25])
        self.group_im = ax_g.imshow(np.zeros((2, 1)), cmap=GROUP_CMAP, vmin=0, vmax=19, aspect="auto",
                                    interpolation="nearest")  # fmt: skip
        ax_g.set_title("grp", fontsize=8)
        ax_g.set_xticks([])
        ax_g.set_ylabel("token")
        self.verdict_im = ax_v.imshow(np.zeros((2, 1)), cmap=VERDICT_CMAP, vmin=0, vmax=1, aspect="auto",
                                      interpolation="nearest")  # fmt: skip
        ax_v.set_title("ok", fontsize=8)
        ax_v.set_xticks([])
        ax_v.set_yticks([])
        self.map_im = heatmap(np.zeros((2, 2)), ax_map, colorbar=False)
        self.prof_im = heatmap(np.zeros((2, 2)), ax_prof, vmax=1.0, ylabel="latent", colorbar=False)
        # NOTE: the layout is solved once (on the first picture), so every text that sits beside another keeps its
        # width: short fixed colour-bar labels, ticks with fixed decimals; the map's scale goes into the suptitle
        for im, ax, label, fmt in ((self.map_im, ax_map, "weight", "%.3f"), (self.prof_im, ax_prof, "share", "%.2f")):
            fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, label=label, format=FormatStrFormatter(fmt))
        ax_map.set_yticks([])
        self.legend = None

    def _group_legend(self, groups: np.ndarray, names: list[str]) -> None:
        """The legend of the strips, below the panels: one patch per group present in this sequence, then ok."""
        if self.legend is not None:
            self.legend.remove()
        present = sorted(set(groups.astype(int).tolist()))
        short = short_group_names(names)
        colour = [self.group_im.cmap(self.group_im.norm(_distinct(np.array([g]))[0])) for g in present]
        handles = [Patch(color=c) for c in colour] + [Patch(color=VERDICT_CMAP(1)), Patch(color=VERDICT_CMAP(0))]
        labels = [short[g] for g in present] + ["ok: right", "ok: wrong"]
        self.legend = self.fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=7.5,
                                      frameon=False, title="grp: token group of each row", title_fontsize=7.5,
                                      handlelength=1.0, columnspacing=0.9)  # fmt: skip

    def update(self, state: dict[str, Any], *, task: str, stage: str, head: int) -> None:
        update_heatmap(self.group_im, _distinct(state["groups"])[:, None], vmax=19)
        self._group_legend(state["groups"], state["names"])
        self.verdict_im.set_data(state["verdict"][:, None])
        self.verdict_im.set_extent((-0.5, 0.5, len(state["verdict"]) - 0.5, -0.5))
        fixed = stage not in ("gather", "effective")  # rows sum to 1: a fixed 0…1 scale; else 0…the largest weight
        update_heatmap(self.map_im, state["map"], vmax=1.0 if fixed else None)
        ax = self.map_im.axes
        ax.set_title(f"{stage} weights, head {head}", fontsize=10)
        ax.set_xlabel("token" if stage == "effective" else "latent")
        scale = "0 to 1" if fixed else "0 to this map's largest"
        self.fig.suptitle(f"{task} · {STAGE_VIEWS[stage]} · middle colour scale: {scale}", fontsize=10)
        ax_prof = self.prof_im.axes
        prof, names = state["profile"], state["names"]
        update_heatmap(self.prof_im, prof)  # bright = this latent's (or group's) weight sits on this group
        short = short_group_names(names)
        ax_prof.set_xticks(range(len(names)), short, rotation=90 if len(names) > 6 else 0, fontsize=8)
        if stage == "effective":  # rows are groups: their names, small (the layout keeps the room of "latent" + digits)
            ax_prof.set_yticks(range(prof.shape[0]), short, fontsize=7)
        else:
            ax_prof.set_yticks(range(prof.shape[0]), range(prof.shape[0]), fontsize=10)
        ax_prof.set_ylabel("" if stage == "effective" else "latent")
        ax_prof.set_xlabel("token group")
        what = (
            "where each group's tokens (rows) read, this example" if stage == "effective" else f"each latent's {stage}"
        )
        ax_prof.set_title(f"{what} weight per group" if stage != "effective" else what, fontsize=10)
