"""Standard scaled-dot-product attention: the O(N²) baseline of the course.

Every query scores every key, so a sequence of N tokens builds an N×N map of weights.
Two ways to compute the same thing live here:

* ``scaled_dot_product`` — the teaching path: explicit scores, explicit softmax, weights returned.
* ``fused_attention`` — the fast path: torch's fused ``scaled_dot_product_attention``, no weights kept.

Conventions shared by the whole package: boolean masks with ``True`` = may attend; the softmax runs in
float32 even for half-precision inputs; a large finite negative value (not ``-inf``) masks scores, and a
query with nothing to attend to gets an all-zero row of weights and a zero output, never NaN.

Example::

    >>> mha = MultiHeadAttention(dim=32, heads=4)
    >>> out, maps = mha(torch.randn(2, 10, 32), return_maps=True)   # (2, 10, 32), (2, 4, 10, 10)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MultiHeadAttention",
    "check_mask",
    "check_tokens",
    "fused_attention",
    "masked_softmax",
    "merge_heads",
    "scaled_dot_product",
    "split_heads",
    "upcast",
]

HALF_DTYPES = (torch.float16, torch.bfloat16)


def upcast(t: Tensor) -> Tensor:
    """Half-precision tensors → float32 (where softmax and its sums happen); other dtypes unchanged."""
    return t.float() if t.dtype in HALF_DTYPES else t


def _shape(t: Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def check_tokens(x: Tensor, dim: int, name: str = "x") -> None:
    """Raise a clear error unless ``x`` is a floating (B, N, dim) tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, N, {dim}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (e.g. x.float()), got dtype {x.dtype}")
    if x.dim() != 3:
        raise ValueError(f"{name} must be 3-D (B, N, dim={dim}), got shape {_shape(x)}")
    if x.shape[-1] != dim:
        raise ValueError(f"{name} last dimension must be dim={dim}, got shape {_shape(x)}")


def check_mask(mask: Tensor | None, x: Tensor) -> None:
    """Raise a clear error unless ``mask`` is None or a boolean (B, N) tensor matching ``x`` (B, N, D)."""
    if mask is None:
        return
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a bool torch.Tensor of shape {_shape(x)[:-1]}), got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must have dtype torch.bool (True = real token), got {mask.dtype}")
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"mask must have shape (B, N) = {tuple(x.shape[:2])} to match x {_shape(x)}, got {_shape(mask)}"
        )


def check_dim_heads(dim: int, heads: int) -> None:
    """Validate a (dim, heads) pair of a multi-head module."""
    if dim < 1 or heads < 1:
        raise ValueError(f"dim and heads must be positive, got dim={dim}, heads={heads}")
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")


