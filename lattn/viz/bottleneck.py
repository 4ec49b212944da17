"""Figures of notebook 03: the shipped results of ``python -m lattn.experiments bottleneck`` and the view of
:class:`~lattn.widgets.bottleneck.TrainedLatentExplorer`.

* ``*_figure(runs)`` — the curves of the shipped records (read with :func:`lattn.experiments.bottleneck.load`;
  the numbers are picked with its ``band`` / ``select`` / ``seed_values``). Drawing only. Where a point has
  several seeds, the line is their mean and the shaded band (or error bar) runs from the lowest to the highest.
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

from ..experiments.bottleneck import band, seed_values, select
from ..tasks import slot_memory_accuracy
from . import heatmap, line_chart, update_heatmap
from .diagram import draw_stages, figsize

__all__ = [
    "STAGE_VIEWS",
    "LatentMapsView",
    "ablation_diagram",
    "ablation_figure",
    "capacity_figure",
    "distil_figure",
    "generalisation_figure",
    "heads_figure",
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
        self.map_bar = fig.colorbar(self.map_im, ax=ax_map, fraction=0.05, pad=0.02)
        self.prof_im = heatmap(np.zeros((2, 2)), ax_prof, vmax=1.0, ylabel="latent", colorbar=False)
        fig.colorbar(self.prof_im, ax=ax_prof, fraction=0.05, pad=0.02, label="share of the weight")
        ax_map.set_yticks([])

    def update(self, state: dict[str, Any], *, task: str, stage: str, head: int) -> None:
        update_heatmap(self.group_im, _distinct(state["groups"])[:, None], vmax=19)
        self.verdict_im.set_data(state["verdict"][:, None])
        self.verdict_im.set_extent((-0.5, 0.5, len(state["verdict"]) - 0.5, -0.5))
        fixed = stage not in ("gather", "effective")  # rows sum to 1: a fixed 0…1 scale; else 0…the largest weight
        update_heatmap(self.map_im, state["map"], vmax=1.0 if fixed else None)
        self.map_bar.set_label("weight (scale 0 to 1)" if fixed else "weight (scale 0 to this map's largest)")
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
SEED_NOTE = "lines: mean over seeds; bands: lowest to highest seed"


def _references(ax: Axes, runs: list[dict], **where: Any) -> None:
    """The baselines as horizontal lines at their seed mean, the seed range in the legend."""
    for label, style in REFERENCES.items():
        values = seed_values(runs, "part", label=label, **where)
        if values:
            (v,) = values.values()
            mean = sum(v) / len(v)
            rng = f" ({min(v):.2f}–{max(v):.2f})" if len(v) > 1 else ""
            ax.axhline(mean, label=f"{label} {mean:.2f}{rng}", **style)


def _banded(
    ax: Axes, runs: list[dict], x: str, name: str, y: str = "accuracy", color: str | None = None, **where: Any
) -> list:
    """One mean line with markers (legend entry ``name``) and its seed band; returns the xs."""
    xs, mean, lo, hi = band(runs, x, y, **where)
    (line,) = ax.plot(xs, mean, marker="o", label=name, color=color)
    ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return xs


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
        ax.grid(alpha=0.3)
    return fig, axes


def _ceilings(ax: Axes, ms: list, k: int, heads: int, v: int = 8) -> None:
    """Dashed: an ideal memory with M slots; dotted: with H·M slots (H facts per latent, one per head)."""
    ax.plot(ms, [slot_memory_accuracy(k, m, v) for m in ms], ls="--", lw=1, color="0.45",
            label=f"ideal memory, M slots (K={k})")  # fmt: skip
    ax.plot(ms, [slot_memory_accuracy(k, heads * m, v) for m in ms], ls=":", lw=1.5, color="0.45",
            label=f"ideal memory, H·M = {heads}M slots")  # fmt: skip


def sweep_figure(runs: list[dict]) -> Figure:
    """Accuracy vs M on the global and the retrieval task, against the baselines (and, for retrieval, the ceilings
    of ideal memories with M and H·M slots)."""
    fig, axes = _figure(2, height=3.8)
    for ax, task in zip(axes, ("global", "retrieval")):
        xs = _banded(ax, runs, "num_latents", "latent attention", part="sweep", task=task, kind="latent")
        if task == "retrieval":
            first = select(runs, part="sweep", task=task)[0]
            _ceilings(ax, xs, first["task_args"]["num_facts"], first["heads"])
        _references(ax, runs, part="sweep", task=task)
        _log_ticks(ax, xs)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("M latents")
        ax.set_ylabel("held-out accuracy")
        ax.set_title("global task: one latent is enough" if task == "global" else "retrieval (K = 8): accuracy climbs slowly with M",
                     fontsize=10)  # fmt: skip
        ax.legend(fontsize=7.5, loc="lower right")
    fig.suptitle(f"3 seeds per point; {SEED_NOTE}; legend: baseline mean (range)", fontsize=9)
    return fig


ABLATION_STYLE = {  # stage set → (label, colour)
    ("write", "gather", "broadcast"): ("all three stages", OKABE_ITO[0]),
    ("gather", "broadcast"): ("gather + broadcast (no write)", OKABE_ITO[1]),
    ("write", "broadcast"): ("write + broadcast (no gather)", OKABE_ITO[3]),
}


def ablation_diagram(n_tokens: int = 6, n_latents: int = 3) -> Figure:
    """The three stage sets of the ablation as schematics, one row each (:func:`~lattn.viz.diagram.draw_stages`):
    all three stages, gather + broadcast (no write), write + broadcast (no gather)."""
    width, height = figsize(3)
    fig = Figure(figsize=(width, 0.62 * height * 3), layout="constrained")
    for ax, (stages, (label, _)) in zip(fig.subplots(3, 1), ABLATION_STYLE.items()):
        draw_stages(list(stages), n_tokens, n_latents, title=label, ax=ax)
    return fig


def ablation_figure(runs: list[dict]) -> Figure:
    """The stage ablation: accuracy vs M for each stage set on both tasks, and how far the trained write maps are
    from a plain mean-pool (total-variation distance, trained vs at initialisation)."""
    fig, axes = _figure(3, width=4.4, height=3.8)
    ms = sorted({r["mixer"]["num_latents"] for r in select(runs, part="ablation")})
    for ax, task in zip(axes, ("global", "retrieval")):
        for stages, (label, color) in ABLATION_STYLE.items():
            where = {"part": "sweep"} if len(stages) == 3 else {"part": "ablation"}
            chosen = [r for r in select(runs, task=task, kind="latent", stages=stages, **where)
                      if r["mixer"]["num_latents"] in ms]  # fmt: skip
            _banded(ax, chosen, "num_latents", label, color=color)
        if task == "retrieval":
            _ceilings(ax, ms, 8, 2)
        _log_ticks(ax, ms)
        ax.set_ylim(0.8 if task == "global" else 0.2, 1.01)
        ax.set_xlabel("M latents")
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"{task} task: which stages matter?", fontsize=10)
        ax.legend(fontsize=7.5, loc="lower right")
    ax = axes[2]
    for task, ls in (("global", "-"), ("retrieval", "--")):
        for stages in (("write", "gather", "broadcast"), ("write", "broadcast")):
            label, color = ABLATION_STYLE[stages]
            where = {"part": "sweep"} if len(stages) == 3 else {"part": "ablation"}
            chosen = [r for r in select(runs, task=task, kind="latent", stages=stages, **where)
                      if r["mixer"]["num_latents"] in ms]  # fmt: skip
            xs, mean, lo, hi = band(chosen, "num_latents", "map_tv.write")
            ax.plot(xs, mean, ls=ls, marker="o", color=color, label=f"{task}, {label.split(' (')[0]}")
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, lw=0)
            xs, mean, _, _ = band(chosen, "num_latents", "map_tv.write_init")
            ax.plot(xs, mean, ls=ls, lw=0.8, color="0.5")
    ax.plot([], [], color="0.5", lw=0.8, label="the same models untrained")
    _log_ticks(ax, ms)
    ax.set_ylim(0, 1)
    ax.set_xlabel("M latents")
    ax.set_ylabel("distance from a mean-pool (TV, 0 … 1)")
    ax.set_title("what write learns: each latent's token weights\nvs uniform (0 = plain mean of the tokens)",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=7.5, loc="center right")
    fig.suptitle(f"3 seeds per point, the same training budget; {SEED_NOTE}", fontsize=9)
    return fig


def heads_figure(runs: list[dict]) -> Figure:
    """Retrieval (K = 8) accuracy vs M for H = 1, 2, 4 heads, each against the ceiling of H·M slots (dashed)."""
    fig, (ax,) = _figure(1, width=7.6, height=3.8)
    for h, color in zip((1, 2, 4), OKABE_ITO):
        chosen = [r for r in select(runs, task="retrieval", kind="latent", heads=h, num_facts=8, query_skew=0.0,
                                    stages=("write", "gather", "broadcast")) if r["part"] in ("sweep", "heads")]  # fmt: skip
        ms = [m for m in seed_values(chosen, "num_latents") if m <= 4]
        _banded(ax, [r for r in chosen if r["mixer"]["num_latents"] in ms], "num_latents", f"H = {h} heads",
                color=color)  # fmt: skip
        ax.plot(ms, [slot_memory_accuracy(8, h * m, 8) for m in ms], ls="--", lw=1, color=color)
    ax.plot([], [], ls="--", color="0.4", label="ideal memory of H·M facts")
    _log_ticks(ax, ms)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("M latents")
    ax.set_ylabel("held-out accuracy")
    title = "retrieval, K = 8 facts: the heads raise the ceiling (dashed),\nnot what training reached"
    ax.set_title(f"{title} ({SEED_NOTE})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def capacity_figure(runs: list[dict]) -> Figure:
    """Retrieval accuracy vs the number of facts K, one line per M (seed 0), each with its ceiling of H·M slots
    (dashed)."""
    fig, (ax,) = _figure(1, width=7.6, height=3.8)
    ms = sorted({r["mixer"]["num_latents"] for r in select(runs, part="capacity", kind="latent")})
    heads = select(runs, part="capacity")[0]["heads"]
    for m in ms:
        where = {"task": "retrieval", "kind": "latent", "num_latents": m, "query_skew": 0.0, "seed": 0, "heads": heads}
        ks = [k for k in seed_values(runs, "num_facts", **where)]
        chosen = [r for r in select(runs, **where) if r["part"] in ("sweep", "capacity")]
        xs, accs = list(seed_values(chosen, "num_facts")), [v[0] for v in seed_values(chosen, "num_facts").values()]
        (line,) = ax.plot(xs, accs, marker="o", label=f"latent M={m}")
        ax.plot(ks, [slot_memory_accuracy(k, heads * m, 8) for k in ks], ls="--", lw=1, color=line.get_color())
    full = [r for r in select(runs, task="retrieval", kind="full", layers=1, query_skew=0.0, seed=0)
            if r["part"] in ("sweep", "capacity")]  # fmt: skip
    fx = seed_values(full, "num_facts")
    ax.plot(list(fx), [v[0] for v in fx.values()], marker="s", color="black", label="full attention")
    ax.plot([], [], ls="--", color="0.4", label=f"ideal memory of H·M facts (H={heads})")
    _log_ticks(ax, list(fx))
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("K facts per sequence")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("retrieval: where the bottleneck runs out of room (seed 0)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def distil_figure(runs: list[dict]) -> Figure:
    """Retrieval with skewed questions: trained latent models (mean, seed range as an error bar) vs ideal memories
    of M facts that keep the most-asked facts or arbitrary ones."""
    fig, (ax,) = _figure(1, width=8.6, height=3.6)
    where = {"part": "distil", "kind": "latent"}
    ms, trained, lo, hi = band(runs, "num_latents", **where)
    first = {m: select(runs, num_latents=m, seed=0, **where)[0] for m in ms}  # the ideal memories: same data
    bars = {
        "ideal memory, arbitrary M facts": [first[m]["slot_memory"]["first"] for m in ms],
        "trained latent attention (seed range)": trained,
        "ideal memory, the M most-asked facts": [first[m]["slot_memory"]["important"] for m in ms],
    }
    width = 0.26
    for i, (label, values) in enumerate(bars.items()):
        pos = np.arange(len(ms)) + (i - 1) * width
        err = None if i != 1 else [np.subtract(values, lo), np.subtract(hi, values)]
        rects = ax.bar(
            pos, values, width, yerr=err, capsize=3, label=label, color=("0.75", OKABE_ITO[0], OKABE_ITO[2])[i]
        )
        ax.bar_label(rects, fmt="%.2f", fontsize=8, padding=2 if i != 1 else 10)
    (full,) = seed_values(runs, "part", part="distil", label="full").values()
    ax.axhline(sum(full) / len(full), label=f"full attention ({sum(full) / len(full):.2f})", **REFERENCES["full"])
    ax.set_xticks(range(len(ms)), [f"M={m}" for m in ms])
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("held-out accuracy")
    skew = first[ms[0]]["task_args"]["query_skew"]
    ax.set_title(f"K=8 facts, questions favour small keys (query_skew={skew}), 3 seeds:\nthe latents keep the most-asked facts",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


SHIFT_LABELS = {"global": ["noise=0.9", "noise=1.2"], "retrieval": ["noise=0.1", "noise=0.2"]}
GENERALISATION_MODELS = {
    "global": ["full", "full ×3", "latent M=1", "latent M=4", "latent M=16"],
    "retrieval": ["full", "full ×3", "latent M=4", "latent M=16", "latent M=64"],
}


def generalisation_figure(runs: list[dict]) -> Figure:
    """Accuracy of models trained at N=32 on the training distribution, on longer and on noisier sequences (mean
    over seeds, error bars from the lowest to the highest seed; models drawn slightly apart so the bars show)."""
    fig, axes = _figure(2, height=3.8)
    for ax, task in zip(axes, ("global", "retrieval")):
        conditions = ["accuracy", "seq_len=128", "seq_len=512", *SHIFT_LABELS[task]]
        names = ["as trained\n(N=32)", "N=128", "N=512", *(c.replace("=", " ") for c in SHIFT_LABELS[task])]
        models = GENERALISATION_MODELS[task]
        for i, label in enumerate(models):
            stats = [band(runs, "part", y, part="sweep", task=task, label=label) for y in conditions]
            mean = np.array([s[1][0] for s in stats])
            err = [mean - [s[2][0] for s in stats], [s[3][0] for s in stats] - mean]
            pos = np.arange(len(conditions)) + 0.08 * (i - (len(models) - 1) / 2)
            ax.errorbar(pos, mean, yerr=err, marker="o", ms=4, capsize=2, label=label,
                        ls="--" if label.startswith("full") else "-", color=OKABE_ITO[(4, 5, 2, 0, 3)[i]])  # fmt: skip
        ax.set_xticks(range(len(conditions)), names, fontsize=9)
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"{task} task, trained at N=32: longer is harmless, noise hurts all", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("3 seeds per model; points: mean, bars: lowest to highest seed", fontsize=9)
    return fig


def length_figure(runs: list[dict], timing: dict) -> Figure:
    """Left: accuracy of models trained at each N (global task; mean and seed band). Right: seconds per training
    step vs N (one timing run)."""
    fig, (ax_acc, ax_t) = _figure(2)
    chosen = [r for r in runs if r["part"] in ("sweep", "length")]
    for label, color in zip(("full", "full ×3", "latent M=4"), ("black", "0.55", OKABE_ITO[0])):
        xs = _banded(ax_acc, chosen, "seq_len", label, color=color, task="global", label=label)
    _log_ticks(ax_acc, xs)
    ax_acc.set_ylim(0.85, 1.0)
    ax_acc.set_xlabel("sequence length N (trained and tested)")
    ax_acc.set_ylabel("held-out accuracy")
    ax_acc.set_title(f"global task, 3 seeds: accuracy is flat in N\n({SEED_NOTE})", fontsize=10)
    ax_acc.legend(fontsize=8)
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
