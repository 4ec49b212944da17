"""Tests for lattn.mla: DeepSeek Multi-head Latent Attention, its KV cache and its accounting.

References: the two modes against each other, full forwards against cached ones, and the DeepSeek-V2/V3 papers'
numbers; the independent float64 re-implementations (and the shared configs) live in tests/test_mla_reference.py.
"""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, max_diff
from test_mla_reference import CONFIGS, TINY, make, tokens

from lattn.masks import causal_mask
from lattn.mla import (
    KV_KINDS,
    MODES,
    PRESETS,
    MLACache,
    MLAConfig,
    MultiHeadLatentAttention,
    absorption_gap,
    kv_cache_bytes,
    kv_elements_per_token,
)


def run(m: MultiHeadLatentAttention, x: torch.Tensor, mode: str, **kw):
    m.mode = mode
    return m(x, **kw)


# --- the three modes agree ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_every_mode_gives_the_same_prefill_and_decode_float64(config, seed):
    m, x = make(config, seed=seed), tokens(config, N=6, seed=seed + 10)
    prefill = {mode: run(m, x, mode) for mode in MODES}
    steps = {}
    for mode in MODES:
        m.mode = mode
        cache = m.new_cache(2, 6)
        m(x[:, :5], cache=cache)
        steps[mode] = m(x[:, 5:], cache=cache, start_pos=5)  # one decode step
    for mode in ("auto", "absorbed"):
        assert max_diff(prefill["naive"], prefill[mode], f"prefill naive vs {mode}") <= 1e-10
        assert max_diff(steps["naive"], steps[mode], f"decode naive vs {mode}") <= 1e-10


@pytest.mark.parametrize("config", CONFIGS)
def test_auto_runs_the_naive_code_for_prompts_and_the_absorbed_code_for_one_token(config):
    """The default mode is not a third computation: a prompt (or chunk) takes the expanded path bit for bit, a single
    decoding token the absorbed path bit for bit, and its cache holds what the absorbed mode's holds."""
    m, x = make(config), tokens(config, N=7)
    assert [m.path(n) for n in (1, 2, 7)] == ["absorbed", "naive", "naive"]  # auto, the default
    assert torch.equal(run(m, x, "auto"), run(m, x, "naive"))  # a prompt: the expanded computation
    assert torch.equal(run(m, x[:, :1], "auto"), run(m, x[:, :1], "absorbed"))  # one token: the absorbed one
    caches, outs = {}, {}
    for mode in ("auto", "absorbed"):
        m.mode = mode
        caches[mode] = cache = m.new_cache(2, 8)
        m(x[:, :6], cache=cache)  # prefill: auto expands, absorbed absorbs; both cache the same latent rows
        outs[mode] = m(x[:, 6:], cache=cache)  # decode: both absorb, over the same cache
    assert torch.equal(caches["auto"].buffers["kv"], caches["absorbed"].buffers["kv"])
    assert torch.equal(outs["auto"], outs["absorbed"])
    m.mode = "naive"
    assert [m.path(n) for n in (1, 7)] == ["naive", "naive"]
    m.mode = "absorbed"
    assert [m.path(n) for n in (1, 7)] == ["absorbed", "absorbed"]
    assert MultiHeadLatentAttention(config).mode == "auto"


@pytest.mark.parametrize("config", CONFIGS)
def test_every_mode_agrees_in_float32(config):
    m, x = make(config, torch.float32), tokens(config, N=6, dtype=torch.float32)
    for mode in ("auto", "absorbed"):
        assert max_diff(run(m, x, "naive"), run(m, x, mode), f"float32 naive vs {mode}") <= 1e-4


def test_naive_equals_absorbed_bfloat16_cosine():
    config = MLAConfig(dim=64, heads=4, d_head=16, d_c=32, d_rope=8, d_cq=24)
    m, x = make(config, torch.bfloat16), tokens(config, N=12, dtype=torch.bfloat16)
    outs = {}
    for mode in MODES:
        m.mode = mode
        cache = m.new_cache(2, 13)
        prefill = m(x, cache=cache)
        decode = m(tokens(config, N=1, dtype=torch.bfloat16, seed=5), cache=cache, start_pos=12)
        outs[mode] = torch.cat([prefill, decode], 1).double().flatten()
    for mode in ("auto", "absorbed"):
        cos = torch.nn.functional.cosine_similarity(outs["naive"], outs[mode], dim=0).item()
        print(f"bf16 cosine similarity naive vs {mode}: {cos:.6f}")
        assert cos > 0.9999


