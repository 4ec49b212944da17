"""Linformer (Wang et al. 2020, arXiv:2006.04768): keys and values squeezed along the *sequence* axis to length k.

Like :class:`~lattn.attention.MultiHeadAttention`, but before the softmax the N keys and the N values are mixed down
to k by fixed learned (k, N) matrices E and F: ``K' = E·K``, ``V' = F·V``. Every query then attends to k
projected keys — O(N·k) — and the effective token→token map ``softmax(Q·K'ᵀ)·F`` has rank ≤ k.

The price: E and F have exactly N columns, so the sequence length is fixed at construction (any other length is an
error, not a silent resize), and each projected key mixes *all* positions, so no causal form exists.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..attention import (
    check_dim_heads,
    check_mask,
    check_tokens,
    fused_attention,
    merge_heads,
    scaled_dot_product,
    split_heads,
)
from ._common import FamilyMaps, check_positive, refuse_causal

__all__ = ["Linformer"]


class Linformer(nn.Module):
    """Linformer self-attention for sequences of exactly ``seq_len`` tokens: (B, seq_len, D) → (B, seq_len, D).

    Args: dim, seq_len (N, fixed), k (projected length), heads, share_kv (use E for the values too).

    ``forward(x, mask (B, N) | None, return_maps=False)``. Padded tokens are zeroed before the projection (they
    add nothing to K', V') and output zeros. Maps: ``gather`` = F (B, H, k, N) (a learned linear mix, *not* a
    softmax: rows need not sum to 1), ``broadcast`` (B, H, N, k), ``extra["key projection E"]`` (B, H, k, N);
    ``maps.effective()`` = broadcast @ F, exactly the token→token map applied to the values.
    """

    stages_used = ("gather", "broadcast")
    is_causal = False
    causal_note = "each projected key and value is a mix of all N positions, the future included."

    def __init__(self, dim: int, seq_len: int, k: int, *, heads: int = 1, share_kv: bool = False) -> None:
        super().__init__()
        check_dim_heads(dim, heads)
        check_positive(seq_len=seq_len, k=k)
        self.dim, self.seq_len, self.k, self.heads = dim, seq_len, k, heads
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.proj_k = nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))  # E (k, N), N(0, 1/k) as in the paper
        self.proj_v = None if share_kv else nn.Parameter(torch.randn(k, seq_len) / math.sqrt(k))  # F (k, N)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, FamilyMaps]:
        refuse_causal(causal, type(self).__name__, self.causal_note)
        check_tokens(x, self.dim)
        B, N, D = x.shape
        if N != self.seq_len:
            raise ValueError(
                f"this Linformer was built for seq_len={self.seq_len} (its projections E, F are ({self.k}, "
                f"{self.seq_len})) but x has N={N} tokens; pad (with a mask) or crop to {self.seq_len}, or use a "
                "length-free mechanism such as ISAB or Luna"
            )
        check_mask(mask, x)
        H = self.heads
        q, k, v = (split_heads(f(x), H) for f in (self.to_q, self.to_k, self.to_v))  # (B, H, N, dh) each
        if mask is not None:
            keep = mask[:, None, :, None].to(x.dtype)  # (B, 1, N, 1)
            k, v = k * keep, v * keep
        proj_e = self.proj_k.to(x.dtype)  # (k, N)
        proj_f = proj_e if self.proj_v is None else self.proj_v.to(x.dtype)
        k_proj = torch.einsum("sn,bhnd->bhsd", proj_e, k)  # K' = E·K (B, H, k, dh)
        v_proj = torch.einsum("sn,bhnd->bhsd", proj_f, v)  # V' = F·V (B, H, k, dh)
        if return_maps:
            read, bmap = scaled_dot_product(q, k_proj, v_proj)  # (B, H, N, dh), (B, H, N, k)
        else:
            read = fused_attention(q, k_proj, v_proj)
        out = self.to_out(merge_heads(read))  # (B, N, D)
        if mask is not None:
            out = out * mask[..., None]
        if not return_maps:
            return out
        cols = torch.ones(B, 1, 1, N, dtype=x.dtype, device=x.device) if mask is None else keep.transpose(-1, -2)
        gather = (proj_f * cols).expand(B, H, -1, -1)  # (B, H, k, N): padded columns zero
        extra = {"key projection E": (proj_e * cols).expand(B, H, -1, -1)}
        return out, FamilyMaps(gather=gather, broadcast=bmap, extra=extra)
