"""Window + global tokens (lattn.family.global_tokens): the mask, the score counts, and how far an output reaches."""

import math

import pytest
import torch
from conftest import assert_close

from lattn import LatentAttention, LatentMaps
from lattn.analysis import dependence
from lattn.family.global_tokens import LocalGlobalAttention, score_counts
from lattn.masks import local_global_mask


def test_mask_example_from_the_docstring():
    m = local_global_mask(4, 1, 1).int().tolist()
    assert m[0] == [1, 1, 1, 1, 1]  # the global token sees everything
    assert m[1] == [1, 1, 1, 0, 0]  # token 0: the global, itself, token 1
    assert [row[0] for row in m] == [1] * 5  # everything sees the global token


@pytest.mark.parametrize(("n", "w", "g"), [(16, 2, 2), (100, 7, 3), (5, 10, 1)])
def test_score_counts_match_the_closed_form(n, w, g):
    counts = score_counts(n, window=w, num_global=g, num_latents=4, registers=g)
    band = sum(min(i + w, n - 1) - max(i - w, 0) + 1 for i in range(n))  # N(2w+1) − w(w+1) when w < N
    assert counts[f"window ±{w} + {g} global"] == band + g * (2 * n + g)
    assert counts["full attention"] == n * n and counts[f"full + {g} registers"] == (n + g) ** 2
    assert counts["4 latents (gather + broadcast)"] == 2 * n * 4
    assert counts[f"window ±{w} + {g} global"] == int(local_global_mask(n, w, g).sum())  # the mask itself


def test_one_layer_cannot_reach_beyond_the_window_two_layers_and_latents_can():
    torch.manual_seed(0)
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    one = dependence(LocalGlobalAttention(8, 2, 2, depth=1).double(), x)[0]  # how output 0 depends on each token
    two = dependence(LocalGlobalAttention(8, 2, 2, depth=2).double(), x)[0]
    latent = dependence(LatentAttention(8, 3, stages=("gather", "broadcast")).double(), x)[0]
    assert (one[3:] == 0).all() and (one[:3] > 0).all()  # the globals' inputs carry nothing from the tokens
    assert (two > 0).all() and (latent > 0).all()


def local_global_reference(m, x, mask=None):
    """float64 forward from the definition, written out: h = [globals; tokens]; per layer h += Attn(LN h) under the
    joint mask (globals see and are seen by everything, token i sees tokens j with |i − j| ≤ w, padded tokens are
    never seen and read nothing). Returns the tokens' outputs (B, N, D) and each layer's map (B, H, g + N, g + N)."""
    B, N, D = x.shape
    g, H = m.num_global, m.layers[0].heads
    d_head = D // H
    pos = torch.arange(N)
    joint = torch.ones(g + N, g + N, dtype=torch.bool)
    joint[g:, g:] = (pos[:, None] - pos[None, :]).abs() <= m.window  # the band among tokens
    real = torch.ones(B, g + N, dtype=torch.bool)
    if mask is not None:
        real[:, g:] = mask
    allowed = joint & real[:, None, None, :]  # (B, 1, g + N, g + N): padded keys are never seen

    def lin(layer, t):
        return t @ layer.weight.double().T + layer.bias.double()

    def heads(t):  # (B, g + N, D) → (B, H, g + N, d_head)
        return t.view(B, g + N, H, d_head).transpose(1, 2)

    h = torch.cat([m.globals_.double().expand(B, -1, -1), x.double().masked_fill(~real[:, g:, None], 0)], 1)
    maps = []
    for norm, attn in zip(m.norms, m.layers):
        mu, var = h.mean(-1, keepdim=True), h.var(-1, unbiased=False, keepdim=True)
        t = (h - mu) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()  # pre-norm
        q, k, v = heads(lin(attn.to_q, t)), heads(lin(attn.to_k, t)), heads(lin(attn.to_v, t))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(d_head)).masked_fill(~allowed, float("-inf"))
        w = scores.softmax(-1) * real[:, None, :, None]  # every row sees the globals; padded rows read nothing
        maps.append(w)
        h = h + lin(attn.to_out, (w @ v).transpose(1, 2).reshape(B, g + N, D)) * real[..., None]  # residual
    return h[:, g:], maps


@pytest.mark.parametrize("padded", [False, True])
def test_local_global_matches_a_hand_written_float64_forward(padded):
    m = LocalGlobalAttention(8, 1, 2, heads=2, depth=2).double()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True, True, True, False], [True] * 7]) if padded else None
    want, want_maps = local_global_reference(m, x, mask)
    with torch.no_grad():
        assert_close(m(x, mask=mask), want, 1e-12, "fast path")
        out, maps = m(x, mask=mask, return_maps=True)
    assert_close(out, want, 1e-12, "teaching path")
    assert isinstance(maps, LatentMaps) and (maps.write, maps.gather, maps.broadcast) == (None, None, None)
    assert sorted(maps.extra) == ["layer 0", "layer 1"]
    for i, w in enumerate(want_maps):
        assert_close(maps.extra[f"layer {i}"], w, 1e-12, f"layer {i} map over [globals; tokens]")
    if padded:
        poisoned = x.masked_fill(~mask[..., None], float("nan"))  # padded tokens take no part, even NaN
        got, got_maps = m(poisoned, mask=mask, return_maps=True)
        assert torch.equal(got, out) and all(torch.equal(got_maps.extra[k], maps.extra[k]) for k in maps.extra)
        assert (out[~mask] == 0).all()


def test_local_global_refuses_causal():
    m = LocalGlobalAttention(8, 1, 1)
    with pytest.raises(ValueError, match="LocalGlobalAttention cannot be causal"):
        m(torch.randn(1, 5, 8), causal=True)
