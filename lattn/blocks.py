"""The pre-norm Transformer block around any attention module of the package.

A **pre-norm block** is the unit every Transformer stacks; the attention inside it is the only part that mixes
positions, so it is the slot where latent attention goes::

    h   = x + Attention(LayerNorm(x))        (B, N, D)   tokens talk to each other (or to latents)
    out = h + MLP(LayerNorm(h))              (B, N, D)   each token thinks alone

:class:`Block` takes any module that follows the package's calling convention (``forward(x, *, causal=…)``,
class attributes ``is_causal`` and ``returns_tokens``); it reads what to do from the module itself, no adapter:

==================================  ======  ======  ==============================================
attention module                    kind    causal  decoding state (per layer, ``new_cache``)
==================================  ======  ======  ==============================================
``MultiHeadAttention``              full    yes     KV cache, 2·D values per token
``LatentAttention``                 latent  **no**  none: latents shared by all positions
``family.LunaCausal``               luna    yes     running sums, O(l·D) whatever the length
``mla.MultiHeadLatentAttention``    mla     yes     c_KV + k_R, d_c + d_rope values per token
==================================  ======  ======  ==============================================

The naive ``latent`` decoder is here on purpose: its M latents are written by *every* position, so the output at
position i can read the character it must predict (position i + 1). :func:`lattn.lm.future_leak` measures that.
The language model that stacks these blocks lives in :mod:`lattn.lm`.

Perceiver AR (:class:`~lattn.family.PerceiverAR`) does not fit here: its outputs exist only at the last M
positions (``returns_tokens`` is False), so it is not a (B, N, D) → (B, N, D) block; notebook 04 shows it.

Example::

    >>> block = Block(MultiHeadAttention(48, 4))
    >>> block(torch.randn(2, 10, 48)).shape                    # causal: attn(h, causal=True) inside
    torch.Size([2, 10, 48])
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .checks import check_int
from .family import FeedForward

__all__ = ["Block"]


class Block(nn.Module):
    """Pre-norm Transformer block around ``attn``: ``h = x + attn(LN(x))``, ``out = h + MLP(LN(h))``.

    The MLP is :class:`lattn.family.FeedForward`: Linear(D, mlp_mult·D) → GELU → Linear(mlp_mult·D, D). The block
    is causal when the module can be (``attn.is_causal``: then it calls ``attn(h, causal=True)``), and it decodes
    incrementally when the module has a decoding state (``attn.new_cache``).

    ``forward(x (B, N, D), *, cache=None, start_pos=None) → (B, N, D)``; with ``cache`` (from :meth:`new_cache`),
    ``x`` holds new tokens at positions start_pos … (default: the cache's length) and the cache is updated in place.
    """

    def __init__(self, attn: nn.Module, *, mlp_mult: int = 4) -> None:
        super().__init__()
        if not isinstance(attn, nn.Module) or not hasattr(attn, "is_causal") or not getattr(attn, "returns_tokens", 0):
            raise TypeError(
                "Block takes an attention module that maps tokens (B, N, D) to tokens (class attributes is_causal"
                f" and returns_tokens=True), got {type(attn).__name__}"
            )
        check_int(mlp_mult=mlp_mult)
        dim = attn.dim if hasattr(attn, "dim") else attn.config.dim  # D (MLA keeps its sizes in a config)
        self.dim = dim
        self.attn = attn
        self.norm_attn, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_mult)  # the position-wise MLP the family's blocks use too

    @property
    def is_causal(self) -> bool:
        """Output i depends on tokens ≤ i only."""
        return bool(self.attn.is_causal)

    @property
    def can_cache(self) -> bool:
        """The attention has a decoding state (``new_cache``)."""
        return hasattr(self.attn, "new_cache")

    def new_cache(self, batch: int, max_len: int) -> Any:
        """The attention's empty decoding state for ``batch`` sequences of up to ``max_len`` tokens."""
        if not self.can_cache:
            raise ValueError(f"{type(self.attn).__name__} has no decoding state: decode by running the whole prefix")
        return self.attn.new_cache(batch, max_len)

    def forward(self, x: Tensor, *, cache: Any = None, start_pos: int | None = None) -> Tensor:
        how = {"causal": True} if self.attn.is_causal else {}  # the naive latent decoder is not: it reads the future
        if cache is not None:
            how.update(cache=cache, start_pos=start_pos)  # decoding: new tokens after the cached ones
        h = x + self.attn(self.norm_attn(x), **how)  # (B, N, D)
        return h + self.mlp(self.norm_mlp(h))  # (B, N, D)
