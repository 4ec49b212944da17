"""The family's registry: every mechanism with its paper, its use, its cost formula and a way to build and run it.

``MECHANISMS[key]`` describes a mechanism (paper, what it is good for, big-O cost) and knows how to build a small
instance (:meth:`Mechanism.build`), run it (:meth:`Mechanism.run` → output, maps) and price it
(:meth:`Mechanism.cost`, from :mod:`lattn.complexity`). Its stages and causality come from the module class itself
(``stages``, ``is_causal``, ``causal_note``), so the table cannot drift from the code. Every module follows the
package's calling convention, so :meth:`Mechanism.run` calls each one the same way, ``module(x, causal=…,
return_maps=…)``, and returns what the module returns: maps are :class:`~lattn.latent.LatentMaps` for every member,
the (B, H, N, N) tensor for full attention.

A new member touches exactly these files: its module ``lattn/family/<name>.py`` (the convention above, maps as
``LatentMaps``) and its own tests; one ``Mechanism`` entry appended to ``MECHANISMS`` below (and its import);
``lattn/family/__init__.py`` (the export and a row of the table in its docstring); ``lattn/complexity/family.py``
(the cost formula the entry's ``price`` calls); ``lattn/viz/diagram_data.py`` (its schematic: the family explorer
draws one for every key) with that preset's edge count in ``tests/test_diagram.py``; a causal member also joins
the causal set asserted in ``tests/test_family_costs.py``, whose FLOP test also names each member whose teaching
path does more work than its fast path. Optionally, ``CAUSAL_CANDIDATES`` in ``lattn/exercises/family.py``
(the members notebook 04's causal exercise offers). ``compare.py``, the explorer and the tests that walk the
registry pick it up unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import complexity as cx
from ..attention import MultiHeadAttention
from ..latent import LatentAttention, LatentMaps
from .linformer import Linformer
from .luna import Luna, LunaCausal
from .nystrom import Nystromformer
from .perceiver import Perceiver, PerceiverAR, PerceiverIO
from .set_transformer import ISAB, PMA
from .slot import SlotAttention

__all__ = ["MECHANISMS", "Mechanism", "Sizes", "get_mechanism"]


@dataclass(frozen=True)
class Sizes:
    """The sizes a mechanism is built and priced at."""

    dim: int = 16  # token width D
    heads: int = 2  # attention heads (Slot Attention always uses one)
    num_latents: int = 4  # M: latents, inducing points, seeds, packed length l, slots, Linformer's k
    seq_len: int = 12  # N: needed up front by Linformer only

    @property
    def d_head(self) -> int:
        return self.dim // self.heads


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
    stage_names: dict[str, str] = field(default_factory=dict)  # what each stage is called in the paper

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages of write / gather / broadcast this mechanism uses (the class's ``stages``)."""
        return tuple(self.cls.stages)

    @property
    def causal(self) -> bool:
        """It runs as a decoder: called with ``causal=True`` (or always causal), no output reads a later token."""
        return bool(self.cls.is_causal)

    @property
    def causal_note(self) -> str:
        return self.cls.causal_note

    def build(self, sizes: Sizes = Sizes(), seed: int = 0) -> nn.Module:
        """A freshly initialised instance (seeded), in eval mode."""
        with torch.random.fork_rng(devices=[]):  # seeded without disturbing the caller's random stream
            torch.manual_seed(seed)
            return self.make(sizes).eval()

    def run(self, module: nn.Module, x: Tensor, return_maps: bool = True) -> tuple[Tensor, LatentMaps | Tensor | None]:
        """Output (B, N | M | M', D) and maps (None when ``return_maps=False``): ``module(x, causal=…,
        return_maps=…)``, the one call every module of the convention takes (causal when the module can be)."""
        out = module(x, causal=module.is_causal, return_maps=return_maps)
        return out if return_maps else (out, None)

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
    return {"batch": b, "heads": s.heads, "d_head": s.d_head}


def _shape(n: int, m: int, s: Sizes, b: int) -> cx.Shape:
    return cx.Shape(seq_len=n, num_latents=m, **_hs(s, b))


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
            lambda n, m, s, b: cx.full_attention_cost(_shape(n, m, s, b)),
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
            lambda n, m, s, b: cx.total_cost(cx.latent_attention_cost(_shape(n, m, s, b))),
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
            lambda s: SlotAttention(s.dim, s.num_latents, seed=0),  # the same initial slots every call
            lambda n, m, s, b: cx.slot_attention_cost(n, m, batch=b, dim=s.dim),
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
        Mechanism(
            "nystrom",
            "Nyströmformer",
            Nystromformer,
            "Xiong et al. 2021, arXiv:2102.03902",
            "approximating full attention's map in encoders, any length, through m landmarks",
            "O(N·m + m³)",
            "tokens",
            lambda s: Nystromformer(s.dim, s.num_latents, heads=s.heads),
            lambda n, m, s, b: cx.nystrom_cost(n, m, **_hs(s, b)),
            stage_names={"gather": "landmarks read", "broadcast": "read via Z ≈ A⁺"},
        ),
    ]
}


def get_mechanism(mechanism: Mechanism | str) -> Mechanism:
    """A :class:`Mechanism` itself, or the registry entry of its key (clear error for an unknown key)."""
    if isinstance(mechanism, Mechanism):
        return mechanism
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mechanism!r}; choose from {list(MECHANISMS)}")
    return MECHANISMS[mechanism]
