"""Input checks shared by every public entry point: clear ``TypeError``/``ValueError``s that name the argument, what
was expected and what came — never a deep torch traceback, a silent NaN or a silent wrong answer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "MAP_BYTES_LIMIT",
    "check_dim_heads",
    "check_dtype",
    "check_int",
    "check_map_bytes",
    "check_mask",
    "check_qkv",
    "check_tokens",
]


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_tokens(x: Tensor, dim: int, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is a floating (B, N, dim) tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, N, {dim}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. x.float()), got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(f"{name} must be 3-D (B, N, dim={dim}), got shape {_shape(x)}")
    if x.shape[-1] != dim:
        raise ValueError(f"{name} last dimension must be dim={dim}, got shape {_shape(x)}")


def check_mask(mask: Tensor | None, x: Tensor) -> None:
    """Raise a clear error unless ``mask`` is None or a boolean (B, N) tensor matching ``x`` (B, N, D)."""
    if mask is None:
        return
    if not isinstance(mask, Tensor):
        raise TypeError(
            f"mask must be a bool torch.Tensor of shape (B, N) = {tuple(x.shape[:2])}, got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must have dtype torch.bool (True = real token), got {mask.dtype}")
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask must have shape (B, N) = {tuple(x.shape[:2])} to match x {_shape(x)}, got {_shape(mask)}"
        )


def check_int(*, minimum: int = 1, **values: object) -> None:
    """Raise a clear error unless every named value is an integer ≥ ``minimum`` (bools and floats refused)."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer ≥ {minimum}, got {value!r} ({type(value).__name__})")
        if value < minimum:
            raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value}")


def check_dim_heads(dim: int, heads: int) -> None:
    """Validate a (dim, heads) pair of a multi-head module."""
    check_int(dim=dim, heads=heads)
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")


def check_dtype(x: Tensor, module: nn.Module, name: str = "x") -> None:
    """Raise a clear TypeError when ``x`` and the module's (first) weights have different dtypes."""
    weight = next(module.parameters(), None)
    if weight is not None and x.dtype != weight.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the module's weights are {weight.dtype}: convert one of them, e.g."
            f" module.to({x.dtype}) or {name}.to({weight.dtype})"
        )


# The teaching path and the effective map hold whole (…, Nq, Nk) maps; above this many bytes they refuse up front.
MAP_BYTES_LIMIT = 8 * 2**30


def check_map_bytes(nbytes: int, what: str) -> None:
    """Raise a clear MemoryError before an attention map of ``nbytes`` bytes is allocated, if over MAP_BYTES_LIMIT."""
    if nbytes > MAP_BYTES_LIMIT:
        raise MemoryError(
            f"{what} would hold {nbytes / 2**30:,.1f} GiB of attention weights (limit MAP_BYTES_LIMIT ="
            f" {MAP_BYTES_LIMIT / 2**30:.0f} GiB): use the fast path (return_maps=False), which keeps no map,"
            " or a shorter sequence / a smaller batch"
        )


def check_qkv(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> None:
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"need q (…, Nq, d), k (…, Nk, d), v (…, Nk, dv); got {_shape(q)}, {_shape(k)}, {_shape(v)}")
    if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool):
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must have dtype torch.bool (True = may attend), got {got}")