def test_teaching_path_matches_fast_path_and_maps_are_causal():
    m, x = make(TINY, torch.float32), tokens(TINY, N=6, dtype=torch.float32)
    for mode in MODES:
        m.mode = mode
        fast = m(x)
        slow, maps = m(x, return_maps=True)
        assert maps.shape == (2, TINY.heads, 6, 6)
        assert max_diff(fast, slow, f"{mode} teaching vs fast") < 1e-5
        assert torch.allclose(maps.sum(-1), torch.ones(2, TINY.heads, 6))
        assert (maps.triu(1) == 0).all()
    maps = {mode: run(m, x, mode, return_maps=True)[1] for mode in MODES}
    assert max_diff(maps["naive"], maps["absorbed"], "maps naive vs absorbed") < 1e-5
    assert torch.equal(maps["naive"], maps["auto"])


# --- cache = full forward ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_step_by_step_decode_equals_full_forward(config, mode):
    m, x = make(config, mode=mode), tokens(config, N=7)
    full = m(x)
    cache = m.new_cache(2, 7)
    steps = torch.cat([m(x[:, t : t + 1], cache=cache, start_pos=t) for t in range(7)], dim=1)
    assert cache.length == 7
    assert max_diff(steps, full, "decode") < 1e-12


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_chunked_prefill_at_nonzero_start_equals_full_forward(config, mode):
    m, x = make(config, mode=mode), tokens(config, N=9)
    full = m(x)
    cache = m.new_cache(2, 12)
    parts = [m(x[:, :3], cache=cache), m(x[:, 3:7], cache=cache, start_pos=3), m(x[:, 7:], cache=cache, start_pos=7)]
    assert max_diff(torch.cat(parts, 1), full, "chunks 3+4+2") < 1e-12
    # the chunk's own mask: with start_pos = 3, its maps see the 3 cached keys and its own lower triangle
    cache = m.new_cache(2, 12)
    m(x[:, :3], cache=cache)
    _, maps = m(x[:, 3:7], cache=cache, start_pos=3, return_maps=True)
    assert maps.shape == (2, config.heads, 4, 7)
    assert torch.equal(maps[0, 0] > 0, causal_mask(4, start_pos=3))


def test_rewinding_the_cache_rewrites_positions():
    m, x = make(TINY), tokens(TINY, N=5)
    cache = m.new_cache(2, 5)
    m(x, cache=cache)
    other = tokens(TINY, N=2, seed=9)
    again = m(other, cache=cache, start_pos=3)  # overwrite the last two positions
    assert cache.length == 5
    assert max_diff(again, m(torch.cat([x[:, :3], other], 1))[:, 3:], "rewind") < 1e-12


def test_without_cache_start_pos_only_shifts_rope_which_is_relative():
    m, x = make(TINY), tokens(TINY, N=6)
    assert max_diff(m(x, start_pos=0), m(x, start_pos=1000), "RoPE shift") < 1e-10


@pytest.mark.parametrize("mode", ["auto", "absorbed"])
def test_the_latent_cache_holds_exactly_the_latent_and_rotary_key(mode):
    m, x = make(TINY, mode=mode), tokens(TINY, N=4)
    cache = m.new_cache(2, 6)
    m(x, cache=cache)
    c_kv, k_r = m.latents(x, torch.arange(4))
    assert cache.layout == "latent" and cache.mode == mode
    assert cache.c_kv.shape == (2, 4, TINY.d_c) and cache.k_rope.shape == (2, 4, TINY.d_rope)
    assert torch.equal(cache.c_kv, c_kv) and torch.equal(cache.k_rope, k_r)
    with pytest.raises(ValueError, match="holds"):
        m.mode = "naive"
        _ = m.new_cache(2, 6).c_kv


# --- the calling convention ------------------------------------------------------------------------------------------
def test_class_attributes_and_causal_keyword():
    m, x = make(TINY), tokens(TINY, N=5)
    assert (MultiHeadLatentAttention.is_causal, MultiHeadLatentAttention.returns_tokens) == (True, True)
    assert MultiHeadLatentAttention.stages == ()
    assert torch.equal(m(x, causal=True), m(x))  # always causal: the keyword is accepted and changes nothing


