"""Notebook 02's explorers and checkers: set controls in code and check the drawn data follow the formulas; run the
live-measurement button on tiny sizes; each checker accepts the right answer and explains typical wrong ones."""

import numpy as np
import pytest

from lattn.bench import complexity as bench
from lattn.complexity import (
    Shape,
    crossover_n,
    full_attention_cost,
    latent_attention_cost,
    matrix_bytes,
    method_cost,
    total_cost,
)
from lattn.exercises import complexity as ex
from lattn.viz.complexity import STYLE, honest_figure
from lattn.widgets.complexity import N_GRID, BenchExplorer, CostExplorer

TINY = bench.BenchConfig(ns=(16, 32, 64), m=4, ms=(2, 4), m_grid_n=32, heads=2, d_head=8, min_run_time=0.001,
                         repeats=1, matmul_n=64, fit_from=16)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_rows():
    return bench.run_benchmark(TINY)


def test_cost_explorer_follows_the_formulas(tmp_path):
    e = CostExplorer()
    e.set(n=4096, m=32, d_head=32, heads=2, scope="core")
    shape = Shape(seq_len=4096, num_latents=32, heads=2, d_head=32)
    full = full_attention_cost(shape)
    latent = total_cost(latent_attention_cost(shape))
    assert (e.state["full_flops"], e.state["latent_flops"]) == (full.core_flops, latent.core_flops)
    assert e.state["ratio"] == pytest.approx(4096 / (3 * 32))
    assert e.state["crossover"] == crossover_n(shape) == 97
    assert e.state["nxn_bytes"] == matrix_bytes(4096, 4096, heads=2) == 2 * 4096**2 * 4
    # the drawn curves are the state's, at the grid's N; the markers sit at the chosen N
    view = e.view
    np.testing.assert_array_equal(view.flops.lines["full"].get_xdata(), N_GRID)
    np.testing.assert_array_equal(view.flops.lines["latent"].get_ydata(), e.state["curves"]["latent"])
    assert list(view.flops.dots.get_xdata()) == [4096, 4096]
    assert list(view.flops.cross.get_xdata()) == [97, 97] and "97" in view.flops.cross_label.get_text()
    assert "128 MiB" in view.memory.nxn_text.get_text()  # 2 heads · 4096² · 4 B
    # the whole module adds the projections: a later crossover, a smaller ratio
    e.scope.value = "module"
    assert e.state["crossover"] == crossover_n(shape, whole_module=True) > 97
    assert e.state["full_flops"] == full.flops and e.state["ratio"] < 4096 / 96
    # memory: the explicit N×N weights grow 4× per doubling of N, everything else 2×
    curves, k = e.state["curves"], np.searchsorted(N_GRID, 2**14)
    assert N_GRID[k] == 2**14 and 2**15 in N_GRID
    j = np.searchsorted(N_GRID, 2**15)
    assert curves["full-explicit"][j] / curves["full-explicit"][k] == pytest.approx(4, rel=0.01)
    assert curves["latent-fast"][j] / curves["latent-fast"][k] == pytest.approx(2, rel=0.01)
    # one definition of memory for both scopes: what the attention call must hold (q, k, v, output, kept maps)
    for method in STYLE:
        assert e.state["memory"][method] == method_cost(method, shape).peak_bytes
    e.scope.value = "core"
    assert all(e.state["memory"][m] == method_cost(m, shape).peak_bytes for m in STYLE)
    # a chosen N at the end of the grid (here a million) sits inside the axes, not on the frame
    e.set(n=2**20)
    lo, hi = view.memory.ax.get_xlim()
    assert hi > 2**20 and lo < N_GRID[0]
    assert e.status.value.startswith(f"rendered {e.renders}:") and "crossover N =" in e.status.value
    assert e.save(tmp_path / "cost.png").stat().st_size > 1000


def test_cost_explorer_titles_say_who_wins():
    e = CostExplorer().set(n=128, m=64, scope="core")
    assert "full attention needs" in e.view.flops.ax.get_title()
    e.set(n=2**16)
    assert "latent needs" in e.view.flops.ax.get_title()


