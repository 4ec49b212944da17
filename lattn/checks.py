"""Input checks shared by every public entry point: clear ``TypeError``/``ValueError``s that name the argument, what
was expected and what came — never a deep torch traceback, a silent NaN or a silent wrong answer."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = [
    "MAP_BYTES_LIMIT",
    "byte_size",
    "check_dim_heads",
    "check_dtype",
    "check_int",
    "check_map_bytes",
    "check_mask",
    "check_qkv",
    "check_tokens",
    "machine_memory",
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


def check_mask(mask: Tensor | None, x: Tensor, name: str = "mask", tokens: str = "x") -> None:
    """Raise a clear error unless ``mask`` is None or a boolean (B, N) tensor matching ``x`` (B, N, D)."""
    if mask is None:
        return
    if not isinstance(mask, Tensor):
        raise TypeError(
            f"{name} must be a bool torch.Tensor of shape (B, N) = {tuple(x.shape[:2])}, got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must have dtype torch.bool (True = real token), got {mask.dtype}")
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"{name} must have shape (B, N) = {tuple(x.shape[:2])} to match {tokens} {_shape(x)}, got {_shape(mask)}"
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


# The teaching path and the effective map hold whole (…, Nq, Nk) maps; above this many bytes (or above the memory of
# this machine, whichever is less) they refuse up front.
MAP_BYTES_LIMIT = 8 * 2**30


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the least of the machine's RAM and a cgroup's limit (containers);
    None when neither can be read (e.g. on Windows)."""
    sizes = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):  # cgroup v2, v1
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            sizes.append(int(text))
    try:
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    return min(sizes) if sizes else None


def byte_size(nbytes: float) -> str:
    """``"1.5 GiB"``, ``"320 bytes"``: a byte count in the largest binary unit that keeps it ≥ 1."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:,.0f} bytes"


def check_map_bytes(nbytes: int, what: str, held: str = "") -> None:
    """Raise a clear MemoryError before a call that would hold up to ``nbytes`` bytes (its attention maps and what is
    computed beside them) starts, if that is over MAP_BYTES_LIMIT or this machine's memory. ``held`` says what the
    bytes are (e.g. "4 maps of 1.0 GiB")."""
    memory = machine_memory()
    limit = MAP_BYTES_LIMIT if memory is None else min(MAP_BYTES_LIMIT, memory)
    if nbytes > limit:
        which = "MAP_BYTES_LIMIT" if limit == MAP_BYTES_LIMIT else "this machine's memory"
        raise MemoryError(
            f"{what} would hold up to {byte_size(nbytes)} of attention maps and their intermediates"
            f"{f' ({held})' if held else ''}, over the limit of {byte_size(limit)} ({which}): use the fast path"
            " (return_maps=False), which keeps no map, or a shorter sequence / a smaller batch"
        )


def check_qkv(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> None:
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"need q (…, Nq, d), k (…, Nk, d), v (…, Nk, dv); got {_shape(q)}, {_shape(k)}, {_shape(v)}")
    if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool):
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must have dtype torch.bool (True = may attend), got {got}")
