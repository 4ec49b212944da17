"""Checkers for notebook 05 (DeepSeek Multi-head Latent Attention)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..attention import merge_heads
from ..mla import PRESETS, MLAConfig, MultiHeadLatentAttention
from . import Verdict, report, run_check

__all__ = ["check_absorbed_output", "check_absorbed_scores", "check_cache_bytes", "check_decode_step", "decode_inputs"]


def _inputs(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _close(a: float, b: float, rel: float = 1e-3) -> bool:
    return abs(a - b) <= rel * abs(b)


def check_cache_bytes(
    answer: Any, preset: str = "DeepSeek-V3", context: int = 131_072, batch: int = 1, bits: int = 16
) -> Verdict:
    """The absorbed MLA cache in bytes of a whole model (all layers) at ``context`` tokens, ``batch`` sequences and
    ``bits`` per element: (d_c + d_rope) · layers · context · batch · bits / 8."""
    c = PRESETS[preset]
    size = {"context": context, "batch": batch, "bits": bits}
    expected = c.kv_cache_bytes("MLA", **size)

    def check(a):
        a = float(a)
        if _close(a, expected):
            return True, ""
        hints = [
            (
                c.kv_cache_bytes("MHA", **size),
                "that is the MHA cache (2·n_h·d_head per token); MLA keeps d_c + d_rope.",
            ),
            (c.kv_cache_bytes("MLA naive", **size), "that is the naive MLA cache; after absorption only c_KV and k_R."),
            (expected / c.layers, f"every one of the {c.layers} layers keeps its own cache: multiply by layers."),
            (expected * c.d_c / (c.d_c + c.d_rope), "the shared rotary key k_R (d_rope values) is cached too."),
            (expected * 8 / bits, f"{bits} bits are {bits / 8:g} bytes per element, not 1."),
            (expected * 32 / bits, f"the cache is stored at {bits} bits per element, not 32."),
            (expected / 1e9, "close! give the answer in bytes, not GB."),
            (expected / 2**30, "close! give the answer in bytes, not GiB."),
        ]
        for value, hint in hints:
            if _close(a, value):
                return False, hint
        return False, "multiply the values per token and layer (d_c + d_rope) by layers, context, batch and bytes."

    return run_check(
        answer,
        check,
        f"{expected:,.0f} bytes = {expected / 1e9:.2f} GB for {preset} at {context:,} tokens.",
        f"set cache_bytes to the MLA cache of {preset} (all layers) at {context:,} tokens, batch {batch}, {bits} bits.",
    )


def check_absorbed_scores(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(q_c (N, d_head), w_uk (d_head, d_c), c_kv (L, d_c)) → scores (N, L)`` for one head, computed from the cached
    latents: (q_c · W_UK) · c_KVᵀ, never building the keys W_UK · c_KV."""

    def check(fn):
        q, w, c = _inputs(0, 3, 4), _inputs(1, 4, 6), _inputs(2, 5, 6)
        keys = c @ w.T  # (L, d_head): what the naive path would cache
        got = fn(q, w, c)
        if tuple(got.shape) != (3, 5):
            return (
                False,
                f"one score per (query, cached token): expected shape (N, L) = (3, 5), got {tuple(got.shape)}.",
            )
        raw = q @ keys.T
        if torch.allclose(got, raw, atol=1e-10):
            return True, ""
        ratio = float(got[0, 0] / raw[0, 0])
        if torch.allclose(got, raw * ratio, atol=1e-10):
            return False, f"your scores are {ratio:.3g} × the raw ones: no scaling here, the module scales later."
        return False, "first q_lat = q_c @ w_uk (N, d_c), then q_lat @ c_kv.T."

    return run_check(
        fn,
        check,
        "(q·W_UK)·cᵀ equals q·(W_UK·c)ᵀ — the keys never have to be rebuilt from the cache.",
        "write absorbed_scores(q_c, w_uk, c_kv), then call check_absorbed_scores(absorbed_scores).",
    )


