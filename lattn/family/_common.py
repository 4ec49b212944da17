"""Pieces shared by the family: the maps record, a cross-attention layer, a feed-forward layer, input checks.

``CrossAttention`` is :class:`~lattn.attention.MultiHeadAttention` with the queries taken from one sequence and the
keys/values from another; its projections carry the same names as a :class:`~lattn.latent.LatentAttention` stage
(``to_q``, ``to_k``, ``to_v``, ``to_out``), so weights copy across with ``load_state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..attention import (
    check_dim_heads,
    check_mask,
    check_tokens,
    fused_attention,
    merge_heads,
    scaled_dot_product,
    split_heads,
    upcast,
)
from ..latent import LatentMaps

__all__ = [
    "CrossAttention",
    "FamilyMaps",
    "FeedForward",
    "block_causal_mask",
    "check_latents",
    "check_positive",
    "refuse_causal",
    "softmax",
]


@dataclass(frozen=True)
class FamilyMaps(LatentMaps):
    """:class:`~lattn.latent.LatentMaps` plus what some family members have besides the three stages.

    write (B, H, N, M), gather (B, H, M, N), broadcast (B, H, N, M) as in ``LatentMaps`` (``None`` = stage unused;
    for Perceiver IO the broadcast rows are the O output queries, (B, H, O, M)).
    effective_map: (B, H, N, N) token→token map when it is *not* broadcast @ gather (Luna causal: each position has
    its own packed context, and the map is lower-triangular).
    extra: other named maps, e.g. ``"latent self-attention 1"`` (B, H, M, M) or ``"iteration 2"`` (B, 1, N, M).
    """

    effective_map: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)

    def effective(self) -> Tensor:
        """Token→token map (B, H, N, N): ``effective_map`` when stored, else broadcast @ gather (rank ≤ M)."""
        if self.effective_map is not None:
            return self.effective_map
        return super().effective()


def softmax(scores: Tensor, dim: int = -1) -> Tensor:
    """Softmax along ``dim`` (float32 for half inputs; float64 stays float64, so gradcheck sees full precision)."""
    return upcast(scores).softmax(dim)


def check_positive(**values: int) -> None:
    """Raise ValueError unless every named value is an integer ≥ 1."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")


def refuse_causal(causal: bool, who: str, why: str) -> None:
    """Raise a clear ValueError when a causal mode is asked of a mechanism that cannot have one."""
    if causal:
        raise ValueError(
            f"{who} cannot be causal: {why} For a causal latent mechanism use lattn.family.LunaCausal or PerceiverAR."
        )


def check_latents(z: Tensor, num: int, dim: int, batch: int, name: str) -> None:
    """Raise a clear error unless ``z`` is a floating (batch, num, dim) tensor (slots, packed sequence …)."""
    check_tokens(z, dim, name)
    if z.shape[0] != batch or z.shape[1] != num:
        raise ValueError(f"{name} must have shape (B={batch}, {num}, {dim}), got {tuple(z.shape)}")


class FeedForward(nn.Module):
    """Position-wise MLP ``dim → mult·dim → dim`` with a GELU: (…, dim) → (…, dim)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries (B, Nq, D) read context (B, Nk, D); softmax over the context.

    ``forward(queries, context, mask=None, attn_mask=None, return_maps=False)`` → (B, Nq, D), with
    ``return_maps=True`` also the map (B, H, Nq, Nk). ``mask`` (B, Nk) bool marks real context tokens; ``attn_mask``
    (Nq, Nk) bool says which query may see which context position (Perceiver AR's block-causal mask). No residual:
    the caller adds one where the architecture has it. Fast path (fused SDPA) without maps, teaching path with.
    """

    def __init__(self, dim: int, heads: int = 1) -> None:
        super().__init__()
        check_dim_heads(dim, heads)
        self.dim, self.heads = dim, heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(dim, dim)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        queries: Tensor,
        context: Tensor,
        mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        return_maps: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        check_tokens(queries, self.dim, "queries")
        check_tokens(context, self.dim, "context")
        if queries.shape[0] != context.shape[0]:
            raise ValueError(
                f"queries and context need the same batch size, got {queries.shape[0]} and {context.shape[0]}"
            )
        check_mask(mask, context)
        H = self.heads
        q = split_heads(self.to_q(queries), H)  # (B, H, Nq, dh)
        k, v = split_heads(self.to_k(context), H), split_heads(self.to_v(context), H)  # (B, H, Nk, dh)
        allowed = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, Nk)
        if attn_mask is not None:
            allowed = attn_mask if allowed is None else allowed & attn_mask  # (B|1, 1, Nq, Nk)
        if return_maps:
            read, maps = scaled_dot_product(q, k, v, allowed)  # (B, H, Nq, dh), (B, H, Nq, Nk)
            return self.to_out(merge_heads(read)), maps
        return self.to_out(merge_heads(fused_attention(q, k, v, allowed)))  # (B, Nq, D)


def block_causal_mask(num_queries: int, num_keys: int, device: torch.device | None = None) -> Tensor:
    """(Nq, Nk) bool for queries sitting at the *last* Nq of Nk positions: query i (position Nk − Nq + i) sees
    keys j ≤ Nk − Nq + i. Example: 2 queries over 4 keys → [[1, 1, 1, 0], [1, 1, 1, 1]]."""
    offset = num_keys - num_queries
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril(offset)