@pytest.mark.parametrize("mode", MODES)
def test_decode_after_prefill_without_start_pos_equals_full_forward(mode):
    """Issue 12: start_pos defaults to the cache's length (it used to default to 0 and truncate the cache)."""
    m, x = make(TINY, mode=mode), tokens(TINY, N=7)
    cache = m.new_cache(2, 8)
    parts = [m(x[:, :4], cache=cache), m(x[:, 4:5], cache=cache), m(x[:, 5:], cache=cache)]
    assert cache.length == 7
    assert_close(torch.cat(parts, 1), m(x), 1e-12, "prefill 4 + decode 1 + chunk 2, no start_pos")


@pytest.mark.parametrize("mode", MODES)
def test_padding_mask_padded_tokens_take_no_part(mode):
    m, x = make(TINY, mode=mode), tokens(TINY, N=6)
    mask = torch.tensor([[True] * 6, [False, False] + [True] * 4])  # sequence 1: two pad tokens on the left
    x[1, :2] = float("nan")  # whatever a padded token holds reaches no product
    out, maps = m(x, mask=mask, return_maps=True)
    assert_close(out[0], m(x[:1])[0], 1e-12, "unpadded sequence unchanged")
    assert_close(out[1, 2:], m(x[1:, 2:])[0], 1e-12, "padded sequence = its real tokens alone")  # RoPE is relative
    assert torch.equal(out[1, :2], torch.zeros(2, TINY.dim)) and (maps[1, :, :, :2] == 0).all()
    assert_close(m(x, mask=mask), out, 1e-12, "fast path = teaching path")


# --- causality --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_a_future_token_never_changes_an_earlier_output(mode):
    m, x = make(TINY, mode=mode), tokens(TINY, N=8)
    base = m(x)
    for t in (0, 3, 7):
        changed = x.clone()
        changed[:, t:] += 10 * torch.randn_like(changed[:, t:])
        out = m(changed)
        assert torch.equal(out[:, :t], base[:, :t])
        assert not torch.allclose(out[:, t:], base[:, t:])  # … while it does change its own and later outputs


# --- RoPE and the reason it is decoupled ------------------------------------------------------------------------------
def test_rope_on_the_up_projected_key_breaks_absorption():
    """Associativity lets W_UK move to the query side only while nothing position-dependent sits between W_UK and
    c_KV; RoPE on k_C = W_UK·c_KV puts R_j (the key's position) there, so the absorbed shortcut is wrong."""
    assert absorption_gap("none") < 1e-12
    assert absorption_gap("decoupled") < 1e-12
    gaps = [absorption_gap("on_key", seed=s) for s in range(3)]
    print("gaps with RoPE on the up-projected key:", gaps)
    assert min(gaps) > 0.1


# --- gradients --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_float64_gradcheck(config, mode):
    m = make(config, mode=mode)
    x = tokens(config, B=1, N=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: m(t), (x,))
    # and through the absorbed weights (W_UK folded into the query, W_UV into the output)
    w_uk = m.w_uk.weight.detach().clone().requires_grad_()
    w_uv = m.w_uv.weight.detach().clone().requires_grad_()
    f = lambda a, b: torch.func.functional_call(m, {"w_uk.weight": a, "w_uv.weight": b}, (x.detach(),))
    assert torch.autograd.gradcheck(f, (w_uk, w_uv), fast_mode=True)  # a random projection of the Jacobian


# --- KV-cache accounting ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_cache_nbytes_equal_the_formulas(mode, dtype):
    m = make(TINY, dtype, mode=mode)
    cache = m.new_cache(3, 11)
    kind = "MLA naive" if mode == "naive" else "MLA"
    per_token = TINY.kv_elements_per_token(kind)
    assert cache.elements_per_token == per_token
    bits = torch.finfo(dtype).bits
    assert cache.nbytes == TINY.kv_cache_bytes(kind, context=11, batch=3, bits=bits)
    assert cache.nbytes == sum(b.numel() * b.element_size() for b in cache.buffers.values())
    expected = TINY.heads * (2 * TINY.d_head + TINY.d_rope) if mode == "naive" else TINY.d_c + TINY.d_rope
    assert per_token == expected


