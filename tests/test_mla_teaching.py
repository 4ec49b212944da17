"""Tests for notebook 05's new teaching pieces: the dataflow and YaRN figures and the absorbed decode-step exercise."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from matplotlib.figure import Figure

from lattn.exercises import mla as ex
from lattn.mla import PRESETS
from lattn.viz.mla import dataflow_figure, yarn_figure


def decode_step(q_c, q_r, kv, w_uk, w_uv, scale):
    d_c = w_uk.shape[-1]
    q_lat = torch.einsum("hd,hdc->hc", q_c, w_uk)  # (H, d_c)
    weights = torch.softmax(torch.cat([q_lat, q_r], -1) @ kv.T * scale, -1)  # (H, L)
    return torch.einsum("hc,hdc->hd", weights @ kv[:, :d_c], w_uv)  # (H, d_head)


def softmax_over_heads(q_c, q_r, kv, w_uk, w_uv, scale):
    q_lat = torch.einsum("hd,hdc->hc", q_c, w_uk)
    weights = torch.softmax(torch.cat([q_lat, q_r], -1) @ kv.T * scale, 0)  # slip: over the heads
    return torch.einsum("hc,hdc->hd", weights @ kv[:, : w_uk.shape[-1]], w_uv)


def value_from_whole_rows(q_c, q_r, kv, w_uk, w_uv, scale):
    q_lat = torch.einsum("hd,hdc->hc", q_c, w_uk)
    weights = torch.softmax(torch.cat([q_lat, q_r], -1) @ kv.T * scale, -1)
    return torch.einsum("hc,hdc->hd", weights @ kv, w_uv)  # slip: averages k_R too → shapes do not fit


def texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("name", list(PRESETS))
def test_dataflow_figure_states_both_cache_sizes(name):
    c = PRESETS[name]
    fig = dataflow_figure(c)
    assert len(fig.axes) == 2
    words = texts(fig)
    assert f"= {c.kv_elements_per_token('MLA'):,}" in words  # 576
    assert f"= {c.kv_elements_per_token('MLA naive'):,}" in words
    assert ("c_Q" in words) == bool(c.d_cq)  # V2-Lite has no query compression


def test_yarn_figure_draws_plain_and_scaled_wavelengths():
    c = PRESETS["DeepSeek-V2"]
    fig = yarn_figure(c)
    plain, scaled = (line.get_ydata() for line in fig.axes[0].get_lines()[:2])
    assert len(plain) == c.d_rope // 2 and scaled[-1] / plain[-1] == pytest.approx(40)
    assert scaled[0] == pytest.approx(plain[0])
    with pytest.raises(ValueError, match="no YaRN"):
        yarn_figure(c.without_yarn())


def test_decode_inputs_match_the_package_and_leave_the_random_stream_alone():
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    inputs, expected, m = ex.decode_inputs(cached=4)
    assert torch.equal(torch.rand(1), before)
    assert inputs["kv"].shape == (5, m.config.d_c + m.config.d_rope) and expected.shape == (m.config.dim,)
    assert inputs["scale"] == m.config.softmax_scale


def test_decode_step_checker(capsys):
    assert ex.check_decode_step(decode_step)
    assert "max |diff|" in capsys.readouterr().out
    assert not ex.check_decode_step(None)
    slips = {
        "`scale`": lambda *a: decode_step(*a[:5], 1.0),
        "not 1/√(d_c + d_rope)": lambda *a: decode_step(*a[:5], 8**-0.5),
        "rotary part": lambda q_c, q_r, kv, w_uk, w_uv, s: decode_step(q_c, 0 * q_r, kv, w_uk, w_uv, s),
        "it is already": lambda *a: decode_step(*a[:5], 1 / a[5]),
        "not over the heads": softmax_over_heads,
        "map it back with W_UV": lambda q_c, q_r, kv, w_uk, w_uv, s: decode_step(
            q_c, q_r, kv, w_uk, torch.eye(w_uk.shape[-1]).expand(w_uk.shape[0], -1, -1).double(), s
        ),
        "latent part kv[:, :d_c] only": value_from_whole_rows,
        "shape": lambda *a: decode_step(*a)[:2],
        "raised": lambda *a: 1 / 0,
        "max |diff|": lambda q_c, q_r, kv, w_uk, w_uv, s: decode_step(q_c, q_r, kv[:-1], w_uk, w_uv, s),
    }
    for fragment, wrong in slips.items():
        capsys.readouterr()
        assert not ex.check_decode_step(
            lambda q_c, q_r, kv, w_uk, w_uv, scale, f=wrong: f(q_c, q_r, kv, w_uk, w_uv, scale)
        )
        assert fragment in capsys.readouterr().out, fragment


def test_preset_scaled_copies_keep_yarn_and_differ_from_plain():
    small = PRESETS["DeepSeek-V2-Lite"].scaled(0.125)
    assert small.rope_scaling is not None and small.softmax_scale > small.without_yarn().softmax_scale
    assert dataclasses.replace(small, rope_scaling=None) == small.without_yarn()


def test_absorbed_score_and_output_checkers_name_each_slip(capsys):
    slips = {
        ex.check_absorbed_scores: {
            "no scaling here": lambda q, w, c: (q @ w) @ c.T / 4**0.5,
            "0.25 × the raw": lambda q, w, c: (q @ w) @ c.T * 0.25,
            "expected shape (N, L)": lambda q, w, c: c @ (q @ w).T,
            "then q_lat @ c_kv.T": lambda q, w, c: (q @ w) @ c.T + 1,
            "raised": lambda q, w, c: q @ w.T,  # W_UK the wrong way round
        },
        ex.check_absorbed_output: {
            "map it back with @ w_uv.T": lambda p, c, w: p @ c,
            "expected shape (N, d_head)": lambda p, c, w: (p @ c @ w.T).T,
            "then @ w_uv.T": lambda p, c, w: p.T[:3, :3] @ c[:3] @ w.T,
        },
    }
    for checker, wrong in slips.items():
        for fragment, fn in wrong.items():
            capsys.readouterr()
            assert not checker(fn)
            assert fragment in capsys.readouterr().out, fragment


def test_absorption_shapes_figure_draws_both_groupings_with_their_shapes():
    from lattn.viz.mla import absorption_shapes_figure

    fig = absorption_shapes_figure(128, 512)
    words = texts(fig)
    for name in ("c_KV", "W_UKᵀ", "K", "Kᵀ", "W_UK", "q_lat", "c_KVᵀ"):
        assert f" {name} " in f" {words} ", name
    assert words.count("softmax") == 2  # both groupings end in the same 1 × L scores
    assert "d_head = 128, d_c = 512" in fig.axes[0].get_title()


def test_modes_figure_draws_a_bar_and_a_range_per_mode_and_point():
    from lattn.viz.mla import modes_figure

    summary = [
        {"phase": p, "context": n, "ms": {"naive": 1.0, "absorbed": 2.0, "auto": 1.1},
         "range": {"naive": (0.9, 1.2), "absorbed": (1.8, 2.2), "auto": (1.0, 1.3)}}
        for p, n in (("prefill", 1024), ("decode", 1024), ("decode", 8192))
    ]  # fmt: skip
    prefill, decode = modes_figure(summary, title="t").axes
    assert len(prefill.patches) == 3 and len(decode.patches) == 6  # one bar per mode and point
    assert [t.get_text() for t in decode.get_xticklabels()] == ["1,024", "8,192"]
    assert sorted(p.get_height() for p in prefill.patches) == [1.0, 1.1, 2.0]
