"""Every family module against an independent forward written here in plain float64 tensor code.

Nothing from lattn computes these references: Linear layers, LayerNorm, GELU, softmax, multi-head attention, the GRU
are written out below, residuals, feed-forwards and norms included, depth ≥ 1, with padding masks where the module
takes them. The modules run in float64 (``module.double()``), so fast and teaching paths must agree to ~1e-10.
Also: every module's ``forward`` follows the calling convention (keyword-only after x) and has its class attributes.
"""

import inspect
import math

import pytest
import torch
from conftest import assert_close

from lattn.family import (
    ISAB,
    MAB,
    PMA,
    Linformer,
    Luna,
    LunaCausal,
    Perceiver,
    PerceiverAR,
    PerceiverIO,
    SlotAttention,
)
from lattn.latent import STAGES

ATOL = 1e-10
B, N, D = 2, 7, 8
MASK = torch.tensor([[True, False, True, True, False, True, True], [True] * 7])  # (B, N): row 0 padded twice


# --- the pieces, by hand ---------------------------------------------------------------------------------------------


def lin(layer, t):
    """y = t·Wᵀ + b (float64)."""
    out = t @ layer.weight.double().T
    return out if layer.bias is None else out + layer.bias.double()


def layer_norm(norm, t):
    mu = t.mean(-1, keepdim=True)
    var = ((t - mu) ** 2).mean(-1, keepdim=True)
    return (t - mu) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


def gelu(t):
    return 0.5 * t * (1 + torch.erf(t / math.sqrt(2)))


def feed_forward(ff, t):
    return lin(ff.net[2], gelu(lin(ff.net[0], t)))


def softmax(scores, allowed=None):
    """Softmax over the last axis; entries where ``allowed`` is False get 0, a row with none allowed is all 0."""
    if allowed is not None:
        scores = scores.masked_fill(~allowed, -1e300)
    e = (scores - scores.amax(-1, keepdim=True)).exp()
    w = e / e.sum(-1, keepdim=True)
    return w if allowed is None else w * allowed.any(-1, keepdim=True)


def attention(layer, queries, context, allowed=None):
    """Multi-head attention with the layer's to_q/to_k/to_v/to_out: queries (B, Nq, D) read context (B, Nk, D).

    ``allowed`` broadcasts to (B, H, Nq, Nk). Returns (B, Nq, D).
    """
    b, nq, d = queries.shape
    h = layer.heads
    d_head = d // h
    q = lin(layer.to_q, queries).view(b, nq, h, d_head)
    k = lin(layer.to_k, context).view(b, -1, h, d_head)
    v = lin(layer.to_v, context).view(b, -1, h, d_head)
    w = softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d_head), allowed)  # (B, H, Nq, Nk)
    return lin(layer.to_out, torch.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, nq, d))


def keys(mask):
    """(B, Nk) padding mask → (B, 1, 1, Nk), or None."""
    return None if mask is None else mask[:, None, None, :]


def zero_padded(t, mask):
    return t if mask is None else t * mask[..., None]


def latent_block(block, z, allowed=None, mask=None):
    """Pre-norm self-attention block: z += MHA(LN z) (padded rows read 0); z += MLP(LN z)."""
    zn = layer_norm(block.norm_attn, z)
    z = z + zero_padded(attention(block.attn, zn, zn, allowed), mask)
    return z + feed_forward(block.ff, layer_norm(block.norm_ff, z))


def mab(block, x, y, mask=None):
    """Set Transformer MAB, Eq. (6–7) of Lee et al. 2019: H = LN(X + MHA(X, Y)); LN(H + rFF(H)) (LayerNorms optional)."""
    norm = (lambda n, t: layer_norm(n, t)) if isinstance(block.norm_attn, torch.nn.LayerNorm) else (lambda n, t: t)
    h = norm(block.norm_attn, x + attention(block.attn, x, y, keys(mask)))
    return h if block.ff is None else norm(block.norm_ff, h + feed_forward(block.ff, h))


