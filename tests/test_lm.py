"""lattn.lm, the character LM end to end: its forward against a hand-written float64 one, exact causality, cached =
uncached generation, the shipped text and its split, training beats the unigram baseline, determinism, checkpoints
(round trip, the layout before FeedForward). What the experiment script ships: test_lm_experiment."""

import math

import pytest
import torch
from conftest import assert_close
from test_blocks import block_by_hand, layer_norm

from lattn.experiments import lm as experiment
from lattn.lm import (
    KINDS,
    CharLM,
    LMConfig,
    evaluate_lm,
    future_leak,
    generate,
    load_checkpoint,
    sampling_probs,
    save_checkpoint,
    train_lm,
)
from lattn.lm_cost import cache_bytes, speed
from lattn.lm_data import TEXT_FILE, CharCorpus, CharVocab, load_text

CAUSAL = [k for k in KINDS if k != "latent"]


@pytest.fixture(scope="module")
def corpus() -> CharCorpus:
    return CharCorpus.load()


def tiny(kind: str, seed: int = 0, **changes) -> CharLM:
    sizes = dict(dim=16, heads=2, layers=2, context=12, num_latents=4, d_c=8, d_rope=4) | changes
    return CharLM.build(LMConfig(11, kind=kind, **sizes), seed=seed).double().eval()


