"""Notebook 05's explorers (driven by setting their controls) and exercise checkers (right and wrong answers)."""

from __future__ import annotations

import pytest
import torch

from lattn.bench import mla as bench
from lattn.exercises import mla as ex
from lattn.mla import KV_KINDS, MODES, PRESETS, largest_divisor_at_most
from lattn.widgets.mla import DecodeBenchExplorer, KVCacheCalculator


def bench_rows(ms_per_step: dict[int, tuple[float, float, float]]) -> list[dict]:
    """Decode-benchmark rows of a toy config: {context: (naive, absorbed, auto ms)}; caches of 40 and 4 B per
    token."""
    return [
        {"config": "toy", "phase": "decode", "mode": m, "context": c, "batch": 1, "threads": 2, "repeats": 1,
         "ms": ms, "ms_min": ms, "ms_max": ms, "tokens_per_s": 1e3 / ms, "cache_bytes": c * (40 if m == "naive" else 4)}
        for c, times in ms_per_step.items()
        for m, ms in zip(("naive", "absorbed", "auto"), times)
    ]  # fmt: skip


TINY_ROWS = bench_rows({512: (2.0, 1.0, 1.1), 1024: (4.0, 1.5, 1.4)})


# --- KV-cache calculator --------------------------------------------------------------------------------------------
def test_calculator_reproduces_the_paper_and_redraws_on_every_control():
    calc = KVCacheCalculator()
    s = calc.state
    v2 = PRESETS["DeepSeek-V2"]
    assert s["per_token"]["MLA"] * v2.layers == 34_560
    assert s["gb"]["MLA"] == pytest.approx(576 * 60 * 131_072 * 2 / 1e9)
    assert s["fits"]["MLA"] and not s["fits"]["MHA"]
    widths = [bar.get_width() for bar in calc.view.bars]
    assert widths == pytest.approx([s["gb"][k] for k in KV_KINDS])
    png, renders = calc.png, calc.renders
    for name, value in [("context", 4096), ("batch", 16), ("bits", 6), ("budget", 24), ("log_scale", True)]:
        before = dict(calc.state["gb"]), calc.status.value
        getattr(calc, name).value = value
        assert calc.renders == renders + 1, f"{name}: exactly one render"
        assert calc.status.value != before[1] and calc.png != png, name
        png, renders = calc.png, calc.renders
    assert calc.view.ax.get_xscale() == "log"
    assert calc.state["budget"] == 24 and calc.view.budget_line.get_xdata()[0] == 24


def test_calculator_presets_and_custom_sizes():
    calc = KVCacheCalculator()
    calc.preset.value = "DeepSeek-V2-Lite"  # a preset loads its sizes with one render
    assert (calc.heads.value, calc.layers.value, calc.renders) == (16, 27, 2)
    assert calc.state["per_token"]["MLA"] * 27 == 15_552
    assert calc.state["per_token"]["MHA"] * 27 == 110_592
    calc.d_c.value = 256  # moving a size slider turns the preset into "custom", still one render
    assert (calc.preset.value, calc.renders) == ("custom", 3)
    assert calc.state["per_token"]["MLA"] == 256 + 64
    calc.set(preset="DeepSeek-V3", batch=4)
    assert (calc.heads.value, calc.layers.value, calc.d_c.value, calc.batch.value) == (128, 61, 512, 4)
    assert calc.state["gb"]["MLA"] == pytest.approx(
        PRESETS["DeepSeek-V3"].kv_cache_bytes(context=131_072, batch=4) / 1e9
    )
    calc.set(preset="DeepSeek-V2", heads=64)  # explicit sizes win over the preset's and make it custom
    assert (calc.preset.value, calc.heads.value, calc.layers.value) == ("custom", 64, 60)


def test_calculator_snaps_gqa_groups_to_a_divisor():
    assert largest_divisor_at_most(128, 12) == 8
    assert largest_divisor_at_most(6, 5) == 3
    assert largest_divisor_at_most(7, 64) == 7
    calc = KVCacheCalculator().set(n_groups=12)
    assert calc.state["groups"] == 8
    assert calc.state["per_token"]["GQA"] == 2 * 8 * 128


