"""The one attention layer (`Attention`): cross-attention, masks, the KV cache, fused projections, shared checks.

Every check compares against an independent float64 forward written out here with plain tensor code.
"""

import math

import pytest
import torch
from conftest import assert_close
from torch.utils._python_dispatch import TorchDispatchMode

from lattn import LatentAttention, checks
from lattn.attention import (
    Attention,
    KVCache,
    MultiHeadAttention,
    attend,
    fused_attention,
    fused_linear,
    scaled_dot_product,
    worth_fusing,
)
from lattn.checks import check_int


def hand_attention(layer: Attention, x, context=None, allowed=None):
    """float64 multi-head attention from the definition: projections, per-head softmax(q·kᵀ/√d_head)·v, output projection.

    allowed: bool (B, Nq, Nk) or None. Queries with nothing allowed give zeros before the output projection.
    """
    p = {
        n: (getattr(layer, n).weight.double(), getattr(layer, n).bias.double())
        for n in ("to_q", "to_k", "to_v", "to_out")
    }
    x = x.double()
    c = x if context is None else context.double()
    B, Nq, D = x.shape
    H, d_head = layer.heads, D // layer.heads
    q = (x @ p["to_q"][0].T + p["to_q"][1]).view(B, Nq, H, d_head)
    k = (c @ p["to_k"][0].T + p["to_k"][1]).view(B, c.shape[1], H, d_head)
    v = (c @ p["to_v"][0].T + p["to_v"][1]).view(B, c.shape[1], H, d_head)
    out = torch.zeros(B, Nq, H, d_head, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            s = q[b, :, h] @ k[b, :, h].T / math.sqrt(d_head)  # (Nq, Nk)
            if allowed is not None:
                s = s.masked_fill(~allowed[b], float("-inf"))
            w = torch.nan_to_num(s.softmax(-1))  # a row with nothing allowed → zeros
            out[b, :, h] = w @ v[b, :, h]
    return out.reshape(B, Nq, D) @ p["to_out"][0].T + p["to_out"][1]


@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("return_maps", [False, True])
def test_cross_attention_matches_hand_written_float64(heads, return_maps):
    layer = Attention(16, heads=heads, context_dim=24).double()
    x, ctx = torch.randn(2, 5, 16, dtype=torch.float64), torch.randn(2, 9, 24, dtype=torch.float64)
    out = layer(x, context=ctx, return_maps=return_maps)
    out = out[0] if return_maps else out
    assert_close(out, hand_attention(layer, x, ctx), 1e-12, "cross-attention")


@pytest.mark.parametrize("return_maps", [False, True])
def test_masks_attn_mask_and_causal_match_hand_written(return_maps):
    layer = Attention(12, heads=3).double()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    band = (torch.arange(7)[:, None] - torch.arange(7)[None, :]).abs() <= 1  # (N, N)
    tri = torch.ones(7, 7, dtype=torch.bool).tril()
    allowed = mask[:, None, :] & band & tri  # (B, N, N)
    out = layer(x, mask=mask, attn_mask=band, causal=True, return_maps=return_maps)
    out = out[0] if return_maps else out
    expected = hand_attention(layer, x, allowed=allowed) * mask[..., None]  # padded positions output zeros
    assert_close(out, expected, 1e-12, "mask & band & causal")


def test_fast_and_teaching_paths_agree_and_maps_sum_to_one():
    layer = Attention(16, heads=2)
    x, ctx = torch.randn(3, 6, 16), torch.randn(3, 11, 16)
    mask = torch.rand(3, 11) > 0.3
    mask[:, 0] = True
    fast = layer(x, context=ctx, mask=mask)
    teach, maps = layer(x, context=ctx, mask=mask, return_maps=True)
    assert_close(fast, teach, 1e-5, "fast vs teaching")
    assert maps.shape == (3, 2, 6, 11)
    assert_close(maps.sum(-1), torch.ones(3, 2, 6), 1e-6, "rows sum to 1")
    assert (maps.masked_select(~mask[:, None, None, :]) == 0).all()


def test_nan_in_padded_tokens_reaches_no_real_output():
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(2, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[:, 4:] = False
    poisoned = x.clone()
    poisoned[:, 4:] = float("nan")
    for kw in ({}, {"return_maps": True}):
        clean, dirty = layer(x, mask=mask, **kw), layer(poisoned, mask=mask, **kw)
        clean, dirty = (clean[0], dirty[0]) if kw else (clean, dirty)
        assert torch.isfinite(dirty).all(), "a NaN in a padded token leaked"
        assert_close(dirty, clean, 0.0, "padded content is invisible")


def test_kv_cache_decoding_equals_the_causal_forward():
    torch.manual_seed(1)
    layer = MultiHeadAttention(16, 4).double()
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    full = layer(x, causal=True)
    cache = layer.new_cache(2, 12)
    parts = [layer(x[:, :4], cache=cache)]  # prefill at 0
    parts += [layer(x[:, t : t + 1], cache=cache) for t in range(4, 7)]  # start_pos defaults to the cache's length
    parts += [layer(x[:, 7:], cache=cache, start_pos=7)]  # a chunk, explicit start
    assert cache.length == 10
    assert_close(torch.cat(parts, 1), full, 1e-12, "cached = uncached")
    assert cache.nbytes == 2 * 2 * 4 * 12 * 4 * 8


def test_kv_cache_rewind_and_bad_positions():
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(1, 6, 8)
    cache = layer.new_cache(1, 6)
    layer(x[:, :4], cache=cache)
    with pytest.raises(ValueError, match=r"cannot write 1 token.*at position 5: the cache holds 4 of 6"):
        layer(x[:, 5:6], cache=cache, start_pos=5)  # a gap
    with pytest.raises(ValueError, match="cannot write 3 token"):
        layer(x[:, :3], cache=cache)  # past max_len
    with pytest.raises(TypeError, match="start_pos must be an integer"):
        layer(x[:, :1], cache=cache, start_pos=1.0)
    again = layer(x[:, 2:4], cache=cache, start_pos=2)  # rewind: positions 2, 3 are recomputed
    assert cache.length == 4
    assert_close(again, layer(x[:, :4], causal=True)[:, 2:4], 1e-5, "rewound chunk")
    with pytest.raises(ValueError, match="KV cache is for self-attention"):
        Attention(8, heads=2)(x[:, :1], context=x, cache=layer.new_cache(1, 4))
    assert isinstance(cache, KVCache)


def test_fused_linear_is_one_matmul_and_each_linear_to_rounding():
    x = torch.randn(3, 60, 32)  # 180 rows ≥ 5 × 32 weight rows: fusing pays
    linears = [torch.nn.Linear(32, 32) for _ in range(5)]
    assert worth_fusing(x, linears)

    class Matmuls(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.addmm, torch.ops.aten.mm, torch.ops.aten.bmm):
                self.calls.append(func)
            return func(*args, **(kwargs or {}))

    with Matmuls() as rec:
        outs = fused_linear(x, linears)
    assert len(rec.calls) == 1, f"one matmul for all five layers, got {len(rec.calls)}"
    for got, lin in zip(outs, linears):
        want = x.double() @ lin.weight.double().T + lin.bias.double()  # float64, from the weights
        assert_close(got, want, 1e-5, "fused output vs float64")
        assert_close(got, lin(x), 1e-5, "fused output vs the layer itself")
    assert not worth_fusing(x[:, :10], linears)  # 30 rows < 160 weight rows: each layer on its own


def test_attend_is_the_fast_or_the_teaching_core():
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 7, 4), torch.randn(2, 3, 7, 4)
    fast, none = attend(q, k, v, causal=True)
    teach, maps = attend(q, k, v, causal=True, return_maps=True)
    assert none is None and maps.shape == (2, 3, 5, 7)
    assert_close(fast, teach, 1e-5, "attend paths")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dim": 64.0, "heads": 4}, TypeError, "dim must be an integer"),
        ({"dim": 64, "heads": 4.0}, TypeError, "heads must be an integer"),
        ({"dim": 64, "heads": True}, TypeError, "heads must be an integer"),
        ({"dim": 0, "heads": 1}, ValueError, "dim must be an integer ≥ 1, got 0"),
        ({"dim": 10, "heads": 4}, ValueError, "divisible"),
        ({"dim": 8, "heads": 2, "context_dim": 0}, ValueError, "context_dim"),
    ],
)
def test_bad_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        Attention(kwargs.pop("dim"), **kwargs)


