"""Tests for YaRN in MLAConfig and for the RoPE pair layout (lattn.rope).

* YaRN off (the default): the module computes exactly what it computed before (bit for bit).
* YaRN on: frequencies and softmax scale equal an independent float64 computation from the published formulas
  (YaRN, arXiv:2309.00071, as DeepSeek's modelling code applies them), and the whole layer equals the hand-written
  reference with those frequencies and that scale; the presets carry the shipped config.json values.
* Pair layout: DeepSeek rotates adjacent pairs (2i, 2i + 1); permuting the rotary weight rows gives identical outputs
  under lattn's (i, i + d/2) layout.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import max_diff
from test_mla_reference import CONFIGS, TINY, make, reference_mla, tokens

from lattn.mla import MODES, PRESETS, MLAConfig, MultiHeadLatentAttention, apply_rope
from lattn.rope import YaRN, get_mscale, halves_to_interleaved, interleaved_to_halves, rope_frequencies

# the rope_scaling blocks of DeepSeek-V2 / V2-Lite / V3's config.json (max_position_embeddings 163,840)
SHIPPED = {
    "DeepSeek-V2": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                    "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
    "DeepSeek-V2-Lite": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                         "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
    "DeepSeek-V3": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                    "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
}  # fmt: skip


def published_inv_freq(d: int, theta: float, rs: dict) -> list[float]:
    """YaRN's frequencies pair by pair in plain Python floats (float64), from the formulas (Hugging Face's
    ``_compute_yarn_parameters``, DeepSeek-V3's ``precompute_freqs_cis``), not from lattn.rope: the correction range
    floored/ceiled unless ``truncate`` is False, clipped to [0, d − 1], a ramp over it (width 0.001 if empty)."""
    s, L = rs["factor"], rs["original_max_position_embeddings"]
    dim_for = lambda turns: d * math.log(L / (turns * 2 * math.pi)) / (2 * math.log(theta))
    low, high = dim_for(rs["beta_fast"]), dim_for(rs["beta_slow"])
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    out = []
    for i in range(d // 2):
        extrapolated = 1.0 / theta ** (2 * i / d)
        interpolated = extrapolated / s
        ramp = min(max((i - low) / ((high - low) or 0.001), 0.0), 1.0)  # 0 → keep, 1 → interpolate
        out.append(interpolated * ramp + extrapolated * (1 - ramp))
    return out


def published_scale(d_qk: int, rs: dict) -> float:
    m = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0
    return d_qk**-0.5 * m * m


def published_magnitude(rs: dict) -> float:
    """Hugging Face's attention_factor (what cos and sin are multiplied by): the key if given; mscale(s, m) /
    mscale(s, m_all) if both are set and non-zero; else mscale(s, 1) = 0.1·ln s + 1."""
    if rs.get("attention_factor") is not None:
        return rs["attention_factor"]
    m, m_all, s = rs.get("mscale"), rs.get("mscale_all_dim"), rs["factor"]
    if m and m_all:
        return (0.1 * m * math.log(s) + 1) / (0.1 * m_all * math.log(s) + 1)
    return 0.1 * math.log(s) + 1


# --- presets and formulas -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SHIPPED))
def test_presets_carry_the_shipped_rope_scaling(name):
    c = PRESETS[name]
    assert c.rope_scaling == YaRN.from_config(SHIPPED[name])
    assert c.rope_theta == 10000.0 and c.without_yarn().rope_scaling is None
    assert c.scaled(0.125).rope_scaling == c.rope_scaling  # the CPU copies keep the extension


@pytest.mark.parametrize("name", list(SHIPPED))
def test_frequencies_and_scale_match_the_published_formulas(name):
    c, rs = PRESETS[name], SHIPPED[name]
    expected = torch.tensor(published_inv_freq(c.d_rope, c.rope_theta, rs), dtype=torch.float64)
    rel = ((c.rope_frequencies() - expected).abs() / expected).max()
    assert rel <= 1e-15, f"inv_freq: largest relative difference {rel:.2e}"
    assert c.softmax_scale == pytest.approx(published_scale(c.d_head + c.d_rope, rs), rel=1e-14)
    assert c.rope_scaling.correction_range(64) == (10, 23)
    assert c.rope_scaling.rope_magnitude == 1.0  # mscale == mscale_all_dim in every shipped config
    plain = rope_frequencies(64)
    assert torch.equal(c.rope_frequencies()[:11], plain[:11])  # fast pairs (i ≤ 10): extrapolated, unchanged
    assert torch.allclose(c.rope_frequencies()[23:], plain[23:] / 40, rtol=1e-15)  # slow pairs: interpolated ÷ 40


def test_reported_numbers():
    v2, v3 = PRESETS["DeepSeek-V2"], PRESETS["DeepSeek-V3"]
    assert round(get_mscale(40, 0.707), 4) == 1.2608 and round(get_mscale(40, 1.0), 4) == 1.3689
    assert round(v2.without_yarn().softmax_scale, 4) == 0.0722
    assert round(v2.softmax_scale, 4) == 0.1147 and round(v3.softmax_scale, 4) == 0.1352
    f = v3.rope_frequencies()
    assert [round(float(f[i] / rope_frequencies(64)[i]), 4) for i in (10, 11, 16, 22, 23)] == [
        1.0, 0.9250, 0.5500, 0.1000, 0.0250]  # fmt: skip


def test_get_mscale_and_scale_without_mscale_all_dim():
    assert get_mscale(1.0, 0.707) == 1.0 and get_mscale(0.5) == 1.0
    y = YaRN(factor=4, mscale=1.0)  # mscale_all_dim 0 (the reference's default): softmax scale unchanged
    assert y.softmax_factor == 1.0 and y.rope_magnitude == pytest.approx(0.1 * math.log(4) + 1)


def test_correction_range_floors_and_ceils_and_d128_tells_round_apart():
    """Issue 21's seeded bug: rounding instead of floor/ceil passes at d = 64 ((10, 23) either way) but not at
    d = 128, where the unrounded range is (20.94, 45.03): floor/ceil (20, 46), round (21, 45)."""
    y = PRESETS["DeepSeek-V3"].rope_scaling
    assert y.correction_range(64) == (10, 23)
    assert y.correction_range(128) == (20, 46)
    assert [round(v, 2) for v in YaRN(factor=40, truncate=False).correction_range(128)] == [20.94, 45.03]


@pytest.mark.parametrize(
    "rs",
    [
        {"factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707},  # DeepSeek-V2: the ratio, 1
        {"factor": 40, "mscale": 0.707},  # only mscale: Hugging Face falls back to mscale(40, 1)
        {"factor": 40, "mscale_all_dim": 0.707},  # only mscale_all_dim: the same fallback
        {"factor": 40, "mscale": 0.0, "mscale_all_dim": 1.0},  # a zero counts as not set
        {"factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0, "attention_factor": 0.8},  # the override wins
        {"factor": 8},
    ],
    ids=["both", "only-mscale", "only-mscale_all_dim", "zero-mscale", "attention_factor", "neither"],
)
def test_rope_magnitude_and_softmax_factor_as_hugging_face_computes_them(rs):
    y = YaRN.from_config({"type": "yarn", "original_max_position_embeddings": 4096, **rs})
    assert y.rope_magnitude == pytest.approx(published_magnitude(rs), rel=1e-15)
    m_all = rs.get("mscale_all_dim")
    assert y.softmax_factor == pytest.approx((0.1 * m_all * math.log(rs["factor"]) + 1) ** 2 if m_all else 1.0)


def test_truncate_false_keeps_the_fractional_range():
    rs = {**SHIPPED["DeepSeek-V3"], "truncate": False}
    y = YaRN.from_config(rs)
    assert y.truncate is False
    got = rope_frequencies(64, 10000.0, y)
    want = torch.tensor(published_inv_freq(64, 10000.0, rs), dtype=torch.float64)
    assert ((got - want).abs() / want).max() <= 1e-15
    truncated = PRESETS["DeepSeek-V3"].rope_frequencies()
    rel = ((got - truncated).abs() / truncated).max().item()
    print(f"truncate false vs true: largest relative difference {rel:.3f}")
    assert rel > 0.1  # the key matters: dropping it would be a silent wrong answer


def test_a_range_left_empty_by_clipping_keeps_every_pair_as_deepseek_does():
    """original_max_position_embeddings = 1: even the fastest pair turns fewer than beta_slow times, so the range
    clips to (0, -6), high < low; DeepSeek's and Hugging Face's ramp is then 0 for every pair: all kept."""
    rs = {"factor": 4, "original_max_position_embeddings": 1}
    y = YaRN.from_config(rs)
    assert y.correction_range(64) == (0, -6)
    assert torch.equal(rope_frequencies(64, 10000.0, y), rope_frequencies(64))
    want = torch.tensor(published_inv_freq(64, 10000.0, {**rs, "beta_fast": 32, "beta_slow": 1}), dtype=torch.float64)
    assert ((rope_frequencies(64, 10000.0, y) - want).abs() / want).max() <= 1e-15


def test_from_config_reads_hugging_face_keys_and_refuses_the_ones_it_cannot_honour():
    y = YaRN.from_config({"rope_type": "yarn", "factor": 4, "attention_factor": 1.5, "truncate": False,
                          "beta_fast": None, "mscale": None})  # fmt: skip  # None = not set
    assert (y.attention_factor, y.truncate, y.beta_fast, y.mscale) == (1.5, False, 32.0, None)
    for bad, match in [
        ({"factor": 4, "rope_theta": 1e6}, r"does not know the key\(s\) \['rope_theta'\]"),
        ({"factor": 4, "low_freq_factor": 1}, "low_freq_factor"),
        ({"factor": 4, "rope_type": "linear"}, "type must be 'yarn'"),
        ({"type": "yarn"}, "needs 'factor'"),
    ]:
        with pytest.raises(ValueError, match=match):
            YaRN.from_config(bad)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"type": "linear"}, "yarn"),
        ({"factor": float("inf")}, "YaRN.factor must be finite"),
        ({"beta_fast": float("nan")}, "YaRN.beta_fast must be finite"),
        ({"attention_factor": 0.0}, "attention_factor must be > 0"),
        ({"factor": 0.5}, "factor"),
        ({"beta_fast": 1, "beta_slow": 32}, "beta_fast > beta_slow"),
        ({"mscale": -1.0}, "mscale"),
        ({"original_max_position_embeddings": 0}, "original_max_position_embeddings"),
    ],
)
def test_bad_yarn(changes, match):
    with pytest.raises(ValueError, match=match):
        YaRN(**{"factor": 4.0, **changes})


def test_bad_yarn_uses():
    with pytest.raises(TypeError, match="rope_scaling"):
        MLAConfig(dim=8, heads=2, d_head=4, d_c=4, d_rope=2, rope_scaling={"factor": 40})
    with pytest.raises(ValueError, match="inv_freq"):
        apply_rope(torch.randn(3, 4), torch.arange(3), inv_freq=torch.ones(3))
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(5)
    with pytest.raises(ValueError, match="blocks of d_rope"):
        interleaved_to_halves(torch.randn(6, 3), 4)
    assert YaRN.from_config({**SHIPPED["DeepSeek-V3"], "rope_type": "yarn"}) == PRESETS["DeepSeek-V3"].rope_scaling


# --- the module -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_yarn_off_is_bit_identical_to_plain_rope(mode):
    c = dataclasses.replace(TINY, rope_theta=500.0)
    m, x = make(c, mode=mode), tokens(c, N=9)
    pos = torch.arange(9)
    t = torch.randn(2, 9, c.d_rope, dtype=torch.float64)
    assert torch.equal(m.rope(t, pos), apply_rope(t, pos, 500.0))  # the module's RoPE is the plain one
    assert c.softmax_scale == (c.d_head + c.d_rope) ** -0.5
    # a YaRN whose factor is 1 changes no frequency and no scale: the same numbers as without it, bit for bit
    m1 = make(dataclasses.replace(c, rope_scaling=YaRN(factor=1.0, mscale_all_dim=1.0)), mode=mode)
    assert torch.equal(m1.rope(t, pos), apply_rope(t, pos, 500.0))
    assert torch.equal(m1(x), m(x))


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("extra", [{}, {"attention_factor": 1.3, "truncate": False}], ids=["ratio", "hf-keys"])
def test_yarn_layer_matches_the_reference_with_published_frequencies(config, mode, extra):
    rs = {"factor": 8, "original_max_position_embeddings": 16, "beta_fast": 4, "beta_slow": 1, "mscale": 0.9,
          "mscale_all_dim": 0.6, **extra}  # fmt: skip  # mscale ≠ mscale_all_dim: cos and sin are scaled too
    c = dataclasses.replace(config, rope_scaling=YaRN.from_config(rs))
    m, x = make(c, mode=mode), tokens(c, N=12)
    freq = torch.tensor(published_inv_freq(c.d_rope, c.rope_theta, rs), dtype=torch.float64)
    magnitude = published_magnitude(rs)
    assert magnitude == (1.3 if extra else get_mscale(8, 0.9) / get_mscale(8, 0.6))

    def rope(t, p):  # (i, i + d/2) pairs rotated as complex numbers, lengths × magnitude
        z = torch.complex(t[..., : c.d_rope // 2], t[..., c.d_rope // 2 :])
        z = z * torch.polar(torch.full_like(p[:, None] * freq, magnitude), p[:, None].double() * freq).view(
            len(p), *([1] * (t.dim() - 2)), -1
        )
        return torch.cat([z.real, z.imag], dim=-1)

    ref = reference_mla(m, x, rope=rope, scale=published_scale(c.d_head + c.d_rope, rs))
    assert max_diff(m(x), ref, "yarn vs reference") <= 1e-12
    assert max_diff(m(x, return_maps=True)[0], ref, "teaching path") <= 1e-12
    cache = m.new_cache(2, 12)
    steps = torch.cat([m(x[:, :5], cache=cache), *(m(x[:, i : i + 1], cache=cache) for i in range(5, 12))], dim=1)
    assert max_diff(steps, ref, "decode with yarn") <= 1e-12


# --- pair layout ------------------------------------------------------------------------------------------------------------
def rope_interleaved(t: torch.Tensor, p: torch.Tensor, theta: float) -> torch.Tensor:
    """DeepSeek's layout: features (2i, 2i + 1) form complex number i (positions on t's first axis)."""
    d = t.shape[-1]
    freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.view_as_complex(t.reshape(*t.shape[:-1], d // 2, 2).contiguous())
    z = z * torch.polar(torch.ones(len(p), d // 2, dtype=torch.float64), p[:, None].double() * freq).view(
        len(p), *([1] * (t.dim() - 2)), d // 2
    )
    return torch.view_as_real(z).reshape(t.shape)


def test_layout_permutation_hand_example_and_round_trip():
    w = torch.arange(8.0)[:, None]  # two blocks of d_rope = 4 rows
    assert interleaved_to_halves(w, 4).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    v = torch.randn(12, 5)
    assert torch.equal(halves_to_interleaved(interleaved_to_halves(v, 6), 6), v)
    x = torch.randn(7, 6, dtype=torch.float64)
    pos = torch.arange(7)
    # rotating interleaved pairs = permute to halves, rotate halves, permute back
    assert max_diff(rope_interleaved(x, pos, 1e4), halves_to_interleaved(apply_rope(interleaved_to_halves(x.T, 6).T,
                    pos).T, 6).T, "layouts") <= 1e-15  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_converted_deepseek_weights_give_identical_outputs(config, mode):
    deepseek = make(config, mode=mode, seed=3)  # read its w_qr / w_kr as DeepSeek-layout (interleaved) weights
    x = tokens(config, N=8)
    want = reference_mla(deepseek, x, rope=lambda t, p: rope_interleaved(t, p, config.rope_theta))
    ours = MultiHeadLatentAttention(config, mode=mode).double()
    state = deepseek.state_dict()
    for name in ("w_qr.weight", "w_kr.weight"):
        state[name] = interleaved_to_halves(state[name], config.d_rope)
    ours.load_state_dict(state)
    assert max_diff(ours(x), want, "converted") <= 1e-12
    assert max_diff(deepseek(x), want, "unconverted") > 1e-3  # without the conversion the outputs differ
