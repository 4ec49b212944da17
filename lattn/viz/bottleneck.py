"""Figures of notebook 03's shipped results (the records of ``python -m lattn.experiments bottleneck``).

Each ``*_figure(runs)`` takes the list of records (plain dicts) and draws; the numbers are picked with the
queries of :mod:`lattn.records` (``band``, ``select``, ``seed_values``). Drawing only: no training, no import of
the experiments. Where a point has several seeds, the line is their mean and the shaded band (or error bar) runs
from the lowest to the highest seed; each figure says over how many seeds. Reference models (an ideal clean-slot
memory, chance) are drawn as grey dashed or dotted lines: references, not bounds. The explorer's figure is
:mod:`lattn.viz.bottleneck_maps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..records import band, seed_values, select
from ..tasks import slot_memory_accuracy
from . import line_chart
from .bottleneck_maps import STAGE_VIEWS, LatentMapsView  # re-exported: the explorer's figure
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
    "position_figure",
    "seed_count",
    "sweep_figure",
]

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]  # colour-blind safe

# --- helpers -------------------------------------------------------------------------------------------------------

REFERENCES = {  # the baselines drawn as horizontal lines
    "full": {"color": "black", "ls": "-", "lw": 1.5},
    "full ×3": {"color": "black", "ls": "--", "lw": 1.2},
    "window ±4": {"color": "#8C564B", "ls": "-.", "lw": 1.2},
    "none": {"color": "0.5", "ls": ":", "lw": 1.5},
}
SEED_NOTE = "lines: mean over seeds; bands: lowest to highest seed"


def seed_count(runs: list[dict], **where: Any) -> int:
    """How many seeds the selected records were trained from (the figures' titles say it)."""
    return len({r["seed"] for r in select(runs, **where)})


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
    ax: Axes, runs: list[dict], x: str, name: str, y: str = "accuracy", color: str | None = None, ls: str = "-",
    **where: Any,
) -> list:  # fmt: skip
    """One mean line with markers (legend entry ``name``) and its seed band; returns the xs."""
    xs, mean, lo, hi = band(runs, x, y, **where)
    (line,) = ax.plot(xs, mean, marker="o", label=name, color=color, ls=ls)
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


def _slot_references(ax: Axes, ms: list, k: int, heads: int, v: int = 8) -> None:
    """Grey references: ideal clean-slot memories with M slots (dashed) and with H·M slots (dotted)."""
    ax.plot(ms, [slot_memory_accuracy(k, m, v) for m in ms], ls="--", lw=1, color="0.45",
            label=f"ideal clean-slot memory, M slots (K={k})")  # fmt: skip
    ax.plot(ms, [slot_memory_accuracy(k, heads * m, v) for m in ms], ls=":", lw=1.5, color="0.45",
            label=f"ideal clean-slot memory, H·M = {heads}M slots")  # fmt: skip


# --- the figures ---------------------------------------------------------------------------------------------------


def sweep_figure(runs: list[dict]) -> Figure:
    """Accuracy vs M on the global and the retrieval task, against the baselines (and, for retrieval, the
    references of ideal clean-slot memories with M and H·M slots)."""
    fig, axes = _figure(2, height=3.8)
    for ax, task in zip(axes, ("global", "retrieval")):
        xs = _banded(ax, runs, "num_latents", "latent attention", part="sweep", task=task, kind="latent")
        if task == "retrieval":
            first = select(runs, part="sweep", task=task)[0]
            _slot_references(ax, xs, first["task_args"]["num_facts"], first["heads"])
        _references(ax, runs, part="sweep", task=task)
        _log_ticks(ax, xs)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("M latents")
        ax.set_ylabel("held-out accuracy")
        ax.set_title("global task: one latent is enough" if task == "global" else "retrieval (K = 8): accuracy climbs slowly with M",
                     fontsize=10)  # fmt: skip
        ax.legend(fontsize=7.5, loc="lower right")
    n = seed_count(runs, part="sweep")
    fig.suptitle(f"{n} seeds per point; {SEED_NOTE}; legend: baseline mean (range)", fontsize=9)
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


