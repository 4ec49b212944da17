"""Standard scaled-dot-product attention: the O(N²) baseline of the course, and THE attention layer of the package.

Every query scores every key, so a sequence of N tokens builds an N×N map of weights. Two ways to compute the same
thing live here: ``scaled_dot_product``, the teaching path (explicit scores, explicit softmax, weights returned), and
``fused_attention``, the fast path (torch's fused ``scaled_dot_product_attention``, no weights kept).

:class:`Attention` (self- and cross-attention, masks, KV cache) runs one or the other. Every mechanism of the package
is built from it, except where its maths differs — each of these keeps its own core, for the reason given:

* LatentAttention's **write** stage (:mod:`lattn.latent`): its values come from the tokens, the query side, and each
  latent takes a column-renormalised weighted mean — not a softmax over keys. (Gather and broadcast are
  ``Attention.forward``.)
* **Linformer**: keys and values are mixed along the sequence axis (E·K, F·V) between the split and the core.
* **Nyströmformer**: three softmax kernels through segment-mean landmarks, joined by an iterative pseudo-inverse.
* **causal Luna**: positive packing weights and running sums divided by t instead of a softmax over tokens.
* **Slot Attention**: one head, softmax over the slots, eps-renormalised weighted means and a GRU update.
* **MLA** (:mod:`lattn.mla`): decoupled RoPE; the absorbed path scores queries (W_UK folded in) against cached latents.

Conventions shared by the whole package: boolean masks with ``True`` = may attend; the softmax runs in float32 even
for half-precision inputs; a large finite negative value (not ``-inf``) masks scores, and a query with nothing to
attend to gets an all-zero row of weights and a zero output, never NaN.

Example::

    >>> mha = MultiHeadAttention(dim=32, heads=4)
    >>> out, maps = mha(torch.randn(2, 10, 32), return_maps=True)   # (2, 10, 32), (2, 4, 10, 10)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import (
    check_dim_heads,
    check_dtype,
    check_int,
    check_map_bytes,
    check_mask,
    check_qkv,
    check_tokens,
)
from .masks import HALF_DTYPES, causal_mask, key_padding, map_itemsize, masked_softmax, upcast, zero_padded

__all__ = [
    "Attention",
    "KVCache",
    "MultiHeadAttention",
    "attend",
    "drop_padded",
    "fused_attention",
    "fused_linear",
    "merge_heads",
    "scaled_dot_product",
    "split_heads",
    "worth_fusing",
]


def drop_padded(t: Tensor, mask: Tensor) -> Tensor:
    """Zero the padded tokens (mask (B, N) False) of t (B, H, N, …) — heads (B, H, N, d) or the rows of maps
    (B, H, N, M): whatever they hold (even NaN) reaches no product."""
    return t.masked_fill(~mask[:, None, :, None], 0)


def split_heads(t: Tensor, heads: int) -> Tensor:
    """(B, N, H·d_head) → (B, H, N, d_head)."""
    B, N, D = t.shape
    return t.view(B, N, heads, D // heads).transpose(1, 2)


def merge_heads(t: Tensor) -> Tensor:
    """(B, H, N, d_head) → (B, N, H·d_head)."""
    B, H, N, d_head = t.shape
    return t.transpose(1, 2).reshape(B, N, H * d_head)


def _combine(mask: Tensor | None, causal: bool, nq: int, nk: int, device: torch.device) -> Tensor | None:
    if causal:
        tri = causal_mask(nq, nk, device=device)
        mask = tri if mask is None else mask & tri
    return mask


def scaled_dot_product(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Teaching path: ``softmax(q·kᵀ·scale) · v`` with the weights kept.

    Args:
        q: (…, Nq, d) queries.  k: (…, Nk, d) keys.  v: (…, Nk, dv) values.
        mask: bool, broadcastable to (…, Nq, Nk); True = this query may attend to this key.
        causal: query i only sees keys j ≤ i.
        scale: multiplies the scores; default 1/√d.
    Returns:
        out (…, Nq, dv) in q's dtype, and weights (…, Nq, Nk) (float32 for half inputs), each row summing to 1
        (or to 0 for a query with nothing to attend to).
    """
    check_qkv(q, k, v, mask)
    masked = mask is not None or causal  # the masked softmax holds two maps more (masked scores, masked weights)
    held = "scores, masked scores, weights, masked weights" if masked else "scores and weights"
    nbytes = (4 if masked else 2) * q.shape[:-1].numel() * k.shape[-2] * map_itemsize(q.dtype)
    check_map_bytes(nbytes, f"the teaching path (return_maps=True) at {q.shape[-2]:,} × {k.shape[-2]:,}", held)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = _combine(mask, causal, q.shape[-2], k.shape[-2], q.device)
    qf, kf = upcast(q), upcast(k)
    if qf.shape[-2] <= kf.shape[-2]:  # NOTE: scale the shorter of q and k, not the (Nq, Nk) scores: a pass less
        qf = qf * scale
    else:
        kf = kf * scale
    scores = torch.einsum("...qd,...kd->...qk", qf, kf)  # (…, Nq, Nk)
    weights = masked_softmax(scores, mask, dim=-1)
    del scores  # NOTE: freed before weights @ v: one Nq×Nk buffer less to hold
    out = weights @ upcast(v)  # (…, Nq, dv)
    return out.to(q.dtype), weights


