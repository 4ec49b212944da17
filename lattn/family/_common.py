"""Pieces shared by the family: a feed-forward layer and the input checks at every entry point.

Every member returns its maps as :class:`lattn.latent.LatentMaps`. Every attention inside the family is
:class:`lattn.attention.Attention` (cross-attention via ``context=``) except where the maths differs; those members
(Linformer, Nyströmformer, causal Luna, Slot Attention) keep their own core, for the reasons listed in
:mod:`lattn.attention`.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..checks import check_dtype, check_mask, check_tokens

__all__ = ["FeedForward", "check_input", "check_latents", "refuse_causal"]


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
