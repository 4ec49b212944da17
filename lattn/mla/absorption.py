"""Why MLA's RoPE is decoupled, measured: :func:`absorption_gap` compares exact attention scores with the absorbed
shortcut (W_UK folded into the query) when position enters in different ways.

A teaching helper of notebook 05, separate from the layer (:mod:`lattn.mla.layer`), which only ever uses the
decoupled form.
"""

from __future__ import annotations

import math

import torch

from ..rope import apply_rope

__all__ = ["absorption_gap"]


def absorption_gap(rope: str, *, d_head: int = 8, d_c: int = 16, n: int = 6, seed: int = 0) -> float:
    """Largest |exact − absorbed| attention score for one head, in float64, when position enters in different ways.

    Exact scores use up-projected keys k_j = W_UK·c_j; the absorbed shortcut folds W_UK into the query once and
    scores the cached latents directly: (q_i·W_UK)·c_j.

    * ``"none"``: no RoPE → associativity makes the two equal (gap ~1e-15).
    * ``"on_key"``: RoPE on the up-projected key, k_j = R_j·W_UK·c_j, and on the query → the rotation R_j of the
      key position sits between W_UK and c_j, so no single absorbed query works: the gap is large.
    * ``"decoupled"``: position-free q_C·k_C plus a separate rotary part q_R·k_R (k_R cached as is) → equal again.
    """
    if rope not in ("none", "on_key", "decoupled"):
        raise ValueError(f"rope must be 'none', 'on_key' or 'decoupled', got {rope!r}")
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d_head, generator=g, dtype=torch.float64)  # query parts q_C (n, d_head)
    c = torch.randn(n, d_c, generator=g, dtype=torch.float64)  # cached latents c_KV (n, d_c)
    w_uk = torch.randn(d_head, d_c, generator=g, dtype=torch.float64) / math.sqrt(d_c)  # W_UK (d_head, d_c)
    pos = torch.arange(n)
    k = c @ w_uk.T  # (n, d_head) the up-projected keys
    if rope == "on_key":
        exact = apply_rope(q, pos) @ apply_rope(k, pos).T  # (n, n)
        absorbed = (apply_rope(q, pos) @ w_uk) @ c.T  # the best a cache of c alone allows
    else:
        exact = q @ k.T  # (n, n)
        absorbed = (q @ w_uk) @ c.T  # (n, n): q_lat·c_KV
        if rope == "decoupled":  # q = [q_C; q_R], k = [k_C; k_R] (eq. 16-17); k_R is cached, q_R is the query's own
            q_r = apply_rope(torch.randn(n, 4, generator=g, dtype=torch.float64), pos)  # (n, d_rope)
            k_r = apply_rope(torch.randn(n, 4, generator=g, dtype=torch.float64), pos)  # (n, d_rope)
            exact = torch.cat([q, q_r], -1) @ torch.cat([k, k_r], -1).T  # (n, n)
            absorbed = absorbed + q_r @ k_r.T
    return float((exact - absorbed).abs().max())