def test_paper_per_token_numbers():
    v2, lite, v3 = (PRESETS[k] for k in ("DeepSeek-V2", "DeepSeek-V2-Lite", "DeepSeek-V3"))
    per_token_all_layers = lambda c, kind="MLA": c.kv_elements_per_token(kind) * c.layers
    assert per_token_all_layers(v2) == 34_560  # paper: 34.6K
    assert per_token_all_layers(lite) == 15_552  # paper: 15.6K
    assert per_token_all_layers(v3) == 35_136
    assert per_token_all_layers(lite, "MHA") == 110_592  # paper: 110.6K
    assert round(100 * 15_552 / 110_592) == 14
    assert per_token_all_layers(v2, "MHA") == 1_966_080
    assert per_token_all_layers(v3, "MHA") == 1_998_848
    assert round(100 * 35_136 / 1_998_848, 2) == 1.76
    assert v3.kv_elements_per_token("MLA naive") == 40_960
    assert round(40_960 / 576, 1) == 71.1
    assert v2.equivalent_gqa_groups() == 2.25  # "equal to GQA with only 2.25 groups"
    assert v2.kv_elements_per_token("MLA") == 4.5 * v2.d_head
    assert v2.without_yarn().softmax_scale == pytest.approx(0.0721688, abs=1e-7)  # 1/√192, eq. 18
    assert v2.softmax_scale == pytest.approx(0.0721688 * 1.2608**2, abs=1e-5)  # × YaRN's mscale² (test_mla_yarn.py)


def test_headline_kv_reduction_reconstruction():
    """DeepSeek 67B (GQA: 8 KV groups, d_head 128, 95 layers) in BF16 vs DeepSeek-V2's MLA cache at ~6 bits."""
    old = kv_cache_bytes("GQA", context=1, layers=95, bits=16, heads=64, d_head=128, n_groups=8)
    new = PRESETS["DeepSeek-V2"].kv_cache_bytes("MLA", context=1, bits=6)
    assert (old, new) == (389_120, 25_920)
    assert round(100 * (1 - new / old), 1) == 93.3


def test_accounting_kinds_and_scaling():
    dims = {"heads": 8, "d_head": 16, "d_c": 40, "d_rope": 8}
    assert [kv_elements_per_token(k, n_groups=2, **dims) for k in KV_KINDS] == [256, 64, 32, 8 * 40, 48]
    assert kv_cache_bytes("MQA", context=10, batch=2, layers=3, bits=8, **dims) == 32 * 10 * 2 * 3
    assert kv_cache_bytes("MLA", context=7, bits=6, **dims) == 48 * 7 * 6 / 8  # fractional bytes are allowed


def test_scaled_keeps_the_ratios():
    lite = PRESETS["DeepSeek-V2-Lite"]
    small = lite.scaled(0.25)
    assert (small.dim, small.heads, small.d_head, small.d_c, small.d_rope, small.d_cq) == (512, 16, 32, 128, 16, 0)
    assert small.equivalent_gqa_groups() == lite.equivalent_gqa_groups() == 2.25
    assert small.kv_elements_per_token("MLA") / small.kv_elements_per_token("MHA") == pytest.approx(
        lite.kv_elements_per_token("MLA") / lite.kv_elements_per_token("MHA")
    )
    v3 = PRESETS["DeepSeek-V3"].scaled(0.0625, heads=0.125, layers=2)
    assert (v3.dim, v3.heads, v3.d_head, v3.d_c, v3.d_rope, v3.d_cq, v3.layers) == (56, 16, 8, 32, 4, 96, 2)
    assert v3.d_rope % 2 == 0 and PRESETS["DeepSeek-V2"].scaled(0.01).d_rope == 2


# --- bad input --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"d_rope": 5}, ValueError, "d_rope must be even"),
        ({"d_c": 0}, ValueError, "MLAConfig.d_c must be an integer ≥ 1"),
        ({"heads": -2}, ValueError, "MLAConfig.heads must be an integer ≥ 1"),
        ({"d_cq": -1}, ValueError, r"MLAConfig.d_cq \(0 = no query compression\) must be an integer ≥ 0"),
        ({"d_head": 4.0}, TypeError, "MLAConfig.d_head must be an integer"),
        ({"layers": True}, TypeError, "MLAConfig.layers must be an integer"),
        ({"heads": True}, TypeError, "MLAConfig.heads must be an integer"),
        ({"dim": 64.0}, TypeError, "MLAConfig.dim must be an integer"),
        ({"d_rope": "2"}, TypeError, "MLAConfig.d_rope must be an integer"),
        ({"rope_theta": 0.0}, ValueError, "rope_theta"),
    ],
)
def test_bad_configs(changes, error, match):
    fields = {"dim": 8, "heads": 2, "d_head": 4, "d_c": 6, "d_rope": 2} | changes
    with pytest.raises(error, match=match):
        MLAConfig(**fields)


