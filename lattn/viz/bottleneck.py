"""Figures of notebook 03: the shipped results of ``python -m lattn.experiments bottleneck`` and the view of
:class:`~lattn.widgets.bottleneck.TrainedLatentExplorer`.

* ``*_figure(runs)`` — the curves of the shipped records (read with :func:`lattn.experiments.bottleneck.load`;
  the numbers are picked with its ``curve`` / ``select`` / ``mean_over_seeds``). Drawing only.
* :class:`LatentMapsView` — the explorer's figure: token groups, right/wrong strip, one stage's map and each
  latent's weight per token group, updated in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..experiments.bottleneck import curve, mean_over_seeds, select
from ..tasks import slot_memory_accuracy
from . import heatmap, line_chart, update_heatmap

__all__ = [
    "STAGE_VIEWS",
    "LatentMapsView",
    "capacity_figure",
    "distil_figure",
    "generalisation_figure",
    "length_figure",
    "sweep_figure",
]

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]  # colour-blind safe
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


class LatentMapsView:
    """The trained-latents figure, drawn once and updated in place.

    Left: the token groups ("grp") and whether the model answered each scored token right ("ok", green/red; blank =
    not scored); middle: the map (tokens along the rows); right: for each latent, its weight per token of each group
    (rows sum to 1), so a bright cell = a specialisation. ``update(state, task=, stage=, head=)`` with ``state``:
    ``groups`` (N,), ``names``, ``verdict`` (N,) (1 right, 0 wrong, nan not scored), ``map`` (N, M) or (N, N),
    ``profile`` (M, G) or None.
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
        fig.colorbar(self.map_im, ax=ax_map, fraction=0.05, pad=0.02)
        self.prof_im = heatmap(np.zeros((2, 2)), ax_prof, vmax=1.0, ylabel="latent", colorbar=False)
        fig.colorbar(self.prof_im, ax=ax_prof, fraction=0.05, pad=0.02, label="share of the weight")
        ax_map.set_yticks([])

    def update(self, state: dict[str, Any], *, task: str, stage: str, head: int) -> None:
        update_heatmap(self.group_im, _distinct(state["groups"])[:, None], vmax=19)
        self.verdict_im.set_data(state["verdict"][:, None])
        self.verdict_im.set_extent((-0.5, 0.5, len(state["verdict"]) - 0.5, -0.5))
        update_heatmap(self.map_im, state["map"], vmax=None if stage in ("gather", "effective") else 1.0)
        ax = self.map_im.axes
        ax.set_title(f"{stage} weights, head {head}", fontsize=10)
        ax.set_xlabel("token" if stage == "effective" else "latent")
        self.fig.suptitle(f"{task} · {STAGE_VIEWS[stage]}", fontsize=10)
        ax_prof = self.prof_im.axes
        prof, names = state["profile"], state["names"]
        update_heatmap(self.prof_im, prof)  # bright = this latent's (or group's) weight sits on this group
        short = [n.replace("fact ", "").replace("cluster ", "c") for n in names]
        ax_prof.set_xticks(range(len(names)), short, rotation=90 if len(names) > 6 else 0, fontsize=8)
        ax_prof.set_yticks(range(prof.shape[0]), short if stage == "effective" else range(prof.shape[0]))
        ax_prof.set_ylabel("" if stage == "effective" else "latent")
        ax_prof.set_xlabel("token group")
        what = (
            "where each group's tokens (rows) read, this example" if stage == "effective" else f"each latent's {stage}"
        )
        ax_prof.set_title(f"{what} weight per group" if stage != "effective" else what, fontsize=10)


# --- static figures of the shipped results -----------------------------------------------------------------------

REFERENCES = {  # the baselines drawn as horizontal lines
    "full": {"color": "black", "ls": "-", "lw": 1.5},
    "full ×3": {"color": "black", "ls": "--", "lw": 1.2},
    "window ±4": {"color": "#8C564B", "ls": "-.", "lw": 1.2},
    "none": {"color": "0.5", "ls": ":", "lw": 1.5},
}


