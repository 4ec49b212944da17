"""MLA's KV cache: the buffers a layer keeps while it generates (:class:`MLACache`) and what any layout of keys and
values costs per token (:func:`kv_elements_per_token`, :func:`kv_cache_bytes`; DeepSeek-V2 Table 1).

Two layouts hold the same information:

* ``"latent"`` (modes ``auto`` and ``absorbed``): ``kv`` (B, L, d_c + d_rope) — the latent c_KV in the first d_c
  columns and the shared rotary key k_R in the last d_rope: d_c + d_rope values per token (576 in DeepSeek);
* ``"per-head"`` (mode ``naive``): ``k`` (B, H, L, d_head + d_rope) and ``v`` (B, H, L, d_head) — full per-head
  keys and values, laid out as multi-head attention caches usually are: H·(2·d_head + d_rope) values (40,960).

Unlike :class:`lattn.attention.KVCache` (multi-head attention's), the buffers are a dict whose keys depend on the
layout; the layer (:mod:`lattn.mla.layer`) decides what to write.
Example: heads=128, d_head=128, d_c=512, d_rope=64 → MHA 32,768; MLA naive 40,960; MLA 576 values per token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_int

__all__ = ["KV_KINDS", "LAYOUTS", "MLACache", "cache_bytes", "kv_cache_bytes", "kv_elements_per_token",
           "largest_divisor_at_most"]  # fmt: skip

KV_KINDS = ("MHA", "GQA", "MQA", "MLA naive", "MLA")  # the cache layouts the accounting knows
LAYOUTS = {"auto": "latent", "absorbed": "latent", "naive": "per-head"}  # what each mode of the layer caches


# --- accounting -------------------------------------------------------------------------------------------------------
def kv_elements_per_token(
    kind: str, *, heads: int, d_head: int, d_c: int = 0, d_rope: int = 0, n_groups: int | None = None
) -> int:
    """Values cached per token per layer (DeepSeek-V2 Table 1, plus MLA's naive layout).

    * ``MHA``: a key and a value per head, 2·heads·d_head.
    * ``GQA``: heads share keys/values in ``n_groups`` groups, 2·n_groups·d_head.   ``MQA``: one key/value, 2·d_head.
    * ``MLA naive``: full per-head keys (d_head + d_rope) and values (d_head), heads·(2·d_head + d_rope).
    * ``MLA`` (the latent layout of modes auto and absorbed): the latent and the shared rotary key, d_c + d_rope.
    """
    check_int(heads=heads, d_head=d_head)
    check_int(d_c=d_c, d_rope=d_rope, minimum=0)
    if kind == "MHA":
        return 2 * heads * d_head
    if kind == "GQA":
        if n_groups is None or not 1 <= n_groups <= heads or heads % n_groups:
            raise ValueError(f"GQA needs n_groups dividing heads={heads} (1 ≤ n_groups ≤ heads), got {n_groups}")
        return 2 * n_groups * d_head
    if kind == "MQA":
        return 2 * d_head
    if kind in ("MLA", "MLA naive"):
        if d_c < 1:
            raise ValueError(f"{kind} needs d_c ≥ 1, got {d_c}")
        return d_c + d_rope if kind == "MLA" else heads * (2 * d_head + d_rope)
    raise ValueError(f"unknown cache kind {kind!r}; choose one of {list(KV_KINDS)}")


def cache_bytes(per_token: int, *, context: int, batch: int, layers: int, bits: float) -> float:
    """per_token × context × batch × layers × bits / 8 (fractional bytes allowed: a 6-bit cache)."""
    check_int(context=context, batch=batch, layers=layers, minimum=0)
    if not bits > 0:
        raise ValueError(f"bits per element must be > 0 (e.g. 16 for BF16, 6 for a quantised cache), got {bits}")
    return per_token * context * batch * layers * bits / 8


def kv_cache_bytes(
    kind: str,
    *,
    context: int,
    batch: int = 1,
    layers: int = 1,
    bits: float = 16,
    heads: int,
    d_head: int,
    d_c: int = 0,
    d_rope: int = 0,
    n_groups: int | None = None,
) -> float:
    """Bytes of a KV cache: elements per token per layer × context × batch × layers × bits / 8.

    Example: DeepSeek-V2-Lite's MLA cache at 4,096 tokens in BF16: 576·4096·27·2 B = 127.4 MB.
    """
    per_token = kv_elements_per_token(kind, heads=heads, d_head=d_head, d_c=d_c, d_rope=d_rope, n_groups=n_groups)
    return cache_bytes(per_token, context=context, batch=batch, layers=layers, bits=bits)


def largest_divisor_at_most(heads: int, n: int) -> int:
    """The largest GQA group count ≤ ``n`` that divides ``heads`` (groups must be equal). Example: (128, 12) → 8."""
    check_int(heads=heads, n=n)
    return max(g for g in range(1, min(n, heads) + 1) if heads % g == 0)


# --- the buffers ------------------------------------------------------------------------------------------------------
class MLACache:
    """Preallocated per-layer KV cache in one of the :data:`LAYOUTS` (see the module docstring).

    ``length`` counts the tokens written so far; ``nbytes`` is the memory really allocated; ``mode`` is the mode of
    the layer that made it (``auto`` and ``absorbed`` share the latent layout, so either can continue the other's
    cache). Make one with :meth:`lattn.mla.MultiHeadLatentAttention.new_cache`.
    """

    def __init__(self, mode: str, buffers: dict[str, Tensor], d_rope: int) -> None:
        if mode not in LAYOUTS:
            raise ValueError(f"mode must be one of {list(LAYOUTS)}, got {mode!r}")
        self.mode = mode
        self.layout = LAYOUTS[mode]
        self.buffers = buffers
        self.d_rope = d_rope  # width of the rotary key, to split the latent buffer
        self.seq_axis = 1 if self.layout == "latent" else 2  # the axis of the buffers that runs over positions
        self.length = 0

    @property
    def batch(self) -> int:
        return next(iter(self.buffers.values())).shape[0]

    @property
    def max_len(self) -> int:
        return next(iter(self.buffers.values())).shape[self.seq_axis]

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.buffers.values())).dtype

    @property
    def elements_per_token(self) -> int:
        """Values held per token (per sequence): d_c + d_rope (latent), H·(2·d_head + d_rope) (per-head)."""
        return sum(b.numel() for b in self.buffers.values()) // (self.batch * self.max_len)

    @property
    def nbytes(self) -> int:
        """Bytes allocated by the buffers (all max_len slots)."""
        return sum(b.nbytes for b in self.buffers.values())

    @property
    def c_kv(self) -> Tensor:
        """The cached latents (B, length, d_c) (latent layout only)."""
        return self._filled("kv")[..., : -self.d_rope]

    @property
    def k_rope(self) -> Tensor:
        """The cached shared rotary keys (B, length, d_rope) (latent layout only)."""
        return self._filled("kv")[..., -self.d_rope :]

    def _filled(self, name: str) -> Tensor:
        if name not in self.buffers:
            raise ValueError(
                f"a {self.layout}-layout cache (mode {self.mode!r}) holds {list(self.buffers)}, not {name!r}"
            )
        return self.buffers[name].narrow(self.seq_axis, 0, self.length)

    def check(self, x: Tensor, start_pos: int, mode: str) -> None:
        """Raise a clear error unless ``x`` (B, N, D) can be written at ``start_pos`` by a layer in ``mode``."""
        B, N = x.shape[:2]
        if LAYOUTS[mode] != self.layout:
            raise ValueError(
                f"this cache was made for mode={self.mode!r} ({self.layout} layout) but the module runs "
                f"mode={mode!r} ({LAYOUTS[mode]} layout): make a new cache with new_cache()"
            )
        if B != self.batch:
            raise ValueError(f"x has batch {B} but the cache was allocated for batch {self.batch}")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the cache holds {self.dtype}; make both the same")
        if start_pos > self.length:
            raise ValueError(
                f"start_pos={start_pos} would leave a gap: the cache holds {self.length} tokens "
                f"(write at start_pos ≤ {self.length})"
            )
        if start_pos + N > self.max_len:
            raise ValueError(
                f"cache overflow: writing {N} tokens at start_pos={start_pos} needs {start_pos + N} slots, "
                f"the cache has max_len={self.max_len}"
            )

    def write(self, start_pos: int, **parts: Tensor) -> list[Tensor]:
        """Store each part (positions on ``seq_axis``, n of them) at positions [start_pos, start_pos + n); return
        every buffer's filled prefix (start_pos + n positions), in the order given. Writing before ``length``
        overwrites (e.g. to decode again from an earlier position)."""
        n = next(iter(parts.values())).shape[self.seq_axis]
        views = []
        for name, part in parts.items():
            buf = self.buffers[name]
            buf.narrow(self.seq_axis, start_pos, n).copy_(part)
            views.append(buf.narrow(self.seq_axis, 0, start_pos + n))
        self.length = start_pos + n
        return views