def test_bench_explorer_shows_the_stored_run():
    e = BenchExplorer()
    rows = bench.read_csv()
    assert e.source.startswith("stored") and e.rows == rows
    assert e.state["slopes"] == bench.slopes(rows, 1024)
    sdpa = {
        r["n"]: r["seconds"] for r in rows if r["method"] == "full-sdpa" and r["section"] == "n-grid" and r["seconds"]
    }
    fast = {r["n"]: r["seconds"] for r in rows if r["method"] == "latent-fast" and r["section"] == "n-grid"}
    assert e.state["speedup"] == {n: sdpa[n] / fast[n] for n in sdpa}
    xs, ys = e.view.dots["latent-fast"].get_data()
    assert list(xs) == sorted(fast) and list(ys) == [fast[n] for n in sorted(fast)]
    assert "slope" in e.view.dots["full-sdpa"].get_label()
    e.y.value = "peak memory"
    xs, ys = e.view.dots["full-explicit"].get_data()
    explicit = {r["n"]: r["peak_bytes"] for r in rows if r["method"] == "full-explicit" and r["section"] == "n-grid"}
    assert list(ys) == [explicit[n] for n in xs]
    assert "show=peak memory" in e.status.value


def test_bench_explorer_button_measures_here(tiny_rows, monkeypatch):
    monkeypatch.setattr(BenchExplorer, "live_config", TINY)
    e = BenchExplorer(rows=tiny_rows)
    before = e.renders
    e.run.click()
    assert e.renders == before + 1 and e.source == "measured just now on this machine"
    assert not e.run.disabled
    assert {r["n"] for r in e.rows if r["section"] == "n-grid"} == {16, 32, 64}
    assert set(e.state["speedup"]) == {16, 32, 64}
    # the formula curves: FLOPs over the method's own median FLOP/s, so they run through the measured points' scale
    xs, ys = e.view.fits["full-sdpa"].get_data()
    rate = bench.achieved_flops_per_s(e.rows, "full-sdpa", 64)  # fit from min(1024, largest N)
    assert ys[-1] == pytest.approx(
        method_cost("full-sdpa", Shape(seq_len=int(xs[-1]), num_latents=4, heads=2, d_head=8)).core_flops / rate
    )


def test_honest_figure(tiny_rows):
    fig = honest_figure(**bench.honest_data(tiny_rows))
    ax_m, ax_mod = fig.axes
    assert len(ax_m.get_lines()) == 3  # fast, teaching, and SDPA's time at that N (no M ≥ 64: no extrapolation)
    assert [t.get_text() for t in ax_mod.texts] and len(ax_mod.patches) == 2
    empty = honest_figure(**bench.honest_data([r for r in tiny_rows if r["section"] == "n-grid"]))
    assert "no M grid" in empty.axes[0].get_title()


def test_honest_data_extrapolates_the_m_trend_and_says_so():
    """Latent time ∝ M (slope 1) from 0.1 s at M = 64: it reaches SDPA's 1.6 s at M = 64·16 = 1,024, past the sweep."""
    row = {"batch": 1, "heads": 4, "d_head": 64, "threads": 2, "flops": 1, "peak_bytes": 1, "formula_bytes": 1,
           "note": ""}  # fmt: skip
    rows = [{**row, "section": "m-grid", "method": "latent-fast", "n": 3072, "m": m, "seconds": 0.1 * m / 64}
            for m in (16, 64, 256)]  # fmt: skip
    rows.append({**row, "section": "n-grid", "method": "full-sdpa", "n": 3072, "m": 64, "seconds": 1.6})
    data = bench.honest_data(rows)
    assert data["m_slope"] == pytest.approx(1.0) and data["m_even"] == pytest.approx(1024)
    assert data["m_flops_even"] == 1024 and data["sdpa_seconds"] == 1.6 and data["ratios"] == {}
    fig = honest_figure(**data)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any("extrapolated" in label for label in labels) and any("N/3 = 1,024" in label for label in labels)
    assert "(extrapolated)" in " ".join(t.get_text() for t in fig.axes[0].texts)
    assert fig.axes[0].get_xlim()[1] > 1024  # the extrapolated point sits inside the axes


