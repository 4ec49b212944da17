"""Small analyses of attention maps: how much of a map a rank-M bottleneck can keep.

Eckart–Young: the best rank-r approximation of a matrix (in Frobenius norm) keeps its r largest singular values.
Since latent attention's effective token→token map has rank ≤ M, no latent model with M latents can get closer to
a given full attention map than this bound.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["low_rank", "singular_values"]


def singular_values(a: Tensor) -> Tensor:
    """Singular values of a (…, N, N) map, largest first, in float64."""
    return torch.linalg.svdvals(a.double())


def low_rank(a: Tensor, rank: int) -> tuple[Tensor, float]:
    """Best rank-``rank`` approximation of a 2-D map (N, K) and its relative Frobenius error ‖a − â‖ / ‖a‖."""
    if a.dim() != 2:
        raise ValueError(f"low_rank expects a 2-D map (N, K), got shape {tuple(a.shape)}")
    if rank < 0:
        raise ValueError(f"rank must be ≥ 0, got {rank}")
    u, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
    r = min(rank, s.numel())
    approx = (u[:, :r] * s[:r]) @ vh[:r]  # (N, K)
    err = (s[r:].square().sum().sqrt() / s.square().sum().sqrt()).item()
    return approx.to(a.dtype), err
