"""Checkers for notebooks 00 (standard attention) and 01 (latent attention)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..attention import scaled_dot_product
from . import Verdict, run_check

__all__ = [
    "check_attention",
    "check_gather",
    "check_latent_scores",
    "check_max_rank",
    "check_multihead",
    "check_softmax",
]


def _inputs(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _first_mismatch(got: torch.Tensor, expected: torch.Tensor) -> str:
    """Where ``got`` first differs from ``expected`` (row-major), with both values, for a hint."""
    bad = (got - expected).abs() > 1e-8
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"first mismatch at {idx}: yours {got[idx].item():.4g}, expected {expected[idx].item():.4g}"


def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> Verdict:
    """``fn(scores (…, K)) → weights``, softmax over the last axis; must survive large scores."""

    def check(fn):
        for seed in range(3):
            s = _inputs(seed, 4, 6)
            if not torch.allclose(fn(s), torch.softmax(s, -1), atol=1e-8):
                if torch.allclose(fn(s), torch.softmax(s, 0), atol=1e-8):
                    return False, "the weights sum to 1 down the columns: take the softmax over the last axis."
                hint = _first_mismatch(fn(s), torch.softmax(s, -1))
                return False, f"{hint}; compare with torch.softmax(s, dim=-1): exponentiate, divide by the row sum."
        big = fn(torch.tensor([[1000.0, 1001.0]], dtype=torch.float64))
        if not torch.isfinite(big).all():
            return False, "scores of 1000 overflow exp(): subtract each row's maximum first (it cancels out)."
        return True, ""

    return run_check(
        fn,
        check,
        "your softmax matches torch.softmax and survives large scores.",
        "write my_softmax(s) over the last axis, then call check_softmax(my_softmax).",
    )


def check_attention(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(q (Nq, d), k (Nk, d), v (Nk, dv)) → out (Nq, dv)``: scaled dot-product attention."""

    def check(fn):
        q, k, v = _inputs(0, 5, 8), _inputs(1, 7, 8), _inputs(2, 7, 3)
        expected, _ = scaled_dot_product(q, k, v)
        got = fn(q, k, v)
        if tuple(got.shape) != (5, 3):
            return False, f"the output should have shape (Nq, dv) = (5, 3), got {tuple(got.shape)}."
        if torch.allclose(got, torch.softmax(q @ k.T, -1) @ v, atol=1e-8):
            return False, "almost: divide the scores by √d before the softmax."
        if torch.allclose(got, torch.softmax(q @ k.T / 8**0.5, 0) @ v, atol=1e-8):
            return False, "the softmax runs over the keys (last axis of the scores), not over the queries."
        if torch.allclose(got, expected, atol=1e-8):
            return True, ""
        return (
            False,
            f"{_first_mismatch(got, expected)}; compare each step with the cells above: q·kᵀ/√d → softmax → ·v.",
        )

    return run_check(
        fn,
        check,
        "your attention matches lattn.scaled_dot_product.",
        "write attention(q, k, v), then call check_attention(attention).",
    )


def check_latent_scores(answer: Any, n: int = 4096, m: int = 64) -> Verdict:
    """Scores per head of the three stages for N tokens and M latents (N·M + M·N + N·M)."""

    def check(a):
        if int(a) == 3 * n * m:
            return True, ""
        if int(a) == n * n:
            return False, "that is full attention's N². Count each stage: it scores every (token, latent) pair once."
        if int(a) in (n * m, 2 * n * m):
            return False, "count all three stages: write (N×M), gather (M×N) and broadcast (N×M)."
        return False, f"each stage scores N×M = {n * m} pairs; how many stages are there?"

    return run_check(
        answer,
        check,
        f"3·N·M = {3 * n * m} scores, {n / (3 * m):.1f}× fewer than N² = {n * n}.",
        f"set latent_scores to the number of scores per head for N={n}, M={m}.",
    )