# --- the references, one per module --------------------------------------------------------------------------------


def perceiver_reference(m, x, mask=None):
    """z = latents; per repeat: z += CrossAttn(LN z → LN x); z += MLP(LN z); latent blocks. Repeats ≥ 2 share weights."""
    xn = layer_norm(m.norm_tokens, x)
    z = m.latents.double().expand(x.shape[0], -1, -1)  # (B, M, D)
    for r in range(m.repeats):
        b = m.blocks[min(r, 1)]
        zq = layer_norm(b.norm_latents, z) if isinstance(b.norm_latents, torch.nn.LayerNorm) else z
        z = z + attention(b.gather, zq, xn, keys(mask))  # the latents gather (a residual)
        z = z + feed_forward(b.ff, layer_norm(b.norm_ff, z))
        for block in b.layers:
            z = latent_block(block, z)
    return z


def perceiver_io_reference(m, x, mask=None, queries=None):
    z = perceiver_reference(m.encoder, x, mask)
    tokens_as_queries = queries is None and m.output_queries is None
    if queries is None:
        queries = x if tokens_as_queries else m.output_queries.double().expand(x.shape[0], -1, -1)
    out = queries + attention(m.decode, layer_norm(m.norm_queries, queries), layer_norm(m.norm_latents, z))
    out = out + feed_forward(m.ff, layer_norm(m.norm_ff, out))
    return zero_padded(out, mask) if tokens_as_queries else out


def perceiver_ar_reference(m, x, mask=None):
    n = x.shape[1]
    M = min(n, m.num_latents)
    b = m.block  # the gather, its feed-forward and the latent blocks
    z = x[:, n - M :]
    block_causal = torch.ones(M, n, dtype=torch.bool).tril(n - M)  # latent i at position n − M + i
    allowed = block_causal if mask is None else block_causal & mask[:, None, None, :]
    z = z + attention(b.gather, layer_norm(b.norm_latents, z), layer_norm(m.norm_tokens, x), allowed)
    z = z + feed_forward(b.ff, layer_norm(b.norm_ff, z))
    lmask = None if mask is None else mask[:, n - M :]
    causal = torch.ones(M, M, dtype=torch.bool).tril()
    for block in b.layers:
        z = latent_block(block, z, causal if lmask is None else causal & lmask[:, None, None, :], lmask)
    return zero_padded(z, lmask)


def isab_reference(m, x, mask=None):
    inducing = m.inducing.double().expand(x.shape[0], -1, -1)
    h = mab(m.mab_gather, inducing, x, mask)  # H = MAB(I, X)
    return zero_padded(mab(m.mab_broadcast, x, h), mask)  # MAB(X, H)


def pma_reference(m, x, mask=None):
    seeds = m.seeds.double().expand(x.shape[0], -1, -1)
    return mab(m.mab, seeds, feed_forward(m.rff, x), mask)  # MAB(S, rFF(X))


def luna_reference(m, x, mask=None):
    packed = m.packed.double().expand(x.shape[0], -1, -1)
    context = attention(m.pack, packed, x, keys(mask))  # pack: P reads the tokens
    out = zero_padded(attention(m.unpack, x, context), mask)  # unpack: the tokens read the packed context
    return out, layer_norm(m.norm_packed, packed + context)


