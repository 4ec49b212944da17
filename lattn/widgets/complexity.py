"""Explorers of notebook 02 (the complexity lab): analytic costs of full vs latent attention, and measured times.

Thin shells: the formulas come from :mod:`lattn.complexity`, the measurements from :mod:`lattn.bench.complexity`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

from ..bench import complexity as bench
from ..bench.complexity import human_bytes
from ..complexity import PATHS, crossover_n, full_attention_cost, latent_attention_cost, matrix_bytes, total_cost
from .base import Explorer

__all__ = ["BenchExplorer", "CostExplorer", "honest_figure"]

STYLE = {  # one look per method, in every figure of the notebook
    "full-sdpa": {"color": "0.15", "marker": "o", "label": "full, fused SDPA"},
    "full-explicit": {"color": "0.6", "marker": "s", "label": "full, explicit N×N"},
    "latent-fast": {"color": "#2a7ab0", "marker": "o", "label": "latent, fast path"},
    "latent-teaching": {"color": "#d98c5f", "marker": "s", "label": "latent, teaching path"},
}
N_GRID = np.unique(np.geomspace(64, 2**20, 57).round().astype(int))  # the analytic curves' N values


def _powers(lo: int, hi: int) -> list[tuple[str, int]]:
    return [(f"{2**k:,}", 2**k) for k in range(lo, hi + 1)]


def _tokens_label(n: float) -> str:
    n = round(n)
    return f"{n // 2**20}M" if n >= 2**20 else f"{n // 1024}K" if n >= 1024 else str(n)


def _log_axes(ax, xs: Any, xlabel: str = "sequence length N") -> None:
    """Log-log axes with few ticks: N at powers of 4 (or 2 when few) in plain text, at most 6 powers of 10 on y,
    no minor ticks (laying out dozens of math tick labels made each render take seconds)."""
    lo, hi = max(float(np.min(xs)), 1.0), float(np.max(xs))
    ks = range(int(np.ceil(np.log2(lo))), int(np.floor(np.log2(hi))) + 1)
    ticks = [2**k for k in ks if len(ks) <= 8 or k % 2 == 0]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ticks, [_tokens_label(t) for t in ticks])
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.grid(True, which="major", alpha=0.3)


class CostExplorer(Explorer):
    """FLOPs and memory of one attention layer (B = 1, float32) against N, full vs latent, from the formulas.

    Controls: ``n`` (tokens, powers of 2: a log-scale slider), ``m`` (latents), ``dim_head``, ``heads``, ``scope``
    (the attention core alone or the whole module with its projections). The crossover N — where latent attention
    becomes cheaper in FLOPs — is marked, and the size of full attention's N×N weights at the chosen N is printed.
    State: ``full_flops``, ``latent_flops``, ``ratio``, ``crossover``, ``nxn_bytes`` and the curves.
    """

    figsize = (10.0, 3.8)

    def controls(self) -> dict[str, W.Widget]:
        return {
            "n": W.SelectionSlider(
                options=_powers(6, 20), value=16_384, description="N tokens", continuous_update=False
            ),
            "m": W.SelectionSlider(options=_powers(0, 10), value=64, description="M latents", continuous_update=False),
            "dim_head": W.SelectionSlider(
                options=[16, 32, 64, 128, 256], value=64, description="d_head", continuous_update=False
            ),
            "heads": W.IntSlider(value=4, min=1, max=16, description="heads", continuous_update=False),
            "scope": W.Dropdown(
                options=[("attention core", "core"), ("whole module", "module")], value="core", description="count"
            ),
        }

    def compute(self) -> dict[str, Any]:
        n, m, module = self.n.value, self.m.value, self.scope.value == "module"
        sizes = {"heads": self.heads.value, "dim_head": self.dim_head.value}

        def costs(k: int) -> dict[str, Any]:  # method → Cost of one layer at N = k
            full = {path: full_attention_cost(k, path=path, **sizes) for path in PATHS}
            latent = {
                path: total_cost(latent_attention_cost(k, m, path=path, **sizes), core_only=not module)
                for path in PATHS
            }
            return {"full-sdpa": full["fast"], "full-explicit": full["teaching"],
                    "latent-fast": latent["fast"], "latent-teaching": latent["teaching"]}  # fmt: skip

        def flops(c) -> int:
            return c.flops if module else c.core_flops

        def memory(c) -> int:
            return c.peak_bytes if module else c.core_bytes

        grid = [costs(int(k)) for k in N_GRID]
        curves = {k: np.array([memory(c[k]) for c in grid], dtype=float) for k in STYLE}
        curves["full"] = np.array([flops(c["full-sdpa"]) for c in grid], dtype=float)
        curves["latent"] = np.array([flops(c["latent-fast"]) for c in grid], dtype=float)
        here = costs(n)
        full, latent = flops(here["full-sdpa"]), flops(here["latent-fast"])
        return {
            "curves": curves,
            "n": n,
            "full_flops": full,
            "latent_flops": latent,
            "ratio": full / latent,
            "crossover": crossover_n(m, whole_module=module, **sizes),
            "nxn_bytes": matrix_bytes(n, n, heads=sizes["heads"]),
            "memory": {k: memory(c) for k, c in here.items()},
        }

    def setup(self, fig: Figure) -> None:
        self.ax_flops, self.ax_mem = fig.subplots(1, 2)
        self.flop_lines = {
            "full": self.ax_flops.plot([], [], color=STYLE["full-sdpa"]["color"], label="full attention")[0],
            "latent": self.ax_flops.plot([], [], color=STYLE["latent-fast"]["color"], label="latent attention")[0],
        }
        (self.flop_dots,) = self.ax_flops.plot([], [], "o", color="crimson", ms=6, zorder=3)
        self.cross = self.ax_flops.axvline(1, color="0.4", ls="--", lw=1)
        self.cross_label = self.ax_flops.text(1, 0.04, "", transform=self.ax_flops.get_xaxis_transform(), fontsize=8)
        dashes = {"full-sdpa": "--", "latent-fast": "-"}  # teaching paths dotted; SDPA dashed on top of latent
        self.mem_lines = {
            k: self.ax_mem.plot([], [], color=s["color"], ls=dashes.get(k, ":"), zorder=3 if k == "full-sdpa" else 2,
                                label=s["label"])[0]
            for k, s in STYLE.items()
        }  # fmt: skip
        self.mem_marker = self.ax_mem.axvline(1, color="crimson", lw=1)
        self.nxn_text = self.ax_mem.text(0.02, 0.97, "", transform=self.ax_mem.transAxes, va="top", fontsize=8)
        for ax, ylabel in ((self.ax_flops, "FLOPs (2 per multiply-add)"), (self.ax_mem, "bytes that must exist")):
            _log_axes(ax, N_GRID)
            ax.set_ylabel(ylabel)
        self.ax_flops.legend(fontsize=8, loc="lower right")
        self.ax_mem.legend(fontsize=7, loc="lower right")

    def draw(self, state: dict[str, Any]) -> None:
        curves, n = state["curves"], state["n"]
        for key, line in self.flop_lines.items():
            line.set_data(N_GRID, curves[key])
        self.flop_dots.set_data([n, n], [state["full_flops"], state["latent_flops"]])
        x = state["crossover"]
        self.cross.set_xdata([x, x])
        self.cross_label.set_position((x * 1.15, 0.04))
        self.cross_label.set_text(f"crossover\nN = {x:,}")
        for key, line in self.mem_lines.items():
            line.set_data(N_GRID, curves[key])
        self.mem_marker.set_xdata([n, n])
        self.nxn_text.set_text(
            f"at N = {n:,}: full attention's N×N\nfloat32 weights = {human_bytes(state['nxn_bytes'])}"
        )
        for ax, keys in ((self.ax_flops, ("full", "latent")), (self.ax_mem, tuple(STYLE))):
            values = np.concatenate([curves[k] for k in keys])
            ax.set_xlim(N_GRID[0], N_GRID[-1])
            ax.set_ylim(values.min() / 3, values.max() * 3)
        scope = "whole module" if self.scope.value == "module" else "attention core"
        r = state["ratio"]
        winner = f"latent needs {r:,.1f}× fewer" if r >= 1 else f"full attention needs {1 / r:,.1f}× fewer"
        self.ax_flops.set_title(f"{scope} at N={n:,}: {winner} FLOPs", fontsize=10)
        self.ax_mem.set_title(f"{scope}: memory at the peak (B = 1, float32)", fontsize=10)

    def describe(self, state: dict[str, Any]) -> str:
        return (
            f"{super().describe(state)}: full/latent FLOPs = {state['ratio']:.3g}×, crossover N = "
            f"{state['crossover']:,}, N×N weights = {human_bytes(state['nxn_bytes'])}"
        )


class BenchExplorer(Explorer):
    """Measured time (or peak memory) of the four attention cores against N, over the analytic curves, and the
    speed-up of latent attention over fused full attention. Starts from the stored 2-core run
    (``lattn/data/bench_complexity_2core.csv``); the button measures a small run on this machine.

    Controls: ``y`` ("time" or "peak memory"), ``run`` (button). State: ``slopes`` {method: fitted log-log slope},
    ``speedup`` {N: full-sdpa / latent-fast}, ``source``. The dashed curves are the formulas: FLOPs divided by the
    method's own median FLOP/s for time, the bytes that must exist for memory.
    """

    figsize = (10.0, 3.8)
    live_config: bench.BenchConfig = bench.BenchConfig.quick()  # what the button measures (tests shrink it)
    fit_from: int = 1024  # slopes and rates from N ≥ this (or the largest N measured, if smaller)

    def __init__(self, rows: list[dict] | None = None) -> None:
        self.rows = rows if rows is not None else bench.read_csv()
        self.source = "stored run, 2-core CPU" if rows is None else "given rows"
        super().__init__()
        self.run.on_click(lambda _button: self.rerun())

    def controls(self) -> dict[str, W.Widget]:
        return {
            "y": W.Dropdown(options=["time", "peak memory"], value="time", description="show"),
            "run": W.Button(description="measure on this machine", icon="play", layout=W.Layout(width="230px")),
        }

    def rerun(self) -> None:
        """Run :attr:`live_config` here (about 30 s on 2 cores) and show it; the status label reports progress."""
        self.run.disabled = True
        try:
            self.rows = bench.run_benchmark(
                self.live_config, progress=lambda text: setattr(self.status, "value", f"measuring {text} …")
            )
            self.source = "measured just now on this machine"
        finally:
            self.run.disabled = False
        self.render()

    def compute(self) -> dict[str, Any]:
        rows = [r for r in self.rows if r["section"] == "n-grid"]
        first = rows[0]
        sizes = {"batch": first["batch"], "heads": first["heads"], "dim_head": first["dim_head"]}
        m = first["m"]
        fit_from = min(self.fit_from, max(r["n"] for r in rows))
        points, curves = {}, {}
        ns = sorted({r["n"] for r in rows})
        fine = np.unique(np.geomspace(ns[0], ns[-1], 40).round().astype(int))
        for method in bench.METHODS:
            done = sorted((r for r in rows if r["method"] == method and r["seconds"] is not None), key=lambda r: r["n"])
            if self.y.value == "time":
                points[method] = ([r["n"] for r in done], [r["seconds"] for r in done])
                rate = bench.achieved_flops_per_s(self.rows, method, fit_from)
                costs = [bench.method_cost(method, int(k), m, **sizes).core_flops / rate for k in fine] if rate else []
            else:
                points[method] = ([r["n"] for r in done], [r["peak_bytes"] for r in done])
                costs = [bench.method_cost(method, int(k), m, **sizes).core_bytes for k in fine]
            upto = max(points[method][0], default=0)  # draw each formula only where its method was measured
            curves[method] = (fine[fine <= upto], np.asarray(costs)[: int((fine <= upto).sum())])
        sdpa = {r["n"]: r["seconds"] for r in rows if r["method"] == "full-sdpa" and r["seconds"]}
        fast = {r["n"]: r["seconds"] for r in rows if r["method"] == "latent-fast" and r["seconds"]}
        return {
            "points": points,
            "curves": curves,
            "slopes": bench.slopes(self.rows, fit_from),
            "speedup": {n: sdpa[n] / fast[n] for n in sorted(set(sdpa) & set(fast))},
            "ns": ns,
            "m": m,
            "sizes": sizes,
            "source": self.source,
            "threads": first["threads"],
            "y": self.y.value,
        }

    def setup(self, fig: Figure) -> None:
        self.ax, self.ax_ratio = fig.subplots(1, 2, width_ratios=[1.35, 1])
        self.dots = {
            k: self.ax.plot([], [], ls="none", marker=s["marker"], color=s["color"])[0] for k, s in STYLE.items()
        }
        self.fits = {k: self.ax.plot([], [], ls="--", lw=1, color=s["color"])[0] for k, s in STYLE.items()}
        (self.ratio_dots,) = self.ax_ratio.plot([], [], "o-", color=STYLE["latent-fast"]["color"], label="measured")
        (self.ratio_formula,) = self.ax_ratio.plot([], [], "--", color="0.5", lw=1, label="FLOPs ratio N / (3M)")
        self.ax_ratio.axhline(1, color="crimson", lw=1)
        self.ax_ratio.set_ylabel("full-sdpa time / latent-fast time")
        self.ax_ratio.set_title("latent wins above the red line", fontsize=10)
        self.ax_ratio.legend(fontsize=8, loc="upper left")

    def draw(self, state: dict[str, Any]) -> None:
        for method, line in self.dots.items():
            xs, ys = state["points"][method]
            line.set_data(xs, ys)
            slope = state["slopes"][method]
            fit = "" if state["y"] != "time" or slope is None else f" (slope {slope:.2f})"
            line.set_label(STYLE[method]["label"] + fit)
            self.fits[method].set_data(*state["curves"][method])
        values = [v for xs, ys in state["points"].values() for v in ys]
        ns = state["ns"]
        for ax in (self.ax, self.ax_ratio):
            _log_axes(ax, ns)
        self.ax.set_xlim(ns[0] / 1.5, ns[-1] * 1.5)
        self.ax.set_ylim(min(values) / 3, max(values) * 3)
        self.ax.set_ylabel("median time (s)" if state["y"] == "time" else "peak bytes held (measured)")
        what = (
            "time: points measured, dashed = FLOPs / own FLOP/s" if state["y"] == "time" else "memory: dashed = formula"
        )
        self.ax.set_title(what, fontsize=10)
        self.ax.legend(fontsize=7, loc="upper left")
        speed = state["speedup"]
        xs = np.array(list(speed), dtype=float)
        self.ratio_dots.set_data(xs, list(speed.values()))
        self.ratio_formula.set_data(xs, xs / (3 * state["m"]))
        if len(xs):
            both = [*speed.values(), *(xs / (3 * state["m"]))]
            self.ax_ratio.set_xlim(xs.min() / 1.5, xs.max() * 1.5)
            self.ax_ratio.set_ylim(min(min(both), 1) / 2, max(both) * 2)
        s = state["sizes"]
        self.fig.suptitle(
            f"attention cores, B={s['batch']}, H={s['heads']}, d_head={s['dim_head']}, M={state['m']}, float32, "
            f"{state['threads']} threads — {state['source']}",
            fontsize=10,
        )

    def describe(self, state: dict[str, Any]) -> str:
        slopes = ", ".join(f"{k} {v:.2f}" for k, v in state["slopes"].items() if v is not None)
        speed = state["speedup"]
        last = f", full-sdpa / latent-fast at N={max(speed):,}: {speed[max(speed)]:.1f}×" if speed else ""
        return f"show={state['y']}, {state['source']}: slopes {slopes}{last}"


def honest_figure(rows: list[dict]) -> Figure:
    """Two panels from a benchmark run: what M costs (latent time and memory against M at one N, with fused full
    attention's time at that N when measured) and core vs whole-module speed-ups (the projections are shared)."""
    fig = Figure(figsize=(10.0, 3.4), layout="constrained")
    ax_m, ax_mod = fig.subplots(1, 2, width_ratios=[1.3, 1])
    mgrid = [r for r in rows if r["section"] == "m-grid" and r["seconds"] is not None]
    n = mgrid[0]["n"] if mgrid else None
    for method in ("latent-fast", "latent-teaching"):
        pts = sorted((r["m"], r["seconds"]) for r in mgrid if r["method"] == method)
        if pts:
            ax_m.plot(
                *zip(*pts), marker=STYLE[method]["marker"], color=STYLE[method]["color"], label=STYLE[method]["label"]
            )
    sdpa = [
        r["seconds"]
        for r in rows
        if r["section"] == "n-grid" and r["method"] == "full-sdpa" and r["n"] == n and r["seconds"]
    ]
    if sdpa:
        ax_m.axhline(sdpa[0], color=STYLE["full-sdpa"]["color"], ls="--", lw=1, label="full, fused SDPA (any M)")
    _log_axes(ax_m, [r["m"] for r in mgrid] or [1, 2], xlabel="M latents")
    ax_m.set_ylabel("median time (s)")
    ax_m.set_title(f"what M costs at N = {n:,}" if n else "no M grid in this run", fontsize=10)
    if ax_m.get_lines():
        ax_m.legend(fontsize=8)
    mods = {r["method"]: r for r in rows if r["section"] == "module" and r["seconds"] is not None}
    if len(mods) == 2:
        nm = mods["mha-module"]["n"]
        core = {r["method"]: r["seconds"] for r in rows if r["section"] == "n-grid" and r["n"] == nm and r["seconds"]}
        labels = ["attention cores", "whole modules\n(+ Linear projections)"]
        ratios = [
            core["full-sdpa"] / core["latent-fast"],
            mods["mha-module"]["seconds"] / mods["latent-module"]["seconds"],
        ]
        bars = ax_mod.bar(labels, ratios, color=[STYLE["latent-fast"]["color"], "0.6"], width=0.55)
        ax_mod.bar_label(bars, [f"{r:.1f}×" for r in ratios], fontsize=9)
        ax_mod.set_ylim(0, max(ratios) * 1.2)
        ax_mod.set_title(f"full / latent time at N = {nm:,}", fontsize=10)
    else:
        ax_mod.set_axis_off()
        ax_mod.set_title("no whole-module run", fontsize=10)
    return fig
