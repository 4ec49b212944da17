"""Explorers of notebook 05 (DeepSeek MLA): a KV-cache calculator and the measured decode benchmark.

Thin shells: the cache sizes come from :mod:`lattn.mla`, the timings from :mod:`lattn.bench.mla`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..bench import mla as bench
from ..mla import KV_KINDS, PRESETS, kv_cache_bytes
from .base import Explorer

__all__ = ["DecodeBenchExplorer", "KVCacheCalculator", "largest_divisor_at_most"]

CUSTOM = "custom"
PRESET_FIELDS = ("heads", "d_h", "d_c", "d_rope", "layers")
BIT_OPTIONS = [("4 B (FP32)", 32), ("2 B (BF16)", 16), ("1 B (FP8)", 8), ("0.75 B (6-bit)", 6)]
BUDGETS_GB = [16, 24, 40, 80, 141, 640]  # a laptop GPU … one H200 … an 8-GPU server
CONTEXTS = [(f"{n // 1024}K" if n < 2**20 else "1M", n) for n in (2**k for k in range(10, 21))]  # 1K … 1M tokens
COLORS = {"MHA": "0.55", "GQA": "0.55", "MQA": "0.55", "MLA naive": "#d98c5f", "MLA": "#2a7ab0"}


def largest_divisor_at_most(heads: int, n: int) -> int:
    """The largest group count ≤ n that divides ``heads`` (GQA needs equal groups). Example: (128, 12) → 8."""
    return max(g for g in range(1, min(n, heads) + 1) if heads % g == 0)


def _int_slider(description: str, lo: int, hi: int, value: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False)


class KVCacheCalculator(Explorer):
    """How many GB of KV cache MHA, GQA, MQA, naive MLA and MLA need, against a memory budget.

    Controls: ``preset`` (DeepSeek-V2, V2-Lite, V3 or custom; a preset sets the size sliders, moving one of them
    switches to custom), ``context``, ``batch``, ``layers``, ``heads``, ``d_h``, ``d_c``, ``d_rope``, ``n_groups``
    (GQA groups; snapped to a divisor of heads), ``bits`` (per element), ``budget`` (GB), ``log_scale``.
    State: ``gb`` {kind: GB}, ``fits`` {kind: bool}, ``per_token`` {kind: elements per token per layer}.
    """

    figsize = (9.0, 3.4)

    def __init__(self, preset: str = "DeepSeek-V2") -> None:
        self._initial = preset
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        p = PRESETS[self._initial]
        return {
            "preset": W.Dropdown(options=[*PRESETS, CUSTOM], value=self._initial, description="preset"),
            "context": W.SelectionSlider(
                options=CONTEXTS, value=131072, description="context", continuous_update=False
            ),
            "batch": _int_slider("batch", 1, 128, 1),
            "layers": _int_slider("layers", 1, 128, p.layers),
            "heads": _int_slider("heads n_h", 1, 256, p.heads),
            "d_h": _int_slider("d_h", 16, 256, p.d_h, step=16),
            "d_c": _int_slider("d_c", 32, 2048, p.d_c, step=32),
            "d_rope": _int_slider("d_h^R", 0, 256, p.d_rope, step=16),
            "n_groups": _int_slider("GQA groups", 1, 64, 8),
            "bits": W.Dropdown(options=BIT_OPTIONS, value=16, description="precision"),
            "budget": W.Dropdown(options=[(f"{g} GB", g) for g in BUDGETS_GB], value=80, description="fits in"),
            "log_scale": W.Checkbox(value=False, description="log scale"),
        }

    def _on_change(self, change: dict) -> None:
        if change["owner"] is self.preset:
            self.set(preset=change["new"])  # a preset loads its sizes, with a single render
        else:
            self.set()  # switches the preset to custom when a size no longer matches it

    def set(self, **values: Any) -> KVCacheCalculator:
        """Like :meth:`Explorer.set`; a preset also sets the size sliders (values given explicitly win), and sizes
        that differ from the chosen preset switch it to custom."""
        preset = values.get("preset", self.preset.value)
        if preset != CUSTOM:
            p = PRESETS[preset]
            if "preset" in values:
                values = {**{f: getattr(p, f) for f in PRESET_FIELDS}, **values}
            sizes = {f: values.get(f, getattr(self, f).value) for f in PRESET_FIELDS}
            if any(sizes[f] != getattr(p, f) for f in PRESET_FIELDS):
                values["preset"] = CUSTOM
        super().set(**values)
        return self

    def compute(self) -> dict[str, Any]:
        dims = {"heads": self.heads.value, "d_h": self.d_h.value, "d_c": self.d_c.value, "d_rope": self.d_rope.value}
        groups = largest_divisor_at_most(self.heads.value, self.n_groups.value)
        size = {"context": self.context.value, "batch": self.batch.value, "layers": self.layers.value}
        gb = {k: kv_cache_bytes(k, **size, bits=self.bits.value, n_groups=groups, **dims) / 1e9 for k in KV_KINDS}
        per_token = {k: int(kv_cache_bytes(k, context=1, bits=8, n_groups=groups, **dims)) for k in KV_KINDS}
        budget = self.budget.value
        return {
            "gb": gb,
            "fits": {k: v <= budget for k, v in gb.items()},
            "per_token": per_token,
            "groups": groups,
            "budget": budget,
            "log": self.log_scale.value,
        }

    def setup(self, fig: Figure) -> None:
        self.ax = ax = fig.add_subplot()
        y = np.arange(len(KV_KINDS))
        self.bars = ax.barh(y, np.ones(len(KV_KINDS)), color=[COLORS[k] for k in KV_KINDS], height=0.62)
        ax.set_yticks(y, KV_KINDS)
        ax.invert_yaxis()
        ax.set_xlabel("KV cache (GB, 1 GB = 10⁹ bytes)")
        self.labels = [ax.text(0, i, "", va="center", fontsize=9) for i in y]  # value at the end of each bar
        ax.set_ylim(len(KV_KINDS) - 0.5, -1.0)  # room above the first bar for the budget's label
        self.budget_line = ax.axvline(1, color="crimson", ls="--", lw=1.5)
        self.budget_text = ax.text(1, -0.75, "", color="crimson", fontsize=9, ha="left", va="center")

    def draw(self, state: dict[str, Any]) -> None:
        ax, gb = self.ax, state["gb"]
        values = np.array([gb[k] for k in KV_KINDS])
        top = max(values.max(), state["budget"])
        if state["log"]:
            ax.set_xscale("log")
            ax.set_xlim(max(values.min(), 1e-6) / 3, top * 30)
        else:
            ax.set_xscale("linear")
            ax.set_xlim(0, top * 1.3)
        for i, (bar, label, kind, v) in enumerate(zip(self.bars, self.labels, KV_KINDS, values)):
            fits = state["fits"][kind]
            bar.set_width(v)
            bar.set_alpha(1.0 if fits else 0.45)
            bar.set_hatch("" if fits else "//")
            label.set_position((v * 1.15 if state["log"] else v + top * 0.01, i))
            label.set_text(f"{_fmt_gb(v)} " + ("fits" if fits else "too big"))
        names = {"GQA": f"GQA, {state['groups']} groups", "MLA": "MLA (absorbed)"}
        ax.set_yticks(
            range(len(KV_KINDS)), [f"{names.get(k, k)}\n{state['per_token'][k]:,} / token / layer" for k in KV_KINDS]
        )
        self.budget_line.set_xdata([state["budget"], state["budget"]])
        self.budget_text.set_position((state["budget"], -0.75))
        self.budget_text.set_text(f" fits in {state['budget']} GB")
        ax.set_title(
            f"{self.preset.value}: {self.context.label} tokens × batch {self.batch.value}, {self.layers.value} layers, "
            f"{self.bits.value} bits per element",
            fontsize=10,
        )

    def describe(self, state: dict[str, Any]) -> str:
        mla, mha = state["gb"]["MLA"], state["gb"]["MHA"]
        return (
            f"{self.preset.value}, context={self.context.label}, batch={self.batch.value}, layers={self.layers.value}, "
            f"heads={self.heads.value}, d_h={self.d_h.value}, d_c={self.d_c.value}, d_rope={self.d_rope.value}, "
            f"groups={state['groups']} (asked {self.n_groups.value}; must divide heads), bits={self.bits.value}, budget={state['budget']} GB, log={state['log']}: "
            f"MLA {_fmt_gb(mla)} vs MHA {_fmt_gb(mha)} ({100 * mla / mha:.2f} %)"
        )


def _fmt_gb(gb: float) -> str:
    return f"{gb:,.0f} GB" if gb >= 100 else f"{gb:.3g} GB"


class DecodeBenchExplorer(Explorer):
    """Decode speed of MLA with a naive vs an absorbed cache against the number of cached tokens, and the caches'
    size; starts from the stored 2-core measurement (``lattn/data/bench_mla_2core.csv``).

    Controls: ``metric`` (tokens/s or ms per step), ``run`` (a button: re-measure a small version on this machine,
    a few seconds). State: ``rows`` of the benchmark, ``source``, ``speedup`` {context: absorbed / naive}.
    """

    figsize = (9.0, 3.3)
    rerun_contexts: tuple[int, ...] = bench.QUICK_CONTEXTS  # what the button measures (tests shrink these)
    rerun_min_run_time: float = 0.05
    rerun_repeats: int = 1

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows = rows if rows is not None else bench.read_csv()
        self.source = "stored 2-core run" if rows is None else "given rows"
        super().__init__()
        self.run.on_click(lambda _button: self.rerun())

    def controls(self) -> dict[str, W.Widget]:
        return {
            "metric": W.Dropdown(options=["tokens/s", "ms per step"], value="tokens/s", description="show"),
            "run": W.Button(description="re-run small here", icon="play"),
        }

    def rerun(self) -> None:
        """Measure the small benchmark on this machine and show it (the status label reports progress)."""
        self.run.disabled = True
        try:
            self.rows = bench.decode_benchmark(
                self.rerun_contexts,
                min_run_time=self.rerun_min_run_time,
                repeats=self.rerun_repeats,
                progress=lambda text: setattr(self.status, "value", f"measuring {text} …"),
            )
            self.source = "measured just now on this machine"
        finally:
            self.run.disabled = False
        self.render()

    def compute(self) -> dict[str, Any]:
        key = "tokens_per_s" if self.metric.value == "tokens/s" else "ms_per_step"
        contexts = sorted({r["context"] for r in self.rows})
        by = {(r["context"], r["mode"]): r for r in self.rows}
        series = {m: np.array([by[c, m][key] for c in contexts]) for m in ("naive", "absorbed")}
        cache_mb = {m: np.array([by[c, m]["cache_bytes"] / 1e6 for c in contexts]) for m in ("naive", "absorbed")}
        speedup = {c: by[c, "absorbed"]["tokens_per_s"] / by[c, "naive"]["tokens_per_s"] for c in contexts}
        return {
            "contexts": np.array(contexts),
            "series": series,
            "cache_mb": cache_mb,
            "speedup": speedup,
            "metric": self.metric.value,
            "source": self.source,
            "config": self.rows[0]["config"],
            "threads": self.rows[0]["threads"],
        }

    def setup(self, fig: Figure) -> None:
        self.ax_speed, self.ax_cache = fig.subplots(1, 2, width_ratios=[1.3, 1])
        style = {
            "naive": {"color": COLORS["MLA naive"], "marker": "s"},
            "absorbed": {"color": COLORS["MLA"], "marker": "o"},
        }
        self.lines = {m: self.ax_speed.plot([], [], label=f"{m} cache", **s)[0] for m, s in style.items()}
        self.cache_lines = {m: self.ax_cache.plot([], [], label=m, **s)[0] for m, s in style.items()}
        for ax in (self.ax_speed, self.ax_cache):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("cached tokens")
            ax.grid(True, which="major", alpha=0.3)
        self.ax_speed.legend(fontsize=8, loc="best")
        self.ax_cache.set_ylabel("cache of one layer (MB)")
        self.ax_cache.set_title("memory read per decode step", fontsize=10)
        self.notes = []

    def draw(self, state: dict[str, Any]) -> None:
        c = state["contexts"]
        for m, line in self.lines.items():
            line.set_data(c, state["series"][m])
            self.cache_lines[m].set_data(c, state["cache_mb"][m])
        for ax, data in ((self.ax_speed, state["series"]), (self.ax_cache, state["cache_mb"])):
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

    def describe(self, state: dict[str, Any]) -> str:
        last = max(state["speedup"])
        return (
            f"show={state['metric']}, {state['source']}: absorbed / naive = {state['speedup'][last]:.2f}× "
            f"at {last:,} cached tokens"
        )
