"""Explorers of notebook 05 (DeepSeek MLA): a KV-cache calculator and the measured decode benchmark of the three
modes.

Thin shells: the cache sizes come from :mod:`lattn.mla`, the timings from :mod:`lattn.bench.mla`, the figures from
:mod:`lattn.viz.mla`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
from matplotlib.figure import Figure

from ..bench import mla as bench
from ..mla import KV_KINDS, PRESETS, kv_cache_bytes, kv_elements_per_token, largest_divisor_at_most
from ..viz.mla import DecodeBenchView, KVCacheView, fmt_gb
from .base import Explorer

__all__ = ["DecodeBenchExplorer", "KVCacheCalculator"]

CUSTOM = "custom"
PRESET_FIELDS = ("heads", "d_head", "d_c", "d_rope", "layers")
BIT_OPTIONS = [("4 B (FP32)", 32), ("2 B (BF16)", 16), ("1 B (FP8)", 8), ("0.75 B (6-bit)", 6)]
BUDGETS_GB = [16, 24, 40, 80, 141, 640]  # a laptop GPU … one H200 … an 8-GPU server
CONTEXTS = [(f"{n // 1024}K" if n < 2**20 else "1M", n) for n in (2**k for k in range(10, 21))]  # 1K … 1M tokens


def _int_slider(description: str, lo: int, hi: int, value: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False)


def _check_control_value(name: str, control: W.Widget, value: Any) -> None:
    """ValueError naming the control, the value and what it accepts, unless ``control`` can take ``value``."""
    if isinstance(control, (W.Dropdown, W.SelectionSlider)):
        options = [o[1] if isinstance(o, tuple) else o for o in control.options]
        if value not in options:
            shown = ", ".join(f"{o:,}" if isinstance(o, int) else repr(o) for o in options)
            raise ValueError(f"KVCacheCalculator: {name} must be one of {shown}; got {value!r}")
    elif isinstance(control, W.IntSlider):
        if isinstance(value, bool) or not isinstance(value, int) or not control.min <= value <= control.max:
            raise ValueError(
                f"KVCacheCalculator: {name} must be an integer from {control.min:,} to {control.max:,}, got {value!r}"
            )


class KVCacheCalculator(Explorer):
    """How many GB of KV cache MHA, GQA, MQA, naive MLA and MLA need, against a memory budget.

    Controls: ``preset`` (DeepSeek-V2, V2-Lite, V3 or custom; a preset sets the size sliders, moving one of them
    switches to custom), ``context``, ``batch``, ``layers``, ``heads``, ``d_head``, ``d_c``, ``d_rope``, ``n_groups``
    (GQA groups; snapped to a divisor of heads), ``bits`` (per element), ``budget`` (GB), ``log_scale``.
    State: ``gb`` {kind: GB}, ``fits`` {kind: bool}, ``per_token`` {kind: elements per token per layer}.
    """

    figsize = (9.0, 3.4)

    def __init__(self, preset: str = "DeepSeek-V2") -> None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(
                f"KVCacheCalculator: preset must be one of {list(PRESETS)}, got {preset!r}; start from a preset, "
                "then move the size sliders (or .set(heads=…, d_head=…, d_c=…)) for another model"
            )
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
            "d_head": _int_slider("d_head", 16, 256, p.d_head, step=16),
            "d_c": _int_slider("d_c", 32, 2048, p.d_c, step=32),
            "d_rope": _int_slider("d_rope", 0, 256, p.d_rope, step=16),
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
        that differ from the chosen preset switch it to custom. A value a control cannot take is refused by name
        (ValueError), never clamped."""
        for name, value in values.items():
            if name in self._controls:
                _check_control_value(name, self._controls[name], value)
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
        dims = {
            "heads": self.heads.value,
            "d_head": self.d_head.value,
            "d_c": self.d_c.value,
            "d_rope": self.d_rope.value,
        }
        groups = largest_divisor_at_most(self.heads.value, self.n_groups.value)
        size = {"context": self.context.value, "batch": self.batch.value, "layers": self.layers.value}
        gb = {k: kv_cache_bytes(k, **size, bits=self.bits.value, n_groups=groups, **dims) / 1e9 for k in KV_KINDS}
        per_token = {k: kv_elements_per_token(k, n_groups=groups, **dims) for k in KV_KINDS}
        budget = self.budget.value
        return {
            "gb": gb,
            "fits": {k: v <= budget for k, v in gb.items()},
            "per_token": per_token,
            "groups": groups,
            "budget": budget,
            "log": self.log_scale.value,
            "preset": self.preset.value,
            "context_label": self.context.label,
            "batch": self.batch.value,
            "layers": self.layers.value,
            "bits": self.bits.value,
        }

    def setup(self, fig: Figure) -> None:
        self.view = KVCacheView(fig, KV_KINDS)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

    def describe(self, state: dict[str, Any]) -> str:
        mla, mha = state["gb"]["MLA"], state["gb"]["MHA"]
        return (
            f"{self.preset.value}, context={self.context.label}, batch={self.batch.value}, layers={self.layers.value}, "
            f"heads={self.heads.value}, d_head={self.d_head.value}, d_c={self.d_c.value}, d_rope={self.d_rope.value}, "
            f"groups={state['groups']} (asked {self.n_groups.value}; must divide heads), bits={self.bits.value}, budget={state['budget']} GB, log={state['log']}: "
            f"MLA {fmt_gb(mla)} vs MHA {fmt_gb(mha)} ({100 * mla / mha:.2f} %)"
        )


class DecodeBenchExplorer(Explorer):
    """Decode speed of MLA's modes (naive: per-head cache; absorbed and auto: latent cache, a decoding token
    absorbed) against the number of cached tokens, and the caches' size; starts from the decode rows of the stored
    2-core measurement (``lattn/data/bench_mla_2core.csv``).

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
            self.rows = bench.benchmark(
                self.rerun_contexts,
                (),  # decode only: a prefill takes seconds
                min_run_time=self.rerun_min_run_time,
                repeats=self.rerun_repeats,
                progress=lambda text: setattr(self.status, "value", f"measuring {text} …"),
            )
            self.source = "measured just now on this machine"
        finally:
            self.run.disabled = False
        self.render()

    def compute(self) -> dict[str, Any]:
        curves = bench.decode_curves(self.rows)
        key = "tokens_per_s" if self.metric.value == "tokens/s" else "ms_per_step"
        return {
            "contexts": curves["contexts"],
            "series": curves[key],
            "cache_bytes": curves["cache_bytes"],
            "speedup": curves["speedup"],
            "metric": self.metric.value,
            "source": self.source,
            "config": self.rows[0]["config"],
            "threads": self.rows[0]["threads"],
        }

    def setup(self, fig: Figure) -> None:
        self.view = DecodeBenchView(fig)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

    def describe(self, state: dict[str, Any]) -> str:
        last = max(state["speedup"])
        return (
            f"show={state['metric']}, {state['source']}: absorbed / naive = {state['speedup'][last]:.2f}× "
            f"at {last:,} cached tokens"
        )
