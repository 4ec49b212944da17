"""Checkers for notebook 01's build-it exercises: the write stage, and a whole latent-attention module.

:func:`check_latent_attention` copies the weights of a :class:`~lattn.latent.LatentAttention` into the learner's
module and compares outputs and maps stage by stage; at the first stage that differs it tries the usual slips (the
softmax on the wrong axis, no renormalisation, no residual, √D for √(D/H)) on an independent float64 forward
(:func:`reference`) and names the one that reproduces the learner's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..latent import STAGES, LatentAttention
from . import Verdict, run_check

__all__ = ["check_latent_attention", "check_write", "reference", "write_update"]

ATOL = 1e-6  # float64 everywhere: a right answer agrees to ~1e-15, so this only absorbs a forgotten eps


def _inputs(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def write_update(token_q: Tensor, latent_k: Tensor, token_v: Tensor, *, axis: str = "latents",
                 renormalise: bool = True, eps: float = 1e-6,
                 width: int | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The write stage on (…, N, d) queries, (…, M, d) latent keys, (…, N, dv) values → (each latent's weighted
    mean of the values (…, M, dv), the map (…, N, M)). ``axis``/``renormalise``/``width`` (the scale's √width,
    default d) switch on the usual slips."""
    scores = token_q @ latent_k.transpose(-1, -2) / math.sqrt(width or token_q.shape[-1])  # (…, N, M)
    w = scores.softmax(dim=-1 if axis == "latents" else -2)  # right: each token splits itself over the latents
    share = w / (w.sum(dim=-2, keepdim=True) + eps) if renormalise else w  # each latent's column → weights summing to 1
    return share.transpose(-1, -2) @ token_v, w  # (…, M, dv), (…, N, M)


