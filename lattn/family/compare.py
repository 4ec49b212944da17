"""The family side by side: one registry, one way to run every member, the comparison table, the future-leak test.

``MECHANISMS[key]`` describes a mechanism (paper, what it is good for, big-O cost) and knows how to build a small
instance (:meth:`Mechanism.build`), run it uniformly (:meth:`Mechanism.run` → output, maps) and price it
(:meth:`Mechanism.cost`, from :mod:`lattn.complexity`). Its stages and causality come from the module class itself
(``stages_used``, ``is_causal``, ``causal_note``), so the table cannot drift from the code.

:func:`future_leak` measures causality instead of trusting it: perturb one token, and report how much the outputs
at *earlier* positions moved (exactly 0 for a causal mechanism). :func:`comparison_table` puts it all in one table.

Example::

    >>> print(comparison_table(n=256, m=16, dim=32))        # stages, O(·), FLOPs formula = counted, leak, paper
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import complexity as cx
from ..attention import MultiHeadAttention
from ..latent import STAGES, LatentAttention, LatentMaps
from ._common import FamilyMaps
from .linformer import Linformer
from .luna import Luna, LunaCausal
from .perceiver import Perceiver, PerceiverAR, PerceiverIO
from .set_transformer import ISAB, PMA
from .slot import SlotAttention

__all__ = ["MECHANISMS", "ComparisonTable", "Mechanism", "Sizes", "comparison_table", "future_leak", "leak_profile"]


@dataclass(frozen=True)
class Sizes:
    """The sizes a mechanism is built and priced at."""

    dim: int = 16  # token width D
    heads: int = 2  # attention heads (Slot Attention always uses one)
    num_latents: int = 4  # M: latents, inducing points, seeds, packed length l, slots, Linformer's k
    seq_len: int = 12  # N: needed up front by Linformer only

    @property
    def dim_head(self) -> int:
        return self.dim // self.heads


def _plain(module: nn.Module, x: Tensor, return_maps: bool) -> tuple[Tensor, LatentMaps | None]:
    out = module(x, return_maps=return_maps)
    return out if return_maps else (out, None)


def _full(module: nn.Module, x: Tensor, return_maps: bool) -> tuple[Tensor, LatentMaps | None]:
    if not return_maps:
        return module(x, causal=True), None
    out, maps = module(x, causal=True, return_maps=True)  # maps (B, H, N, N)
    return out, FamilyMaps(effective_map=maps)


def _luna(module: nn.Module, x: Tensor, return_maps: bool) -> tuple[Tensor, LatentMaps | None]:
    if not return_maps:
        return module(x)[0], None  # drop the packed sequence for the next layer
    out, _packed_next, maps = module(x, return_maps=True)
    return out, maps


def _slots(module: nn.Module, x: Tensor, return_maps: bool) -> tuple[Tensor, LatentMaps | None]:
    slots = module.initial_slots(x.shape[0], torch.Generator().manual_seed(0)).to(x.dtype)  # reproducible draw
    out = module(x, slots=slots, return_maps=return_maps)
    return out if return_maps else (out, None)


@dataclass(frozen=True)
class Mechanism:
    """One member of the family: how to build, run and price it, and what it is for."""

    key: str
    title: str
    cls: type[nn.Module]
    paper: str
    good_for: str
    big_o: str  # cost per layer, in the notation of the lesson
    outputs: str  # "tokens", "latents" or "latent positions" (Perceiver AR: the last M positions)
    make: Callable[[Sizes], nn.Module]
    price: Callable[[int, int, Sizes, int], cx.Cost]  # (N, M, sizes, batch) → Cost
    call: Callable[[nn.Module, Tensor, bool], tuple[Tensor, LatentMaps | None]] = _plain
    stage_names: dict[str, str] = field(default_factory=dict)  # what each stage is called in the paper

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages of write / gather / broadcast this mechanism uses (from the class)."""
        if self.cls is LatentAttention:
            return STAGES
        return tuple(getattr(self.cls, "stages_used", ()))

    @property
    def causal(self) -> bool:
        return self.cls is MultiHeadAttention or bool(getattr(self.cls, "is_causal", False))

    @property
    def causal_note(self) -> str:
        if self.cls is MultiHeadAttention:
            return "a triangular mask: token t scores only tokens ≤ t."
        if self.cls is LatentAttention:
            return "the latents gather from every token, so every output reads the future (the naive decoder)."
        return self.cls.causal_note

    def build(self, sizes: Sizes = Sizes(), seed: int = 0) -> nn.Module:
        """A freshly initialised instance (seeded), in eval mode."""
        with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's random stream
            torch.manual_seed(seed)
            return self.make(sizes).eval()

    def run(self, module: nn.Module, x: Tensor, return_maps: bool = True) -> tuple[Tensor, LatentMaps | None]:
        """Output (B, N | M | M', D) and maps (None when ``return_maps=False``), the same way for every member."""
        return self.call(module, x, return_maps)

    def cost(self, n: int, m: int, sizes: Sizes = Sizes(), batch: int = 1) -> cx.Cost:
        """FLOPs (and peak bytes) from :mod:`lattn.complexity`, fast path."""
        return self.price(n, m, sizes, batch)

    def positions(self, module: nn.Module, n: int) -> range | None:
        """Sequence positions of the outputs, or None when the outputs are latents (no positions)."""
        if self.outputs == "tokens":
            return range(n)
        if self.outputs == "latent positions":
            return module.output_positions(n)
        return None


