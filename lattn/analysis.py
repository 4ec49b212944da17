"""Small analyses of attention maps: how much of a map a rank-M bottleneck can keep, which latent each group of
tokens reads, and a printable agreement check.

Eckart–Young: the best rank-r approximation of a matrix (in Frobenius norm) keeps its r largest singular values.
Since latent attention's effective token→token map has rank ≤ M, no latent model with M latents can get closer to
a given full attention map than this bound.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["agreement", "latent_per_group", "low_rank", "singular_values"]


def agreement(a: Tensor, b: Tensor, decimals: int = 6) -> str:
    """``"max |diff| = 0.000000"``: the largest absolute difference, printed at ``decimals`` places.

    Raises AssertionError when the difference would not print as 0 at that precision, so the printed line is the
    same on every machine (a raw value like 3e-08 is not) and a real mismatch stops the notebook, with its value.
    """
    if a.shape != b.shape:
        raise ValueError(f"agreement needs tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a.detach().double() - b.detach().double()).abs().max().item() if a.numel() else 0.0
    if not diff < 0.5 * 10.0**-decimals:
        raise AssertionError(f"max |diff| = {diff:.3g}, more than {decimals} decimals allow")
    return f"max |diff| = {0.0:.{decimals}f}"


def latent_per_group(broadcast: Tensor, groups: Tensor) -> list[tuple[int, int, float]]:
    """For each token group (e.g. a cluster): the latent its tokens read most in the broadcast map, and the mean
    weight they give it. ``broadcast`` (N, M) rows sum to 1; ``groups`` (N,) integer labels.
    Returns ``[(group, latent, mean weight), …]`` sorted by group."""
    if broadcast.dim() != 2 or groups.shape != broadcast.shape[:1]:
        raise ValueError(
            f"need broadcast (N, M) and groups (N,), got {tuple(broadcast.shape)} and {tuple(groups.shape)}"
        )
    out = []
    for g in groups.unique().tolist():
        mean = broadcast.detach()[groups == g].double().mean(0)  # (M,)
        out.append((int(g), int(mean.argmax()), float(mean.max())))
    return out


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