# --- decode benchmark explorer ----------------------------------------------------------------------------------------
def test_bench_explorer_shows_the_stored_run_and_switches_metric():
    explorer = DecodeBenchExplorer()
    rows = explorer.rows
    decode = [r for r in rows if r["phase"] == "decode"]
    assert {r["mode"] for r in decode} == set(MODES) and len(decode) == len(MODES) * len(bench.CONTEXTS)
    assert explorer.state["source"] == "stored 2-core run"
    assert set(explorer.state["series"]) == set(MODES)
    png = explorer.png
    explorer.metric.value = "ms per step"
    assert explorer.state["metric"] == "ms per step" and explorer.png != png
    naive = [r["ms"] for r in decode if r["mode"] == "naive"]
    assert list(explorer.view.lines["naive"].get_ydata()) == pytest.approx(naive)


def test_bench_explorer_button_reruns_here():
    explorer = DecodeBenchExplorer(TINY_ROWS)
    assert explorer.state["speedup"] == {512: pytest.approx(2.0), 1024: pytest.approx(4.0 / 1.5)}
    explorer.rerun_contexts, explorer.rerun_min_run_time = (16, 32), 0.005
    before = explorer.renders
    explorer.run.click()  # what the learner's click does
    assert explorer.renders == before + 1 and not explorer.run.disabled
    assert explorer.state["source"] == "measured just now on this machine"
    assert sorted({r["context"] for r in explorer.rows}) == [16, 32]
    assert {r["phase"] for r in explorer.rows} == {"decode"}
    assert explorer.status.value.startswith("rendered")


# --- exercises --------------------------------------------------------------------------------------------------------
def test_cache_bytes_checker(capsys):
    v3 = PRESETS["DeepSeek-V3"]
    right = 576 * 61 * 131_072 * 2
    assert ex.check_cache_bytes(right)
    assert ex.check_cache_bytes(float(right) * (1 + 1e-5))
    assert not ex.check_cache_bytes(None)
    wrong = {
        v3.kv_cache_bytes("MHA", context=131_072): "MHA",
        right // 61: "layers",
        512 * 61 * 131_072 * 2: "rotary",
        right / 1e9: "bytes, not GB",
        right * 2: "not 32",
        12345: "multiply",
        "many": "raised ValueError",
    }
    for answer, hint in wrong.items():
        capsys.readouterr()
        assert not ex.check_cache_bytes(answer)
        assert hint in capsys.readouterr().out, answer
    assert ex.check_cache_bytes(576 * 27 * 4096 * 8 * 4, preset="DeepSeek-V2-Lite", context=4096, batch=8, bits=32)


def test_absorbed_scores_checker(capsys):
    assert ex.check_absorbed_scores(lambda q, w, c: (q @ w) @ c.T)
    assert ex.check_absorbed_scores(lambda q, w, c: q @ (c @ w.T).T)  # right numbers the slow way also pass
    assert not ex.check_absorbed_scores(lambda q, w, c: (q @ w) @ c.T / 2.0)
    assert "no scaling" in capsys.readouterr().out
    assert not ex.check_absorbed_scores(lambda q, w, c: (q @ w) @ c.T.flip(1))
    assert not ex.check_absorbed_scores(lambda q, w, c: q @ w)
    assert "expected shape (N, L)" in capsys.readouterr().out
    assert not ex.check_absorbed_scores(lambda q, w, c: q @ w @ c)  # shapes do not fit: raises → hint
    assert "raised" in capsys.readouterr().out


def test_absorbed_output_checker(capsys):
    assert ex.check_absorbed_output(lambda p, c, w: (p @ c) @ w.T)
    assert not ex.check_absorbed_output(lambda p, c, w: p @ c)
    assert "map it back with @ w_uv.T" in capsys.readouterr().out
    assert not ex.check_absorbed_output(lambda p, c, w: (p.T.softmax(-1).T @ c) @ w.T)
    assert not ex.check_absorbed_output(lambda p, c, w: torch.zeros(3, 4, dtype=torch.float64))