def _stage_runs(runs: list[dict], task: str, stages: tuple, ms: list, part: str | None = None) -> list[dict]:
    """The runs of one stage set at the ablation's M: all three stages from the sweep, two from ``part``."""
    part = part or ("sweep" if len(stages) == 3 else "ablation")
    return [r for r in select(runs, part=part, task=task, kind="latent", stages=stages)
            if r["mixer"]["num_latents"] in ms]  # fmt: skip


def ablation_figure(runs: list[dict]) -> Figure:
    """The stage ablation: accuracy vs M for each stage set on both tasks (dashed, squares: the two-stage layers
    widened to about the three-stage layer's parameter count, the ``control`` part; mean only), and how far the trained write maps are from a
    plain mean-pool (total-variation distance, trained vs at initialisation)."""
    fig, axes = _figure(3, width=4.6, height=4.4)
    ms = sorted({r["mixer"]["num_latents"] for r in select(runs, part="ablation")})
    control = select(runs, part="control")
    for ax, task in zip(axes, ("global", "retrieval")):
        for stages, (label, color) in ABLATION_STYLE.items():
            _banded(ax, _stage_runs(runs, task, stages, ms), "num_latents", label, color=color)
            if len(stages) == 2 and control:  # the control: dashed, no band (its spread is in the printed tables)
                wide = _stage_runs(runs, task, stages, ms, part="control")
                xs, mean, _, _ = band(wide, "num_latents")
                ax.plot(xs, mean, ls="--", marker="s", ms=4, color=color,
                        label=f"{label.split(' (')[0]}, D={wide[0]['dim']} (control)")  # fmt: skip
        if task == "retrieval":
            _slot_references(ax, ms, 8, 2)
        _log_ticks(ax, ms)
        ax.set_ylim(0.8 if task == "global" else 0.2, 1.01)
        ax.set_xlabel("M latents")
        ax.set_ylabel("held-out accuracy")
        ax.set_title(f"{task} task: which stages matter?", fontsize=10)
    handles, labels = axes[1].get_legend_handles_labels()  # one legend for both accuracy panels, below them
    fig.legend(handles, labels, loc="outside lower left", ncol=4, fontsize=7.5, frameon=False)
    ax = axes[2]
    for task, ls in (("global", "-"), ("retrieval", "--")):
        for stages in (("write", "gather", "broadcast"), ("write", "broadcast")):
            label, color = ABLATION_STYLE[stages]
            chosen = _stage_runs(runs, task, stages, ms)
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
    n = seed_count(runs, part="ablation")
    fig.suptitle(f"{n} seeds per point, the same training budget; {SEED_NOTE}", fontsize=9)
    return fig


def _heads_runs(runs: list[dict], h: int) -> list[dict]:
    return [r for r in select(runs, task="retrieval", kind="latent", heads=h, num_facts=8, query_skew=0.0,
                              stages=("write", "gather", "broadcast")) if r["part"] in ("sweep", "heads")]  # fmt: skip


