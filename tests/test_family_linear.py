"""Causal linear attention (lattn.family.linear) against explicit N×N float64 sums, and causal Luna as two of them."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close

from lattn.attention import merge_heads, split_heads
from lattn.family import LunaCausal
from lattn.family.linear import causal_linear_attention, elu_feature, running_sums


def _explicit(q, k, v, normalise):
    """out_t = Σ_{j≤t} (q_t·k_j) v_j / norm_t with an explicit lower-triangular N×N matrix."""
    n = q.shape[-2]
    w = (q @ k.transpose(-1, -2)) * torch.ones(n, n, dtype=q.dtype).tril()  # (…, N, N)
    if normalise == "count":
        w = w / torch.arange(1, n + 1, dtype=q.dtype)[:, None]
    elif normalise == "sum":
        w = w / w.sum(-1, keepdim=True)
    return w @ v


@pytest.mark.parametrize("normalise", ["count", "sum", "none"])
def test_causal_linear_attention_matches_the_explicit_sum(normalise):
    g = torch.Generator().manual_seed(0)
    q, k = (elu_feature(torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64)) for _ in range(2))
    v = torch.randn(2, 3, 7, 5, generator=g, dtype=torch.float64)
    assert_close(causal_linear_attention(q, k, v, normalise=normalise), _explicit(q, k, v, normalise), 1e-12, normalise)


def test_running_sums_continue_from_a_state():
    g = torch.Generator().manual_seed(1)
    k, v = torch.randn(1, 6, 3, generator=g), torch.randn(1, 6, 2, generator=g)
    whole = running_sums(k, v)  # (1, 6, 3, 2)
    first = running_sums(k[:, :4], v[:, :4])
    assert_close(running_sums(k[:, 4:], v[:, 4:], first[:, -1]), whole[:, 4:], 1e-6, "continued")


def test_causal_linear_attention_checks_its_inputs():
    x = torch.rand(1, 4, 3)
    with pytest.raises(ValueError, match="normalise"):
        causal_linear_attention(x, x, x, normalise="softmax")
    with pytest.raises(ValueError, match="one shape"):
        causal_linear_attention(x, x[..., :2], x)
    with pytest.raises(TypeError, match="floating"):
        causal_linear_attention(x.long(), x, x)


@pytest.mark.parametrize("packing", ["elu", "softplus"])
def test_causal_luna_is_linear_attention_on_packed_keys(packing):
    """logits = linear attention (q, k, Φ); out = linear attention (A, Φ, v); both ÷ t (Katharopoulos et al. 2020)."""
    m = LunaCausal(8, 3, heads=2, packing=packing).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _, maps = m(x, return_maps=True)
    phi = maps.gather.transpose(-1, -2)  # (B, H, N, l): the packing weights
    dh = 8 // 2
    q, k, v = (split_heads(f(x), 2) for f in (m.to_q, m.to_k, m.to_v))  # (B, H, N, dh)
    logits = causal_linear_attention(q / math.sqrt(dh), k, phi)  # (B, H, N, l)
    attn = logits.softmax(-1)  # over the l packed slots
    assert_close(attn, maps.broadcast, 1e-12, "unpack map")
    read = causal_linear_attention(attn, phi, v)  # (B, H, N, dh)
    assert_close(m.to_out(merge_heads(read)), m(x), 1e-12, "causal Luna = two causal linear attentions")


def test_packing_option_is_checked_and_elu_is_the_default():
    assert LunaCausal(8, 2).packing == "elu"  # the shipped lm_luna.pt was trained with elu + 1
    with pytest.raises(ValueError, match="packing"):
        LunaCausal(8, 2, packing="relu")
