"""Explorers of notebook 02 (the complexity lab): analytic costs of full vs latent attention, and measured times.

Controls wired to compute and draw: the numbers come from :mod:`lattn.complexity` (formulas) and
:mod:`lattn.bench.complexity` (measurements, stored or live), the figures from :mod:`lattn.viz.complexity`.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W
import numpy as np
from matplotlib.figure import Figure

from ..bench import complexity as bench
from ..complexity import Shape, cost_curves, created_bytes, crossover_n, human_bytes, matrix_bytes, method_cost
from ..viz.complexity import STYLE, BenchView, CostView, cost_overview, honest_figure
from .base import Explorer

__all__ = ["N_GRID", "BenchExplorer", "CostExplorer", "honest_figure"]

N_GRID = np.unique(np.geomspace(64, 2**20, 57).round().astype(int))  # the analytic curves' N values


def _powers(lo: int, hi: int) -> list[tuple[str, int]]:
    return [(f"{2**k:,}", 2**k) for k in range(lo, hi + 1)]


class CostExplorer(Explorer):
    """FLOPs and memory of one attention layer (B = 1, float32) against N, full vs latent, from the formulas.

    Controls: ``n`` (tokens, powers of 2: a log-scale slider), ``m`` (latents), ``d_head``, ``heads``, ``scope``
    (the FLOPs of the attention core alone or of the whole module with its projections; memory is the same for
    both: what the attention call must hold, q, k, v, output and kept maps). The crossover N — where latent
    attention becomes cheaper in FLOPs — is marked, and the size of full attention's N×N weights at the chosen N is
    printed.
    State: ``full_flops``, ``latent_flops``, ``ratio``, ``crossover``, ``nxn_bytes`` and the curves; the figure is
    :attr:`view` (a :class:`~lattn.viz.complexity.CostView`).
    """

    figsize = (10.0, 3.8)

    def controls(self) -> dict[str, W.Widget]:
        return {
            "n": W.SelectionSlider(
                options=_powers(6, 20), value=16_384, description="N tokens", continuous_update=False
            ),
            "m": W.SelectionSlider(options=_powers(0, 10), value=64, description="M latents", continuous_update=False),
            "d_head": W.SelectionSlider(
                options=[16, 32, 64, 128, 256], value=64, description="d_head", continuous_update=False
            ),
            "heads": W.IntSlider(value=4, min=1, max=16, description="heads", continuous_update=False),
            "scope": W.Dropdown(
                options=[("attention core", "core"), ("whole module", "module")], value="core", description="count"
            ),
        }

    def compute(self) -> dict[str, Any]:
        module = self.scope.value == "module"
        shape = Shape(seq_len=self.n.value, num_latents=self.m.value, heads=self.heads.value,
                      d_head=self.d_head.value)  # fmt: skip
        curves = {k: np.asarray(v, dtype=float) for k, v in cost_curves(shape, N_GRID, whole_module=module).items()}
        here = {k: method_cost(k, shape).totals(module) for k in STYLE}  # (FLOPs, bytes the call must hold)
        full, latent = here["full-sdpa"][0], here["latent-fast"][0]
        return {
            "curves": curves,
            "n": shape.seq_len,
            "m": shape.num_latents,
            "full_flops": full,
            "latent_flops": latent,
            "ratio": full / latent,
            "crossover": crossover_n(shape, whole_module=module),
            "nxn_bytes": matrix_bytes(shape.seq_len, shape.seq_len, heads=shape.heads),
            "memory": {k: nbytes for k, (_, nbytes) in here.items()},
            "scope": "whole module" if module else "attention core",
        }

    def setup(self, fig: Figure) -> None:
        self.view = CostView(fig, N_GRID)

    def overview(self, settings: list[dict[str, Any]], memory: dict[str, Any], titles: list[str] = ()) -> Figure:
        """Static figure: the FLOPs panel at each of ``settings`` and the memory panel at ``memory`` (settings as
        for :meth:`set`; unnamed controls keep their current values, which are restored afterwards)."""
        states = self.states_at([*settings, memory])
        return cost_overview(states[:-1], states[-1], N_GRID, titles)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

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
    method's own median FLOP/s for time; for memory, the bytes the core creates (output and maps: q, k, v are views
    of its input, which the tracker does not count). The figure is :attr:`view` (a
    :class:`~lattn.viz.complexity.BenchView`).
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
        sizes = {"batch": first["batch"], "heads": first["heads"], "d_head": first["d_head"]}
        fit_from = min(self.fit_from, max(r["n"] for r in rows))
        key = "seconds" if self.y.value == "time" else "peak_bytes"
        points = {method: bench.series(self.rows, method, key) for method in bench.METHODS}
        held = {}
        if self.y.value == "peak memory":  # what the core creates: measured / formula, per method
            for method, (xs, ys) in points.items():
                must = [created_bytes(method, Shape(seq_len=int(n), num_latents=first["m"], **sizes)) for n in xs]
                held[method] = (xs, [y / b for y, b in zip(ys, must)])
        return {
            "points": points,
            "held": held,
            "curves": bench.formula_curves(self.rows, self.y.value, fit_from),
            "slopes": bench.slopes(self.rows, fit_from),
            "speedup": bench.speedups(self.rows),
            "ns": sorted({r["n"] for r in rows}),
            "m": first["m"],
            "sizes": sizes,
            "source": self.source,
            "threads": first["threads"],
            "y": self.y.value,
        }

    def setup(self, fig: Figure) -> None:
        self.view = BenchView(fig)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

    def describe(self, state: dict[str, Any]) -> str:
        slopes = ", ".join(f"{k} {v:.2f}" for k, v in state["slopes"].items() if v is not None)
        speed = state["speedup"]
        last = f", full-sdpa / latent-fast at N={max(speed):,}: {speed[max(speed)]:.1f}×" if speed else ""
        return f"show={state['y']}, {state['source']}: slopes {slopes}{last}"