def _references(ax: Axes, runs: list[dict], **where: Any) -> None:
    for label, style in REFERENCES.items():
        acc = mean_over_seeds(runs, label=label, **where)
        if acc is not None:
            ax.axhline(acc, label=f"{label} ({acc:.2f})", **style)


def _log_ticks(ax: Axes, xs: list) -> None:
    """Log x axis labelled exactly at ``xs`` (no minor labels)."""
    ax.set_xscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_locator(NullLocator())


def _figure(ncols: int, width: float = 5.2, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    """A row of ``ncols`` axes whose lines cycle through the Okabe–Ito palette."""
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(1, ncols)))
    for ax in axes:
        ax.set_prop_cycle(color=OKABE_ITO)
    return fig, axes


def sweep_figure(runs: list[dict]) -> Figure:
    """Accuracy vs M on the global and the retrieval task, against the baselines (and, for retrieval, the ceilings
    of ideal memories with M and 2M slots)."""
    fig, axes = _figure(2)
    for ax, task in zip(axes, ("global", "retrieval")):
        xs, ys = curve(runs, "num_latents", part="sweep", task=task, kind="latent")
        series = {"latent attention": (xs, ys)}
        if task == "retrieval":
            k, v = select(runs, part="sweep", task=task)[0]["task_args"]["num_facts"], 8
            series[f"ideal memory, M slots (K={k})"] = (xs, [slot_memory_accuracy(k, m, v) for m in xs])
            series["ideal memory, 2M slots"] = (xs, [slot_memory_accuracy(k, 2 * m, v) for m in xs])
        lines = line_chart(series, ax, logx=True, marker="o", xlabel="M latents", ylabel="held-out accuracy")
        for line in lines[1:]:
            line.set_linestyle("--" if "2M" not in line.get_label() else ":")
            line.set_marker("")
        _references(ax, runs, part="sweep", task=task)
        _log_ticks(ax, xs)
        ax.set_ylim(0, 1.03)
        ax.set_title("global task: one latent is enough" if task == "global" else "retrieval (K = 8): accuracy climbs slowly with M",
                     fontsize=10)  # fmt: skip
        ax.legend(fontsize=8, loc="lower right")
    return fig


