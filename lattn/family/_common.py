"""Pieces shared by the family: the maps record, a feed-forward layer, input checks.

Every attention inside the family is :class:`lattn.attention.Attention` (cross-attention via ``context=``); the
members whose maths differs keep their own core and say why (Linformer, causal Luna, Slot Attention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from ..checks import check_dtype, check_mask, check_tokens
from ..latent import LatentMaps

__all__ = [
    "FamilyMaps",
    "FeedForward",
    "check_input",
    "check_latents",
    "refuse_causal",
]


@dataclass(frozen=True)
class FamilyMaps(LatentMaps):
    """:class:`~lattn.latent.LatentMaps` plus what some family members have besides the three stages.

    write (B, H, N, M), gather (B, H, M, N), broadcast (B, H, N, M) as in ``LatentMaps`` (``None`` = stage unused;
    for Perceiver IO the broadcast rows are the O output queries, (B, H, O, M)).
    effective_map: (B, H, N, N) token→token map when it is *not* broadcast @ gather (Luna causal: each position has
    its own packed context, and the map is lower-triangular; full attention: its own N×N map).
    extra: other named maps, e.g. ``"latent self-attention 1"`` (B, H, M, M) or ``"iteration 2"`` (B, 1, N, M).
    """

    effective_map: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)

    def effective(self) -> Tensor:
        """Token→token map (B, H, N, N): ``effective_map`` when stored, else broadcast @ gather (rank ≤ M)."""
        if self.effective_map is not None:
            return self.effective_map
        return super().effective()


def check_input(module: nn.Module, x: Tensor, mask: Tensor | None = None) -> None:
    """The checks at every family entry point: x (B, N, module.dim) floating in the weights' dtype; mask (B, N) bool."""
    check_tokens(x, module.dim)
    check_dtype(x, module)
    check_mask(mask, x)


def refuse_causal(module: nn.Module, causal: bool) -> None:
    """Raise a clear ValueError (with the module's ``causal_note``) when a non-causal module is asked to be causal."""
    if causal:
        raise ValueError(
            f"{type(module).__name__} cannot be causal: {module.causal_note} For a causal latent mechanism use"
            " lattn.family.LunaCausal or PerceiverAR."
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