def ids_of(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(11, shape, generator=torch.Generator().manual_seed(seed))


# --- the model ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_model_matches_a_hand_written_forward(kind):
    """Embedding + positions → blocks → LayerNorm → logits, two blocks deep, against test_blocks' hand-written float64
    forward of every step (LayerNorm, the attention of each kind, GELU MLP, residuals) from the model's weights."""
    model = tiny(kind, seed=3)
    torch.manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():  # move the LayerNorms' γ, β off 1, 0 so that mixing them up shows
            p += 0.1 * torch.randn_like(p)
    ids = ids_of(2, 9, seed=5)
    with torch.no_grad():
        h = model.embed.weight[ids] + model.pos.weight[:9]  # (B, N, D)
        for block in model.blocks:
            h = block_by_hand(block, h)
        want = layer_norm(h, model.norm) @ model.head.weight.T + model.head.bias  # (B, N, V)
        assert_close(model(ids), want, 1e-12, kind)


# --- causality of every causal path ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CAUSAL)
@pytest.mark.parametrize("position", [0, 5, 11])
def test_causal_models_ignore_the_future_exactly(kind, position):
    """Perturb one character: logits before it are bit-for-bit unchanged (float32, the fast paths)."""
    model = CharLM.build(LMConfig(11, kind=kind, dim=16, heads=2, context=12, num_latents=4, d_c=8, d_rope=4))
    leak = future_leak(model, ids_of(3, 12), position)
    assert leak.shape == (12,)
    assert torch.all(leak[:position] == 0), f"{kind}: earlier logits moved by {leak[:position].max():.3e}"
    assert leak[position] > 0  # the changed position itself does see its input


@pytest.mark.parametrize("kind", CAUSAL)
def test_causal_through_the_cache_too(kind):
    """The decoding path: logits of a prefix do not depend on what comes after it (nothing after is fed)."""
    model = tiny(kind)
    a, b = ids_of(2, 12, seed=1), ids_of(2, 12, seed=1)
    b[:, 6:] = (b[:, 6:] + 3) % 11
    ca, cb = model.new_cache(2), model.new_cache(2)
    la = torch.cat([model(a[:, :4], cache=ca), model(a[:, 4:], cache=ca, start_pos=4)], 1)
    lb = torch.cat([model(b[:, :4], cache=cb), model(b[:, 4:], cache=cb)], 1)  # start_pos = the cache's length
    assert torch.equal(la[:, :6], lb[:, :6])
    assert_close(la, model(a), 1e-12, "cached = forward")


def test_naive_latent_decoder_leaks_the_future():
    model = tiny("latent")
    assert not model.is_causal and not model.can_cache
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


def test_sampled_frequencies_match_the_probabilities():
    """The inverse-CDF sampler draws each character with its probability (1,000 draws, 5 sigma)."""
    from lattn.lm import _pick

    logits = torch.tensor([[1.0, 0.0, -1.0, 0.5]]).expand(1000, 4)
    counts = torch.bincount(_pick(logits, 1.0, torch.Generator().manual_seed(0)), minlength=4).double()
    p = sampling_probs(logits[0], 1.0)
    assert torch.all((counts / 1000 - p).abs() <= 5 * (p * (1 - p) / 1000).sqrt())


def test_cache_bytes_grow_with_context_except_luna():
    sizes = {kind: cache_bytes([b.new_cache(1, 1000) for b in tiny(kind).float().blocks]) for kind in CAUSAL}
    assert sizes["full"] == 2 * 2 * 1000 * 16 * 4  # layers · (k + v) · L · D · float32
    assert sizes["mla"] == 2 * 1000 * (8 + 4) * 4  # layers · L · (d_c + d_rope) · float32
    assert sizes["luna"] == 2 * 3 * 2 * 4 * 8 * 4  # layers · 3 tensors · H · l · dh · float32, no L
    with pytest.raises(TypeError, match="nbytes"):
        cache_bytes([object()])


@pytest.mark.parametrize(
    "make, exc, match",
    [
        (lambda: LMConfig(10, kind="window"), ValueError, "kind must be one of"),
        (lambda: LMConfig(10, dim=10, heads=4), ValueError, "divisible"),
        (lambda: LMConfig(10, context=0), ValueError, "context"),
        (lambda: LMConfig(10, layers=2.0), TypeError, "layers"),
        (lambda: CharLM("full"), TypeError, "LMConfig"),
        (lambda: tiny("full")(torch.randn(1, 4)), TypeError, "int64"),
        (lambda: tiny("full")(ids_of(1, 13)), ValueError, "context of 12"),
        (lambda: tiny("full")(torch.full((1, 3), 11)), ValueError, r"\[0, 11\)"),
        (lambda: tiny("full")(ids_of(1, 3), start_pos=2), ValueError, "cache"),
        (lambda: tiny("latent").new_cache(1), ValueError, "no decoding state"),
        (lambda: future_leak(tiny("full"), ids_of(1, 5), 5), ValueError, "position"),
        (lambda: generate(tiny("full"), ids_of(5), 3), ValueError, "prompt"),
        (lambda: generate(tiny("full"), ids_of(1, 2), -1), ValueError, "max_new_tokens"),
        (lambda: generate(tiny("full"), ids_of(1, 3), 2, temperature=-1.0), ValueError, "temperature"),
        (lambda: sampling_probs(torch.zeros(3), -0.5), ValueError, "temperature"),
    ],
)
def test_bad_input_is_explained(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("kind", CAUSAL)
def test_a_cache_cannot_skip_positions(kind):
    """The cache knows its length: start_pos beyond it (a gap) is refused with a clear error."""
    model = tiny(kind)
    caches = model.new_cache(1)
    model(ids_of(1, 3), cache=caches)
    assert all(c.length == 3 for c in caches)
    with pytest.raises(ValueError):
        model(ids_of(1, 1), cache=caches, start_pos=5)


# --- the text and its split -----------------------------------------------------------------------------------------
def test_shipped_text_is_small_documented_and_clean():
    raw = TEXT_FILE.read_text(encoding="utf-8")
    assert TEXT_FILE.stat().st_size < 400_000
    head = raw[:2000]
    for fact in ("Lewis Carroll", "1865", "Public domain", "brotli", "sha256"):
        assert fact in head, f"the header should say {fact!r}"
    text = load_text()
    assert text.lstrip().startswith("ALICE'S ADVENTURES IN WONDERLAND") and text.rstrip().endswith("THE END")
    assert "\r" not in text and "#" not in text[:100]


def test_vocab_round_trip_and_errors():
    v = CharVocab.from_text("hello world")
    assert v.chars == " dehlorw" and v.size == 8
    assert v.decode(v.encode("word hello")) == "word hello"
    assert v.encode("he").tolist() == [3, 2]  # " dehlorw": h is token 3, e token 2
    with pytest.raises(ValueError, match=r"\['z'\]"):
        v.encode("zoo")
    with pytest.raises(ValueError, match="distinct"):
        CharVocab("aa")
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        v.decode([8])


def test_split_is_seeded_disjoint_and_complete(corpus):
    text = load_text()
    assert len(corpus.train) + len(corpus.val) == len(text)
    assert 0.07 < len(corpus.val) / len(text) < 0.13
    again = CharCorpus.load()
    assert torch.equal(again.val, corpus.val) and torch.equal(again.train, corpus.train)
    other = CharCorpus.load(seed=1)
    assert not torch.equal(other.val, corpus.val)
    # every validation chunk is a piece of the book that is absent from the training text
    pieces = [text[i : i + corpus.chunk] for i in range(0, len(text), corpus.chunk)]
    val_text = corpus.vocab.decode(corpus.val)
    val_pieces = [p for p in pieces if p in val_text and p not in corpus.vocab.decode(corpus.train)]
    assert sum(map(len, val_pieces)) == len(corpus.val)


def test_batches_are_next_character_pairs(corpus):
    x, y = corpus.batch(4, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    x2, _ = corpus.batch(4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    wx, wy = corpus.windows(64)
    assert wx.shape == (len(corpus.val) // 64 - (len(corpus.val) % 64 == 0), 64)
    assert torch.equal(wx.flatten()[1:], wy.flatten()[:-1])
    with pytest.raises(ValueError, match="split"):
        corpus.batch(2, 8, torch.Generator(), split="test")


def test_unigram_baseline_is_the_entropy_of_character_frequencies(corpus):
    counts = torch.bincount(corpus.train, minlength=corpus.vocab.size).double() + 1
    p = counts / counts.sum()
    want = -sum(math.log(p[i]) for i in corpus.val.tolist()) / len(corpus.val)
    assert corpus.unigram_loss() == pytest.approx(want, rel=1e-9)
    assert 2.9 < corpus.unigram_loss() < 3.4  # English characters: ≈ 4.4 bits


# --- training -------------------------------------------------------------------------------------------------------
def small(kind: str) -> CharLM:
    return CharLM.build(LMConfig(72, kind=kind, dim=32, heads=2, layers=1, context=16, num_latents=4), seed=0)


@pytest.mark.parametrize("kind", ["full", "luna"])
def test_short_training_beats_the_unigram_baseline(corpus, kind):
    model = small(kind)
    before = evaluate_lm(model, corpus)
    history = train_lm(model, corpus, 120, batch_size=16, eval_every=60, progress=False)
    assert history.val_steps == [0, 60, 120] and history.val_loss[0] == pytest.approx(before)
    assert history.val_loss[-1] < corpus.unigram_loss() - 0.2 < before
    assert history.tokens == 120 * 16 * 16 and history.tokens_per_s > 0


def test_hiding_the_future_changes_nothing_for_causal_models(corpus):
    """hide_future scores position t from the window cut after t: equal to teacher forcing iff the model is causal."""
    for kind in ("full", "luna", "mla"):
        model = small(kind)
        plain = evaluate_lm(model, corpus, max_windows=3)
        assert evaluate_lm(model, corpus, hide_future=True, max_windows=3) == pytest.approx(plain, abs=1e-5), kind
    leaky = small("latent")
    assert evaluate_lm(leaky, corpus, hide_future=True, max_windows=3) != pytest.approx(
        evaluate_lm(leaky, corpus, max_windows=3), abs=1e-3
    )
    with pytest.raises(ValueError, match="max_windows"):
        evaluate_lm(leaky, corpus, max_windows=0)


def test_speed_measures_without_touching_the_model(corpus):
    model = small("full")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    s = speed(model, corpus, steps=1, batch_size=2, new_tokens=3, repeats=2, threads=1)
    assert set(s) == {"train", "generate", "generate_uncached", "step_ops", "forward_ops"}
    assert all(len(s[k]) == 2 and min(s[k]) > 0 for k in ("train", "generate", "generate_uncached"))
    assert s["step_ops"] > 0 and s["forward_ops"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.get_num_threads() == threads  # restored


def test_training_is_deterministic(corpus):
    runs = []
    for _ in range(2):
        model = small("mla")
        runs.append((train_lm(model, corpus, 8, batch_size=8, progress=False), model.state_dict()))
    (h1, s1), (h2, s2) = runs
    assert h1 == h2  # losses equal exactly; wall time is not compared
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


# --- checkpoints ------------------------------------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path, corpus):
    model = small("luna")
    experiment.round_to_half(model)
    path = save_checkpoint(model, tmp_path / "m.pt", val_loss=1.5, note="x")
    loaded, info = load_checkpoint(path)
    assert info == {"val_loss": 1.5, "note": "x"} and loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_checkpoint_in_the_layout_before_feedforward_still_loads(tmp_path):
    """Files written when the block's MLP was a bare Sequential name it blocks.N.mlp.0/2; they load unchanged."""
    model = tiny("full").float()
    path = save_checkpoint(model, tmp_path / "new.pt")
    blob = torch.load(path, weights_only=True)
    blob["state"] = {k.replace(".mlp.net.", ".mlp."): v for k, v in blob["state"].items()}
    assert "blocks.1.mlp.2.bias" in blob["state"]
    torch.save(blob, tmp_path / "old.pt")
    a, b = load_checkpoint(tmp_path / "new.pt")[0], load_checkpoint(tmp_path / "old.pt")[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
