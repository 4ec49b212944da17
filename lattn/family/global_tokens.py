"""Global tokens beside local attention (Longformer, BigBird, ETC), and how far one output can reach.

Latent attention *replaces* token–token attention: tokens only meet through M latents. Global tokens sit *beside*
it: every token still attends to its neighbours directly (a ±w window), and g extra tokens attend to — and are
attended by — every token. Memory tokens (Burtsev et al. 2020) and ViT registers (Darcet et al. 2023) are extra
tokens inside *full* attention: they add g rows and columns to the N×N map instead of removing it.

* :func:`~lattn.masks.local_global_mask` — the (g + N)² boolean pattern of one layer over [globals; tokens].
* :class:`LocalGlobalAttention` — ``depth`` pre-norm layers of :class:`~lattn.attention.Attention` with that mask;
  learned global tokens (ETC/BigBird-ETC style; Longformer instead marks chosen input tokens as global).
* :func:`score_counts` — how many query–key scores one layer computes: window + global vs latents vs full.
How far an output reaches is measured with :func:`lattn.analysis.dependence` (‖∂y_i/∂x_j‖ by autograd).

Subtle: in *one* layer a token reads the global tokens' inputs, which have not seen anything yet, so output 0 does
not depend on a token outside its window; it takes two layers (globals gather, then tokens read them). The
lesson's latent layer does both in one layer (gather, then broadcast).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention import Attention
from ..checks import check_int
from ..latent import LatentMaps
from ..masks import local_global_mask, zero_padded
from ._common import check_input, refuse_causal

__all__ = ["LocalGlobalAttention", "score_counts"]


def score_counts(n: int, *, window: int, num_global: int, num_latents: int, registers: int) -> dict[str, int]:
    """Query–key scores of one layer over N tokens: full attention N², window + g global tokens (the True entries of
    :func:`~lattn.masks.local_global_mask`, counted in closed form: N(2w + 1) − w(w + 1) + g(2N + g) for w < N), latents gather
    + broadcast 2·N·M, full attention with r memory/register tokens (N + r)²."""
    check_int(n=n, num_global=num_global, num_latents=num_latents, registers=registers)
    check_int(window=window, minimum=0)
    w, g = min(window, n - 1), num_global
    band = n * (2 * w + 1) - w * (w + 1)  # the True entries of the mask's (N, N) band, without building it
    return {
        "full attention": n * n,
        f"window ±{window} + {num_global} global": band + g * (2 * n + g),
        f"{num_latents} latents (gather + broadcast)": 2 * n * num_latents,
        f"full + {registers} registers": (n + registers) ** 2,
    }


class LocalGlobalAttention(nn.Module):
    """``depth`` layers of window + global attention: (B, N, D) → (B, N, D).

    Each layer is one :class:`~lattn.attention.Attention` over [globals; tokens] (B, g + N, D) with
    :func:`~lattn.masks.local_global_mask` as its joint mask, pre-norm with a residual: h = h + Attn(LN h). The globals
    start from g learned vectors and are carried from layer to layer; the tokens' part is returned. Cost
    O(N·(2w + 1 + 2g)) per layer.

    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False)``: padded tokens take no part
    (the globals are always real) and output zeros. Maps: :class:`~lattn.latent.LatentMaps` with no latent stage;
    ``extra["layer i"]`` (B, H, g + N, g + N) is layer i's map, rows and columns ordered [globals; tokens].
    """

    stages = ()  # not a latent stage: tokens still score tokens (within the window)
    is_causal = False
    causal_note = "the global tokens read every token, the future included."
    returns_tokens = True

    def __init__(self, dim: int, window: int, num_global: int, *, heads: int = 1, depth: int = 2) -> None:
        super().__init__()
        check_int(dim=dim, num_global=num_global, heads=heads, depth=depth)
        check_int(window=window, minimum=0)
        self.dim, self.window, self.num_global = dim, window, num_global
        self.globals_ = nn.Parameter(torch.randn(num_global, dim))  # (g, D), learned
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.layers = nn.ModuleList(Attention(dim, heads=heads) for _ in range(depth))

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        B, N, _ = x.shape
        g = self.num_global
        allowed = local_global_mask(N, self.window, g).to(x.device)  # (g + N, g + N)
        joint = None  # (B, g + N): the globals, then the tokens' padding mask
        if mask is not None:
            joint = torch.cat([mask.new_ones(B, g), mask], 1)
            x = zero_padded(x, mask)  # whatever padded tokens hold (even NaN) reaches no product
        h = torch.cat([self.globals_.to(x.dtype).expand(B, -1, -1), x], 1)  # (B, g + N, D)
        maps: dict[str, Tensor] = {}
        for i, (norm, attn) in enumerate(zip(self.norms, self.layers)):
            a = attn(norm(h), mask=joint, attn_mask=allowed, return_maps=return_maps)  # padded rows read 0
            read, maps[f"layer {i}"] = a if return_maps else (a, None)  # (B, g + N, D), (B, H, g + N, g + N)
            h = h + read
        return (h[:, g:], LatentMaps(extra=maps)) if return_maps else h[:, g:]  # (B, N, D): the tokens' outputs
