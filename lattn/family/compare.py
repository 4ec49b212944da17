"""The family side by side: the future-leak measurement and the comparison table, for any registered mechanism.

:func:`future_leak` measures causality instead of trusting it: perturb one token, and report how much the outputs
at *earlier* positions moved (exactly 0 for a causal mechanism). :func:`comparison_table` puts stages, cost, FLOPs
(formula and counted), causality and the measured leak in one table. The mechanisms themselves live in
:mod:`lattn.family.registry` (re-exported here).

Example::

    >>> print(comparison_table(n=256, m=16, dim=32))        # stages, O(·), FLOPs formula = counted, leak, paper
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import complexity as cx
from ..latent import STAGES
from .registry import MECHANISMS, Mechanism, Sizes, get_mechanism

__all__ = [
    "MECHANISMS",
    "ComparisonTable",
    "LeakProfile",
    "Mechanism",
    "Sizes",
    "comparison_table",
    "future_leak",
    "leak_profile",
]


@dataclass(frozen=True)
class LeakProfile:
    """What perturbing token ``position`` did to every output: ``change[i]`` = max |Δ| of the output at
    ``positions[i]`` (over batch and features)."""

    position: int
    positions: list[int]  # the sequence position of each output
    change: Tensor  # (number of outputs,)

    @property
    def leak(self) -> float | None:
        """The largest change of an output *before* ``position`` (0.0 = causal); None when no output sits there."""
        earlier = [i for i, p in enumerate(self.positions) if p < self.position]
        return self.change[earlier].max().item() if earlier else None


def leak_profile(mechanism: Mechanism | str, module: nn.Module, x: Tensor, position: int) -> LeakProfile | None:
    """Perturb token ``position`` of x (B, N, D) and measure every output (:class:`LeakProfile`).

    None when the outputs are latents (Perceiver, PMA, Slot Attention: no positions). A causal mechanism shows
    exactly 0 at every position before ``position``.
    """
    mech = get_mechanism(mechanism)
    n = x.shape[1]
    if not 0 <= position < n:
        raise ValueError(f"position must be in [0, {n}), got {position}")
    positions = mech.positions(module, n)
    if positions is None:
        return None
    changed = x.clone()
    changed[:, position] += 3.0 * torch.randn(x.shape[0], x.shape[2], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, _ = mech.run(module, x, return_maps=False)
        after, _ = mech.run(module, changed, return_maps=False)
    return LeakProfile(position, list(positions), (before - after).abs().amax(dim=(0, 2)))


def future_leak(mechanism: Mechanism | str, module: nn.Module, x: Tensor, position: int | None = None) -> float | None:
    """How far outputs at positions < ``position`` move when token ``position`` changes (max |Δ|); 0.0 = causal.

    ``x`` (B, N, D); ``position`` defaults to the last token. None when the mechanism has no per-position
    outputs (Perceiver, PMA, Slot Attention return latents) or no output sits before ``position``.
    """
    position = x.shape[1] - 1 if position is None else position
    profile = leak_profile(mechanism, module, x, position)
    return None if profile is None else profile.leak


def _si(flops: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.2f} {unit}"
    return str(flops)


@dataclass(frozen=True)
class ComparisonTable:
    """The rows of :func:`comparison_table`; shows as Markdown in a notebook and as aligned text elsewhere."""

    n: int
    m: int
    sizes: Sizes
    rows: list[dict]

    COLUMNS = ("mechanism", "write", "gather", "broadcast", "cost", "FLOPs formula", "FLOPs counted", "causal",
               "future leak", "good for", "paper")  # fmt: skip

    def cells(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            # only the verdict: the size of a leak depends on the random weights (see future_leak for numbers)
            leak = "n/a (latents)" if r["leak"] is None else ("0 (exact)" if r["leak"] == 0 else "leaks")
            out.append(
                [
                    r["title"],
                    *("✓" if s in r["stages"] else "" for s in STAGES),
                    r["big_o"],
                    _si(r["flops_formula"]),
                    _si(r["flops_counted"]),
                    "yes" if r["causal"] else "no",
                    leak,
                    r["good_for"],
                    r["paper"],
                ]
            )
        return out

    def markdown(self) -> str:
        head = "| " + " | ".join(self.COLUMNS) + " |\n|" + "---|" * len(self.COLUMNS) + "\n"
        return head + "\n".join("| " + " | ".join(c) + " |" for c in self.cells())

    def text(self, columns: tuple[str, ...] = COLUMNS[:9]) -> str:
        """Aligned plain text of the chosen columns (default: all but the long 'good for' and 'paper')."""
        idx = [self.COLUMNS.index(c) for c in columns]
        grid = [list(columns)] + [[row[i] for i in idx] for row in self.cells()]
        widths = [max(len(r[j]) for r in grid) for j in range(len(idx))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in grid]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return f"N = {self.n}, M = {self.m}, D = {self.sizes.dim}, heads = {self.sizes.heads}\n\n" + self.markdown()

    def __repr__(self) -> str:
        return f"N = {self.n}, M = {self.m}, D = {self.sizes.dim}, heads = {self.sizes.heads}\n" + self.text()


def comparison_table(
    n: int = 256,
    m: int = 16,
    *,
    dim: int = 32,
    heads: int = 2,
    keys: list[Mechanism | str] | None = None,
    seed: int = 0,
) -> ComparisonTable:
    """Every mechanism at sequence length ``n`` and ``m`` latents (seeds, packed length, slots, k): stages used,
    big-O, FLOPs from the formula and counted by :func:`lattn.complexity.count_flops` on the real module (batch 1,
    fast path; they must agree), causal support and the measured :func:`future_leak` at the last position.

    ``keys``: registry keys or :class:`Mechanism` entries of your own (any module that follows the convention)."""
    sizes = Sizes(dim=dim, heads=heads, num_latents=m, seq_len=n)
    x = torch.randn(1, n, dim, generator=torch.Generator().manual_seed(seed))
    rows = []
    for mech in map(get_mechanism, keys or list(MECHANISMS)):
        key = mech.key
        module = mech.build(sizes, seed)
        counted = cx.count_flops(lambda mech=mech, module=module: mech.run(module, x, return_maps=False))
        rows.append(
            {
                "key": key,
                "title": mech.title,
                "stages": mech.stages,
                "big_o": mech.big_o,
                "flops_formula": mech.cost(n, m, sizes).flops,
                "flops_counted": counted,
                "causal": mech.causal,
                "leak": future_leak(mech, module, x),
                "good_for": mech.good_for,
                "paper": mech.paper,
            }
        )
    return ComparisonTable(n, m, sizes, rows)
