"""RMSNorm: x / rms(x) · weight over the last axis — the normalisation MLA puts on its latents c_KV and c_Q
(DeepSeek-V2 eq. 9 and 12) and DeepSeek's blocks put before attention and the feed-forward layer.

Unlike ``nn.LayerNorm`` it neither subtracts the mean nor adds a bias. Half inputs are normalised in float32
(:func:`lattn.masks.upcast`) and returned in their own dtype.
Example: ``RMSNorm(4)(torch.tensor([[3., 4., 0., 0.]]))`` → [[1.2, 1.6, 0, 0]] (rms = 2.5, weight 1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .checks import check_int
from .masks import upcast

__all__ = ["RMSNorm"]


class RMSNorm(nn.Module):
    """x / √(mean(x²) + eps) · weight over the last axis (width ``width``); the weight starts at 1."""

    def __init__(self, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        check_int(width=width)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        xf = upcast(x)
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight
