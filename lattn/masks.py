"""Who may see whom: the boolean masks of the package and the one softmax that respects them.

Every mask is boolean with ``True`` = this query may see this key (or: a real token). The patterns, each built here
and nowhere else:

* :func:`causal_mask` — query i at position ``start_pos + i`` sees keys j ≤ ``start_pos + i``: a prompt
  (``start_pos = 0``, torch's ``is_causal``), a chunk after a cached prefix, Perceiver AR's latents (the last M
  positions of N);
* :func:`band_mask` — a window: token i sees tokens j with |i − j| ≤ w;
* :func:`local_global_mask` — a window over the tokens plus g global tokens that see and are seen by everything;
* :func:`key_padding` — a padding mask (B, N) as a key mask broadcastable against (B, H, Nq, N) scores;
  :func:`zero_padded` — padded tokens set to 0 (inputs that must reach no product, outputs at padded positions).

:func:`masked_softmax` is the package's softmax: float32 for half inputs (:func:`upcast`; float64 stays float64),
masked entries get weight 0, and a row with nothing to see gets zeros, never NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_int

__all__ = [
    "HALF_DTYPES",
    "band_mask",
    "causal_mask",
    "key_padding",
    "local_global_mask",
    "map_itemsize",
    "masked_softmax",
    "upcast",
    "zero_padded",
]

HALF_DTYPES = (torch.float16, torch.bfloat16)


def upcast(t: Tensor) -> Tensor:
    """Half-precision tensors → float32 (where softmax and its sums happen); other dtypes unchanged."""
    return t.float() if t.dtype in HALF_DTYPES else t


def map_itemsize(dtype: torch.dtype) -> int:
    """Bytes per entry of an attention map computed from ``dtype`` inputs: 4 for half and float32, 8 for float64."""
    return torch.empty((), dtype=torch.float32 if dtype in HALF_DTYPES else dtype).element_size()


def causal_mask(
    num_queries: int, num_keys: int | None = None, *, start_pos: int = 0, device: torch.device | None = None
) -> Tensor:
    """(Nq, Nk) bool: query i sits at position ``start_pos + i`` and may see every key j ≤ ``start_pos + i``.

    ``num_keys`` defaults to ``start_pos + num_queries`` (the queries are the last positions). ``start_pos = 0``
    aligns the triangle top-left, as torch's ``is_causal`` does when Nq ≠ Nk.
    Examples: ``causal_mask(2, start_pos=2)`` (a chunk of 2 after 2 cached tokens) and ``causal_mask(2, 4,
    start_pos=2)`` (2 latents at the last 2 of 4 positions) → [[1, 1, 1, 0], [1, 1, 1, 1]].
    """
    check_int(start_pos=start_pos, minimum=0)
    num_keys = start_pos + num_queries if num_keys is None else num_keys
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril(start_pos)


def band_mask(n: int, window: int, device: torch.device | None = None) -> Tensor:
    """(N, N) bool: token i sees tokens j with |i − j| ≤ ``window``. Example: N = 3, w = 1 → [[1,1,0],[1,1,1],[0,1,1]]."""
    check_int(window=window, minimum=0)
    pos = torch.arange(n, device=device)
    return (pos[:, None] - pos[None, :]).abs() <= window


def local_global_mask(n: int, window: int, num_global: int) -> Tensor:
    """(g + N, g + N) bool over [globals; tokens]: globals see everything and are seen by everything; token i sees
    tokens j with |i − j| ≤ window. Example: N = 4, w = 1, g = 1 → token 0 sees the global, itself and token 1."""
    check_int(n=n, num_global=num_global)
    g = num_global
    allowed = torch.ones(g + n, g + n, dtype=torch.bool)
    allowed[g:, g:] = band_mask(n, window)  # (N, N) band
    return allowed


def zero_padded(t: Tensor, mask: Tensor | None) -> Tensor:
    """Tokens t (B, N, …) with the padded ones (``mask`` (B, N) False) set to 0, whatever they held (even NaN); t
    itself when ``mask`` is None. For heads (B, H, N, d) see :func:`lattn.attention.drop_padded`."""
    return t if mask is None else t.masked_fill(~mask.view(*mask.shape, *[1] * (t.dim() - 2)), 0)


def key_padding(mask: Tensor) -> Tensor:
    """A padding mask (B, N), True = real token → a key mask (B, 1, 1, N) for scores (B, H, Nq, N)."""
    return mask[:, None, None, :]


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
