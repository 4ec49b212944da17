"""lattn.blocks: the pre-norm block around any attention module, against a hand-written float64 forward."""

import math

import pytest
import torch
from conftest import assert_close

from lattn import LatentAttention, MultiHeadAttention
from lattn.attention import KVCache
from lattn.blocks import Block
from lattn.family import LunaCausal, Perceiver
from lattn.mla import MLAConfig, MultiHeadLatentAttention

KINDS = ("full", "latent", "luna", "mla")


def attention_modules() -> dict[str, torch.nn.Module]:
    return {
        "full": MultiHeadAttention(8, 2),
        "latent": LatentAttention(8, 3, heads=2),
        "luna": LunaCausal(8, 3, heads=2),
        "mla": MultiHeadLatentAttention(MLAConfig(dim=8, heads=2, d_h=4, d_c=4, d_rope=2)),
    }


# --- independent references, written out by hand in float64 ---------------------------------------------------------
def layer_norm(x, norm):
    """(x − mean) / √(var + eps) · γ + β over the last axis (biased variance, as LayerNorm)."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def gelu(x):
    """The exact GELU: x · Φ(x), Φ the standard normal CDF."""
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def causal_attention(mha, x):
    """Causal multi-head self-attention from the layer's weights: softmax(q·kᵀ/√dh + causal mask)·v, heads merged."""
    B, N, D = x.shape
    H = mha.heads
    dh = D // H
    q, k, v = (
        (x @ lin.weight.T + lin.bias).view(B, N, H, dh).transpose(1, 2) for lin in (mha.to_q, mha.to_k, mha.to_v)
    )  # (B, H, N, dh) each
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)  # (B, H, N, N)
    scores = scores.masked_fill(~torch.ones(N, N, dtype=torch.bool).tril(), float("-inf"))
    read = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)  # (B, N, D)
    return read @ mha.to_out.weight.T + mha.to_out.bias


def attention_by_hand(attn, a):
    """The attention step of a block: written out for full attention; the other kinds are checked against their own
    hand-written references in test_latent / test_family / test_mla, here they are called as the convention says."""
    if type(attn) is MultiHeadAttention:
        return causal_attention(attn, a)
    return attn(a, causal=True) if attn.is_causal else attn(a)


def block_by_hand(block, x):
    """h = x + A(LN₁ x); out = h + W₂·gelu(W₁·LN₂ h + b₁) + b₂ — every step written out."""
    h = x + attention_by_hand(block.attn, layer_norm(x, block.norm_attn))
    lin1, lin2 = block.mlp[0], block.mlp[2]
    hidden = gelu(layer_norm(h, block.norm_mlp) @ lin1.weight.T + lin1.bias)  # (B, N, mlp_mult·D)
    return h + hidden @ lin2.weight.T + lin2.bias


# --- the block ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_block_matches_a_hand_written_forward(kind):
    torch.manual_seed(0)
    block = Block(attention_modules()[kind]).double()
    for p in block.parameters():  # move LayerNorm's γ, β off 1, 0 so that they count
        p.data += 0.1 * torch.randn_like(p)
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    with torch.no_grad():
        assert_close(block(x), block_by_hand(block, x), 1e-12, kind)
    assert block.mlp[0].out_features == 32  # mlp_mult 4


@pytest.mark.parametrize("depth", [1, 3])
def test_stacked_blocks_match_the_hand_written_forward(depth):
    """Blocks in a row (depth ≥ 1), full attention all the way by hand."""
    torch.manual_seed(1)
    blocks = [Block(MultiHeadAttention(8, 2), mlp_mult=2).double() for _ in range(depth)]
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    got, want = x, x
    with torch.no_grad():
        for block in blocks:
            got, want = block(got), block_by_hand(block, want)
    assert_close(got, want, 1e-12, f"depth {depth}")


def test_flags_come_from_the_module():
    flags = {k: (Block(m).is_causal, Block(m).can_cache) for k, m in attention_modules().items()}
    assert flags == {"full": (True, True), "latent": (False, False), "luna": (True, True), "mla": (True, True)}
    assert isinstance(Block(attention_modules()["full"]).attn, MultiHeadAttention)  # no adapter in between
    with pytest.raises(ValueError, match="no decoding state"):
        Block(LatentAttention(8, 2)).new_cache(1, 4)


def test_block_refuses_modules_that_do_not_return_tokens():
    with pytest.raises(TypeError, match="returns_tokens"):
        Block(Perceiver(8, 2))
    with pytest.raises(TypeError, match="returns_tokens"):
        Block(torch.nn.Linear(8, 8))
    with pytest.raises(TypeError, match="mlp_mult"):
        Block(MultiHeadAttention(8, 2), mlp_mult=2.0)


@pytest.mark.parametrize("kind", ["full", "luna", "mla"])
def test_block_decodes_in_chunks_like_its_forward(kind):
    """Chunked decoding through the module's cache (default start_pos = the cache's length) = the whole forward."""
    torch.manual_seed(2)
    block = Block(attention_modules()[kind]).double()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    cache = block.new_cache(2, 10)
    parts = [block(x[:, :3], cache=cache), block(x[:, 3:4], cache=cache), block(x[:, 4:], cache=cache, start_pos=4)]
    assert cache.length == 7
    assert_close(torch.cat(parts, 1), block(x), 1e-12, kind)


def test_full_cache_matches_an_independent_causal_attention():
    """Chunked decoding through the KV cache vs explicit float64 causal attention written here."""
    mha = MultiHeadAttention(8, 2).double()
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    want = causal_attention(mha, x)
    cache = mha.new_cache(2, 10)
    assert isinstance(cache, KVCache) and cache.k.shape == (2, 2, 10, 4)
    parts = [mha(x[:, :3], cache=cache), mha(x[:, 3:4], cache=cache), mha(x[:, 4:], cache=cache, start_pos=4)]
    assert_close(torch.cat(parts, 1), want, 1e-12, "cached chunks")
    assert_close(mha(x, causal=True), want, 1e-12, "forward")
    with pytest.raises(ValueError, match="cannot write"):
        mha(x[:, :4], cache=cache, start_pos=8)  # 8 + 4 > 10 slots
