"""Linformer (Wang et al. 2020, arXiv:2006.04768): keys and values squeezed along the *sequence* axis to length k.

Like :class:`~lattn.attention.MultiHeadAttention`, but before the softmax the N keys and the N values are mixed down
to k by fixed learned (k, N) matrices E and F: ``K' = E·K``, ``V' = F·V``. Every query then attends to k
projected keys — O(N·k) — and the effective token→token map ``softmax(Q·K'ᵀ)·F`` has rank ≤ k.

The price: E and F have exactly N columns, so the sequence length is fixed at construction (any other length is an
error, not a silent resize), and each projected key mixes *all* positions, so no causal form exists.

It is :class:`~lattn.attention.Attention` (same ``to_q/to_k/to_v/to_out``, split, core, merge) with its own forward:
the keys and values are projected along the sequence axis between the split and the core.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..attention import Attention, attend, drop_padded
from ..checks import check_int
from ..latent import LatentMaps
from ..masks import zero_padded
from ._common import check_input, refuse_causal

__all__ = ["Linformer"]


class Linformer(Attention):
    """Linformer self-attention for sequences of exactly ``seq_len`` tokens: (B, seq_len, D) → (B, seq_len, D).

    Args: dim, seq_len (N, fixed), k (projected length), heads, share_kv (use E for the values too).

    ``forward(x, *, mask (B, N) | None, causal=False, return_maps=False)``. Padded tokens are zeroed before the
    projection (they add nothing to K', V') and output zeros. Maps: ``gather`` = F (B, H, k, N) (a learned linear
    mix, *not* a softmax: rows need not sum to 1), ``broadcast`` (B, H, N, k), ``extra["key projection E"]``
    (B, H, k, N); ``maps.effective()`` = broadcast @ F, exactly the token→token map applied to the values.
    """

    stages = ("gather", "broadcast")
    is_causal = False
    causal_note = "each projected key and value is a mix of all N positions, the future included."
    returns_tokens = True

    def __init__(self, dim: int, seq_len: int, k: int, *, heads: int = 1, share_kv: bool = False) -> None:
        super().__init__(dim, heads=heads)  # to_q, to_k, to_v, to_out
        check_int(seq_len=seq_len, k=k)
        self.seq_len, self.k = seq_len, k
        self.proj_k = nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))  # E (k, N), N(0, 1/k) as in the paper
        self.proj_v = None if share_kv else nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))  # F (k, N)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        B, N, D = x.shape
        if N != self.seq_len:
            raise ValueError(
                f"this Linformer was built for seq_len={self.seq_len} (its projections E, F are ({self.k}, "
                f"{self.seq_len})) but x has N={N} tokens; pad (with a mask) or crop to {self.seq_len}, or use a "
                "length-free mechanism such as ISAB or Luna"
            )
        H = self.heads
        q, k, v = (self.split(f(x)) for f in (self.to_q, self.to_k, self.to_v))  # (B, H, N, d_head) each
        if mask is not None:
            k, v = drop_padded(k, mask), drop_padded(v, mask)  # padded tokens reach no product
        proj_e = self.proj_k.to(x.dtype)  # (k, N)
        proj_f = proj_e if self.proj_v is None else self.proj_v.to(x.dtype)
        k_proj = torch.einsum("sn,bhnd->bhsd", proj_e, k)  # K' = E·K (B, H, k, d_head)
        v_proj = torch.einsum("sn,bhnd->bhsd", proj_f, v)  # V' = F·V (B, H, k, d_head)
        read, bmap = attend(q, k_proj, v_proj, return_maps=return_maps)  # (B, H, N, d_head), (B, H, N, k) | None
        out = self.merge(read)  # (B, N, D)
        out = zero_padded(out, mask)  # padded positions output zeros
        if not return_maps:
            return out
        cols = torch.ones(B, 1, 1, N, dtype=x.dtype, device=x.device) if mask is None else mask[:, None, None, :]
        gather = (proj_f * cols).expand(B, H, -1, -1)  # (B, H, k, N): padded columns zero
        extra = {"key projection E": (proj_e * cols).expand(B, H, -1, -1)}
        if mask is not None:
            bmap = drop_padded(bmap, mask)  # padded positions' rows are zeros
        return out, LatentMaps(gather=gather, broadcast=bmap, extra=extra)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, seq_len={self.seq_len}, k={self.k}, heads={self.heads}"
