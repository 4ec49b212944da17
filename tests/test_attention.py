"""Standard attention against independent references: torch SDPA, float64 recomputation, invariants."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from test_latent import HALF_ULPS, half_error_in_ulps

from lattn.attention import MultiHeadAttention, fused_attention, scaled_dot_product
from lattn.masks import masked_softmax


def reference_attention(q, k, v, mask=None, causal=False):
    """float64 loop-free recomputation from the definition."""
    q, k, v = q.double(), k.double(), v.double()
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    allowed = torch.ones_like(s, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & mask
    if causal:
        allowed = allowed & torch.ones(s.shape[-2:], dtype=torch.bool).tril()
    e = torch.exp(s - s.max(-1, keepdim=True).values) * allowed
    w = e / e.sum(-1, keepdim=True).clamp_min(1e-300)
    return w @ v, w


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [(1, 5, 4), (2, 3, 7, 8)])
def test_scaled_dot_product_matches_float64_and_sdpa(shape, causal):
    q, k, v = (torch.randn(*shape) for _ in range(3))
    out, w = scaled_dot_product(q, k, v, causal=causal)
    ref_out, ref_w = reference_attention(q, k, v, causal=causal)
    assert_close(out, ref_out, 1e-5, "out vs float64")
    assert_close(w, ref_w, 1e-6, "weights vs float64")
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal), 1e-5, "out vs torch SDPA")
    assert_close(fused_attention(q, k, v, causal=causal), out, 1e-5, "fused vs teaching")


def test_rows_sum_to_one_over_keys_and_causal_zeros():
    q, k, v = torch.randn(2, 6, 4), torch.randn(2, 9, 4), torch.randn(2, 9, 3)
    out, w = scaled_dot_product(q, k, v, causal=True)
    assert out.shape == (2, 6, 3) and w.shape == (2, 6, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 6))
    assert (w.triu(1) == 0).all(), "causal: no weight above the diagonal"


def test_mask_and_fully_masked_rows_give_zeros_not_nan():
    q, k, v = torch.randn(1, 3, 4), torch.randn(1, 5, 4), torch.randn(1, 5, 2)
    mask = torch.tensor([[True, False, True, False, True], [False] * 5, [True] * 5])[None]  # (1, 3, 5)
    out, w = scaled_dot_product(q, k, v, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(w).all()
    assert (w[0, 0, ~mask[0, 0]] == 0).all()
    assert (w[0, 1] == 0).all() and (out[0, 1] == 0).all()
    ref_out, _ = reference_attention(q, k, v, mask=mask)
    assert_close(out, ref_out, 1e-5, "masked")
    assert_close(fused_attention(q[None], k[None], v[None], mask=mask[None]), out[None], 1e-5, "fused masked")


def test_scale_sharpens_weights():
    q, k, v = torch.randn(4, 8), torch.randn(8, 8), torch.randn(8, 8)
    _, soft = scaled_dot_product(q, k, v, scale=0.01)
    _, sharp = scaled_dot_product(q, k, v, scale=10.0)
    assert soft.max() < sharp.max()
    torch.testing.assert_close(soft, torch.full_like(soft, 1 / 8), atol=0.05, rtol=0)


def test_masked_softmax_axis():
    s = torch.randn(3, 5)
    torch.testing.assert_close(masked_softmax(s, dim=0).sum(0), torch.ones(5))
    torch.testing.assert_close(masked_softmax(s, dim=-1).sum(-1), torch.ones(3))


@pytest.mark.parametrize("heads", [1, 4])
@pytest.mark.parametrize("causal", [False, True])
def test_mha_matches_torch_sdpa_on_same_projections(heads, causal):
    mha = MultiHeadAttention(16, heads)
    x = torch.randn(2, 11, 16)
    out, maps = mha(x, causal=causal, return_maps=True)
    q, k, v = mha.project(x)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, N, d_head)
    ref = mha.to_out(ref.transpose(1, 2).reshape(2, 11, 16))
    assert_close(out, ref, 1e-5, "MHA vs torch SDPA")
    assert_close(mha(x, causal=causal), out, 1e-5, "fast vs teaching")
    assert maps.shape == (2, heads, 11, 11)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, heads, 11))


def test_mha_padding_invariance_and_nn_multihead_reference():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(1, 5, 8)
    padded = torch.cat([x, torch.randn(1, 3, 8)], 1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    for rm in (False, True):
        a = mha(x, return_maps=rm)
        b = mha(padded, mask=mask, return_maps=rm)
        a, b = (a[0], b[0]) if rm else (a, b)
        assert_close(b[:, :5], a, 1e-5, "padding")
        assert (b[:, 5:] == 0).all()
    # independent reference: torch.nn.MultiheadAttention with the same weights
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.to_q.weight, mha.to_k.weight, mha.to_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.to_q.bias, mha.to_k.bias, mha.to_v.bias]))
        ref.out_proj.weight.copy_(mha.to_out.weight)
        ref.out_proj.bias.copy_(mha.to_out.bias)
    expected, w = ref(x, x, x, average_attn_weights=False)
    out, maps = mha(x, return_maps=True)
    assert_close(out, expected, 1e-5, "vs nn.MultiheadAttention")
    assert_close(maps, w, 1e-6, "maps vs nn.MultiheadAttention")


def test_mha_causal_future_does_not_change_past():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(1, 6, 8)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 8)
    assert torch.equal(mha(x, causal=True)[:, :4], mha(y, causal=True)[:, :4])


def test_mha_gradcheck_float64():
    mha = MultiHeadAttention(4, 2).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: mha(t, return_maps=True)[0], (x,))
    assert torch.autograd.gradcheck(lambda t: mha(t, causal=True), (x,))


@pytest.mark.parametrize(
    ("x", "mask", "error", "match"),
    [
        (torch.randn(5, 8), None, ValueError, r"3-D"),
        (torch.randn(1, 5, 7), None, ValueError, r"dim=8"),
        (torch.ones(1, 5, 8, dtype=torch.long), None, TypeError, r"floating"),
        (torch.randn(1, 5, 8), torch.ones(1, 4, dtype=torch.bool), ValueError, r"mask must have shape"),
        (torch.randn(1, 5, 8), torch.ones(1, 5), ValueError, r"mask must have dtype torch.bool"),
    ],
)
def test_mha_bad_input(x, mask, error, match):
    with pytest.raises(error, match=match):
        MultiHeadAttention(8, 2)(x, mask=mask)


def test_mha_bad_config():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("return_maps", [False, True])
def test_mha_half_precision_within_two_ulps_of_float64(dtype, causal, return_maps):
    """Against the same module in float64 (same rounded weights and inputs), in ulps of the half dtype at the
    output's magnitude: the bound and its derivation are in test_latent.py."""
    ulps = half_error_in_ulps(
        MultiHeadAttention(16, 2), torch.randn(2, 7, 16), dtype, causal=causal, return_maps=return_maps
    )
    assert ulps <= HALF_ULPS, f"{dtype}: {ulps:.2f} ulps"


def test_the_fully_masked_row_guard_gives_zeros_where_torch_gives_nan(monkeypatch):
    """torch 2.4 (the oldest supported) returns NaN for a query whose mask row is all False; torch ≥ 2.5 returns zeros.
    With a kernel that returns NaN there, fused_attention still gives zeros: the guard, not torch, makes it so."""
    sdpa = F.scaled_dot_product_attention

    def nan_for_empty_rows(q, k, v, attn_mask=None, **kw):  # what a kernel without a safe softmax returns
        out = sdpa(q, k, v, attn_mask=attn_mask, **kw)
        return out if attn_mask is None else out.masked_fill(~attn_mask.any(-1, keepdim=True), float("nan"))

    monkeypatch.setattr(F, "scaled_dot_product_attention", nan_for_empty_rows)
    q, k, v = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 2)
    mask = torch.tensor([[True] * 5, [False] * 5, [True, False, True, False, True]])
    assert nan_for_empty_rows(q, k, v, attn_mask=mask)[0, 0, 1].isnan().all()  # the emulated kernel: NaN
    out = fused_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and (out[0, 0, 1] == 0).all()
    assert_close(out, scaled_dot_product(q, k, v, mask)[0], 1e-6, "the other rows are untouched")