def reference(la: LatentAttention, x: Tensor, *, write_axis: str = "latents", renormalise: bool = True,
              residual: tuple[str, ...] = ("write", "gather"), wide_scale: bool = False,
              ) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
    """An independent forward of ``la`` (all three stages) on x (B, N, D), in x's dtype, with einsum per head.
    Returns (out (B, N, D), {stage: map}). The keyword arguments reproduce the usual slips: ``write_axis="tokens"``,
    ``renormalise=False``, the stages whose latent update forgets the residual (left out of ``residual``), and
    ``wide_scale=True`` (scores divided by √D instead of √(D/H))."""
    B, N, D = x.shape
    H = la.heads
    width = D if wide_scale else D // H  # the scale's √width: one head's width
    P = {s: {n: getattr(la.proj[s], n) for n in ("to_q", "to_k", "to_v", "to_out")} for s in STAGES}

    def heads(t: Tensor) -> Tensor:  # (B, L, D) → (B, H, L, dh)
        return t.view(B, t.shape[1], H, D // H).transpose(1, 2)

    def merge(t: Tensor) -> Tensor:  # (B, H, L, dh) → (B, L, D)
        return t.transpose(1, 2).reshape(B, t.shape[2], D)

    def softmax_read(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        w = (torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(width)).softmax(-1)
        return torch.einsum("bhij,bhjd->bhid", w, v), w

    maps: dict[str, Tensor] = {}
    z = la.latents.to(x.dtype).expand(B, -1, -1)  # (B, M, D)
    p = P["write"]
    upd, maps["write"] = write_update(heads(p["to_q"](x)), heads(p["to_k"](z)), heads(p["to_v"](x)),
                                      axis=write_axis, renormalise=renormalise, eps=la.eps, width=width)  # fmt: skip
    z = (z if "write" in residual else 0) + p["to_out"](merge(upd))  # (B, M, D)
    p = P["gather"]
    read, maps["gather"] = softmax_read(heads(p["to_q"](z)), heads(p["to_k"](x)), heads(p["to_v"](x)))
    z = (z if "gather" in residual else 0) + p["to_out"](merge(read))  # (B, M, D)
    p = P["broadcast"]
    read, maps["broadcast"] = softmax_read(heads(p["to_q"](x)), heads(p["to_k"](z)), heads(p["to_v"](z)))
    return p["to_out"](merge(read)), maps  # (B, N, D)


def _close(a: Any, b: Tensor) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.double(), b, atol=ATOL)


def check_write(fn: Callable[..., Tensor] | None) -> Verdict:
    """``fn(token_q (N, d), latent_k (M, d), token_v (N, dv)) → (M, dv)``: each latent's weighted mean."""

    def check(fn):
        q, k, v = _inputs(6, 9, 8), _inputs(7, 3, 8), _inputs(8, 9, 4)
        got = fn(q, k, v)
        if not isinstance(got, Tensor) or tuple(got.shape) != (3, 4):
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            return False, f"one weighted mean per latent: expected shape (M, dv) = (3, 4), got {shape}."
        if _close(got, write_update(q, k, v, axis="tokens")[0]):
            return False, "wrong axis: in write each token splits itself over the latents — softmax over latents."
        if _close(got, write_update(q, k, v, renormalise=False)[0]):
            return False, "missing renormalisation: divide each latent's column by its sum over tokens (a mean)."
        if _close(got, write_update(q, k, v)[0]):
            return True, ""
        return False, "scores q·kᵀ/√d (N, M) → softmax over latents → columns / column sums → transpose · v."

    return run_check(fn, check, "your write stage matches the package's (softmax over latents, then a weighted mean).",
                     "write my_write(token_q, latent_k, token_v), then call check_write(my_write).")  # fmt: skip


def _maps_of(out: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """Learner's ``(out, maps)`` with maps a dict or a :class:`~lattn.latent.LatentMaps`."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"forward(x) must return (out, maps), got {type(out).__name__}")
    y, maps = out
    get = maps.get if isinstance(maps, dict) else lambda s: getattr(maps, s, None)
    return y, {s: get(s) for s in STAGES}


_SLIPS = {  # the slip, the keyword arguments of reference() that reproduce it, the hint
    "write axis": ({"write_axis": "tokens"}, "write: the softmax runs over the latents (each token splits itself), "
                   "not over the tokens."),
    "renormalise": ({"renormalise": False}, "write: each latent takes a weighted MEAN — divide the map's columns by "
                    "their sums over tokens (+ eps) before multiplying by the values."),
    "write residual": ({"residual": ("gather",)}, "write: add the update to the latents (z = z + …), don't replace them."),
    "gather residual": ({"residual": ("write",)}, "gather: add what the latents read to them (z = z + …), don't "
                        "replace them."),
    "wide scale": ({"wide_scale": True}, "scale the scores by √d_head = √(D/H), the width of one head, not by √D."),
}  # fmt: skip


def check_latent_attention(cls: type[nn.Module] | None, dim: int = 8, num_latents: int = 3, heads: int = 2) -> Verdict:
    """``cls(dim, num_latents, heads)`` with the parameters of :class:`~lattn.latent.LatentAttention` (``latents``;
    ``proj[stage].to_q/to_k/to_v/to_out``) and ``forward(x (B, N, D)) → (out (B, N, D), maps)``, maps a dict with
    write (B, H, N, M), gather (B, H, M, N), broadcast (B, H, N, M). Weights are copied from the package's module."""

    def check(cls):
        torch.manual_seed(0)
        ref_la = LatentAttention(dim, num_latents, heads=heads).double()
        mine = cls(dim, num_latents, heads).double()
        try:
            mine.load_state_dict(ref_la.state_dict())
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
            return False, f"the parameters must be named like LatentAttention's (latents, proj[stage].to_q …): {first}"
        x = _inputs(9, 2, 7, dim)
        with torch.no_grad():
            y, maps = _maps_of(mine(x))
            out, want = ref_la(x, return_maps=True)
            variants = {slip: reference(ref_la, x, **kw)[1] for slip, (kw, _) in _SLIPS.items()}
        for s in STAGES:
            expected = getattr(want, s)
            if _close(maps[s], expected):
                continue
            if not isinstance(maps[s], Tensor) or maps[s].shape != expected.shape:
                got = tuple(maps[s].shape) if isinstance(maps[s], Tensor) else type(maps[s]).__name__
                return False, f"maps['{s}'] should have shape {tuple(expected.shape)} (B, H, …), got {got}."
            for slip, (_, hint) in _SLIPS.items():
                if _close(maps[s], variants[slip][s]):
                    return False, hint
            if s == "write" and _close(maps[s], expected / (expected.sum(-2, keepdim=True) + ref_la.eps)):
                return False, (
                    "maps['write'] should be the softmax itself (each row sums to 1 over the latents); "
                    "you returned it with its columns renormalised — keep that for the update only."
                )
            over = "tokens" if s == "gather" else "latents"
            sums = maps[s].double().sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=ATOL):
                return False, f"wrong axis: each row of the {s} map must sum to 1 — softmax over {over} (last axis)."
            return False, f"the first map that differs is {s} (softmax over {over}); {_mismatch(maps[s], expected)}."
        if not isinstance(y, Tensor) or y.shape != out.shape:
            return False, f"the output should have shape (B, N, D) = {tuple(out.shape)}."
        if _close(y, out + x):
            return False, "the output has no residual on the tokens: return to_out(broadcast read) alone."
        if not _close(y, out):
            return False, f"every map matches, the output does not: {_mismatch(y, out)} — broadcast's read → to_out."
        return True, ""

    return run_check(None if _unfinished(cls, dim, num_latents, heads) else cls, check,
                     "your module matches lattn.LatentAttention: the output and all three maps.",
                     "complete MyLatentAttention.forward, then call check_latent_attention(MyLatentAttention).")  # fmt: skip


def _unfinished(cls: Any, dim: int, num_latents: int, heads: int) -> bool:
    """True when the learner's forward still raises NotImplementedError (the notebook's starting point)."""
    if cls is None:
        return True
    if getattr(cls, "forward", None) is nn.Module.forward:  # no forward at all: the check explains what is missing
        return False
    try:
        with torch.no_grad():
            cls(dim, num_latents, heads).double()(_inputs(9, 1, 2, dim))
    except NotImplementedError:
        return True
    except Exception:  # any other failure is the check's to explain
        return False
    return False


def _mismatch(got: Tensor, expected: Tensor) -> str:
    bad = (got.double() - expected).abs() > ATOL
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"first mismatch at {idx}: yours {got[idx].item():.4g}, expected {expected[idx].item():.4g}"