def test_bad_config_helpers():
    with pytest.raises(ValueError, match="unknown preset"):
        MLAConfig.preset("DeepSeek-V4")
    with pytest.raises(ValueError, match="width > 0"):
        TINY.scaled(0)
    with pytest.raises(ValueError, match="unknown cache kind"):
        kv_elements_per_token("MLA absorbed", heads=2, d_head=4)
    with pytest.raises(ValueError, match="n_groups dividing heads=8"):
        kv_elements_per_token("GQA", heads=8, d_head=4, n_groups=3)
    with pytest.raises(ValueError, match="n_groups"):
        TINY.kv_elements_per_token("GQA")
    with pytest.raises(ValueError, match="bits"):
        TINY.kv_cache_bytes(context=4, bits=0)
    with pytest.raises(ValueError, match="context"):
        TINY.kv_cache_bytes(context=-1)
    with pytest.raises(TypeError, match="MLAConfig"):
        MultiHeadLatentAttention({"dim": 8})
    with pytest.raises(ValueError, match=r"mode must be one of \('auto', 'naive', 'absorbed'\), got 'absorb'"):
        MultiHeadLatentAttention(TINY, mode="absorb")
    with pytest.raises(ValueError, match="max_len"):
        make(TINY).new_cache(2, 0)


def test_bad_inputs_to_forward():
    m = make(TINY)
    x = tokens(TINY, N=4)
    cases = [
        (lambda: m(x[0]), ValueError, r"3-D \(B, N, dim=20\)"),
        (lambda: m(x[..., :5]), ValueError, "last dimension must be dim=20"),
        (lambda: m(x[:, :0]), ValueError, "at least one token"),
        (lambda: m(x.float()), TypeError, r"x has dtype torch.float32 but the module's weights are torch.float64"),
        (lambda: make(TINY, torch.float32)(x), TypeError, r"float64 but the module's weights are torch.float32.*x.to"),
        (lambda: m(x.long()), TypeError, "floating-point"),
        (lambda: m(x, start_pos=-1), ValueError, "start_pos must be an integer ≥ 0"),
        (lambda: m(x, start_pos=1.0), TypeError, "start_pos must be an integer"),
        (lambda: m(x, cache="cache"), TypeError, "MLACache"),
        (lambda: m(x, m.new_cache(2, 6)), TypeError, "positional argument"),  # keyword-only after x
        (
            lambda: m(x, mask=torch.ones(2, 3, dtype=torch.bool)),
            ValueError,
            r"mask must have shape \(B, N\) = \(2, 4\)",
        ),
        (lambda: m(x, mask=torch.ones(2, 4)), ValueError, "mask must have dtype torch.bool"),
        (lambda: m(x, mask=torch.ones(2, 4, dtype=torch.bool), cache=m.new_cache(2, 6)), ValueError, "no mask"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_bad_cache_use():
    m = make(TINY)
    x = tokens(TINY, N=4)
    cache = m.new_cache(2, 6)
    m(x, cache=cache)
    with pytest.raises(ValueError, match="cache overflow: writing 4 tokens at start_pos=4 needs 8 slots"):
        m(x, cache=cache)  # start_pos defaults to the cache's length, 4
    with pytest.raises(ValueError, match="would leave a gap"):
        m(x[:, :1], cache=cache, start_pos=5)
    with pytest.raises(ValueError, match="batch 1 but the cache was allocated for batch 2"):
        m(x[:1, :1], cache=cache)
    with pytest.raises(TypeError, match=r"cache holds torch\.float32"):
        m(x[:, :1], cache=m.new_cache(2, 6, dtype=torch.float32))
    m.mode = "naive"
    with pytest.raises(ValueError, match=r"made for mode='auto' \(latent layout\) but the module runs mode='naive'"):
        m(x[:, :1], cache=cache)
    m.mode = "absorbed"  # the same latent layout: the absorbed mode continues the default mode's cache
    assert max_diff(m(x[:, :1], cache=cache), make(TINY)(torch.cat([x, x[:, :1]], 1))[:, 4:], "continued") < 1e-12
    cache.length = 4
    other = make(MLAConfig(dim=20, heads=3, d_head=4, d_c=12, d_rope=6))  # same dim, wider latent
    with pytest.raises(ValueError, match="do not fit"):
        m(x[:, :1], cache=other.new_cache(2, 6))
    assert isinstance(cache, MLACache) and cache.length == 4  # failed calls wrote nothing
