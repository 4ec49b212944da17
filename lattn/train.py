"""A small, deterministic training loop and the tagger model the lessons train.

``Tagger`` = input projection → one attention *mixer* (full or latent, with a residual) → MLP head, giving
per-token logits. Swapping the mixer is the only difference between the models the notebooks compare.

Example::

    >>> task = ClusterMajority()
    >>> model = Tagger(task.dim, 32, 2, LatentAttention(32, num_latents=4))
    >>> history = train(model, task, steps=200, seed=0)      # tqdm progress bar; history.loss[-1] < history.loss[0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .tasks import Batch

__all__ = ["History", "Tagger", "evaluate", "train"]


class Tagger(nn.Module):
    """Per-token classifier around one attention mixer.

    ``forward(x (B, N, in_dim), mask (B, N)) → logits (B, N, num_classes)``; ``return_maps=True`` also returns the
    mixer's maps. The mixer maps (B, N, dim) → (B, N, dim) and accepts ``mask`` and ``return_maps``.
    """

    def __init__(self, in_dim: int, dim: int, num_classes: int, mixer: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mixer = mixer
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes))

    def forward(self, x: Tensor, mask: Tensor | None = None, return_maps: bool = False):
        h = self.embed(x)  # (B, N, dim)
        mixed = self.mixer(self.norm(h), mask=mask, return_maps=return_maps)
        mixed, maps = mixed if return_maps else (mixed, None)
        logits = self.head(h + mixed)  # (B, N, C)
        return (logits, maps) if return_maps else logits


@dataclass
class History:
    """Per-step training loss and accuracy (fraction of real tokens tagged right)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def _loss_and_accuracy(model: nn.Module, batch: Batch) -> tuple[Tensor, float]:
    logits = model(batch.x, mask=batch.mask)  # (B, N, C)
    m = batch.mask
    loss = nn.functional.cross_entropy(logits[m], batch.y[m])
    acc = (logits[m].argmax(-1) == batch.y[m]).float().mean().item()
    return loss, acc


def train(
    model: nn.Module,
    task: Callable[[int, torch.Generator], Batch],
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` on fresh batches of ``task`` for a fixed budget of ``steps`` (AdamW, no early stopping).

    Deterministic on the CPU: the data come from a generator seeded with ``seed``. Returns the :class:`History`.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be ≥ 1, got steps={steps}, batch_size={batch_size}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    history = History()
    model.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        loss, acc = _loss_and_accuracy(model, task(batch_size, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.loss.append(loss.item())
        history.accuracy.append(acc)
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.2f}", refresh=False)
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: nn.Module, task: Callable[[int, torch.Generator], Batch], batch_size: int = 256, seed: int = 1234):
    """Loss and accuracy of ``model`` on one held-out batch drawn with ``seed``."""
    model.eval()
    loss, acc = _loss_and_accuracy(model, task(batch_size, torch.Generator().manual_seed(seed)))
    return loss.item(), acc