def luna_causal_reference(m, x, mask=None, packed=None):
    """From the definition, one position at a time, packing each prefix of *real* tokens from scratch."""
    b_, n, d = x.shape
    h, d_head = m.heads, d // m.heads
    packed = m.packed.double() if packed is None else packed
    pq = lin(m.to_pq, packed).expand(b_, -1, -1)  # (B, l, D)
    pk, q, k, v = (lin(f, x) for f in (m.to_pk, m.to_q, m.to_k, m.to_v))  # (B, N, D)
    out = torch.zeros(b_, n, d, dtype=torch.float64)
    for b in range(b_):
        for t in range(n):
            if mask is not None and not mask[b, t]:
                continue  # padded positions output zeros
            js = [j for j in range(t + 1) if mask is None or mask[b, j]]  # the real tokens ≤ t
            heads = []
            for i in range(h):
                sl = slice(i * d_head, (i + 1) * d_head)
                score = pk[b, js, sl] @ pq[b, :, sl].T / math.sqrt(d_head)  # (t', l)
                if m.packing == "elu":
                    phi = torch.nn.functional.elu(score) + 1
                else:  # softplus with β = ln 2: log2(1 + 2^score)
                    phi = torch.log2(1 + torch.exp2(score))
                packed_k = phi.T @ k[b, js, sl] / len(js)  # (l, d_head): mean over the prefix
                packed_v = phi.T @ v[b, js, sl] / len(js)
                a = softmax(q[b, t, sl] @ packed_k.T / math.sqrt(d_head))  # (l,): over the packed slots
                heads.append(a @ packed_v)
            out[b, t] = lin(m.to_out, torch.cat(heads))
    return out


def gru(cell, inp, hidden):
    """torch.nn.GRUCell from its equations."""
    d = hidden.shape[-1]
    gi = inp @ cell.weight_ih.double().T + cell.bias_ih.double()
    gh = hidden @ cell.weight_hh.double().T + cell.bias_hh.double()
    r = torch.sigmoid(gi[..., :d] + gh[..., :d])
    z = torch.sigmoid(gi[..., d : 2 * d] + gh[..., d : 2 * d])
    n = torch.tanh(gi[..., 2 * d :] + r * gh[..., 2 * d :])
    return (1 - z) * n + z * hidden


def slot_attention_reference(m, x, slots, mask=None):
    """Algorithm 1 of the paper: softmax over slots, + eps, weighted mean over (real) inputs, GRU, residual MLP."""
    x = layer_norm(m.norm_inputs, x)
    k, v = lin(m.to_k, x), lin(m.to_v, x)
    for _ in range(m.iters):
        q = lin(m.to_q, layer_norm(m.norm_slots, slots))
        attn = softmax(k @ q.transpose(1, 2) / math.sqrt(m.dim)) + m.eps  # (B, N, M): over slots
        attn = zero_padded(attn, mask)
        upd = (attn / attn.sum(1, keepdim=True)).transpose(1, 2) @ v  # (B, M, D): weighted mean over inputs
        slots = gru(m.gru, upd, slots)
        slots = slots + lin(m.mlp[2], torch.relu(lin(m.mlp[0], layer_norm(m.norm_mlp, slots))))
    return slots


def linformer_reference(m, x, mask=None):
    """K' = E·K, V' = F·V along the sequence axis, then attention of every query over the k projected keys."""
    b, n, d = x.shape
    h, d_head = m.heads, d // m.heads
    E = m.proj_k.double()
    F = E if m.proj_v is None else m.proj_v.double()
    q = lin(m.to_q, x).view(b, n, h, d_head)
    k = zero_padded(lin(m.to_k, x), mask).view(b, n, h, d_head)  # padded tokens add nothing to K', V'
    v = zero_padded(lin(m.to_v, x), mask).view(b, n, h, d_head)
    kp, vp = torch.einsum("sn,bnhd->bshd", E, k), torch.einsum("sn,bnhd->bshd", F, v)  # (B, k, H, d_head)
    w = softmax(torch.einsum("bnhd,bshd->bhns", q, kp) / math.sqrt(d_head))  # (B, H, N, k)
    out = lin(m.to_out, torch.einsum("bhns,bshd->bnhd", w, vp).reshape(b, n, d))
    return zero_padded(out, mask)


# --- the comparisons ------------------------------------------------------------------------------------------------