def _hs(s: Sizes, b: int) -> dict:
    return {"batch": b, "heads": s.heads, "dim_head": s.dim_head}


MECHANISMS: dict[str, Mechanism] = {
    m.key: m
    for m in [
        Mechanism(
            "full",
            "Full attention (causal)",
            MultiHeadAttention,
            "Vaswani et al. 2017, arXiv:1706.03762",
            "the baseline: every token scores every earlier token",
            "O(N²)",
            "tokens",
            lambda s: MultiHeadAttention(s.dim, s.heads),
            lambda n, m, s, b: cx.full_attention_cost(n, **_hs(s, b)),
            call=_full,
        ),
        Mechanism(
            "latent",
            "Latent attention (the lesson)",
            LatentAttention,
            "the lesson's three stages",
            "a bidirectional token mixer at O(N·M)",
            "O(N·M)",
            "tokens",
            lambda s: LatentAttention(s.dim, s.num_latents, s.heads),
            lambda n, m, s, b: cx.total_cost(cx.latent_attention_cost(n, m, **_hs(s, b))),
        ),
        Mechanism(
            "perceiver",
            "Perceiver",
            Perceiver,
            "Jaegle et al. 2021, arXiv:2103.03206",
            "encoding huge inputs (pixels, audio, point clouds) into a fixed latent array",
            "O(N·M + L·M²)",
            "latents",
            lambda s: Perceiver(s.dim, s.num_latents, heads=s.heads, cross_heads=s.heads),
            lambda n, m, s, b: cx.perceiver_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "cross-attention"},
        ),
        Mechanism(
            "perceiver_io",
            "Perceiver IO",
            PerceiverIO,
            "Jaegle et al. 2021, arXiv:2107.14795",
            "outputs of any shape via output queries (per-token labels, flow, masked LM)",
            "O(N·M + L·M² + O·M)",
            "tokens",
            lambda s: PerceiverIO(s.dim, s.num_latents, heads=s.heads, cross_heads=s.heads),
            lambda n, m, s, b: cx.perceiver_io_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "encode", "broadcast": "output queries"},
        ),
        Mechanism(
            "perceiver_ar",
            "Perceiver AR",
            PerceiverAR,
            "Hawthorne et al. 2022, arXiv:2202.07765",
            "long-context autoregressive generation (text, music, images)",
            "O(N·M + L·M²)",
            "latent positions",
            lambda s: PerceiverAR(s.dim, s.num_latents, heads=s.heads, cross_heads=s.heads),
            lambda n, m, s, b: cx.perceiver_ar_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "block-causal cross-attn"},
        ),
        Mechanism(
            "isab",
            "Set Transformer ISAB",
            ISAB,
            "Lee et al. 2019, arXiv:1810.00825",
            "set-to-set tasks on large sets (clustering, point clouds)",
            "O(N·M)",
            "tokens",
            lambda s: ISAB(s.dim, s.num_latents, heads=s.heads),
            lambda n, m, s, b: cx.isab_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "MAB(I, X)", "broadcast": "MAB(X, H)"},
        ),
        Mechanism(
            "pma",
            "Set Transformer PMA",
            PMA,
            "Lee et al. 2019, arXiv:1810.00825",
            "pooling a set into k vectors, order-free",
            "O(N·k)",
            "latents",
            lambda s: PMA(s.dim, s.num_latents, heads=s.heads),
            lambda n, m, s, b: cx.pma_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "MAB(S, rFF(X))"},
        ),
        Mechanism(
            "luna",
            "Luna",
            Luna,
            "Ma et al. 2021, arXiv:2106.01540",
            "long-sequence encoders; the packed sequence carries context between layers",
            "O(N·l)",
            "tokens",
            lambda s: Luna(s.dim, s.num_latents, heads=s.heads),
            lambda n, m, s, b: cx.luna_cost(n, m, **_hs(s, b)),
            call=_luna,
            stage_names={"gather": "pack", "broadcast": "unpack"},
        ),
        Mechanism(
            "luna_causal",
            "Luna causal",
            LunaCausal,
            "Ma et al. 2021, arXiv:2106.01540",
            "decoders with an O(l·d) decoding state instead of a growing KV cache",
            "O(N·l)",
            "tokens",
            lambda s: LunaCausal(s.dim, s.num_latents, heads=s.heads),
            lambda n, m, s, b: cx.luna_causal_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "causal pack", "broadcast": "unpack"},
        ),
        Mechanism(
            "slot",
            "Slot Attention",
            SlotAttention,
            "Locatello et al. 2020, arXiv:2006.15055",
            "object-centric learning: binding inputs to M competing slots",
            "O(T·N·M)",
            "latents",
            lambda s: SlotAttention(s.dim, s.num_latents),
            lambda n, m, s, b: cx.slot_attention_cost(n, m, batch=b, dim=s.dim),
            call=_slots,
            stage_names={"write": "slots compete, T rounds"},
        ),
        Mechanism(
            "linformer",
            "Linformer",
            Linformer,
            "Wang et al. 2020, arXiv:2006.04768",
            "encoders at one fixed sequence length",
            "O(N·k)",
            "tokens",
            lambda s: Linformer(s.dim, s.seq_len, s.num_latents, heads=s.heads),
            lambda n, m, s, b: cx.linformer_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "E·K, F·V (fixed)", "broadcast": "read k keys"},
        ),
    ]
}


