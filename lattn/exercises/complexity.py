"""Checkers for notebook 02 (the complexity lab): a FLOP count checked against torch's counter, a crossover."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..complexity import Shape, count_flops, crossover_n, latent_stage_cost, without_projections
from ..latent import LatentAttention
from . import Verdict, run_check

__all__ = ["check_crossover", "check_gather_flops"]

SHAPES = [(3, 5, 50, 7, 8), (1, 4, 33, 7, 16), (2, 3, 20, 4, 4)]  # (B, H, N, M, d_head): B, H, 2, 4 tell apart


def counted_gather_flops(batch: int, heads: int, n: int, m: int, d_head: int) -> int:
    """What torch's FLOP counter counts for the attention core of a real gather stage of these sizes."""
    torch.manual_seed(0)
    core = without_projections(LatentAttention(heads * d_head, m, heads, stages=("gather",)))
    x = torch.randn(batch, n, heads * d_head)
    return count_flops(lambda: core(x))


def check_gather_flops(fn: Callable[[int, int, int, int, int], Any] | None) -> Verdict:
    """``fn(B, H, N, M, d_head)`` → FLOPs of the gather stage's attention core (scores + weighted sum), compared
    with torch's FLOP counter running the real module on three shapes."""

    def check(fn):
        for shape in SHAPES:
            B, H, N, M, d_head = shape
            counted = counted_gather_flops(*shape)
            got = int(fn(*shape))
            if got == counted:
                continue
            where = f"for (B, H, N, M, d_head) = {shape} the counter says {counted:,}, you said {got:,}"
            shape = Shape(batch=B, seq_len=N, num_latents=M, heads=H, d_head=d_head)
            projections = latent_stage_cost("gather", shape).projection_flops
            hints = {
                counted // 2: "off by a factor 2: the counter counts 2 FLOPs per multiply-add, and there are two "
                "matmuls (the M×N scores, then weights times values) — did you count both, twice each?",
                counted // 4: "off by a factor 4: count 2 FLOPs per multiply-add, and both matmuls (scores and the "
                "weighted sum of values).",
                counted + projections: "that includes the q, k, v and output projections; count the attention "
                "core only (here they are removed).",
                counted * N // M: "gather scores M latents against N tokens: an M×N map, not N×N.",
            }
            if H > 1:
                hints.setdefault(counted // H, "every head does the same work on its own d_head slice: multiply by H.")
            if B > 1:
                hints.setdefault(counted // B, "each of the B sequences is attended separately: multiply by B.")
            return False, f"{where}. {hints.get(got, 'write each matmul as (a×b)·(b×c): a·b·c multiply-adds.')}"
        return True, ""

    return run_check(
        fn,
        check,
        "your formula equals torch's FLOP counter on three real gather stages: 4·B·H·N·M·d_head.",
        "write gather_flops(B, H, N, M, d_head), then call check_gather_flops(gather_flops).",
    )


def check_crossover(answer: Any, m: int = 32, heads: int = 4, d_head: int = 64) -> Verdict:
    """The smallest N at which a whole LatentAttention module (projections included) needs fewer FLOPs than a
    MultiHeadAttention of the same width."""
    shape = Shape(num_latents=m, heads=heads, d_head=d_head)
    expected, cores = crossover_n(shape, whole_module=True), crossover_n(shape)

    def check(a):
        a = int(a)
        if a == expected:
            return True, ""
        if a in (cores, cores - 1):
            return False, (
                f"{a} is where the attention cores cross (N > 3M). The whole modules also pay for their Linear "
                "layers: full attention 8·N·D², latent attention 12·N·D² + 12·M·D²."
            )
        if abs(a - expected) <= 2:
            return False, "very close: find the smallest N at which latent attention is strictly cheaper."
        return False, (
            "write both whole-module FLOP counts as functions of N (cores + projections), then find where they "
            "cross: solve the quadratic, or loop over N."
        )

    D = heads * d_head
    return run_check(
        answer,
        check,
        f"N = {expected:,}: below it the extra latent projections cost more than the N×N scores save "
        f"(cores alone cross at {cores}).",
        f"set crossover to the smallest N where latent attention is cheaper, whole modules, M={m}, D={D} "
        f"({heads} heads of {d_head}).",
    )