def _x(seed=0, n=N):
    return torch.randn(B, n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def check(module, reference, x, **kwargs):
    """Module (fast and teaching path) vs the reference, ≤ ATOL."""
    want = reference(x, **kwargs)
    with torch.no_grad():
        assert_close(module(x, **kwargs), want, ATOL, f"{type(module).__name__} fast path")
        assert_close(module(x, return_maps=True, **kwargs)[0], want, ATOL, f"{type(module).__name__} teaching path")


MASKS = [None, MASK]
IDS = ["no mask", "padded"]


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize("depth", [1, 2])
def test_perceiver(mask, depth):
    m = Perceiver(D, 3, heads=2, cross_heads=2, depth=depth).double()
    check(m, lambda x, mask: perceiver_reference(m, x, mask), _x(), mask=mask)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize(("repeats", "query_norm"), [(3, True), (1, False)])
def test_perceiver_repeats_and_query_norm(mask, repeats, query_norm):
    m = Perceiver(D, 3, heads=2, cross_heads=2, depth=1, repeats=repeats, query_norm=query_norm).double()
    check(m, lambda x, mask: perceiver_reference(m, x, mask), _x(), mask=mask)
    assert len(m.blocks) == min(repeats, 2)  # repeats 2 … share one block's weights


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize("num_outputs", [None, 3])
def test_perceiver_io(mask, num_outputs):
    m = PerceiverIO(D, 3, num_outputs=num_outputs, heads=2, cross_heads=2, depth=1).double()
    check(m, lambda x, mask: perceiver_io_reference(m, x, mask), _x(), mask=mask)
    queries = _x(seed=1, n=4)
    check(m, lambda x, mask, queries: perceiver_io_reference(m, x, mask, queries), _x(), mask=mask, queries=queries)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize("num_latents", [4, 9], ids=["N>M", "N<M"])
def test_perceiver_ar(mask, num_latents):
    m = PerceiverAR(D, num_latents, heads=2, cross_heads=2, depth=2).double()
    check(m, lambda x, mask: perceiver_ar_reference(m, x, mask), _x(), mask=mask)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize("layer_norm", [False, True])
def test_mab(mask, layer_norm):
    m = MAB(D, 2, layer_norm=layer_norm).double()
    y = _x(seed=1)
    check(m, lambda x, mask, context: mab(m, x, context, mask), _x(n=3), mask=mask, context=y)
    check(m, lambda x: mab(m, x, x), _x(n=3))  # SAB: MAB(X, X)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize("layer_norm", [False, True])
def test_isab(mask, layer_norm):
    m = ISAB(D, 3, heads=2, layer_norm=layer_norm).double()
    check(m, lambda x, mask: isab_reference(m, x, mask), _x(), mask=mask)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_pma(mask):
    m = PMA(D, 2, heads=2, layer_norm=True).double()
    check(m, lambda x, mask: pma_reference(m, x, mask), _x(), mask=mask)


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_luna(mask):
    m = Luna(D, 3, heads=2).double()
    x = _x()
    want, packed_next = luna_reference(m, x, mask)
    check(m, lambda x, mask: luna_reference(m, x, mask)[0], x, mask=mask)
    with torch.no_grad():
        out, got_packed = m(x, mask=mask, return_packed=True)
    assert_close(got_packed, packed_next, ATOL, "packed sequence for the next layer")


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize(("heads", "packing"), [(1, "elu"), (2, "elu"), (2, "softplus")])
def test_luna_causal(mask, heads, packing):
    m = LunaCausal(D, 3, heads=heads, packing=packing).double()
    check(m, lambda x, mask: luna_causal_reference(m, x, mask), _x(), mask=mask)
    packed = _x(seed=2, n=3)[:1].expand(B, -1, -1)
    check(m, lambda x, packed: luna_causal_reference(m, x, packed=packed[0]), _x(), packed=packed)
    state, x = m.new_cache(B, N), _x()
    with torch.no_grad():
        steps = torch.cat([m(x[:, t : t + 1], cache=state) for t in range(N)], 1)
    assert_close(steps, luna_causal_reference(m, x), ATOL, "decoding one token at a time")


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
def test_slot_attention(mask):
    m = SlotAttention(D, 3, iters=3).double()
    slots = _x(seed=3, n=3)
    check(m, lambda x, mask, slots: slot_attention_reference(m, x, slots, mask), _x(), mask=mask, slots=slots)


def test_slot_attention_seed_draws_the_same_initial_slots():
    m = SlotAttention(D, 3, seed=5).double()
    slots = m.initial_slots(B, torch.Generator().manual_seed(5)).double()
    check(m, lambda x: slot_attention_reference(m, x, slots), _x())


@pytest.mark.parametrize("mask", MASKS, ids=IDS)
@pytest.mark.parametrize("share_kv", [False, True])
@pytest.mark.parametrize("k", [3, N], ids=["k<N", "k=N"])  # k = N: E applied along the wrong axis still has the shape
def test_linformer(mask, share_kv, k):
    m = Linformer(D, N, k, heads=2, share_kv=share_kv).double()
    x = _x()
    check(m, lambda x, mask: linformer_reference(m, x, mask), x, mask=mask)
    # the effective token→token map (B, H, N, N) applied to the values gives the heads' outputs exactly
    with torch.no_grad():
        _, maps = m(x, mask=mask, return_maps=True)
    eff = maps.effective()
    assert eff.shape == (B, 2, N, N)
    v_heads = zero_padded(lin(m.to_v, x), mask).view(B, N, 2, D // 2).transpose(1, 2)  # (B, H, N, d_head)
    mixed = (eff @ v_heads).transpose(1, 2).reshape(B, N, D)
    assert_close(zero_padded(lin(m.to_out, mixed), mask), linformer_reference(m, x, mask), ATOL, "effective map")
    assert torch.linalg.matrix_rank(eff[1, 0]).item() <= k  # rank ≤ k


# --- the calling convention ------------------------------------------------------------------------------------------

MODULES = {
    "Perceiver": lambda: Perceiver(D, 3),
    "PerceiverIO": lambda: PerceiverIO(D, 3),
    "PerceiverAR": lambda: PerceiverAR(D, 3),
    "MAB": lambda: MAB(D),
    "ISAB": lambda: ISAB(D, 3),
    "PMA": lambda: PMA(D, 3),
    "Luna": lambda: Luna(D, 3),
    "LunaCausal": lambda: LunaCausal(D, 3),
    "SlotAttention": lambda: SlotAttention(D, 3),
    "Linformer": lambda: Linformer(D, N, 3),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_forward_is_keyword_only_after_x_and_attributes_say_what_it_is(name):
    module = MODULES[name]()
    params = list(inspect.signature(type(module).forward).parameters.values())
    assert [p.name for p in params[:2]] == ["self", "x"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:]), f"{name}: keyword-only after x"
    defaults = {p.name: p.default for p in params[2:]}
    assert defaults["mask"] is None and defaults["causal"] is False and defaults["return_maps"] is False
    assert isinstance(module.is_causal, bool) and isinstance(module.returns_tokens, bool)
    assert isinstance(module.causal_note, str) and module.causal_note
    assert isinstance(module.stages, tuple) and set(module.stages) <= set(STAGES)
    x = torch.randn(B, N, D)
    out = module(x, causal=module.is_causal)  # the one call the comparison table makes
    assert isinstance(out, torch.Tensor) and (out.shape == x.shape) == module.returns_tokens
    out, maps = module(x, causal=module.is_causal, return_maps=True)
    assert isinstance(out, torch.Tensor)
    if not module.is_causal:
        with pytest.raises(ValueError, match=f"{name} cannot be causal"):
            module(x, causal=True)
