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

Example::

    >>> la = LatentAttention(dim=32, num_latents=4, heads=2)
    >>> out, maps = la(torch.randn(2, 100, 32), return_maps=True)   # out (2, 100, 32)
    >>> maps.write.shape, maps.gather.shape, maps.effective().shape  # (2,2,100,4), (2,2,4,100), (2,2,100,100)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import Attention, attend, drop_padded, project
from .checks import check_dim_heads, check_dtype, check_int, check_map_bytes, check_mask, check_tokens
from .masks import key_padding, masked_softmax, upcast

__all__ = ["STAGES", "LatentAttention", "LatentMaps", "check_stages"]

STAGES = ("write", "gather", "broadcast")
_TOKEN_SIDE = {"write": ("q", "v"), "gather": ("k", "v"), "broadcast": ("q",)}  # what each stage takes from x


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
    """The attention maps of one forward pass (float32 for half inputs; an absent stage is ``None``).

    write (B, H, N, M): rows sum to 1 over latents (0 for padding).
    gather (B, H, M, N): rows sum to 1 over tokens.
    broadcast (B, H, N, M): rows sum to 1 over latents.
    """

    write: Tensor | None = None
    gather: Tensor | None = None
    broadcast: Tensor | None = None

    def effective(self) -> Tensor:
        """Per-head effective map broadcast @ gather, (B, H, N, N): the gather→broadcast path of each head, rank ≤ M.

        Entry (i, j): the weight with which token j's value, read by the latents in gather, reaches token i in
        broadcast, within one head. A diagnostic, not the layer's whole token→token dependence: it leaves out the
        write path (when gather is present), the latents' own contribution, each token's own query, and the mixing
        of heads through the value and output projections — the dependence is not bound to rank M (see
        :func:`lattn.analysis.dependence`). What always holds: everything a token learns about the others passes
        through M latent vectors. Without a gather stage the write map, its columns renormalised over tokens (the
        weighted-mean weights), takes gather's place: then it is the write→broadcast path.
        """
        if self.broadcast is None:
            raise ValueError("the effective token→token map needs a broadcast stage")
        into_latents = self.gather if self.gather is not None else _column_normalise(self.write).transpose(-1, -2)
        if into_latents is None:
            raise ValueError("the effective token→token map needs a gather or write stage")
        B, H, N, _ = self.broadcast.shape
        check_map_bytes(B * H * N * into_latents.shape[-1] * 4, f"effective() at N = {N:,}")
        return self.broadcast @ into_latents  # (B, H, N, N)


def _column_normalise(write: Tensor | None, eps: float = 1e-6) -> Tensor | None:
    """Write map (B, H, N, M) → each latent's column renormalised over tokens (weighted-mean weights)."""
    if write is None:
        return None
    return write / (write.sum(-2, keepdim=True) + eps)


# Fast path: bytes of the float32 score block the write stage handles per step. Below glibc's 32 MiB mmap ceiling,
# so the allocator reuses the block instead of mapping fresh pages on every call (a fresh 64 MiB map at N = 65,536
# cost more in page faults than its matmul); large enough to keep the number of small ops low.
_WRITE_BLOCK_BYTES = 16 * 2**20


def _write_update(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, eps: float, keep_map: bool
) -> tuple[Tensor, Tensor | None]:
    """The write stage on heads: tokens q (B, H, N, dh) query latents k (B, H, M, dh); values v (B, H, N, dh).

    Returns each latent's weighted mean of the token values (B, H, M, dh), float32 (or wider), and — with
    ``keep_map`` — the write map (B, H, N, M). Without it, the tokens are streamed in blocks: each block adds its
    weighted values and weights to running sums, so the (B, H, N, M) map never exists whole. Same result: the
    weighted mean is _column_normalise(w)ᵀ·v, here with the division done on the (M, dh) sums, not the map.
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
        part = torch.einsum("bhnm,bhnd->bhmd", w, upcast(v[:, :, rows]))  # (B, H, M, dh)
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
    outputs are zero. Not causal: every output reads latents that every token wrote to (``causal=True`` is an error).
    """

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
        self.proj = nn.ModuleDict({s: Attention(dim, heads=heads) for s in self.stages})

    @property
    def returns_tokens(self) -> bool:
        """True when forward returns tokens (B, N, D); False when it returns latents (B, M, D)."""
        return "broadcast" in self.stages

    def _tokens(self, stage: str, x: Tensor, mask: Tensor | None) -> list[Tensor]:
        """What ``stage`` takes from the tokens x (B, N, D), in heads (B, H, N, dh): write → [q, v], gather → [k, v],
        broadcast → [q]. One matmul for a stage's projections where that pays (:func:`~lattn.attention.project`);
        padded tokens' keys and values are zeroed, so they reach no product."""
        p, sides = self.proj[stage], _TOKEN_SIDE[stage]
        heads = [p.split(t) for t in project(x, [getattr(p, f"to_{side}") for side in sides])]
        return [t if side == "q" or mask is None else drop_padded(t, mask) for side, t in zip(sides, heads)]

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        if causal:
            raise ValueError(f"LatentAttention cannot be causal: {self.causal_note} Use lattn.family.LunaCausal.")
        check_tokens(x, self.dim)
        check_dtype(x, self)
        check_mask(mask, x)
        B, N, D = x.shape
        H = self.heads
        scale = 1.0 / math.sqrt(D // H)
        z = self.latents.expand(B, -1, -1)  # (B, M, D)
        key_mask = None if mask is None else key_padding(mask)  # (B, 1, 1, N)
        maps: dict[str, Tensor] = {}

        if "write" in self.stages:  # tokens query the latents; each latent takes a weighted mean of token values
            p = self.proj["write"]
            k = p.split(p.to_k(z))  # (B, H, M, dh)
            q, v = self._tokens("write", x, mask)  # (B, H, N, dh) each
            upd, w = _write_update(q, k, v, mask, scale, self.eps, keep_map=return_maps)
            del q, k, v  # NOTE: freed before the next stage projects: one stage's projections exist at a time
            z = z + p.merge(upd.to(x.dtype))  # (B, M, D)
            if return_maps:
                maps["write"] = w  # (B, H, N, M)

        if "gather" in self.stages:  # latents query the tokens; softmax over tokens
            p = self.proj["gather"]
            k, v = self._tokens("gather", x, mask)
            read, gather = attend(p.split(p.to_q(z)), k, v, key_mask, return_maps=return_maps)
            del k, v
            z = z + p.merge(read)  # (B, M, D)
            if return_maps:
                maps["gather"] = gather  # (B, H, M, N)

        out = z
        if "broadcast" in self.stages:  # tokens query the latents; softmax over latents
            p = self.proj["broadcast"]
            (q,) = self._tokens("broadcast", x, mask)
            read, broadcast = attend(q, p.split(p.to_k(z)), p.split(p.to_v(z)), return_maps=return_maps)
            out = p.merge(read)  # (B, N, D)
            if mask is not None:
                out = out.masked_fill(~mask[..., None], 0)
            if return_maps:
                maps["broadcast"] = broadcast  # (B, H, N, M)

        return (out, LatentMaps(**maps)) if return_maps else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_latents={self.num_latents}, heads={self.heads}, stages={self.stages}"