def split_heads(t: Tensor, heads: int) -> Tensor:
    """(B, N, H·dh) → (B, H, N, dh)."""
    B, N, D = t.shape
    return t.view(B, N, heads, D // heads).transpose(1, 2)


def merge_heads(t: Tensor) -> Tensor:
    """(B, H, N, dh) → (B, N, H·dh)."""
    B, H, N, dh = t.shape
    return t.transpose(1, 2).reshape(B, N, H * dh)


def _causal_mask(nq: int, nk: int, device: torch.device) -> Tensor:
    """(Nq, Nk) bool, query i may see keys j ≤ i (top-left aligned, as torch's ``is_causal``)."""
    return torch.ones(nq, nk, dtype=torch.bool, device=device).tril()


def _combine(mask: Tensor | None, causal: bool, nq: int, nk: int, device: torch.device) -> Tensor | None:
    if causal:
        tri = _causal_mask(nq, nk, device)
        mask = tri if mask is None else mask & tri
    return mask


def masked_softmax(scores: Tensor, mask: Tensor | None = None, dim: int = -1) -> Tensor:
    """Softmax along ``dim`` (float32 for half inputs); entries where ``mask`` is False get weight 0.

    A slice with no True entry gets all-zero weights (not NaN). ``mask`` broadcasts against ``scores``.
    """
    s = upcast(scores)
    if mask is None:
        return s.softmax(dim)
    s = s.masked_fill(~mask, torch.finfo(s.dtype).min)
    w = s.softmax(dim)
    return w * mask.any(dim, keepdim=True)  # rows with nothing to attend to → zeros


def scaled_dot_product(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Teaching path: ``softmax(q·kᵀ·scale) · v`` with the weights kept.

    Args:
        q: (…, Nq, d) queries.  k: (…, Nk, d) keys.  v: (…, Nk, dv) values.
        mask: bool, broadcastable to (…, Nq, Nk); True = this query may attend to this key.
        causal: query i only sees keys j ≤ i.
        scale: multiplies the scores; default 1/√d.
    Returns:
        out (…, Nq, dv) in q's dtype, and weights (…, Nq, Nk) (float32 for half inputs), each row summing to 1
        (or to 0 for a query with nothing to attend to).
    """
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"need q (…, Nq, d), k (…, Nk, d), v (…, Nk, dv); got {_shape(q)}, {_shape(k)}, {_shape(v)}")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must have dtype torch.bool (True = may attend), got {mask.dtype}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    mask = _combine(mask, causal, q.shape[-2], k.shape[-2], q.device)
    qf, kf = upcast(q), upcast(k)
    if qf.shape[-2] <= kf.shape[-2]:  # NOTE: scale the shorter of q and k, not the (Nq, Nk) scores: a pass less
        qf = qf * scale
    else:
        kf = kf * scale
    scores = torch.einsum("...qd,...kd->...qk", qf, kf)  # (…, Nq, Nk)
    weights = masked_softmax(scores, mask, dim=-1)
    del scores  # NOTE: freed before weights @ v: one Nq×Nk buffer less to hold
    out = weights @ upcast(v)  # (…, Nq, dv)
    return out.to(q.dtype), weights


def fused_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """Fast path: the same result as :func:`scaled_dot_product` through torch's fused kernel, no weights kept.

    Shapes as in :func:`scaled_dot_product` with 4-D (B, H, N, d) inputs. Half inputs on the CPU are computed in
    float32; rows with nothing to attend to give zeros (torch alone would give NaN).
    """
    dtype = q.dtype
    if dtype in HALF_DTYPES and q.device.type == "cpu":
        q, k, v = q.float(), k.float(), v.float()
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale).to(dtype)
    mask = _combine(mask, causal, q.shape[-2], k.shape[-2], q.device)
    alive = mask.any(-1, keepdim=True)  # (…, Nq, 1): does this query see anything?
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | ~alive, scale=scale)
    return (out * alive).to(dtype)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: H heads of size dim/H, each building an N×N map.

    ``forward(x (B, N, dim), mask (B, N) bool = real token, causal) → (B, N, dim)``; with ``return_maps=True``
    also the attention maps (B, H, N, N) (rows = queries, columns = keys).
    """

    def __init__(self, dim: int, heads: int = 1, *, bias: bool = True) -> None:
        super().__init__()
        check_dim_heads(dim, heads)
        self.dim, self.heads = dim, heads
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.to_k = nn.Linear(dim, dim, bias=bias)
        self.to_v = nn.Linear(dim, dim, bias=bias)
        self.to_out = nn.Linear(dim, dim, bias=bias)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values, each (B, H, N, dh)."""
        return tuple(split_heads(f(x), self.heads) for f in (self.to_q, self.to_k, self.to_v))  # type: ignore[return-value]

    def forward(
        self, x: Tensor, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        check_tokens(x, self.dim)
        check_mask(mask, x)
        q, k, v = self.project(x)  # (B, H, N, dh) each
        key_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, N)
        if return_maps:
            out, maps = scaled_dot_product(q, k, v, key_mask, causal)  # (B, H, N, dh), (B, H, N, N)
        else:
            out = fused_attention(q, k, v, key_mask, causal)
        out = self.to_out(merge_heads(out))  # (B, N, dim)
        if mask is not None:
            out = out * mask[..., None]  # padded positions output zeros
        return (out, maps) if return_maps else out