def heads_figure(runs: list[dict]) -> Figure:
    """Retrieval (K = 8) accuracy vs M for H = 1, 2, 4 heads, each with the reference of an ideal clean-slot memory
    of H·M slots (dashed, same colour)."""
    fig, (ax,) = _figure(1, width=7.6, height=3.8)
    for h, color in zip((1, 2, 4), OKABE_ITO):
        chosen = _heads_runs(runs, h)
        ms = [m for m in seed_values(chosen, "num_latents") if m <= 4]
        _banded(ax, [r for r in chosen if r["mixer"]["num_latents"] in ms], "num_latents", f"H = {h} heads",
                color=color)  # fmt: skip
        ax.plot(ms, [slot_memory_accuracy(8, h * m, 8) for m in ms], ls="--", lw=1, color=color)
    ax.plot([], [], ls="--", color="0.4", label="ideal clean-slot memory,\nH·M slots (a reference)")
    _log_ticks(ax, ms)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("M latents")
    ax.set_ylabel("held-out accuracy")
    n = seed_count(runs, part="heads")
    ax.set_title(f"retrieval, K = 8 facts, {n} seeds: the H·M-slot reference rises with H,\nthe trained models do not"
                 f" ({SEED_NOTE})", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def capacity_figure(runs: list[dict]) -> Figure:
    """Retrieval accuracy vs the number of facts K, one line per M (seed 0), each with the reference of an ideal
    clean-slot memory of H·M slots (dashed, same colour)."""
    fig, (ax,) = _figure(1, width=7.6, height=3.8)
    ms = sorted({r["mixer"]["num_latents"] for r in select(runs, part="capacity", kind="latent")})
    heads = select(runs, part="capacity")[0]["heads"]
    for m in ms:
        where = {"task": "retrieval", "kind": "latent", "num_latents": m, "query_skew": 0.0, "seed": 0, "heads": heads}
        chosen = [r for r in select(runs, **where) if r["part"] in ("sweep", "capacity")]
        per_k = seed_values(chosen, "num_facts")
        (line,) = ax.plot(list(per_k), [v[0] for v in per_k.values()], marker="o", label=f"latent M={m}")
        ax.plot(list(per_k), [slot_memory_accuracy(k, heads * m, 8) for k in per_k], ls="--", lw=1,
                color=line.get_color())  # fmt: skip
    full = [r for r in select(runs, task="retrieval", kind="full", layers=1, query_skew=0.0, seed=0)
            if r["part"] in ("sweep", "capacity")]  # fmt: skip
    fx = seed_values(full, "num_facts")
    ax.plot(list(fx), [v[0] for v in fx.values()], marker="s", color="black", label="full attention")
    ax.plot([], [], ls="--", color="0.4", label=f"ideal clean-slot memory,\nH·M slots (H={heads}, a reference)")
    _log_ticks(ax, list(fx))
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("K facts per sequence")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("retrieval: where the bottleneck runs out of room (one seed, seed 0)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def distil_figure(runs: list[dict]) -> Figure:
    """Retrieval with skewed questions: trained latent models (mean, seed range as an error bar) vs ideal clean-slot
    memories of M facts that keep the most-asked facts or arbitrary ones."""
    fig, (ax,) = _figure(1, width=8.6, height=3.6)
    where = {"part": "distil", "kind": "latent"}
    ms, trained, lo, hi = band(runs, "num_latents", **where)
    first = {m: select(runs, num_latents=m, seed=0, **where)[0] for m in ms}  # the ideal memories: same data
    bars = {
        "ideal clean-slot memory, arbitrary M facts": [first[m]["slot_memory"]["first"] for m in ms],
        "trained latent attention (seed range)": trained,
        "ideal clean-slot memory, the M most-asked facts": [first[m]["slot_memory"]["important"] for m in ms],
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
    skew, n = first[ms[0]]["task_args"]["query_skew"], seed_count(runs, part="distil")
    ax.set_title(f"K=8 facts, questions favour small keys (query_skew={skew}), {n} seeds:\nthe latents keep the"
                 " most-asked facts", fontsize=10)  # fmt: skip
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
    fig, axes = _figure(2, height=4.4)
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
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)  # below: no line hidden
    n = seed_count(runs, part="sweep")
    fig.suptitle(f"{n} seeds per model; points: mean, bars: lowest to highest seed", fontsize=9)
    return fig


def length_figure(runs: list[dict], timing: dict) -> Figure:
    """Left: accuracy of models trained at each N (global task; mean and seed band) — models without positions on a
    frequency statistic, a test that cannot fail the long-sequence claim. Right: seconds per training step vs N
    (one timing run)."""
    fig, (ax_acc, ax_t) = _figure(2)
    chosen = [r for r in runs if r["part"] in ("sweep", "length")]
    for label, color in zip(("full", "full ×3", "latent M=4"), ("black", "0.55", OKABE_ITO[0])):
        xs = _banded(ax_acc, chosen, "seq_len", label, color=color, task="global", label=label)
    _log_ticks(ax_acc, xs)
    ax_acc.set_ylim(0.85, 1.0)
    ax_acc.set_xlabel("sequence length N (trained and tested)")
    ax_acc.set_ylabel("held-out accuracy")
    n = seed_count(runs, part="length")
    ax_acc.set_title(f"global task, no positions: a test that cannot fail, {n} seeds\n({SEED_NOTE})", fontsize=10)
    ax_acc.legend(fontsize=8)
    steps = {}
    for row in timing["rows"]:
        xs_t, ys_t = steps.setdefault(row["label"], ([], []))
        xs_t.append(row["seq_len"])
        ys_t.append(row["seconds"] * 1e3)
    line_chart(steps, ax_t, logx=True, logy=True, marker="o", xlabel="sequence length N",
               ylabel="ms per training step", title=f"one training step (batch {timing['batch_size']}): full attention grows fastest")  # fmt: skip
    _log_ticks(ax_t, sorted({row["seq_len"] for row in timing["rows"]}))
    return fig


POSITION_STYLE = {"full": ("black", "s"), "window ±8": ("#8C564B", "^"), "latent M=16": (OKABE_ITO[0], "o")}


def position_figure(runs: list[dict], no_positions: dict[str, dict[int, float]] | None = None) -> Figure:
    """The length test that can fail: the copy task (copy the first token / the token 16 places ahead), models with
    sinusoidal positions trained at one length and tested at every length; mean and seed band per model, the
    training length marked, chance (1/V) dotted. ``no_positions``: {source: {N: accuracy}} of the best reference
    without positions (:meth:`~lattn.tasks.PositionalCopy.counts_only`), drawn dash-dotted."""
    fig, axes = _figure(2, width=5.4, height=3.8)
    chosen = select(runs, part="position")
    train_n = chosen[0]["task_args"]["seq_len"]
    lengths = sorted({train_n} | {int(k.split("=")[1]) for k in chosen[0]["shifted"]})
    for ax, source in zip(axes, ("first", "ahead")):
        for label, (color, marker) in POSITION_STYLE.items():
            runs_m = select(chosen, source=source, label=label)
            per_seed = [[r["accuracy"] if n == train_n else r["shifted"][f"seq_len={n}"] for n in lengths]
                        for r in runs_m]  # fmt: skip
            acc = np.array(per_seed)  # (seeds, lengths)
            ax.plot(lengths, acc.mean(0), marker=marker, color=color, label=label)
            ax.fill_between(lengths, acc.min(0), acc.max(0), color=color, alpha=0.2, lw=0)
        v = chosen[0]["task_args"].get("num_values", 8)
        ax.axhline(1 / v, color="0.5", ls=":", lw=1.2, label=f"chance (1/{v})")
        if no_positions:
            ref = no_positions[source]
            ax.plot(list(ref), list(ref.values()), color="0.35", ls="-.", lw=1.2, label="best without positions")
        ax.axvline(train_n, color="0.6", lw=6, alpha=0.25, label=f"trained at N={train_n}")
        _log_ticks(ax, lengths)
        ax.set_ylim(0, 1.03)
        ax.set_xlabel("test length N")
        ax.set_ylabel("held-out accuracy")
        offset = select(chosen, source=source)[0]["task_args"].get("offset")
        title = "copy the first token: one detail for all" if source == "first" else (
            f"copy the token {offset} places ahead: a detail per token")  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7.5, loc="upper right")
    n = seed_count(chosen)
    fig.suptitle(f"models with sinusoidal positions, {n} seeds per point; {SEED_NOTE}", fontsize=9)
    return fig
