"""Set Transformer (Lee et al. 2019, arXiv:1810.00825): attention blocks for sets, where order means nothing.

* :class:`MAB` — multihead attention block, Eq. (6–7): ``H = LN(X + Multihead(X, Y, Y))``,
  ``MAB(X, Y) = LN(H + rFF(H))``. The building block of the other two. The LayerNorms are on by default, as in the
  paper's equations; ``layer_norm=False`` drops them (the authors' released code has them off by default, and its
  residual adds the *projected* queries X·W_Q and uses a one-layer ReLU rFF — we follow the paper's equations).
* :class:`ISAB` — induced set attention block, Eq. (9–10): m learned inducing points I gather from the set,
  ``H = MAB(I, X)``, then the set reads them back, ``ISAB(X) = MAB(X, H)``: the ``gather`` then ``broadcast`` stages,
  O(N·m) instead of the O(N²) of a self-attention block. Permutation-*equivariant*.
* :class:`PMA` — pooling by multihead attention, Eq. (11): k learned seeds gather from the set,
  ``PMA_k(Z) = MAB(S, rFF(Z))`` → (B, k, D). Permutation-*invariant*: a set summary of k vectors.

Without feed-forwards and LayerNorms, ``ISAB(X) = X + LatentAttention(stages=("gather", "broadcast"))(X)`` with the
same weights (:meth:`ISAB.from_latent_attention` builds that twin; a test checks the equality).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention import Attention
from ..checks import check_int
from ..latent import LatentAttention, LatentMaps
from ..masks import zero_padded
from ._common import FeedForward, check_input, refuse_causal

__all__ = ["ISAB", "MAB", "PMA"]


class MAB(nn.Module):
    """Multihead attention block: queries X (B, Nq, D) attend to Y (B, Nk, D); residual, then a row-wise MLP.

    Args: dim, heads; ``layer_norm`` (default True): the paper's two LayerNorms; ``feedforward=False`` drops the
    rFF line (and its LayerNorm).
    ``forward(x (B, Nq, D), *, context Y (B, Nk, D) | None = x, mask (B, Nk) | None, query_mask (B, Nq) | None,
    causal=False, return_maps=False)`` → (B, Nq, D) [, map (B, H, Nq, Nk)]. ``context=None`` is the paper's SAB,
    MAB(X, X). ``query_mask``: padded queries read nothing (their rows of the map are zeros).
    """

    stages = ()  # a building block: a gather when the queries are latents, a broadcast when they are the tokens
    is_causal = False
    causal_note = "a building block of set models, where order means nothing."
    returns_tokens = True  # one output per query row of x

    def __init__(
        self, dim: int, heads: int = 1, *, layer_norm: bool = True, feedforward: bool = True, ff_mult: int = 4
    ) -> None:
        super().__init__()
        check_int(dim=dim, heads=heads, ff_mult=ff_mult)
        self.dim = dim
        self.attn = Attention(dim, heads=heads)
        self.norm_attn = nn.LayerNorm(dim) if layer_norm else nn.Identity()
        self.ff = FeedForward(dim, ff_mult) if feedforward else None
        self.norm_ff = nn.LayerNorm(dim) if layer_norm and feedforward else nn.Identity()

    def forward(
        self,
        x: Tensor,
        *,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        query_mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        refuse_causal(self, causal)
        out = self.attn(x, context=context, mask=mask, query_mask=query_mask, return_maps=return_maps)
        read, maps = out if return_maps else (out, None)  # (B, Nq, D), (B, H, Nq, Nk)
        h = self.norm_attn(x + read)  # (B, Nq, D)
        if self.ff is not None:
            h = self.norm_ff(h + self.ff(h))
        return (h, maps) if return_maps else h


class ISAB(nn.Module):
    """Induced set attention block: (B, N, D) → (B, N, D) through m inducing points (the latents).

    Args: dim, num_inducing (m), heads, layer_norm, feedforward (see :class:`MAB`).
    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False)``; padded tokens take no part in
    the gather and output zeros. Maps: ``gather`` (B, H, m, N), ``broadcast`` (B, H, N, m); ``maps.effective()``
    (B, H, N, N).
    """

    stages = ("gather", "broadcast")
    is_causal = False
    causal_note = "the inducing points gather from the whole set, so every output depends on every element."
    returns_tokens = True

    def __init__(
        self, dim: int, num_inducing: int, *, heads: int = 1, layer_norm: bool = True, feedforward: bool = True
    ) -> None:
        super().__init__()
        check_int(dim=dim, num_inducing=num_inducing, heads=heads)
        self.dim, self.num_inducing = dim, num_inducing
        self.inducing = nn.Parameter(torch.randn(num_inducing, dim))  # I (m, D), learned
        self.mab_gather = MAB(dim, heads, layer_norm=layer_norm, feedforward=feedforward)  # H = MAB(I, X)
        self.mab_broadcast = MAB(dim, heads, layer_norm=layer_norm, feedforward=feedforward)  # MAB(X, H)

    @classmethod
    def from_latent_attention(cls, la: LatentAttention) -> ISAB:
        """The ISAB (no feed-forward, no LayerNorm) computing ``x + la(x)`` for ``la`` with stages (gather, broadcast).

        Shares nothing: the weights are copied (latents → inducing points, stage projections → the two MABs).
        """
        if not isinstance(la, LatentAttention) or la.stages != ("gather", "broadcast"):
            raise ValueError("from_latent_attention needs a LatentAttention with stages ('gather', 'broadcast')")
        isab = cls(la.dim, la.num_latents, heads=la.heads, layer_norm=False, feedforward=False)
        with torch.no_grad():
            isab.inducing.copy_(la.latents)
        isab.mab_gather.attn.load_state_dict(la.proj["gather"].state_dict())
        isab.mab_broadcast.attn.load_state_dict(la.proj["broadcast"].state_dict())
        return isab.to(la.latents.dtype)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        inducing = self.inducing.to(x.dtype).expand(x.shape[0], -1, -1)  # (B, m, D)
        g = self.mab_gather(inducing, context=x, mask=mask, return_maps=return_maps)
        h, gmap = g if return_maps else (g, None)  # (B, m, D), (B, H, m, N)
        b = self.mab_broadcast(x, context=h, query_mask=mask, return_maps=return_maps)
        out, bmap = b if return_maps else (b, None)  # (B, N, D), (B, H, N, m)
        out = zero_padded(out, mask)  # padded positions output zeros
        return (out, LatentMaps(gather=gmap, broadcast=bmap)) if return_maps else out


class PMA(nn.Module):
    """Pooling by multihead attention: k learned seeds gather from the set; (B, N, D) → (B, k, D).

    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False)``; map ``gather`` (B, H, k, N).
    """

    stages = ("gather",)
    is_causal = False
    causal_note = "a pooled summary of the whole set has no positions to be causal about."
    returns_tokens = False

    def __init__(self, dim: int, num_seeds: int, *, heads: int = 1, layer_norm: bool = True) -> None:
        super().__init__()
        check_int(dim=dim, num_seeds=num_seeds, heads=heads)
        self.dim, self.num_seeds = dim, num_seeds
        self.seeds = nn.Parameter(torch.randn(num_seeds, dim))  # S (k, D), learned
        self.rff = FeedForward(dim)
        self.mab = MAB(dim, heads, layer_norm=layer_norm)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        seeds = self.seeds.to(x.dtype).expand(x.shape[0], -1, -1)  # (B, k, D)
        out = self.mab(seeds, context=self.rff(x), mask=mask, return_maps=return_maps)  # (B, k, D)
        return (out[0], LatentMaps(gather=out[1])) if return_maps else out