def capacity_figure(runs: list[dict]) -> Figure:
    """Retrieval accuracy vs the number of facts K, one line per M, each with its M-slot ceiling (dashed)."""
    fig, (ax,) = _figure(1, width=7.6, height=3.8)
    ms = sorted({r["mixer"]["num_latents"] for r in select(runs, part="capacity", kind="latent")})
    for m in ms:
        ks, accs = curve(runs, "num_facts", task="retrieval", kind="latent", num_latents=m, query_skew=0.0)
        (line,) = ax.plot(ks, accs, marker="o", label=f"latent M={m}")
        ax.plot(ks, [slot_memory_accuracy(k, m, 8) for k in ks], ls="--", lw=1, color=line.get_color())
    ks, accs = curve(runs, "num_facts", task="retrieval", kind="full", layers=1, query_skew=0.0)
    ax.plot(ks, accs, marker="s", color="black", label="full attention")
    ax.plot([], [], ls="--", color="0.4", label="ideal memory of M facts")
    _log_ticks(ax, ks)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("K facts per sequence")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("retrieval: where the bottleneck runs out of room", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def distil_figure(runs: list[dict]) -> Figure:
    """Retrieval with skewed questions: trained latent models vs ideal memories of M facts that keep the most-asked
    facts or arbitrary ones."""
    fig, (ax,) = _figure(1, width=8.6, height=3.6)
    chosen = sorted(select(runs, part="distil", kind="latent"), key=lambda r: r["mixer"]["num_latents"])
    ms = [r["mixer"]["num_latents"] for r in chosen]
    bars = {
        "ideal memory, arbitrary M facts": [r["slot_memory"]["first"] for r in chosen],
        "trained latent attention": [r["accuracy"] for r in chosen],
        "ideal memory, the M most-asked facts": [r["slot_memory"]["important"] for r in chosen],
    }
    width = 0.26
    for i, (label, values) in enumerate(bars.items()):
        pos = np.arange(len(ms)) + (i - 1) * width
        rects = ax.bar(pos, values, width, label=label, color=("0.75", OKABE_ITO[0], OKABE_ITO[2])[i])
        ax.bar_label(rects, fmt="%.2f", fontsize=8)
    full = mean_over_seeds(runs, part="distil", label="full")
    ax.axhline(full, label=f"full attention ({full:.2f})", **REFERENCES["full"])
    ax.set_xticks(range(len(ms)), [f"M={m}" for m in ms])
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("held-out accuracy")
    skew = chosen[0]["task_args"]["query_skew"]
    ax.set_title(f"K=8 facts, questions favour small keys (query_skew={skew}):\nthe latents keep the most-asked facts",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


SHIFT_LABELS = {"global": ["noise=0.9", "noise=1.2"], "retrieval": ["noise=0.1", "noise=0.2"]}
GENERALISATION_MODELS = {
    "global": ["full", "full ×3", "latent M=1", "latent M=4", "latent M=16"],
    "retrieval": ["full", "full ×3", "latent M=4", "latent M=16", "latent M=64"],
}


def generalisation_figure(runs: list[dict]) -> Figure:
    """Accuracy of models trained at N=32 on the training distribution, on longer and on noisier sequences."""
    fig, axes = _figure(2)
    for ax, task in zip(axes, ("global", "retrieval")):
        conditions = ["accuracy", "seq_len=128", "seq_len=512", *SHIFT_LABELS[task]]
        names = ["as trained\n(N=32)", "N=128", "N=512", *(c.replace("=", " ") for c in SHIFT_LABELS[task])]
        series = {}
        for label in GENERALISATION_MODELS[task]:
            series[label] = (
                range(len(conditions)),
                [mean_over_seeds(runs, y, part="sweep", task=task, label=label) for y in conditions],
            )
        lines = line_chart(series, ax, marker="o", ylabel="held-out accuracy")
        for line in lines:
            line.set_linestyle("--" if line.get_label().startswith("full") else "-")
        ax.set_xticks(range(len(conditions)), names, fontsize=9)
        ax.set_title(f"{task} task, trained at N=32: longer is harmless, noise hurts all", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    return fig


def length_figure(runs: list[dict], timing: dict) -> Figure:
    """Left: accuracy of models trained at each N (global task). Right: seconds per training step vs N."""
    fig, (ax_acc, ax_t) = _figure(2)
    series = {
        label: curve(
            [r for r in runs if r["part"] in ("sweep", "length")], "seq_len", task="global", label=label, seed=0
        )
        for label in ("full", "full ×3", "latent M=4")
    }
    line_chart(series, ax_acc, logx=True, marker="o", xlabel="sequence length N (trained and tested)",
               ylabel="held-out accuracy", title="global task: accuracy is flat in N")  # fmt: skip
    _log_ticks(ax_acc, series["full"][0])
    ax_acc.set_ylim(0.85, 1.0)
    rows = timing["rows"]
    steps = {}
    for row in rows:
        xs_t, ys_t = steps.setdefault(row["label"], ([], []))
        xs_t.append(row["seq_len"])
        ys_t.append(row["seconds"] * 1e3)
    line_chart(steps, ax_t, logx=True, logy=True, marker="o", xlabel="sequence length N",
               ylabel="ms per training step", title=f"one training step (batch {timing['batch_size']}): full attention grows fastest")  # fmt: skip
    _log_ticks(ax_t, sorted({row["seq_len"] for row in rows}))
    return fig