def test_bad_inputs_name_what_was_expected():
    layer = Attention(8, heads=2)
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the module's weights are torch.float32"):
        layer(torch.randn(1, 3, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="same batch size"):
        layer(torch.randn(1, 3, 8), context=torch.randn(2, 3, 8))
    with pytest.raises(TypeError, match=r"shape \(B, N\) = \(2, 5\)"):
        layer(torch.randn(2, 5, 8), mask=[[True] * 5] * 2)
    with pytest.raises(ValueError, match="context last dimension"):
        layer(torch.randn(1, 3, 8), context=torch.randn(1, 3, 6))


def test_check_int():
    check_int(a=1, b=3)
    check_int(minimum=0, start=0)
    with pytest.raises(TypeError, match="num_latents must be an integer ≥ 1, got True"):
        check_int(num_latents=True)
    with pytest.raises(ValueError, match="got -1"):
        check_int(minimum=0, start=-1)


def test_fused_attention_validates_its_inputs():
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    with pytest.raises(ValueError, match=r"mask must have dtype torch\.bool"):
        fused_attention(q, k, v, torch.zeros(4, 6))
    with pytest.raises(ValueError, match=r"need q \(…, Nq, d\), k \(…, Nk, d\), v \(…, Nk, dv\)"):
        fused_attention(q, k, v[:, :, :5])
    with pytest.raises(ValueError, match="need q"):
        scaled_dot_product(q, k[..., :4], v)


def test_huge_maps_are_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 1000)
    layer = MultiHeadAttention(8, 2)
    x = torch.randn(1, 20, 8)  # scores and weights: 2 × (2 heads × 20 × 20 × 4 B) = 6,400 B
    with pytest.raises(MemoryError, match=r"would hold up to 6.2 KiB .*\(scores and weights\).*use the fast path"):
        layer(x, return_maps=True)
    assert layer(x).shape == (1, 20, 8)  # the fast path keeps no map
    la = LatentAttention(8, 2, heads=2)  # 4 maps of 2 × 20 × 2 × 4 B = 320 B and 4 tokens of 20 × 8 × 4 B = 640 B
    with pytest.raises(MemoryError, match=r"would hold up to 3.8 KiB .*\(4 maps of 320 bytes.*4 token tensors of 640"):
        la(x, return_maps=True)
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 4 * 320 + 4 * 640)
    _, maps = la(x, return_maps=True)
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 1000)  # effective(): 2 × 20 × 20 × 4 B = 3,200 B
    with pytest.raises(MemoryError, match=r"effective\(\) at N = 20 would hold"):
        maps.effective()
