"""Checkers for notebooks 00 (standard attention) and 01 (latent attention)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..attention import scaled_dot_product
from . import Verdict, run_check, usual_slip

__all__ = [
    "check_attention",
    "check_gather",
    "check_multihead",
    "check_softmax",
]


def _inputs(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _first_mismatch(got: torch.Tensor, expected: torch.Tensor) -> str:
    """Where ``got`` first differs from ``expected`` (row-major), with both values, for a hint."""
    bad = ~torch.isclose(got.double(), expected.double(), rtol=0, atol=1e-8)  # NaN counts as a mismatch
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"first mismatch at {idx}: yours {got[idx].item():.4g}, expected {expected[idx].item():.4g}"


def _close(got: Any, expected: torch.Tensor) -> bool:
    return (
        isinstance(got, torch.Tensor) and got.shape == expected.shape
        and torch.allclose(got.double(), expected, atol=1e-8, equal_nan=True)
    )  # fmt: skip


def _softmax_hint(got: torch.Tensor, s: torch.Tensor) -> str | None:
    """The usual slip that reproduces ``got`` on scores ``s`` (…, K), or None."""
    e = torch.exp(s - s.amax(-1, keepdim=True))
    slips = [
        ("the weights sum to 1 down the columns: take the softmax over the last axis (each row = one query).",
         torch.softmax(s, 0)),
        ("divide by the sum: exponentiate, then divide each row by its own sum.", e),
        ("divide by the sum: exponentiate, then divide each row by its own sum.", torch.exp(s)),
        ("divide each row by its OWN sum, e.sum(-1, keepdim=True), not by the sum of the whole tensor.",
         torch.softmax(s.flatten(), 0).view_as(s)),
    ]  # fmt: skip
    return next((hint for hint, variant in slips if _close(got, variant)), None)


def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor] | None) -> Verdict:
    """``fn(scores (…, K)) → weights``, softmax over the last axis; must survive large scores, in rows of
    different scale (a single global maximum fails there: 0/0 = NaN in the lower rows)."""

    def check(fn):
        for seed in range(3):
            s = _inputs(seed, 4, 6)
            got = fn(s)
            if not isinstance(got, torch.Tensor) or got.shape != s.shape:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                return False, f"return one weight per score: expected shape {tuple(s.shape)}, got {shape}."
            if _close(got, torch.softmax(s, -1)):
                continue
            want = torch.softmax(s, -1)
            return False, _softmax_hint(got, s) or (
                f"{_first_mismatch(got, want)}; compare with torch.softmax(s, dim=-1): exponentiate, divide by the "
                "row sum."
            )
        # rows far apart: one large, one small (as when some queries match much better than others)
        s = torch.tensor([[1000.0, 1001.0, 999.0], [1.0, 2.0, 0.0]], dtype=torch.float64)
        got, want = fn(s), torch.softmax(s, -1)
        if _close(got, want):
            return True, ""
        finite = torch.isfinite(got).all(-1)
        if finite[0] and not finite[1]:
            return False, (
                "you subtract ONE maximum for the whole tensor: a row far below it gives exp(…) = 0 everywhere, "
                "0/0 = NaN. Subtract each row's own maximum: s.max(-1, keepdim=True).values."
            )
        if not finite[0]:
            return False, "scores of 1000 overflow exp(): subtract each row's maximum first (it cancels out)."
        return False, f"{_first_mismatch(got, want)} (rows of very different scale)."

    return run_check(
        fn,
        check,
        "your softmax matches torch.softmax, survives large scores and rows of different scale.",
        "write my_softmax(s) over the last axis, then call check_softmax(my_softmax).",
        explain=_softmax_error,
    )


def _softmax_error(exc: Exception) -> str | None:
    if "must match the size of tensor" in str(exc):  # s − s.max(-1).values: (rows, keys) − (rows,)
        return "keep the reduced axis: s.max(-1, keepdim=True).values is (rows, 1), which lines up with (rows, keys)"
    return usual_slip(exc)


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


def _heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, *, split: bool = True,
           merge: bool = True, softmax_dim: int = -1, scale: str = "d_head") -> torch.Tensor:  # fmt: skip
    """Multi-head attention on projected (B, N, D) inputs, and the usual slips: viewing (B, N, D) as
    (B, H, N, d_head) without the transpose (``split=False``; mixes tokens into heads), merging (B, H, N, d_head)
    back without transposing first (``merge=False``), the softmax over the queries (``softmax_dim=-2``), and the
    scale (``scale``: "d_head" right, "D" = √D, "none" = no scale)."""
    B, N, D = q.shape
    d_head = D // heads

    def to_heads(t: torch.Tensor) -> torch.Tensor:  # (B, N, D) → (B, H, N, d_head)
        return t.view(B, N, heads, d_head).transpose(1, 2) if split else t.view(B, heads, N, d_head)

    factor = {"d_head": 1 / math.sqrt(d_head), "D": 1 / math.sqrt(D), "none": 1.0}[scale]
    w = torch.softmax(to_heads(q) @ to_heads(k).transpose(-1, -2) * factor, dim=softmax_dim)  # (B, H, N, N)
    read = w @ to_heads(v)  # (B, H, N, d_head)
    return read.transpose(1, 2).reshape(B, N, D) if merge and split else read.reshape(B, N, D)


_MULTIHEAD_SLIPS = {  # keyword arguments of _heads() that reproduce a slip → its hint
    "split": ({"split": False, "merge": False}, "split: view (B, N, D) as (B, N, H, d_head), THEN transpose to "
              "(B, H, N, d_head) (and back when merging)."),
    "merge": ({"merge": False}, "merge without transposing back: the heads' outputs are (B, H, N, d_head); "
              "transpose(1, 2) to (B, N, H, d_head) BEFORE reshape(B, N, D), or head 1's tokens land where token "
              "1's features belong."),
    "axis": ({"softmax_dim": -2}, "softmax over the wrong axis: the scores are (B, H, N queries, N keys); each "
             "query's weights run over the keys, dim=-1 (dim=-2 normalises over the queries)."),
    "no scale": ({"scale": "none"}, "divide the scores by √d_head before the softmax."),
    "wide scale": ({"scale": "D"}, "each head scores with d_head = D / H features: divide by √d_head, not √D."),
}  # fmt: skip


def check_multihead(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(q, k, v, heads)`` on projected (B, N, D) inputs → (B, N, D): split into H heads of size D/H with
    view + transpose, attention in each head, merge back. Compared with torch's SDPA on the heads; each usual slip
    (see :func:`_heads`) gets its own hint."""

    def check(fn):
        q, k, v = (_inputs(10 + i, 2, 5, 12) for i in range(3))
        expected = _heads(q, k, v, 3)  # equal to torch's SDPA on the heads (tests/test_exercises_basics.py)
        got = fn(q, k, v, 3)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (2, 5, 12):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            return False, f"merge the heads back: expected shape (B, N, D) = (2, 5, 12), got {shape}."
        if _close(got, expected):
            return True, ""
        for kwargs, hint in _MULTIHEAD_SLIPS.values():
            if _close(got, _heads(q, k, v, 3, **kwargs)):
                return False, hint
        return False, f"{_first_mismatch(got, expected)}; split → softmax(q kᵀ/√d_head) v per head → merge."

    return run_check(fn, check, "your heads match torch's scaled_dot_product_attention, head by head.",
                     "write my_multihead(q, k, v, heads), then call check_multihead(my_multihead).")  # fmt: skip
