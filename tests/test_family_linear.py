"""Causal linear attention (lattn.family.linear) against explicit N×N float64 sums, and causal Luna as two of them."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close

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
    """logits = linear attention (q, k, Φ); out = linear attention (A, Φ, v); both ÷ t (Katharopoulos et al. 2020).
    Φ, q, k, v are computed here from the weights, not taken from the module or its maps."""
    m = LunaCausal(8, 3, heads=2, packing=packing).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    d_head = 8 // 2

    def heads(layer, t):  # (B, n, 8) → (B, H, n, d_head), y = t·Wᵀ + b
        y = t @ layer.weight.double().T + layer.bias.double()
        return y.view(t.shape[0], t.shape[1], 2, d_head).transpose(1, 2)

    pk, pq = heads(m.to_pk, x), heads(m.to_pq, m.packed.double().expand(2, -1, -1))  # (B, H, N, d_head), (B, H, l, …)
    score = pk @ pq.transpose(-1, -2) / math.sqrt(d_head)  # (B, H, N, l)
    if packing == "softplus":  # softplus with β = ln 2: log2(1 + 2^score)
        phi = torch.log2(1 + torch.exp2(score))
    else:  # elu + 1
        phi = torch.where(score > 0, score + 1, score.exp())
    q, k, v = heads(m.to_q, x), heads(m.to_k, x), heads(m.to_v, x)
    logits = causal_linear_attention(q / math.sqrt(d_head), k, phi)  # (B, H, N, l)
    attn = logits.softmax(-1)  # over the l packed slots
    read = causal_linear_attention(attn, phi, v)  # (B, H, N, d_head)
    out = read.transpose(1, 2).reshape(2, 9, 8) @ m.to_out.weight.double().T + m.to_out.bias.double()
    got, maps = m(x, return_maps=True)
    assert_close(maps.gather.transpose(-1, -2), phi, 1e-12, "packing weights Φ")
    assert_close(maps.broadcast, attn, 1e-12, "unpack map")
    assert_close(got, out, 1e-12, "causal Luna = two causal linear attentions")
    assert_close(m(x), out, 1e-12, "fast path")


def test_packing_option_is_checked_and_elu_is_the_default():
    assert LunaCausal(8, 2).packing == "elu"  # the shipped lm_luna.pt was trained with elu + 1
    with pytest.raises(ValueError, match="packing"):
        LunaCausal(8, 2, packing="relu")