def _right(B, H, N, M, dh):
    return 4 * B * H * N * M * dh


@pytest.mark.parametrize(
    "fn,ok,hint",
    [
        (None, False, "Your turn"),
        (_right, True, "4·B·H·N·M·d_head"),
        (lambda B, H, N, M, dh: 2 * B * H * N * M * dh, False, "factor 2"),
        (lambda B, H, N, M, dh: B * H * N * M * dh, False, "factor 4"),
        (lambda B, H, N, M, dh: 4 * B * N * M * dh, False, "multiply by H"),
        (lambda B, H, N, M, dh: 4 * H * N * M * dh, False, "multiply by B"),
        (lambda B, H, N, M, dh: 4 * B * H * N * N * dh, False, "not N×N"),
        (lambda B, H, N, M, dh: _right(B, H, N, M, dh) + 2 * B * (H * dh) ** 2 * (2 * N + 2 * M), False, "projections"),
        (lambda B, H, N, M, dh: 1 / 0, False, "ZeroDivisionError"),
    ],
)
def test_check_gather_flops(fn, ok, hint, capsys):
    assert bool(ex.check_gather_flops(fn)) is ok
    assert hint in capsys.readouterr().out


def test_counted_gather_flops_is_the_counter():
    assert ex.counted_gather_flops(3, 5, 50, 7, 8) == _right(3, 5, 50, 7, 8)


@pytest.mark.parametrize(
    "answer,ok,hint",
    [(None, False, "Your turn"), (412, True, "N = 412"), (97, False, "cores cross"), (96, False, "cores cross"),
     (411, False, "very close"), (1000, False, "quadratic")],
)  # fmt: skip
def test_check_crossover(answer, ok, hint, capsys):
    assert crossover_n(Shape(num_latents=32, heads=4, d_head=64), whole_module=True) == 412
    assert bool(ex.check_crossover(answer)) is ok
    assert hint in capsys.readouterr().out


def test_cost_overview_draws_one_panel_per_setting_and_restores_the_controls():
    e = CostExplorer()
    before = (e.n.value, e.m.value, e.scope.value)
    fig = e.overview([{"n": 4096, "m": 16}, {"n": 4096, "m": 16, "scope": "module"}], memory={"n": 2**20})
    assert len(fig.axes) == 3  # two FLOPs panels + one memory panel, no empty panel
    assert "M = 16, N = 4,096" in fig.axes[0].get_title() and "whole module" in fig.axes[1].get_title()
    assert "16 TiB" in fig.axes[2].texts[0].get_text()  # 4 heads · (2^20)² · 4 B
    assert (e.n.value, e.m.value, e.scope.value) == before


def test_bench_memory_view_shows_created_over_formula_not_the_speedup_again():
    e = BenchExplorer()
    e.set(y="peak memory")
    held = e.state["held"]
    assert set(held) == set(STYLE) and all(min(ys) >= 0.99 for _, ys in held.values() if ys)
    # the latent fast path's ratio: 2.0 while one write block holds the whole N×M scores and weights, 1.0 at 65,536
    xs, ys = held["latent-fast"]
    ratio = dict(zip(xs, ys))
    assert ratio[16_384] == pytest.approx(2.0, abs=0.01) and ratio[65_536] == pytest.approx(1.0, abs=0.01)
    assert not e.view.ratio_dots.get_visible() and "measured / formula (output + maps)" in e.view.ax_ratio.get_title()
    assert "q, k, v are its inputs" in e.view.ax.get_title()
    e.set(y="time")
    assert e.view.ratio_dots.get_visible() and "speed-up" in e.view.ax_ratio.get_title()