def _mechanism(mechanism: Mechanism | str) -> Mechanism:
    if isinstance(mechanism, Mechanism):
        return mechanism
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mechanism!r}; choose from {list(MECHANISMS)}")
    return MECHANISMS[mechanism]


def leak_profile(
    mechanism: Mechanism | str, module: nn.Module, x: Tensor, position: int
) -> tuple[list[int], Tensor] | None:
    """Perturb token ``position`` of x (B, N, D) and measure every output: (output positions, max |Δ| at each).

    None when the outputs are latents (Perceiver, PMA, Slot Attention: no positions). A causal mechanism shows
    exactly 0 at every position before ``position``.
    """
    mech = _mechanism(mechanism)
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
    return list(positions), (before - after).abs().amax(dim=(0, 2))  # (number of outputs,)


def future_leak(mechanism: Mechanism | str, module: nn.Module, x: Tensor, position: int | None = None) -> float | None:
    """How far outputs at positions < ``position`` move when token ``position`` changes (max |Δ|); 0.0 = causal.

    ``x`` (B, N, D); ``position`` defaults to the last token. None when the mechanism has no per-position
    outputs (Perceiver, PMA, Slot Attention return latents) or no output sits before ``position``.
    """
    position = x.shape[1] - 1 if position is None else position
    profile = leak_profile(mechanism, module, x, position)
    if profile is None:
        return None
    earlier = [i for i, p in enumerate(profile[0]) if p < position]
    return profile[1][earlier].max().item() if earlier else None


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
    n: int = 256, m: int = 16, *, dim: int = 32, heads: int = 2, keys: list[str] | None = None, seed: int = 0
) -> ComparisonTable:
    """Every mechanism at sequence length ``n`` and ``m`` latents (seeds, packed length, slots, k): stages used,
    big-O, FLOPs from the formula and counted by :func:`lattn.complexity.count_flops` on the real module (batch 1,
    fast path; they must agree), causal support and the measured :func:`future_leak` at the last position."""
    sizes = Sizes(dim=dim, heads=heads, num_latents=m, seq_len=n)
    x = torch.randn(1, n, dim, generator=torch.Generator().manual_seed(seed))
    rows = []
    for key in keys or list(MECHANISMS):
        mech = MECHANISMS[key]
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