def fused_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """Fast path: the same result as :func:`scaled_dot_product` through torch's fused kernel, no weights kept.

    Shapes as in :func:`scaled_dot_product` with 4-D (B, H, N, d) inputs. Half inputs on the CPU are computed in
    float32. A row with nothing to attend to gives zeros on every supported torch: the ``alive`` guard below makes
    it so. (torch's own kernels return zeros for such a row since torch 2.5, which runs a "safe" softmax in
    scaled_dot_product_attention, pytorch PR #131863 — checked here on torch 2.13's CPU kernels, every dtype and
    the math and flash backends; torch 2.4, the oldest supported, predates that change and returns NaN, as
    reported in pytorch issue #103963 — not run here.)
    """
    check_qkv(q, k, v, mask)
    dtype = q.dtype
    if dtype in HALF_DTYPES and q.device.type == "cpu":
        q, k, v = q.float(), k.float(), v.float()
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale).to(dtype)
    mask = _combine(mask, causal, q.shape[-2], k.shape[-2], q.device)
    alive = mask.any(-1, keepdim=True)  # (…, Nq, 1): does this query see anything?
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~alive, scale=scale)
    return (out * alive).to(dtype)


class KVCache:
    """Keys and values of the tokens seen so far, for decoding with :class:`Attention` (self-attention).

    k, v (B, H, L, d_head) are preallocated for L = ``max_len`` positions; the first ``length`` are filled. The
    cache knows its own length: new tokens go to position ``length`` unless told otherwise.
    """

    def __init__(self, k: Tensor, v: Tensor) -> None:
        self.k, self.v, self.length = k, v, 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache (all allocated slots)."""
        return self.k.nbytes + self.v.nbytes

    def check(self, x: Tensor, heads: int, d_head: int) -> None:
        """Raise a clear error unless new tokens x (B, T, D) of a layer with ``heads`` heads of ``d_head`` fit here."""
        B, H, _, width = self.k.shape
        if x.shape[0] != B:
            raise ValueError(
                f"x has batch size {x.shape[0]} but this cache was made for batch {B}: make one with"
                f" new_cache({x.shape[0]}, max_len)"
            )
        if (H, width) != (heads, d_head):
            raise ValueError(
                f"this cache holds {H} heads of d_head={width} but the layer has {heads} heads of d_head={d_head}:"
                " make the cache with this layer's new_cache(batch, max_len)"
            )
        if x.dtype != self.k.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but this cache holds {self.k.dtype}: make the cache with new_cache after"
                f" module.to({x.dtype})"
            )

    def append(self, k: Tensor, v: Tensor, start_pos: int | None = None) -> tuple[Tensor, Tensor, int]:
        """Store T new keys/values (B, H, T, d_head) at ``start_pos`` (default: ``length``, after the cached ones).

        Returns the keys and values of positions 0 … start_pos + T − 1 (B, H, L, d_head) and the start position
        used. A ``start_pos`` below ``length`` rewinds (the later positions are overwritten); above it is an error.
        """
        T = k.shape[2]
        start_pos = self.length if start_pos is None else start_pos
        check_int(start_pos=start_pos, minimum=0)
        if start_pos > self.length or start_pos + T > self.max_len:
            raise ValueError(
                f"cannot write {T} token(s) at position {start_pos}: the cache holds {self.length} of {self.max_len}"
                " positions (start_pos defaults to the cache's length)"
            )
        self.k[:, :, start_pos : start_pos + T] = k
        self.v[:, :, start_pos : start_pos + T] = v
        self.length = start_pos + T
        return self.k[:, :, : self.length], self.v[:, :, : self.length], start_pos


def attend(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *, causal: bool = False, return_maps: bool = False
) -> tuple[Tensor, Tensor | None]:
    """The core of every attention layer on heads: q (B, H, Nq, d_head), k (B, H, Nk, d_head), v (B, H, Nk, dv).

    ``return_maps=False``: the fast path (:func:`fused_attention`), maps ``None``; ``True``: the teaching path
    (:func:`scaled_dot_product`), maps (B, H, Nq, Nk). Same numbers either way.
    """
    if return_maps:
        return scaled_dot_product(q, k, v, mask, causal)
    return fused_attention(q, k, v, mask, causal), None


def worth_fusing(x: Tensor, linears: list[nn.Module]) -> bool:
    """Whether :func:`fused_linear` fuses: several real Linear layers, and more rows in x than weight rows in all."""
    return (
        len(linears) > 1
        and all(isinstance(lin, nn.Linear) for lin in linears)  # not e.g. nn.Identity (timing the core alone)
        and x.shape[:-1].numel() >= sum(lin.out_features for lin in linears)  # else the concatenated weight costs more
    )


def fused_linear(x: Tensor, linears: list[nn.Module]) -> list[Tensor]:
    """Several Linear layers over the same input as one matmul: x (…, D) → [(…, out_i)], each layer's output.

    NOTE: one pass over x instead of one per layer (where :func:`worth_fusing`); equal to each layer's own output to
    rounding (the one matmul may sum in another order), and the outputs share one block of memory, so they all
    exist until the last is dropped.
    """
    if not worth_fusing(x, linears):
        return [lin(x) for lin in linears]
    weight = torch.cat([lin.weight for lin in linears])  # (Σ out_i, D)
    bias = None if linears[0].bias is None else torch.cat([lin.bias for lin in linears])
    return list(F.linear(x, weight, bias).split([lin.out_features for lin in linears], dim=-1))


class Attention(nn.Module):
    """THE attention layer of the package: multi-head self- or cross-attention, fast or teaching path.

    Queries come from ``x`` (B, Nq, dim); keys and values from ``context`` (B, Nk, context_dim), or from ``x`` itself
    (self-attention). Owns ``to_q``, ``to_k``, ``to_v``, ``to_out``; H heads of ``d_head = dim // heads``.
    ``fuse_kv=True``: keys and values by one matmul over the context (:func:`fused_linear`, where it pays) — for a
    long context such as LatentAttention's gather over N tokens; off by default, as a fused matmul may round
    differently (~1 ulp) from the two projections it replaces.

    ``forward(x, *, context=None, mask=None, query_mask=None, attn_mask=None, causal=False, return_maps=False,
    cache=None, start_pos=None)`` → (B, Nq, dim), with ``return_maps=True`` also the maps (B, H, Nq, Nk).

    * ``mask`` (B, Nk) bool, True = a real context token. Padded tokens take no part at all (their keys and values
      are zeroed before any product, so even a NaN there changes nothing). A NaN in a *real* token does propagate
      to every output that reads it: that is honest.
    * ``query_mask`` (B, Nq) bool, True = a real query: padded queries output zeros and their rows of the maps are
      zeros (even where x holds NaN). Self-attention takes ``mask`` for it.
    * ``attn_mask`` bool, broadcastable to (B, H, Nq, Nk): which query may see which key (e.g. a band or a
      block-causal mask). ``causal``: query i sees keys j ≤ i. A query with nothing to see gets zeros, never NaN.
    * ``cache`` (:class:`KVCache`, from :meth:`new_cache`): decoding. ``x`` holds T new tokens at positions
      ``start_pos`` … (default: the cache's length); they see every cached token and, causally, each other.
    """

    def __init__(
        self, dim: int, *, heads: int = 1, context_dim: int | None = None, bias: bool = True, fuse_kv: bool = False
    ) -> None:
        super().__init__()
        check_dim_heads(dim, heads)
        context_dim = dim if context_dim is None else context_dim
        check_int(context_dim=context_dim)
        self.dim, self.heads, self.context_dim, self.fuse_kv = dim, heads, context_dim, fuse_kv
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(context_dim, dim, bias=bias)
        self.to_v = nn.Linear(context_dim, dim, bias=bias)
        self.to_out = nn.Linear(dim, dim, bias=bias)

    @property
    def d_head(self) -> int:
        return self.dim // self.heads

    def split(self, t: Tensor) -> Tensor:
        """(B, N, dim) → (B, H, N, d_head)."""
        return split_heads(t, self.heads)

    def merge(self, read: Tensor) -> Tensor:
        """Heads (B, H, N, d_head) → merged and projected out (B, N, dim)."""
        return self.to_out(merge_heads(read))

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch`` sequences of up to ``max_len`` tokens (the weights' dtype)."""
        check_int(batch=batch, max_len=max_len)
        w = self.to_k.weight
        shape = (batch, self.heads, max_len, self.d_head)
        return KVCache(
            torch.zeros(shape, dtype=w.dtype, device=w.device), torch.zeros(shape, dtype=w.dtype, device=w.device)
        )

    def forward(
        self,
        x: Tensor,
        *,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        query_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        cache: KVCache | None = None,
        start_pos: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        check_tokens(x, self.dim, "x")
        check_dtype(x, self)
        if context is None:  # self-attention: the padding mask is the queries' too
            context, query_mask = x, (mask if query_mask is None else query_mask)
        else:
            check_tokens(context, self.context_dim, "context")
            if context.shape[0] != x.shape[0]:
                raise ValueError(f"x and context need the same batch size, got {x.shape[0]} and {context.shape[0]}")
        check_mask(mask, context, tokens="x" if context is x else "context")
        check_mask(query_mask, x, "query_mask")
        if cache is not None:
            self._check_cache(cache, x, context is not x or mask is not None or attn_mask is not None)
        elif start_pos is not None:
            raise ValueError(f"start_pos={start_pos!r} needs a cache (from new_cache); without one x starts at 0")
        q = self.split(self.to_q(x))  # (B, H, Nq, d_head)
        kv = fused_linear(context, [self.to_k, self.to_v]) if self.fuse_kv else [self.to_k(context), self.to_v(context)]
        k, v = (self.split(t) for t in kv)  # (B, H, Nk, d_head) each
        del kv
        allowed = None
        if mask is not None:
            allowed = key_padding(mask)  # (B, 1, 1, Nk)
            k, v = drop_padded(k, mask), drop_padded(v, mask)
        if attn_mask is not None:
            allowed = attn_mask if allowed is None else allowed & attn_mask  # (B|1, H|1, Nq, Nk)
        if cache is not None:
            k, v, start_pos = cache.append(k, v, start_pos)  # (B, H, L, d_head) each
            T = q.shape[2]
            allowed, causal = (None if T == 1 else causal_mask(T, start_pos=start_pos, device=x.device)), False
        read, maps = attend(q, k, v, allowed, causal=causal, return_maps=return_maps)  # (B, H, Nq, d_head)
        out = self.merge(read)  # (B, Nq, dim)
        if query_mask is not None:
            out = zero_padded(out, query_mask)  # padded queries output zeros
            if return_maps:
                maps = drop_padded(maps, query_mask)  # and their rows of the maps are zeros
        return (out, maps) if return_maps else out

    def _check_cache(self, cache: object, x: Tensor, other_inputs: bool) -> None:
        if not isinstance(cache, KVCache):
            raise TypeError(
                f"cache must be a KVCache from this layer's new_cache(batch, max_len), got {cache!r}"
                f" ({type(cache).__name__})"
            )
        if other_inputs:
            raise ValueError("a KV cache is for self-attention decoding: pass neither context nor masks with it")
        cache.check(x, self.heads, self.d_head)

    def extra_repr(self) -> str:
        cross = "" if self.context_dim == self.dim else f", context_dim={self.context_dim}"
        return f"dim={self.dim}, heads={self.heads}{cross}" + (", fuse_kv=True" if self.fuse_kv else "")


class MultiHeadAttention(Attention):
    """Multi-head self-attention: H heads of size dim/H, each building an N×N map (the O(N²) baseline).

    :class:`Attention` with the queries, keys and values all from the tokens. ``forward(x (B, N, dim), *, mask (B, N)
    bool = real token, causal=False, return_maps=False, cache=None, start_pos=None) → (B, N, dim)``; with
    ``return_maps=True`` also the maps (B, H, N, N) (rows = queries, columns = keys; padded rows are zeros).
    """

    stages = ()  # no latent stage: every token scores every token
    is_causal = True  # causal=True gives a causal layer (a triangular mask)
    causal_note = "a triangular mask: token t scores only tokens ≤ t."
    returns_tokens = True

    def __init__(self, dim: int, heads: int = 1, *, bias: bool = True) -> None:
        super().__init__(dim, heads=heads, bias=bias)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values, each (B, H, N, d_head)."""
        return self.split(self.to_q(x)), self.split(self.to_k(x)), self.split(self.to_v(x))

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        cache: KVCache | None = None,
        start_pos: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        return super().forward(x, mask=mask, causal=causal, return_maps=return_maps, cache=cache, start_pos=start_pos)
