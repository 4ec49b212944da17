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
        "mla": MultiHeadLatentAttention(MLAConfig(dim=8, heads=2, d_head=4, d_c=4, d_rope=2)),
    }


# --- independent references, written out by hand in float64 from the module's weights --------------------------------
# Every step below uses torch arithmetic only (matmuls, exp, sums): no call into the modules under test, so a slip in
# Block, in an attention module or in CharLM makes the comparisons fail.
def lin(layer, t):
    """t·Wᵀ + b from a Linear layer's weights (no bias: MLA's projections)."""
    return t @ layer.weight.T + (0 if layer.bias is None else layer.bias)


def split(t, H):
    """(B, N, H·d_head) → (B, H, N, d_head)."""
    B, N, D = t.shape
    return t.view(B, N, H, D // H).transpose(1, 2)


def merge(t):
    """(B, H, N, d_head) → (B, N, H·d_head)."""
    B, H, N, d_head = t.shape
    return t.transpose(1, 2).reshape(B, N, H * d_head)


def softmax(scores, allowed=None):
    """exp(s − max) / Σ exp over the last axis; ``allowed`` False = weight 0."""
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    e = torch.exp(scores - scores.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def layer_norm(x, norm):
    """(x − mean) / √(var + eps) · γ + β over the last axis (biased variance, as LayerNorm)."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def gelu(x):
    """The exact GELU: x · Φ(x), Φ the standard normal CDF."""
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def causal(N):
    """(N, N) bool: query i may see keys j ≤ i."""
    return torch.arange(N)[:, None] >= torch.arange(N)[None, :]


def causal_attention(mha, x):
    """Causal multi-head self-attention from the layer's weights: softmax(q·kᵀ/√d_head + causal mask)·v, heads merged."""
    H, d_head = mha.heads, x.shape[-1] // mha.heads
    q, k, v = (split(lin(p, x), H) for p in (mha.to_q, mha.to_k, mha.to_v))  # (B, H, N, d_head) each
    weights = softmax(q @ k.transpose(-1, -2) / math.sqrt(d_head), causal(x.shape[1]))  # (B, H, N, N)
    return lin(mha.to_out, merge(weights @ v))  # (B, N, D)


def latent_attention(la, x):
    """Write → gather → broadcast (lattn.latent's docstring): M learned latents, no mask (the naive decoder)."""
    assert la.stages == ("write", "gather", "broadcast")
    B, N, D = x.shape
    H = la.heads
    scale = 1 / math.sqrt(D // H)
    z = la.latents.expand(B, -1, -1)  # (B, M, D)
    p = la.proj["write"]  # tokens query latents, softmax over latents; each latent: weighted mean of token values
    w = softmax(split(lin(p.to_q, x), H) @ split(lin(p.to_k, z), H).transpose(-1, -2) * scale)  # (B, H, N, M)
    mean = w / (w.sum(-2, keepdim=True) + la.eps)  # each latent's column renormalised over tokens
    z = z + lin(p.to_out, merge(mean.transpose(-1, -2) @ split(lin(p.to_v, x), H)))  # (B, M, D)
    p = la.proj["gather"]  # latents query tokens, softmax over tokens
    g = softmax(split(lin(p.to_q, z), H) @ split(lin(p.to_k, x), H).transpose(-1, -2) * scale)  # (B, H, M, N)
    z = z + lin(p.to_out, merge(g @ split(lin(p.to_v, x), H)))
    p = la.proj["broadcast"]  # tokens query latents, softmax over latents
    b = softmax(split(lin(p.to_q, x), H) @ split(lin(p.to_k, z), H).transpose(-1, -2) * scale)  # (B, H, N, M)
    return lin(p.to_out, merge(b @ split(lin(p.to_v, z), H)))  # (B, N, D)


def luna_causal_attention(m, x):
    """Causal Luna, one position t at a time: l packed keys and values = the mean over j ≤ t of φ_j[s]·(k_j, v_j),
    φ = elu + 1 of the packing scores; out_t = softmax over the l slots of q_t·packed keys, times packed values."""
    assert m.packing == "elu"
    B, N, D = x.shape
    H = m.heads
    scale = 1 / math.sqrt(D // H)
    pq = split(lin(m.to_pq, m.packed.expand(B, -1, -1)), H) * scale  # (B, H, l, d_head)
    pk, q, k, v = (split(lin(p, x), H) for p in (m.to_pk, m.to_q, m.to_k, m.to_v))  # (B, H, N, d_head) each
    s = pk @ pq.transpose(-1, -2)  # (B, H, N, l) packing scores
    phi = torch.where(s > 0, s, torch.exp(s) - 1) + 1  # elu(s) + 1 > 0
    reads = []
    for t in range(N):
        packed_k = phi[:, :, : t + 1].transpose(-1, -2) @ k[:, :, : t + 1] / (t + 1)  # (B, H, l, d_head)
        packed_v = phi[:, :, : t + 1].transpose(-1, -2) @ v[:, :, : t + 1] / (t + 1)
        a = softmax(q[:, :, t : t + 1] * scale @ packed_k.transpose(-1, -2))  # (B, H, 1, l)
        reads.append(a @ packed_v)  # (B, H, 1, d_head)
    return lin(m.to_out, merge(torch.cat(reads, 2)))  # (B, N, D)


def rope(t, theta):
    """Rotate feature pair (i, i + d/2) of the token at position p by p·theta^(−2i/d); t (…, N, d)."""
    N, d = t.shape[-2:]
    angle = torch.arange(N, dtype=t.dtype)[:, None] * theta ** (-2 * torch.arange(d // 2, dtype=t.dtype) / d)
    a, b = t[..., : d // 2], t[..., d // 2 :]
    return torch.cat([a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()], -1)


def mla_attention(m, x):
    """DeepSeek-V2's MLA expanded (eq. 9-19): c_KV = RMSNorm(W_DKV·x); keys [W_UK·c_KV, RoPE(W_KR·x)] (the rotary
    key shared by all heads), values W_UV·c_KV, queries [W_UQ·x, RoPE(W_QR·x)]; causal softmax scaled by
    1/√(d_head + d_rope); W_O on the merged heads. As the LM builds it: no query compression, plain RoPE."""
    c = m.config
    assert c.d_cq == 0 and c.rope_scaling is None
    N, H = x.shape[1], c.heads
    d_head = m.w_uk.weight.shape[0] // H
    c_kv = lin(m.w_dkv, x)
    c_kv = c_kv / torch.sqrt((c_kv**2).mean(-1, keepdim=True) + m.kv_norm.eps) * m.kv_norm.weight  # (B, N, d_c)
    k_c, v = split(lin(m.w_uk, c_kv), H), split(lin(m.w_uv, c_kv), H)  # (B, H, N, d_head) each
    k_r = rope(lin(m.w_kr, x), c.rope_theta)[:, None]  # (B, 1, N, d_rope): one key for every head
    q_c, q_r = split(lin(m.w_uq, x), H), rope(split(lin(m.w_qr, x), H), c.rope_theta)
    scores = (q_c @ k_c.transpose(-1, -2) + q_r @ k_r.transpose(-1, -2)) / math.sqrt(d_head + c.d_rope)  # (B, H, N, N)
    return lin(m.w_o, merge(softmax(scores, causal(N)) @ v))  # (B, N, D)


BY_HAND = {
    MultiHeadAttention: causal_attention,
    LatentAttention: latent_attention,
    LunaCausal: luna_causal_attention,
    MultiHeadLatentAttention: mla_attention,
}


def block_by_hand(block, x):
    """h = x + A(LN₁ x); out = h + W₂·gelu(W₁·LN₂ h + b₁) + b₂ — every step written out, the attention A too."""
    h = x + BY_HAND[type(block.attn)](block.attn, layer_norm(x, block.norm_attn))
    lin1, lin2 = (m for m in block.mlp.modules() if isinstance(m, torch.nn.Linear))
    return h + lin(lin2, gelu(lin(lin1, layer_norm(h, block.norm_mlp))))  # (B, N, D)


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
    assert [m.out_features for m in block.mlp.modules() if isinstance(m, torch.nn.Linear)] == [32, 8]  # mlp_mult 4


@pytest.mark.parametrize("depth", [1, 3])
def test_stacked_blocks_match_the_hand_written_forward(depth):
    """Blocks in a row (depth ≥ 1), full attention all the way by hand."""
    torch.manual_seed(1)
    blocks = [Block(MultiHeadAttention(8, 2), mlp_mult=2).double() for _ in range(depth)]
    for p in (p for block in blocks for p in block.parameters()):  # γ, β off 1, 0
        p.data += 0.1 * torch.randn_like(p)
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