def check_absorbed_output(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(weights (N, L), c_kv (L, d_c), w_uv (d_head, d_c)) → out (N, d_head)`` for one head: average the latents
    first, then up-project once: (weights · c_KV) · W_UVᵀ."""

    def check(fn):
        p = torch.softmax(_inputs(3, 3, 5), -1)
        c, w = _inputs(4, 5, 6), _inputs(5, 4, 6)
        got = fn(p, c, w)
        if tuple(got.shape) == (3, 6):
            return False, "that is the averaged latent (N, d_c): map it back with @ w_uv.T."
        if tuple(got.shape) != (3, 4):
            return False, f"one value vector per query: expected shape (N, d_head) = (3, 4), got {tuple(got.shape)}."
        return torch.allclose(got, p @ (c @ w.T), atol=1e-10), "average the latents (weights @ c_kv), then @ w_uv.T."

    return run_check(
        fn,
        check,
        "Σ w·(W_UV·c) = W_UV·(Σ w·c): one up-projection per query instead of one per cached token.",
        "write absorbed_output(weights, c_kv, w_uv), then call check_absorbed_output(absorbed_output).",
    )


DECODE_CONFIG = MLAConfig(dim=24, heads=3, d_head=4, d_c=6, d_rope=2, d_cq=8, name="exercise")


def decode_inputs(cached: int = 5, seed: int = 0) -> tuple[dict[str, Any], torch.Tensor, MultiHeadLatentAttention]:
    """A float64 MLA layer (absorbed) that has read ``cached`` tokens, and one new token decoded by the package.

    Returns (inputs, expected, module): ``inputs`` holds what one absorbed decode step needs for the new token at
    position ``cached`` — ``q_c`` (H, d_head), ``q_r`` (H, d_rope) (rotated), ``kv`` (cached + 1, d_c + d_rope) (the
    cache, the new token's own [c_KV; k_R] in its last row), ``w_uk`` and ``w_uv`` (H, d_head, d_c), ``scale`` —
    and ``expected`` is the package's output for that token (dim,)."""
    with torch.random.fork_rng():  # leaves the notebook's random stream alone
        torch.manual_seed(seed)
        m = MultiHeadLatentAttention(DECODE_CONFIG).double()
    c = m.config
    x = torch.randn(1, cached + 1, c.dim, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    cache = m.new_cache(1, cached + 1)
    with torch.no_grad():
        m(x[:, :cached], cache=cache)  # prefill
        expected = m(x[:, cached:], cache=cache)[0, 0]  # one decode step: (dim,)
        q_c, q_r = m.queries(x[:, cached:], torch.tensor([cached]))  # (1, H, 1, d_head), (1, H, 1, d_rope)
    inputs = {
        "q_c": q_c[0, :, 0],
        "q_r": q_r[0, :, 0],
        "kv": cache.buffers["kv"][0, : cached + 1].clone(),
        "w_uk": m.w_uk.weight.detach().view(c.heads, c.d_head, c.d_c).clone(),
        "w_uv": m.w_uv.weight.detach().view(c.heads, c.d_head, c.d_c).clone(),
        "scale": c.softmax_scale,
    }
    return inputs, expected, m


def check_decode_step(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(q_c, q_r, kv, w_uk, w_uv, scale) → (H, d_head)``: one absorbed decode step over a [c_KV; k_R] cache for all
    heads, compared (after W_O) with the package's own decode step on a float64 layer that has read 5 tokens."""
    if fn is None:
        print(
            "✏️  Your turn: write decode_step(q_c, q_r, kv, w_uk, w_uv, scale), then call check_decode_step(decode_step)."
        )
        return Verdict(False)
    inputs, expected, m = decode_inputs()
    c = m.config
    H, d_c = c.heads, c.d_c

    def project(heads_out: torch.Tensor) -> torch.Tensor:  # (H, d_head) → the layer's output (dim,)
        return m.w_o(merge_heads(heads_out[None, :, None])).detach()[0, 0]

    def variant(scale: float, rotary: bool = True, over: int = -1) -> torch.Tensor:  # common slips, to recognise them
        q_lat = torch.einsum("hd,hdc->hc", inputs["q_c"], inputs["w_uk"])
        kv = inputs["kv"] if rotary else inputs["kv"][:, :d_c]
        q = torch.cat([q_lat, inputs["q_r"]], -1) if rotary else q_lat
        w = torch.softmax(q @ kv.T * scale, over)
        return project(torch.einsum("hc,hdc->hd", w @ inputs["kv"][:, :d_c], inputs["w_uv"]))

    try:
        got = fn(**{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()})
        if tuple(got.shape) == (H, d_c):
            return report(False, "", "that is each head's averaged latent (H, d_c): map it back with W_UV.")
        if tuple(got.shape) != (H, c.d_head):
            return report(
                False, "", f"one output per head: expected shape (H, d_head) = {(H, c.d_head)}, got {tuple(got.shape)}."
            )
        out = project(got.to(torch.float64))
        diff = float((out - expected).abs().max())
    except Exception as exc:  # the learner's code failed: explain, don't crash the notebook
        return report(
            False,
            "",
            f"your answer raised {type(exc).__name__}: {exc}. Shapes: w_uk, w_uv (H, d_head, d_c); the value is the "
            "latent part kv[:, :d_c] only.",
        )
    if diff <= 1e-10:
        return report(True, f"max |diff| to the package's decode step = {diff:.1e} (float64, 6 cached tokens).", "")
    hints = [
        (variant(1.0), "scale the scores by `scale` (1/√(d_head + d_rope), eq. 18) before the softmax."),
        (
            variant((d_c + c.d_rope) ** -0.5),
            "the scale is the given `scale`, 1/√(d_head + d_rope), not 1/√(d_c + d_rope).",
        ),
        (variant(1 / inputs["scale"]), "multiply the scores by `scale` (it is already 1/√(d_head + d_rope))."),
        (variant(inputs["scale"], rotary=False), "the score has a rotary part too: q_R · k_R, with k_R = kv[:, d_c:]."),
        (variant(inputs["scale"], over=0), "softmax over the cached tokens (the last axis), not over the heads."),
    ]
    for value, hint in hints:
        if float((out - value).abs().max()) <= 1e-10:
            return report(False, "", hint)
    return report(
        False,
        "",
        f"max |diff| = {diff:.2e}. q_lat = q_c·W_UK per head; scores = [q_lat; q_R]·kvᵀ·scale; softmax over the "
        "cache; average kv[:, :d_c]; then ·W_UVᵀ per head.",
    )
