"""Checkers for notebook 06 (latent attention inside a Transformer block; a tiny character language model)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..attention import MultiHeadAttention
from ..blocks import Block
from ..family import LunaCausal
from ..lm import CharLM, LMConfig, future_leak, sampling_probs
from . import Verdict, run_check

__all__ = ["check_block_forward", "check_cache_values", "check_leak_test", "check_sampling_probs"]


def _tiny(kind: str, seed: int) -> CharLM:
    """A small random float64 model of ``kind`` over 10 characters (context 12)."""
    config = LMConfig(10, kind=kind, dim=16, heads=2, layers=1, context=12, num_latents=12)
    return CharLM.build(config, seed=seed).double().eval()


def check_block_forward(fn: Callable[..., Any] | None) -> Verdict:
    """``fn(block, x (B, N, D)) → (B, N, D)``: the pre-norm block by hand from ``block.norm_attn``, ``block.attn``
    (called with ``causal=True``), ``block.norm_mlp`` and ``block.mlp``; checked against :class:`~lattn.blocks.Block`
    on a full-attention and a causal-Luna block in float64."""

    def check(fn):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 7, 16, generator=g, dtype=torch.float64)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            blocks = [Block(MultiHeadAttention(16, 2)).double(), Block(LunaCausal(16, 4, heads=2)).double()]
        for block in blocks:
            name = type(block.attn).__name__
            with torch.no_grad():
                got = torch.as_tensor(fn(block, x), dtype=torch.float64)
                want = block(x)
                if tuple(got.shape) != tuple(want.shape):
                    return False, f"return tokens of the input's shape {tuple(want.shape)}, got {tuple(got.shape)}."
                if torch.allclose(got, want, atol=1e-10):
                    continue
                a, n, mlp = block.attn, (block.norm_attn, block.norm_mlp), block.mlp
                h_open = x + a(n[0](x))  # causal=False: the attention reads the future
                post_h = n[0](x + a(x, causal=True))
                guesses = {
                    "call the attention with causal=True: a decoder block must not read later positions.": (
                        h_open + mlp(n[1](h_open))
                    ),
                    "that is the post-norm block (LayerNorm after the addition): pre-norm normalises the input of"
                    " each step and adds the step's output to the un-normalised stream.": n[1](post_h + mlp(post_h)),
                    "add the attention's input x back: h = x + attn(norm_attn(x), causal=True).": (
                        a(n[0](x), causal=True) + mlp(n[1](a(n[0](x), causal=True)))
                    ),
                }
                for hint, guess in guesses.items():
                    if torch.allclose(got, guess, atol=1e-10):
                        return False, hint
                diff = (got - want).abs().max().item()
                return False, (
                    f"max |diff| = {diff:.3g} on a {name} block. Two residual steps: h = x + attn(norm_attn(x),"
                    " causal=True), then out = h + mlp(norm_mlp(h))."
                )
        return True, ""

    return run_check(
        fn,
        check,
        "your block matches lattn.blocks.Block (full attention and causal Luna inside, float64).",
        "write block_forward(block, x), then call check_block_forward(block_forward).",
    )


def check_leak_test(fn: Callable[..., Any] | None) -> Verdict:
    """``fn(model, ids (1, N), position) → float``: the largest |Δlogit| at positions *before* ``position`` when
    the character at ``position`` changes. 0 for a causal decoder, > 0 for the naive latent one."""

    def check(fn):
        ids = torch.randint(10, (1, 12), generator=torch.Generator().manual_seed(0))
        causal, leaky = _tiny("full", 1), _tiny("latent", 2)
        for position in (3, 8):
            got_causal = float(fn(causal, ids, position))
            if got_causal != 0.0:
                return False, (
                    f"a causal model gave {got_causal:.3g} at position {position}: look only at positions before the "
                    "change (logits[:, :position]) — the changed character and later ones may of course move."
                )
            if float(fn(leaky, ids, position)) <= 0.0:
                return False, "the naive latent model should show a change before the position: did you change ids?"
        if float(fn(leaky, ids, 0)) != 0.0:
            return False, "position 0 has no earlier positions: the answer there is 0."
        want = future_leak(leaky, ids, 8)[:8].max().item()
        got = float(fn(leaky, ids, 8))
        if not 0.01 * want < got < 100 * want:
            return False, f"expected a change of the order of {want:.3g}, got {got:.3g}: compare the raw logits."
        return True, ""

    return run_check(
        fn,
        check,
        "your test finds the leak of the naive latent decoder and exactly 0 for a causal one.",
        "write leak_test(model, ids, position), then call check_leak_test(leak_test).",
    )


def check_sampling_probs(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(logits (B, V), temperature) → probabilities (B, V)``; temperature 0 = greedy (one-hot arg-max)."""

    def check(fn):
        logits = torch.randn(3, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
        for t in (1.0, 0.5, 2.0):
            got = torch.as_tensor(fn(logits, t), dtype=torch.float64)
            if tuple(got.shape) != (3, 7):
                return False, f"return one distribution per row: shape (3, 7), got {tuple(got.shape)}."
            want = sampling_probs(logits, t)
            if torch.allclose(got, want, atol=1e-6):
                continue
            if t != 1.0 and torch.allclose(got, (logits * t).softmax(-1), atol=1e-6):
                return False, "divide the logits by the temperature (a high temperature must flatten the distribution)."
            if torch.allclose(got, logits.softmax(-1), atol=1e-6):
                return False, "the temperature has no effect: use softmax(logits / temperature)."
            return False, f"at temperature {t} the rows should be softmax(logits / {t}) over the last axis."
        greedy = torch.as_tensor(fn(logits, 0.0), dtype=torch.float64)
        if not torch.isfinite(greedy).all():
            return False, "temperature 0 must not divide by zero: return a one-hot vector at the arg-max instead."
        return torch.equal(greedy, sampling_probs(logits, 0.0)), "temperature 0: all the probability on the arg-max."

    return run_check(
        fn,
        check,
        "your probabilities match lattn.lm.sampling_probs, greedy decoding included.",
        "write probs(logits, temperature), then call check_sampling_probs(probs).",
    )


def check_cache_values(answer: Any, dim: int = 48, d_c: int = 16, d_rope: int = 4) -> Verdict:
    """(full, mla): numbers one layer caches per generated token for full attention of width ``dim`` and for MLA
    with ``d_c`` and ``d_rope`` (absorbed): (2·dim, d_c + d_rope)."""

    def check(a):
        full, mla = (int(v) for v in a)
        if full == dim:
            return False, "full attention caches a key AND a value per token: two vectors of width D."
        if full != 2 * dim:
            return False, f"full attention: keys (D = {dim}) plus values (D = {dim}) per token."
        if mla == 2 * d_c or mla == d_c:
            return False, "MLA caches the latent c_KV once (it serves as key and value) plus the shared rotary key k_R."
        return mla == d_c + d_rope, f"MLA: the latent c_KV (d_c = {d_c}) and the rotary key k_R (d_rope = {d_rope})."

    return run_check(
        answer,
        check,
        f"full attention adds {2 * dim} numbers per token and layer, MLA {d_c + d_rope}, causal Luna none (fixed size).",
        "set cache_values = (full, mla), the numbers one layer caches per token.",
    )