def check_gather(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(latent_q (M, d), token_k (N, d), token_v (N, dv)) → (M, dv)``: latents read the tokens."""

    def check(fn):
        q, k, v = _inputs(3, 3, 8), _inputs(4, 10, 8), _inputs(5, 10, 4)
        got = fn(q, k, v)
        if tuple(got.shape) != (3, 4):
            return False, f"one summary per latent: expected shape (M, dv) = (3, 4), got {tuple(got.shape)}."
        if torch.allclose(got, torch.softmax(q @ k.T / 8**0.5, 0) @ v, atol=1e-8):
            return False, "in gather each latent spreads one unit of attention over the tokens: softmax over tokens."
        expected = scaled_dot_product(q, k, v)[0]
        if torch.allclose(got, expected, atol=1e-8):
            return True, ""
        return False, f"{_first_mismatch(got, expected)}; scores q·kᵀ/√d, softmax over tokens, then ·v."

    return run_check(
        fn,
        check,
        "your gather stage matches the package's.",
        "write gather(latent_q, token_k, token_v), then call check_gather(gather).",
    )


def check_max_rank(answer: Any, n: int = 100, m: int = 8) -> Verdict:
    """The largest possible rank of the effective N×N map through M latents: min(N, M)."""

    def check(a):
        if int(a) == min(n, m):
            return True, ""
        if int(a) == n:
            return False, "broadcast @ gather is (N×M)·(M×N): the inner size M caps the rank."
        return False, "rank(AB) ≤ min(rank A, rank B); what are the shapes of broadcast and gather?"

    return run_check(
        answer,
        check,
        f"at most min(N, M) = {min(n, m)}: the bottleneck in one number.",
        f"set max_rank to the largest rank the effective map can have for N={n}, M={m}.",
    )


def _heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, *, transpose: bool = True,
           head_scale: bool = True) -> torch.Tensor:  # fmt: skip
    """Multi-head attention on projected (B, N, D) inputs, and two usual slips: viewing (B, N, D) as (B, H, N, dh)
    without the transpose (which mixes tokens into heads), and scaling by √D instead of √d_head."""
    B, N, D = q.shape
    dh = D // heads

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, N, D) → (B, H, N, dh)
        return t.view(B, N, heads, dh).transpose(1, 2) if transpose else t.view(B, heads, N, dh)

    scale = 1 / math.sqrt(dh if head_scale else D)
    w = torch.softmax(split(q) @ split(k).transpose(-1, -2) * scale, dim=-1)  # (B, H, N, N)
    read = w @ split(v)  # (B, H, N, dh)
    return read.transpose(1, 2).reshape(B, N, D) if transpose else read.reshape(B, N, D)


def check_multihead(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(q, k, v, heads)`` on projected (B, N, D) inputs → (B, N, D): split into H heads of size D/H with
    view + transpose, attention in each head, merge back. Compared with torch's SDPA on the heads."""

    def check(fn):
        q, k, v = (_inputs(10 + i, 2, 5, 12) for i in range(3))
        expected = _heads(q, k, v, 3)  # equal to torch's SDPA on the heads (tests/test_exercises_basics.py)
        got = fn(q, k, v, 3)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (2, 5, 12):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return False, f"merge the heads back: expected shape (B, N, D) = (2, 5, 12), got {shape}."
        if torch.allclose(got, _heads(q, k, v, 3, transpose=False), atol=1e-8):
            return False, "view (B, N, D) as (B, N, H, d_head), THEN transpose to (B, H, N, d_head) (and back)."
        if torch.allclose(got, _heads(q, k, v, 3, head_scale=False), atol=1e-8):
            return False, "each head scores with d_head = D / H features: divide by √d_head, not √D."
        if torch.allclose(got, expected, atol=1e-8):
            return True, ""
        return False, f"{_first_mismatch(got, expected)}; split → softmax(q kᵀ/√d_head) v per head → merge."

    return run_check(fn, check, "your heads match torch's scaled_dot_product_attention, head by head.",
                     "write my_multihead(q, k, v, heads), then call check_multihead(my_multihead).")  # fmt: skip
