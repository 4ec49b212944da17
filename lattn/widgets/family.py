"""Explorers of notebook 04: the latent-attention family on one input, and the future-leak test.

Thin shells: every module, map and measurement comes from :mod:`lattn.family` (the registry
:data:`~lattn.family.registry.MECHANISMS`, the one leak measurement :func:`~lattn.family.compare.leak_profile` /
:func:`~lattn.family.compare.future_leak`); the figures are :class:`~lattn.viz.family.FamilyView` and
:class:`~lattn.viz.family.LeakView`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..family.compare import MECHANISMS, Sizes, future_leak, leak_profile
from ..latent import STAGES
from ..viz import as_array
from ..viz.family import FamilyView, LeakView
from .base import Explorer

__all__ = ["FamilyExplorer", "LeakExplorer"]

LEAK_KEYS = ("latent", "isab", "luna", "luna_causal", "perceiver_ar")
DIAGRAMS = {"full": "causal", "perceiver_ar": "perceiver_ar_full"}  # registry key → viz.diagram preset (else same)


def _slider(description: str, lo: int, hi: int, value: int) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, description=description, continuous_update=False)


class _Modules:
    """Small family members built on demand (seeded), cached by (mechanism, M, N for Linformer)."""

    def __init__(self, dim: int, heads: int, seed: int) -> None:
        self.dim, self.heads, self.seed = dim, heads, seed
        self.cache: dict[tuple[str, int, int], nn.Module] = {}

    def get(self, key: str, m: int, n: int) -> nn.Module:
        n = n if key == "linformer" else 0  # only Linformer is tied to one sequence length
        if (key, m, n) not in self.cache:
            sizes = Sizes(dim=self.dim, heads=self.heads, num_latents=m, seq_len=max(n, 1))
            self.cache[key, m, n] = MECHANISMS[key].build(sizes, self.seed)
        return self.cache[key, m, n]


class FamilyExplorer(Explorer):
    """One input sequence through any member of the family: the stages it uses, their maps, its token→token map.

    Args: ``tokens`` (1, N_max, D); ``keys`` the mechanisms to offer (default: all of MECHANISMS); ``heads``;
    ``m_range`` of the latent slider; ``seed`` of the (untrained) modules.
    Controls: ``mechanism``, ``n`` (tokens), ``m`` (latents / inducing points / packed length / slots / k),
    ``mark_future`` (veil the cells where a token would read a later token). Head 0 is shown.
    ``state``: ``stages``, one (rows, cols) array per stage or None, ``effective`` (N, N) or None, ``future_leak``
    (:func:`~lattn.family.compare.future_leak` at the last token: 0.0 = causal; None when the outputs are latents),
    ``mark_future``, ``diagram`` (the schematic's preset). The figure is :attr:`view` (a :class:`~lattn.viz.family.FamilyView`).
    """

    figsize = (11.5, 3.8)

    def __init__(
        self,
        tokens: Tensor,
        keys: Sequence[str] | None = None,
        *,
        heads: int = 2,
        m_range: tuple[int, int] = (2, 8),
        seed: int = 0,
    ) -> None:
        if tokens.dim() != 3 or tokens.shape[0] != 1:
            raise ValueError(f"tokens must be one sequence (1, N, D), got shape {tuple(tokens.shape)}")
        self.keys = list(keys or MECHANISMS)
        unknown = [k for k in self.keys if k not in MECHANISMS]
        if unknown:
            raise ValueError(f"unknown mechanism(s) {unknown}; choose from {list(MECHANISMS)}")
        self.tokens, self.m_range = tokens.detach(), m_range
        self.modules = _Modules(tokens.shape[-1], heads, seed)
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        n_max = self.tokens.shape[1]
        lo, hi = self.m_range
        options = [(MECHANISMS[k].title, k) for k in self.keys]
        default = "latent" if "latent" in self.keys else self.keys[0]
        return {
            "mechanism": W.Dropdown(options=options, value=default, description="mechanism"),
            "n": _slider("N tokens", 4, n_max, min(16, n_max)),
            "m": _slider("M latents", lo, hi, min(max(4, lo), hi)),  # also: inducing points, slots, l, k
            "mark_future": W.Checkbox(value=True, description="mark the future"),
        }

    @torch.no_grad()
    def compute(self) -> dict[str, Any]:
        key, n, m = self.mechanism.value, self.n.value, self.m.value
        mech = MECHANISMS[key]
        module = self.modules.get(key, m, n)
        _, maps = mech.run(module, self.tokens[:, :n])
        state: dict[str, Any] = {"key": key, "title": mech.title, "stages": mech.stages, "n": n, "m": m}
        state["names"] = {s: mech.stage_names.get(s, "") for s in STAGES}
        full = isinstance(maps, Tensor)  # full attention: its own (B, H, N, N) map, no latent stage
        for s in STAGES:
            stage_map = None if full else getattr(maps, s)
            state[s] = None if stage_map is None else np.abs(as_array(stage_map[0, 0]))  # Linformer's F may be < 0
        try:
            eff = np.abs(as_array((maps if full else maps.effective())[0, 0]))
        except ValueError:  # no broadcast stage: the outputs are latents (or Perceiver AR's latent positions)
            eff = None
        state["effective"] = eff if eff is not None and eff.shape == (n, n) else None
        state["gather_offset"] = n - state["gather"].shape[0] if key == "perceiver_ar" else None
        state["future_leak"] = future_leak(mech, module, self.tokens[:, :n])
        state["mark_future"] = self.mark_future.value
        state["diagram"] = DIAGRAMS.get(key, key)
        return state

    def setup(self, fig: Figure) -> None:
        self.view = FamilyView(fig)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

    def states(self, keys: Sequence[str], *, n: int = 16, m: int = 4) -> list[dict[str, Any]]:
        """The computed state (maps of the used stages, token→token map …) of each mechanism in ``keys`` at N = ``n``,
        M = ``m``, for the static figures of :mod:`lattn.viz.family`. Computed without rendering: the explorer's
        controls and picture are left as they were."""
        controls = (self.mechanism, self.n, self.m)
        before = [c.value for c in controls]
        for c in controls:
            c.unobserve(self._on_change, names="value")
        try:
            out = []
            for key in keys:
                self.mechanism.value, self.n.value, self.m.value = key, n, m
                out.append(self.compute())
            return out
        finally:
            for c, value in zip(controls, before):
                c.value = value
            for c in controls:
                c.observe(self._on_change, names="value")

    def describe(self, state: dict[str, Any]) -> str:
        leak = state["future_leak"]
        future = "n/a (latents)" if leak is None else ("0 (exact)" if leak == 0 else f"{leak:.2g}")
        return (
            f"mechanism={state['key']}, N={state['n']}, M={state['m']}, stages={'+'.join(state['stages']) or 'none'}, "
            f"future leak={future}, mark future={self.mark_future.value}"
        )


class LeakExplorer(Explorer):
    """Perturb token t and watch every output: earlier outputs of a causal mechanism stay exactly where they were.

    Args: ``tokens`` (1, N, D); ``keys`` the mechanisms to compare; ``m`` latents; ``heads``; ``seed``.
    Control: ``position`` (the perturbed token). ``state["profiles"][key]`` = (output positions, max |Δ| at each);
    ``state["leaks"][key]`` = the largest change before the perturbed position (0.0 = causal), from
    :class:`~lattn.family.compare.LeakProfile`. The figure is :attr:`view` (a :class:`~lattn.viz.family.LeakView`).
    """

    figsize = (9.0, 3.6)

    def __init__(
        self,
        tokens: Tensor,
        keys: Sequence[str] = LEAK_KEYS,
        *,
        m: int = 8,
        heads: int = 2,
        seed: int = 0,
    ) -> None:
        if tokens.dim() != 3 or tokens.shape[0] != 1:
            raise ValueError(f"tokens must be one sequence (1, N, D), got shape {tuple(tokens.shape)}")
        latent_only = [k for k in keys if MECHANISMS[k].outputs == "latents"]
        if latent_only:
            raise ValueError(f"{latent_only} output latents, which have no positions to leak into")
        self.tokens, self.keys = tokens.detach(), list(keys)
        modules = _Modules(tokens.shape[-1], heads, seed)
        self.models = {k: modules.get(k, m, tokens.shape[1]) for k in self.keys}
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        n = self.tokens.shape[1]
        return {"position": _slider("perturb token", 1, n - 1, 3 * n // 4)}  # Perceiver AR outputs late positions

    def compute(self) -> dict[str, Any]:
        t = self.position.value
        profiles, leaks = {}, {}
        for key, module in self.models.items():
            profile = leak_profile(key, module, self.tokens, t)
            profiles[key] = (np.array(profile.positions), as_array(profile.change))
            leaks[key] = profile.leak
        return {"position": t, "profiles": profiles, "leaks": leaks}

    def setup(self, fig: Figure) -> None:
        lines = {key: (MECHANISMS[key].title, MECHANISMS[key].causal) for key in self.keys}
        self.view = LeakView(fig, self.tokens.shape[1], lines)

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

    def describe(self, state: dict[str, Any]) -> str:
        moved = ", ".join(f"{k}: {'moved' if v else 'exact'}" for k, v in state["leaks"].items() if v is not None)
        return f"position={state['position']}; earlier outputs — {moved}"
