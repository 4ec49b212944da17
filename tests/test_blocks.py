"""lattn.blocks: the pre-norm block around every attention kind, exact causality, cached = uncached decoding."""

import math

import pytest
import torch
import torch.nn.functional as F

from lattn import LatentAttention, MultiHeadAttention
from lattn.blocks import (
    KINDS,
    Block,
    CharLM,
    KVCache,
    LMConfig,
    cache_bytes,
    future_leak,
    generate,
    mixer_for,
    sampling_probs,
)
from lattn.family import LunaCausal, Perceiver
from lattn.mla import MLAConfig, MultiHeadLatentAttention

CAUSAL = [k for k in KINDS if k != "latent"]


def tiny(kind: str, seed: int = 0, **changes) -> CharLM:
    sizes = dict(dim=16, heads=2, layers=2, context=12, num_latents=4, d_c=8, d_rope=4) | changes
    return CharLM.build(LMConfig(11, kind=kind, **sizes), seed=seed).double().eval()


def ids_of(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(11, shape, generator=torch.Generator().manual_seed(seed))


def assert_close(a, b, atol, what=""):
    diff = (a.double() - b.double()).abs()
    assert diff.max() <= atol, f"{what}: max diff {diff.max():.3e}, mean {diff.mean():.3e} > {atol}"


# --- the block ------------------------------------------------------------------------------------------------------
def attention_modules():
    return {
        "full": MultiHeadAttention(8, 2),
        "latent": LatentAttention(8, 3, heads=2),
        "luna": LunaCausal(8, 3, heads=2),
        "mla": MultiHeadLatentAttention(MLAConfig(dim=8, heads=2, d_h=4, d_c=4, d_rope=2)),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_block_is_pre_norm_residual_around_the_module(kind):
    """Recompute the block by hand from its parts: h = x + A(LN x), out = h + MLP(LN h), A the module's causal call."""
    attn = attention_modules()[kind].double()
    block = Block(attn).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    a = block.norm_attn(x)
    read = attn(a, causal=True) if kind == "full" else attn(a)
    h = x + read
    w1, b1 = block.mlp[0].weight, block.mlp[0].bias
    w2, b2 = block.mlp[2].weight, block.mlp[2].bias
    hn = F.layer_norm(h, (8,), block.norm_mlp.weight, block.norm_mlp.bias)
    want = h + F.gelu(hn @ w1.T + b1) @ w2.T + b2
    assert_close(block(x), want, 1e-12, kind)
    assert block.mlp[0].out_features == 32  # mlp_mult 4


def test_mixer_flags_and_unknown_module():
    flags = {k: (mixer_for(m).causal, mixer_for(m).cached) for k, m in attention_modules().items()}
    assert flags == {"full": (True, True), "latent": (False, False), "luna": (True, True), "mla": (True, True)}
    with pytest.raises(TypeError, match="Block takes one of MultiHeadAttention"):
        Block(Perceiver(8, 2))
    with pytest.raises(ValueError, match="no decoding state"):
        mixer_for(LatentAttention(8, 2)).new_cache(1, 4)


def test_full_mixer_cache_matches_an_independent_causal_attention():
    """Chunked decoding through the KV cache vs explicit float64 causal attention written here."""
    mha = MultiHeadAttention(8, 2).double()
    mixer = mixer_for(mha)
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    q, k, v = (t.view(2, 7, 2, 4).transpose(1, 2) for t in (mha.to_q(x), mha.to_k(x), mha.to_v(x)))
    scores = q @ k.transpose(-1, -2) / math.sqrt(4)  # (B, H, N, N)
    scores = scores.masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(), float("-inf"))
    want = mha.to_out((scores.softmax(-1) @ v).transpose(1, 2).reshape(2, 7, 8))
    cache = mixer.new_cache(2, 10)
    assert isinstance(cache, KVCache) and cache.k.shape == (2, 2, 10, 4)
    parts = [mixer.step(x[:, :3], cache, 0)[0], mixer.step(x[:, 3:4], cache, 3)[0], mixer.step(x[:, 4:], cache, 4)[0]]
    assert_close(torch.cat(parts, 1), want, 1e-12, "cached chunks")
    assert_close(mixer(x), want, 1e-12, "forward")
    with pytest.raises(ValueError, match="cannot write"):
        mixer.step(x[:, :4], cache, 8)  # 8 + 4 > 10 slots


# --- causality of every causal path ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CAUSAL)
@pytest.mark.parametrize("position", [0, 5, 11])
def test_causal_models_ignore_the_future_exactly(kind, position):
    """Perturb one character: logits before it are bit-for-bit unchanged (float32, the fast paths)."""
    model = CharLM.build(LMConfig(11, kind=kind, dim=16, heads=2, context=12, num_latents=4, d_c=8, d_rope=4))
    ids = ids_of(3, 12)
    leak = future_leak(model, ids, position)
    assert leak.shape == (12,)
    assert torch.all(leak[:position] == 0), f"{kind}: earlier logits moved by {leak[:position].max():.3e}"
    assert leak[position] > 0  # the changed position itself does see its input


@pytest.mark.parametrize("kind", CAUSAL)
def test_causal_through_the_cache_too(kind):
    """The decoding path: step() logits of a prefix do not depend on what comes after it (nothing after is fed)."""
    model = tiny(kind)
    a, b = ids_of(2, 12, seed=1), ids_of(2, 12, seed=1)
    b[:, 6:] = (b[:, 6:] + 3) % 11
    ca, cb = model.new_cache(2), model.new_cache(2)
    la = torch.cat([model.step(a[:, :4], ca, 0), model.step(a[:, 4:], ca, 4)], 1)
    lb = torch.cat([model.step(b[:, :4], cb, 0), model.step(b[:, 4:], cb, 4)], 1)
    assert torch.equal(la[:, :6], lb[:, :6])
    assert_close(la, model(a), 1e-12, "step = forward")


def test_naive_latent_decoder_leaks_the_future():
    model = tiny("latent")
    assert not model.causal and not model.can_cache
    leak = future_leak(model, ids_of(1, 12), 8)
    assert leak[:8].min() > 0, "every earlier position reads the latents, which the changed character wrote into"


# --- generation -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CAUSAL)
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_cached_generation_equals_uncached(kind, temperature):
    """Prompt 5 + 15 new > context 12: covers prefill, one-character steps and the sliding window after."""
    model = tiny(kind)
    prompt = ids_of(2, 5, seed=2)
    cached = generate(model, prompt, 15, temperature=temperature, seed=3, use_cache=True)
    plain = generate(model, prompt, 15, temperature=temperature, seed=3, use_cache=False)
    assert cached.shape == (2, 20)
    assert torch.equal(cached[:, :5], prompt)
    assert torch.equal(cached, plain)


def test_generation_is_an_independent_greedy_loop():
    """Greedy decoding = arg-max of the full forward over the last `context` characters, written out here."""
    model = tiny("luna")
    ids = ids_of(1, 4, seed=4)
    want = ids
    for _ in range(14):
        nxt = model(want[:, -12:])[:, -1].argmax(-1, keepdim=True)
        want = torch.cat([want, nxt], 1)
    assert torch.equal(generate(model, ids, 14), want)
    assert torch.equal(generate(tiny("latent"), ids, 3, use_cache=True)[:, :4], ids)  # no cache: falls back


def test_sampling_follows_the_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    assert torch.equal(sampling_probs(logits, 0.0), torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))
    assert_close(sampling_probs(logits, 2.0), (logits / 2).softmax(-1), 1e-7)
    model = tiny("full")
    draws = torch.stack([generate(model, ids_of(1, 3), 8, temperature=1.5, seed=s)[0] for s in range(6)])
    assert len({tuple(d.tolist()) for d in draws}) > 1, "different seeds should sample different texts"
    same = generate(model, ids_of(1, 3), 8, temperature=1.5, seed=0)
    assert torch.equal(same[0], draws[0])
    with pytest.raises(ValueError, match="temperature"):
        generate(model, ids_of(1, 3), 2, temperature=-1.0)


