"""Synthetic tasks made in code (seeded, no downloads), each stated in one line.

A task is a function ``(batch_size, generator) → Batch``; :class:`Batch` holds tokens ``x`` (B, N, D), per-token
targets ``y`` (B, N) (or per-sequence (B,)), a boolean ``mask`` (B, N) and optional per-token ``role`` labels used
to colour plots (e.g. the cluster each token came from).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Batch", "ClusterMajority", "cluster_centres"]


@dataclass
class Batch:
    """One batch of a task: tokens x (B, N, D), targets y, mask (B, N) True = real token, role (B, N) or None."""

    x: Tensor
    y: Tensor
    mask: Tensor
    role: Tensor | None = None


def cluster_centres(num_clusters: int, dim: int, seed: int = 0) -> Tensor:
    """Fixed, well-separated cluster centres (num_clusters, dim): random unit vectors scaled to norm 3."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(num_clusters, dim, generator=g)
    return 3.0 * c / c.norm(dim=-1, keepdim=True)


@dataclass
class ClusterMajority:
    """Tokens come from a few clusters; each token must say whether its cluster is the sequence's most frequent one.

    Needs global context (the cluster counts of the whole sequence) *and* the token itself — a job for latents that
    specialise on clusters. Each sequence draws cluster proportions from a Dirichlet, so the majority varies.
    """

    seq_len: int = 32  # N
    num_clusters: int = 4  # K, also the natural number of latents
    dim: int = 16  # D of the raw tokens
    noise: float = 0.6  # std of the isotropic noise around each centre
    seed: int = 0  # fixes the cluster centres (the "world"); batches use the generator passed in

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.num_clusters < 2 or self.dim < 1:
            raise ValueError(
                f"need seq_len ≥ 1, num_clusters ≥ 2, dim ≥ 1; got {self.seq_len}, {self.num_clusters}, {self.dim}"
            )
        self.centres = cluster_centres(self.num_clusters, self.dim, self.seed)  # (K, D)

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, N, K = batch_size, self.seq_len, self.num_clusters
        # NOTE: torch.distributions ignores generators, so draw Dirichlet(1, …, 1) proportions by hand (seeded).
        gam = -torch.log(torch.rand(B, K, generator=generator).clamp_min(1e-12))  # Gamma(1) = Exp(1)
        props = gam / gam.sum(-1, keepdim=True)  # (B, K)
        role = torch.multinomial(props, N, replacement=True, generator=generator)  # (B, N) cluster of each token
        x = self.centres[role] + self.noise * torch.randn(B, N, self.dim, generator=generator)  # (B, N, D)
        counts = torch.nn.functional.one_hot(role, K).sum(1)  # (B, K)
        majority = counts.argmax(-1)  # (B,) ties → lowest cluster index
        y = (role == majority[:, None]).long()  # (B, N) 1 = my cluster is the majority
        return Batch(x=x, y=y, mask=torch.ones(B, N, dtype=torch.bool), role=role)
