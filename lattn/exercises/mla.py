"""Checkers for notebook 05 (DeepSeek Multi-head Latent Attention)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..mla import PRESETS
from . import Verdict, run_check

__all__ = ["check_absorbed_output", "check_absorbed_scores", "check_cache_bytes"]


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
            (c.kv_cache_bytes("MHA", **size), "that is the MHA cache (2·n_h·d_h per token); MLA keeps d_c + d_rope."),
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
    """``fn(q_c (N, d_h), w_uk (d_h, d_c), c_kv (L, d_c)) → scores (N, L)`` for one head, computed from the cached
    latents: (q_c · W_UK) · c_KVᵀ, never building the keys W_UK · c_KV."""

    def check(fn):
        q, w, c = _inputs(0, 3, 4), _inputs(1, 4, 6), _inputs(2, 5, 6)
        keys = c @ w.T  # (L, d_h): what the naive path would cache
        got = fn(q, w, c)
        if tuple(got.shape) != (3, 5):
            return (
                False,
                f"one score per (query, cached token): expected shape (N, L) = (3, 5), got {tuple(got.shape)}.",
            )
        if torch.allclose(got, (q @ keys.T) / 2.0, atol=1e-10):
            return False, "no scaling here: the module divides by √(d_h + d_rope) later; return the raw scores."
        return torch.allclose(got, q @ keys.T, atol=1e-10), "first q_lat = q_c @ w_uk (N, d_c), then q_lat @ c_kv.T."

    return run_check(
        fn,
        check,
        "(q·W_UK)·cᵀ equals q·(W_UK·c)ᵀ — the keys never have to be rebuilt from the cache.",
        "write absorbed_scores(q_c, w_uk, c_kv), then call check_absorbed_scores(absorbed_scores).",
    )


def check_absorbed_output(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(weights (N, L), c_kv (L, d_c), w_uv (d_h, d_c)) → out (N, d_h)`` for one head: average the latents
    first, then up-project once: (weights · c_KV) · W_UVᵀ."""

    def check(fn):
        p = torch.softmax(_inputs(3, 3, 5), -1)
        c, w = _inputs(4, 5, 6), _inputs(5, 4, 6)
        got = fn(p, c, w)
        if tuple(got.shape) != (3, 4):
            return False, f"one value vector per query: expected shape (N, d_h) = (3, 4), got {tuple(got.shape)}."
        return torch.allclose(got, p @ (c @ w.T), atol=1e-10), "average the latents (weights @ c_kv), then @ w_uv.T."

    return run_check(
        fn,
        check,
        "Σ w·(W_UV·c) = W_UV·(Σ w·c): one up-projection per query instead of one per cached token.",
        "write absorbed_output(weights, c_kv, w_uv), then call check_absorbed_output(absorbed_output).",
    )