def test_sampled_frequencies_match_the_probabilities():
    """The inverse-CDF sampler draws each character with its probability (1,000 draws, 5 sigma)."""
    from lattn.blocks import _pick

    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]]).expand(1000, 4)
    counts = torch.bincount(_pick(logits, 1.0, torch.Generator().manual_seed(0)), minlength=4).double()
    p = sampling_probs(logits[0], 1.0)
    assert torch.all((counts / 1000 - p).abs() <= 5 * (p * (1 - p) / 1000).sqrt())


def test_cache_bytes_grow_with_context_except_luna():
    sizes = {}
    for kind in CAUSAL:
        caches = [b.mixer.new_cache(1, 1000) for b in tiny(kind).float().blocks]
        sizes[kind] = cache_bytes(caches)
    assert sizes["full"] == 2 * 2 * 1000 * 16 * 4  # layers · (k + v) · L · D · float32
    assert sizes["mla"] == 2 * 1000 * (8 + 4) * 4  # layers · L · (d_c + d_rope) · float32
    assert sizes["luna"] == 2 * 3 * 2 * 4 * 8 * 4  # layers · 3 tensors · H · l · dh · float32, no L
    with pytest.raises(TypeError, match="decoding state"):
        cache_bytes([object()])


# --- bad input ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: LMConfig(10, kind="window"), ValueError, "kind must be one of"),
        (lambda: LMConfig(10, dim=10, heads=4), ValueError, "divisible"),
        (lambda: LMConfig(10, context=0), ValueError, "context"),
        (lambda: CharLM("full"), TypeError, "LMConfig"),
        (lambda: tiny("full")(torch.randn(1, 4)), TypeError, "int64"),
        (lambda: tiny("full")(ids_of(1, 13)), ValueError, "context of 12"),
        (lambda: tiny("full")(torch.full((1, 3), 11)), ValueError, r"\[0, 11\)"),
        (lambda: tiny("latent").new_cache(1), ValueError, "no decoding state"),
        (lambda: future_leak(tiny("full"), ids_of(1, 5), 5), ValueError, "position"),
        (lambda: generate(tiny("full"), ids_of(5), 3), ValueError, "prompt"),
        (lambda: generate(tiny("full"), ids_of(1, 2), -1), ValueError, "max_new_tokens"),
        (lambda: sampling_probs(torch.zeros(3), -0.5), ValueError, "temperature"),
    ],
)
def test_bad_input_is_explained(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_luna_cache_must_continue_where_it_stopped():
    model = tiny("luna")
    caches = model.new_cache(1)
    model.step(ids_of(1, 3), caches, 0)
    with pytest.raises(ValueError, match="running sums hold 3"):
        model.step(ids_of(1, 1), caches, 5)
