"""Notebook 03's explorer: what the latents of a *trained* model attend to, and which tokens each serves.

Thin shell: the models are :class:`~lattn.tagger.Tagger` s, the tallies come from :func:`lattn.analysis.latent_profile`
and :func:`lattn.analysis.token_rows`, the token groups from each task's ``groups(batch)``, the figure from
:class:`lattn.viz.bottleneck_maps.LatentMapsView`. The static figures of the shipped results live in
:mod:`lattn.viz.bottleneck`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..analysis import latent_profile, token_rows
from ..viz import as_array
from ..viz.bottleneck_maps import STAGE_VIEWS, LatentMapsView
from .base import Explorer

__all__ = ["TrainedLatentExplorer"]


def _group_reads(maps, groups: torch.Tensor, head: int, names: list[str]) -> np.ndarray:
    """(G, G) from the effective map of sequence 0: row g = how the tokens of group g split their weight over the
    groups (averaged over those tokens; rows sum to 1, rows of absent groups are 0)."""
    eff = token_rows(maps, "effective")[0, head]  # (N, N)
    onehot = torch.nn.functional.one_hot(groups.long(), len(names)).to(eff.dtype)  # (N, G)
    reads = onehot.T @ eff @ onehot  # (G, G): total weight from the tokens of g to the tokens of g'
    return as_array(reads / onehot.sum(0).clamp(min=1)[:, None])


class TrainedLatentExplorer(Explorer):
    """The maps of trained latent-attention taggers on one example, and each latent's specialisation.

    Args:
        models: ``{task name: trained Tagger whose mixer is a LatentAttention}``.
        tasks: ``{task name: task}``; a task gives ``example(seed=…) → Batch`` (one sequence laid out for display),
            ``groups(batch) → (labels (B, N), names)``, and is callable ``(batch_size, generator) → Batch``.
        heads: number of heads of the models.  profile_size: sequences over which the specialisation is tallied.
    Controls: ``task``, ``example`` (seed of the sequence), ``head``, ``stage`` (write / gather / broadcast /
    effective). The figure (:class:`~lattn.viz.bottleneck_maps.LatentMapsView`, ``self.view``): token groups and
    right/wrong strips, the map, and each latent's weight per token of each group (this stage, this head, over
    ``profile_size`` sequences).
    """

    figsize = (11.0, 4.2)

    def __init__(
        self, models: Mapping[str, nn.Module], tasks: Mapping[str, Any], heads: int = 1, profile_size: int = 64
    ) -> None:
        if set(models) != set(tasks):
            raise ValueError(f"models and tasks need the same names, got {sorted(models)} and {sorted(tasks)}")
        self.models, self.tasks, self.heads = dict(models), dict(tasks), heads
        self.profiles = {
            name: {s: as_array(p) for s, p in latent_profile(self.models[name], self.tasks[name], profile_size).items()}
            for name in self.models
        }
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        names = list(self.models)
        return {
            "task": W.Dropdown(options=names, value=names[0], description="task"),
            "example": W.IntSlider(value=0, min=0, max=19, description="example", continuous_update=False),
            "head": W.IntSlider(value=0, min=0, max=self.heads - 1, description="head", continuous_update=False),
            "stage": W.Dropdown(options=list(STAGE_VIEWS), value="write", description="stage"),
        }

    @torch.no_grad()
    def compute(self) -> dict[str, Any]:
        name, stage, h = self.task.value, self.stage.value, self.head.value
        task, model = self.tasks[name], self.models[name]
        batch = task.example(seed=self.example.value)
        logits, maps = model(batch.x, mask=batch.mask, return_maps=True)
        labels, names = task.groups(batch)
        scored = batch.scored[0]  # (N,)
        right = logits[0].argmax(-1) == batch.y[0]  # (N,)
        return {
            "groups": as_array(labels[0]),
            "names": names,
            "verdict": np.where(as_array(scored) > 0, as_array(right), np.nan),  # 1 right, 0 wrong, nan not scored
            "accuracy": float(right[scored].float().mean()),
            "map": as_array(token_rows(maps, stage)[0, h]),  # (N, M) or (N, N)
            "profile": self.profiles[name][stage][h]
            if stage != "effective"
            else _group_reads(maps, labels[0], h, names),
        }

    def setup(self, fig: Figure) -> None:
        self.view = LatentMapsView(fig)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state, task=self.task.value, stage=self.stage.value, head=self.head.value)

    def describe(self, state: dict[str, Any]) -> str:
        return (
            f"task={self.task.value}, example={self.example.value}, head={self.head.value}, "
            f"stage={self.stage.value}, right on this example={100 * state['accuracy']:.0f} %"
        )
