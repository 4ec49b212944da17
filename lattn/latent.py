"""Latent attention: N tokens talk to each other only through M ≪ N learned latent tokens.

Like :class:`~lattn.attention.MultiHeadAttention`, but no token ever scores another token. Three stages, each a
cross-attention between tokens x (B, N, D) and latents z (B, M, D):

1. **write** — tokens query the latents; softmax over the *latents* (each token splits itself among them,
   slot-attention style). Each latent then takes the weighted mean of the token values (its column of the map
   renormalised over tokens) and adds it to itself.                                   map (B, H, N, M)
2. **gather** — latents query the tokens; softmax over the *tokens*; latents add what they read.  map (B, H, M, N)
3. **broadcast** — tokens query the latents; softmax over the *latents*; gives the output.        map (B, H, N, M)

Cost O(N·M·D) instead of O(N²·D). The three stages in one layer are this course's reading of the lesson, not a
published architecture; published designs use subsets: Perceiver = gather, Set Transformer's ISAB and Luna =
("gather", "broadcast"), Slot Attention = write. Any non-empty subset, in this order, is a valid module; without
broadcast it ends at the latents and returns them (B, M, D) instead of tokens.

Each stage is one :class:`~lattn.attention.Attention` layer. Gather and broadcast run its ``forward`` (fast or
teaching path); the write stage keeps its own core, because its values come from the tokens — the query side — and
each latent takes a column-renormalised weighted mean of them, not a softmax over keys.

Example::

    >>> la = LatentAttention(dim=32, num_latents=4, heads=2)
    >>> out, maps = la(torch.randn(2, 100, 32), return_maps=True)   # out (2, 100, 32)
    >>> maps.write.shape, maps.gather.shape, maps.effective().shape  # (2,2,100,4), (2,2,4,100), (2,2,100,100)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .attention import Attention, drop_padded, fused_linear
from .checks import byte_size, check_dim_heads, check_dtype, check_int, check_map_bytes, check_mask, check_tokens
from .masks import map_itemsize, masked_softmax, upcast

__all__ = ["STAGES", "LatentAttention", "LatentMaps", "check_stages"]

STAGES = ("write", "gather", "broadcast")


def check_stages(stages: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """Validate a stage selection: a non-empty subset of ``STAGES`` in that order. Returns it as a tuple."""
    if isinstance(stages, str):
        stages = (stages,)
    stages = tuple(stages)
    if not stages:
        raise ValueError(f"stages must be a non-empty subset of {STAGES}, got ()")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {STAGES}")
    if list(stages) != [s for s in STAGES if s in stages]:
        raise ValueError(f"stages must appear once each in the order {STAGES}, got {stages}")
    return stages


@dataclass(frozen=True)
class LatentMaps:
    """The maps of one forward pass of a latent mechanism — every member of :mod:`lattn.family` returns this type —
    the three stages by name (float32 for half inputs; an absent stage is ``None``; padded tokens' rows are zeros).

    write (B, H, N, M): rows sum to 1 over latents.
    gather (B, H, M, N): rows sum to 1 over tokens (Linformer: its fixed projection F; causal Luna: the packing
    weights, positive but not a softmax).
    broadcast (B, H, N, M): rows sum to 1 over latents (Perceiver IO: one row per output query).
    effective_map (B, H, N, N): the token→token map where it is *not* broadcast @ gather (causal Luna: each position
    has its own packed context, and the map is lower-triangular).
    extra: other named maps, e.g. ``"latent self-attention 1"`` (B, H, M, M) or ``"iteration 2"`` (B, 1, N, M).
    """

    write: Tensor | None = None
    gather: Tensor | None = None
    broadcast: Tensor | None = None
    effective_map: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)

    def effective(self) -> Tensor:
        """Per-head effective map (B, H, N, N): ``effective_map`` when stored, else broadcast @ gather, the
        gather→broadcast path of each head, rank ≤ M.

        Entry (i, j): the weight with which token j's value, read by the latents in gather, reaches token i in
        broadcast, within one head. A diagnostic, not the layer's whole token→token dependence: it leaves out the
        write path (when gather is present), the latents' own contribution, each token's own query, and the mixing
        of heads through the value and output projections — the dependence is not bound to rank M (see
        :func:`lattn.analysis.dependence`). What always holds: everything a token learns about the others passes
        through M latent vectors. Without a gather stage the write map, its columns renormalised over tokens (the
        weighted-mean weights), takes gather's place: then it is the write→broadcast path.
        """
        if self.effective_map is not None:
            return self.effective_map
        if self.broadcast is None:
            raise ValueError("the effective token→token map needs a broadcast stage (or a stored effective_map)")
        if self.gather is None and self.write is None:
            raise ValueError("the effective token→token map needs a gather or write stage")
        into_latents = self.gather if self.gather is not None else _column_normalise(self.write).transpose(-1, -2)
        B, H, N, _ = self.broadcast.shape
        nbytes = B * H * N * into_latents.shape[-1] * self.broadcast.element_size()
        check_map_bytes(nbytes, f"effective() at N = {N:,}", "the (B, H, N, N) result")
        return self.broadcast @ into_latents  # (B, H, N, N)


def _column_normalise(write: Tensor, eps: float = 1e-6) -> Tensor:
    """Write map (B, H, N, M) → each latent's column renormalised over tokens (weighted-mean weights)."""
    return write / (write.sum(-2, keepdim=True) + eps)


def _teaching_bytes(la: LatentAttention, x: Tensor, masked: bool) -> tuple[int, str]:
    """Bytes a ``return_maps=True`` call holds at most (x and the weights aside), and what they are: the
    (B, H, N, M)-sized maps — those kept (one per finished stage) plus the running stage's scores and weights (2), or
    with a padding mask in gather its masked scores and masked weights too (4) — and four (B, N, D)-sized token
    tensors (broadcast's queries, the heads' read, merged, the output). Measured by lattn.complexity.peak_bytes: 50
    to 100 % of this (test_latent.py)."""
    B, N, D = x.shape
    size, tokens = (n * map_itemsize(x.dtype) for n in (B * la.heads * N * la.num_latents, B * N * D))
    maps = max(kept + (4 if masked and stage == "gather" else 2) for kept, stage in enumerate(la.stages))
    held = (
        f"{maps} maps of {byte_size(size)}: one kept per stage, and the scores and weights beside them; 4 token"
        f" tensors of {byte_size(tokens)}"
    )
    return maps * size + 4 * tokens, held


# Fast path: bytes of the float32 score block the write stage handles per step. Below glibc's 32 MiB mmap ceiling,
# so the allocator reuses the block instead of mapping fresh pages on every call (a fresh 64 MiB map at N = 65,536
# cost more in page faults than its matmul); large enough to keep the number of small ops low.
_WRITE_BLOCK_BYTES = 16 * 2**20


def _write_update(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, eps: float, keep_map: bool
) -> tuple[Tensor, Tensor | None]:
    """The write stage on heads: tokens q (B, H, N, d_head) query latents k (B, H, M, d_head); values v (B, H, N, d_head).

    Returns each latent's weighted mean of the token values (B, H, M, d_head), float32 (or wider), and — with
    ``keep_map`` — the write map (B, H, N, M). Without it, the tokens are streamed in blocks: each block adds its
    weighted values and weights to running sums, so the (B, H, N, M) map never exists whole. Same result: the
    weighted mean is _column_normalise(w)ᵀ·v, here with the division done on the (M, d_head) sums, not the map.
    """
    B, H, N, _ = q.shape
    M = k.shape[-2]
    blocks = 1 if keep_map else max(1, math.ceil(B * H * N * M * 4 / _WRITE_BLOCK_BYTES))
    k = upcast(k) * scale  # NOTE: scaling the M latent keys, not the (N, M) scores, saves a pass over the map
    num = den = w = None
    for i in range(blocks):  # equal blocks (sizes differ by ≤ 1 token), so none is a lone token
        rows = slice(N * i // blocks, N * (i + 1) // blocks)
        scores = torch.einsum("bhnd,bhmd->bhnm", upcast(q[:, :, rows]), k)  # (B, H, n, M)
        w = masked_softmax(scores, dim=-1)  # softmax over latents
        del scores  # frees the block before the next one is made
        if mask is not None:
            w = w.masked_fill(~mask[:, None, rows, None], 0)  # padded tokens write nothing (even a NaN one)
        part = torch.einsum("bhnm,bhnd->bhmd", w, upcast(v[:, :, rows]))  # (B, H, M, d_head)
        num = part if num is None else num + part
        den = w.sum(-2) if den is None else den + w.sum(-2)  # (B, H, M): each latent's total weight
    return num / (den.unsqueeze(-1) + eps), (w if keep_map else None)


class LatentAttention(nn.Module):
    """Latent attention with learned latents (M, dim), H heads and the chosen stages.

    Args:
        dim: token width D.  num_latents: M, the size of the bottleneck.  heads: H (dim % H == 0).
        stages: non-empty subset of ("write", "gather", "broadcast") in this order.
        eps: added to each latent's column sum in the write stage (a latent nobody writes to stays put).

    Each stage is one :class:`~lattn.attention.Attention` layer (``proj[stage]``: ``to_q``, ``to_k``, ``to_v``,
    ``to_out``). ``forward(x (B, N, D), *, mask (B, N) bool = real token, causal=False, return_maps=False)``
    returns tokens (B, N, D) when the broadcast stage is present, else the updated latents (B, M, D); with
    ``return_maps=True`` also :class:`LatentMaps`. Padded tokens take no part in write and gather, and their
    outputs (and rows of the maps) are zero. Not causal: every output reads latents that every token wrote to
    (``causal=True`` is an error).
    """

    stages: tuple[str, ...] = STAGES  # the class's default; each instance holds its own selection
    is_causal = False
    causal_note = "the latents gather from every token, so every output reads the future (the naive decoder)."

    def __init__(
        self,
        dim: int,
        num_latents: int,
        heads: int = 1,
        stages: tuple[str, ...] = STAGES,
        *,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        check_dim_heads(dim, heads)
        check_int(num_latents=num_latents)
        self.stages = check_stages(stages)
        self.dim, self.num_latents, self.heads, self.eps = dim, num_latents, heads, eps
        self.latents = nn.Parameter(torch.randn(num_latents, dim))  # (M, D), learned
        # gather reads the N tokens as its context: its keys and values take one matmul where that pays
        self.proj = nn.ModuleDict({s: Attention(dim, heads=heads, fuse_kv=s == "gather") for s in self.stages})

    @property
    def returns_tokens(self) -> bool:
        """True when forward returns tokens (B, N, D); False when it returns latents (B, M, D)."""
        return "broadcast" in self.stages

    def _write(self, x: Tensor, z: Tensor, mask: Tensor | None, keep_map: bool) -> tuple[Tensor, Tensor | None]:
        """The write stage's own core: tokens x (B, N, D) query latents z (B, M, D), and each latent takes the
        weighted mean of the token values. Returns the latents' update (B, M, D) and the map (B, H, N, M) or None."""
        p = self.proj["write"]
        k = p.split(p.to_k(z))  # (B, H, M, d_head)
        q, v = (p.split(t) for t in fused_linear(x, [p.to_q, p.to_v]))  # (B, H, N, d_head) each, one matmul
        if mask is not None:
            v = drop_padded(v, mask)  # padded tokens' values reach no product
        upd, w = _write_update(q, k, v, mask, 1.0 / math.sqrt(p.d_head), self.eps, keep_map)
        return p.merge(upd.to(x.dtype)), w  # NOTE: q, k, v are freed on return, before the next stage projects

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        if causal:
            raise ValueError(f"LatentAttention cannot be causal: {self.causal_note} Use lattn.family.LunaCausal.")
        check_tokens(x, self.dim)
        check_dtype(x, self)
        check_mask(mask, x)
        B, N, _ = x.shape
        if return_maps:  # everything the call holds, every map and what is computed beside it: refused if too big
            nbytes, held = _teaching_bytes(self, x, mask is not None)
            check_map_bytes(nbytes, f"LatentAttention(return_maps=True) at N = {N:,}", held)
        z = self.latents.expand(B, -1, -1)  # (B, M, D)
        maps: dict[str, Tensor | None] = {}

        if "write" in self.stages:  # tokens query the latents; each latent takes a weighted mean of token values
            upd, maps["write"] = self._write(x, z, mask, keep_map=return_maps)  # (B, M, D), (B, H, N, M)
            z = z + upd

        if "gather" in self.stages:  # latents query the tokens; softmax over tokens
            g = self.proj["gather"](z, context=x, mask=mask, return_maps=return_maps)
            read, maps["gather"] = g if return_maps else (g, None)  # (B, M, D), (B, H, M, N)
            z = z + read

        out = z
        if "broadcast" in self.stages:  # tokens query the latents; softmax over latents
            b = self.proj["broadcast"](x, context=z, query_mask=mask, return_maps=return_maps)
            out, maps["broadcast"] = b if return_maps else (b, None)  # (B, N, D), (B, H, N, M)

        return (out, LatentMaps(**maps)) if return_maps else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_latents={self.num_latents}, heads={self.heads}, stages={self.stages}"
