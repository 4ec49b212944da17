"""The explorers' views of lattn.viz driven from plain data, without a widget or a model; and the numbers the
explorers took from the compute modules (lattn.mla, lattn.bench.mla)."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from test_mla_widgets import bench_rows

from lattn.bench import mla as bench
from lattn.mla import KV_KINDS, largest_divisor_at_most
from lattn.viz.basics import AttentionMapView
from lattn.viz.family import LEAK_FLOOR, FamilyView, LeakView, row_scaled
from lattn.viz.mla import COLORS, DecodeBenchView, KVCacheView, fmt_gb

ROWS = bench_rows({512: (2.0, 1.0), 2048: (1.0, 4.0)})  # the second: a slow-down


def test_largest_divisor_at_most_checks_its_arguments():  # its values: tests/test_mla_widgets.py
    with pytest.raises(ValueError, match="heads must be an integer ≥ 1, got 0"):
        largest_divisor_at_most(0, 4)
    with pytest.raises(TypeError, match=r"n must be an integer ≥ 1, got 2.0 \(float\)"):
        largest_divisor_at_most(8, 2.0)


def test_decode_curves_are_the_rows_and_feed_the_table():
    curves = bench.decode_curves(list(reversed(ROWS)))  # any row order
    assert curves["contexts"].tolist() == [512, 2048]
    assert curves["ms_per_step"]["naive"].tolist() == [2.0, 1.0]
    assert curves["cache_bytes"]["absorbed"].tolist() == [512 * 4, 2048 * 4]
    assert curves["speedup"] == {512: pytest.approx(2.0), 2048: pytest.approx(0.25)}
    assert "| 512 | 500 | 1,000 | 2.00× | 0.0 | 0.0 |" in bench.format_table(ROWS)


def _kv_state(**changes):
    gb = dict(zip(KV_KINDS, (300.0, 20.0, 2.5, 400.0, 0.5)))
    state = {"gb": gb, "fits": {k: v <= 80 for k, v in gb.items()}, "per_token": dict.fromkeys(KV_KINDS, 1000),
             "groups": 8, "budget": 80, "log": False, "preset": "custom", "context_label": "4K", "batch": 2,
             "layers": 3, "bits": 16}  # fmt: skip
    return {**state, **changes}


def test_kv_cache_view_draws_plain_numbers():
    view = KVCacheView(Figure(), KV_KINDS)
    view.update(_kv_state())
    assert [bar.get_width() for bar in view.bars] == [300.0, 20.0, 2.5, 400.0, 0.5]
    assert [bar.get_hatch() for bar in view.bars] == ["//", "", "", "//", ""], "too big: hatched"
    assert [label.get_text() for label in view.labels][:2] == ["300 GB too big", "20 GB fits"]
    assert view.budget_line.get_xdata()[0] == 80 and view.ax.get_xscale() == "linear"
    assert view.ax.get_title() == "custom: 4K tokens × batch 2, 3 layers, 16 bits per element"
    assert view.ax.get_yticklabels()[1].get_text() == "GQA, 8 groups\n1,000 / token / layer"
    view.update(_kv_state(log=True, budget=24))
    assert view.ax.get_xscale() == "log" and view.budget_text.get_text() == " fits in 24 GB"
    assert [fmt_gb(1234.4), fmt_gb(0.12745)] == ["1,234 GB", "0.127 GB"]


def test_decode_bench_view_draws_the_curves_and_replaces_its_notes():
    curves = bench.decode_curves(ROWS)
    state = {"contexts": curves["contexts"], "series": curves["tokens_per_s"], "cache_bytes": curves["cache_bytes"],
             "speedup": curves["speedup"], "metric": "tokens/s", "config": "toy", "threads": 2, "source": "given"}  # fmt: skip
    fig = Figure()
    view = DecodeBenchView(fig)
    view.update(state)
    view.update({**state, "series": curves["ms_per_step"], "metric": "ms per step"})
    assert view.lines["naive"].get_ydata().tolist() == [2.0, 1.0]
    assert view.cache_lines["naive"].get_ydata().tolist() == pytest.approx([512 * 40 / 1e6, 2048 * 40 / 1e6])
    assert [t.get_text() for t in view.notes] == ["2.0×", "0.2×"] and len(view.ax_speed.texts) == 2, "replaced"
    assert to_rgba(view.notes[1].get_color()) == to_rgba(COLORS["MLA naive"]), "a slow-down in the naive colour"
    assert view.ax_speed.get_title().startswith("decode ms per step (lower is better)")
    assert fig.get_suptitle() == "toy, 2 threads — given"


def test_family_view_blanks_unused_stages_and_veils_the_future():
    view = FamilyView(Figure())
    gather = np.random.default_rng(0).random((3, 6))
    state = {"title": "X", "stages": ("gather",), "names": {"write": "", "gather": "g", "broadcast": ""}, "n": 6,
             "m": 3, "write": None, "gather": gather, "broadcast": None, "effective": None, "gather_offset": 3,
             "mark_future": True}  # fmt: skip
    view.update(state)
    assert [view.ims[s].get_visible() for s in ("write", "gather", "broadcast", "effective")] == [0, 1, 0, 0]
    assert view.axes["gather"].get_title() == "gather = g" and view.notes["write"].get_text() == "not used"
    assert view.shades["gather"].get_visible() and not view.shades["effective"].get_visible()
    assert view.shades["gather"].get_array()[0, 4, 3] > 0 and view.shades["gather"].get_array()[0, 3, 3] == 0
    assert view.suptitle.get_text() == "X: gather   (N = 6, M = 3, head 0)"
    effective = np.tril(np.ones((6, 6))) * np.arange(1, 7)[:, None]
    view.update({**state, "stages": (), "gather": None, "effective": effective, "mark_future": False})
    np.testing.assert_allclose(view.ims["effective"].get_array(), row_scaled(effective))
    assert (
        view.ims["effective"].get_array().max(axis=1).tolist() == [1.0] * 6
        and not view.shades["effective"].get_visible()
    )
    assert view.suptitle.get_text().startswith("X: no latent stage (N×N)")


def test_leak_view_draws_exact_zeros_at_the_floor():
    view = LeakView(Figure(), 6, {"a": ("causal one", True), "b": ("reads the future", False)})
    view.update({"position": 4, "profiles": {"a": (np.arange(6), np.r_[0.0, 0, 0, 0, 0.5, 0.1]),
                                             "b": (np.arange(2, 6), np.full(4, 0.2))}})  # fmt: skip
    assert view.lines["a"].get_linestyle() == "-" and view.lines["b"].get_linestyle() == "--"
    assert view.lines["a"].get_ydata()[:4].tolist() == [LEAK_FLOOR] * 4
    assert view.lines["b"].get_xdata().tolist() == [2, 3, 4, 5]
    assert view.past.get_width() == 4 and view.marker.get_xdata()[0] == 4
    assert [t.get_text() for t in view.ax.get_legend().get_texts()] == ["causal one", "reads the future"]


def test_attention_map_view_marks_the_count():
    view = AttentionMapView(Figure(), 10)
    view.update({"map": np.full((4, 4), 0.25), "n": 4, "scores_per_head": 16, "head": 1})
    assert view.im.get_array().shape == (4, 4) and view.im.get_clim() == (0.0, 1.0)
    assert view.im.axes.get_title() == "head 1: each row sums to 1 (largest 0.25)"
    assert list(view.marker.get_data()) == [[4], [16]]
