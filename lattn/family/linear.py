"""Causal linear attention (Katharopoulos et al. 2020, arXiv:2006.16236) as running sums, and why causal Luna is it.

Softmax attention's weight exp(q_t·k_j) does not factor into a part of t times a part of j, so every query must
visit every key. Linear attention replaces it with a product of feature maps, φ(q_t)·φ(k_j), and then the sum over
the past factors::

    out_t = Σ_{j≤t} (φ(q_t)·φ(k_j)) v_j / norm_t  =  φ(q_t)ᵀ S_t / norm_t,   S_t = Σ_{j≤t} φ(k_j) v_jᵀ   (a × c)

S_t is a running sum: a decoder keeps it (an a × c state per head) instead of a growing KV cache. Katharopoulos et
al. normalise by norm_t = φ(q_t)·Σ_{j≤t} φ(k_j) and use φ = elu + 1; causal Luna divides by the count t instead.

:func:`causal_linear_attention` takes the features already mapped (any positive features, any widths).
:class:`~lattn.family.LunaCausal` is two of them (a test and notebook 04 check it)::

    logits_t = causal_linear_attention(q, k, Φ)[t]     (query q_t, key k_j, value Φ_j = packing weights (l,))
    out_t    = causal_linear_attention(softmax(logits), Φ, v)[t]    (query = the unpack map A_t, key Φ_j, value v_j)

so its "packed keys and values" are the running sums Σ_{j≤t} Φ_j[s]·k_j and Σ_{j≤t} Φ_j[s]·v_j: an l × d_head state
per head and per sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["causal_linear_attention", "elu_feature", "running_sums"]


def elu_feature(x: Tensor) -> Tensor:
    """The feature map of Katharopoulos et al. 2020: φ(x) = elu(x) + 1 > 0, element-wise."""
    return F.elu(x) + 1


def running_sums(keys: Tensor, values: Tensor, initial: Tensor | None = None) -> Tensor:
    """S_t = initial + Σ_{j≤t} keys_j ⊗ values_j for every t: keys (…, T, a), values (…, T, c) → (…, T, a, c)."""
    sums = (keys[..., :, None] * values[..., None, :]).cumsum(-3)  # (…, T, a, c)
    return sums if initial is None else sums + initial[..., None, :, :]


def causal_linear_attention(query: Tensor, key: Tensor, value: Tensor, *, normalise: str = "count") -> Tensor:
    """out_t = Σ_{j≤t} (query_t·key_j) value_j / norm_t, through running sums (no N×N matrix).

    query, key (…, N, a) — features already mapped (e.g. :func:`elu_feature`); value (…, N, c) → (…, N, c).
    ``normalise``: "count" divides by t (causal Luna), "sum" by query_t·Σ_{j≤t} key_j (Katharopoulos et al.),
    "none" returns the plain sum. Example: with N = 1 and "count", out_0 = (query_0·key_0)·value_0.
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor) or not t.is_floating_point() or t.dim() < 2:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a floating torch.Tensor of shape (…, N, width), got {got}")
    if query.shape != key.shape or value.shape[:-1] != key.shape[:-1]:
        raise ValueError(
            f"query and key need one shape (…, N, a) and value (…, N, c); got {tuple(query.shape)},"
            f" {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if normalise not in ("count", "sum", "none"):
        raise ValueError(f"normalise must be 'count', 'sum' or 'none', got {normalise!r}")
    out = (query[..., :, None] * running_sums(key, value)).sum(-2)  # (…, N, c): φ(q_t)ᵀ S_t
    if normalise == "count":
        return out / torch.arange(1, out.shape[-2] + 1, dtype=out.dtype, device=out.device)[:, None]  # ÷ t
    if normalise == "sum":
        return out / (query * key.cumsum(-2)).sum(-1, keepdim=True)  # ÷ φ(q_t)·Σ_{j≤t} φ(k_j)
    return out
