"""Luna — linear unified nested attention (Ma et al. 2021, arXiv:2106.01540): pack, then unpack.

An extra *packed sequence* P (B, l, D) travels through the layers beside the tokens:

* **pack** (the ``gather`` stage): P queries the tokens, softmax over tokens → packed context Yp (B, l, D);
* **unpack** (the ``broadcast`` stage): the tokens query Yp, softmax over the l slots → output (B, N, D);
* the packed sequence for the next layer is ``LN(P + Yp)`` — its own residual and LayerNorm.

:class:`Luna` is that, bidirectional. :class:`LunaCausal` is the decoder form: the packed context seen at position t
is built from tokens ≤ t only, with positive packing weights φ (no softmax over tokens, whose normaliser would
include the future) and running sums divided by t::

    packed_t[s] = (1/t) Σ_{j≤t} φ(pk_j · pq_s) · (k_j, v_j)      (l keys and l values for position t)
    out_t       = softmax_s(q_t · packed_keys_t[s]) · packed_values_t

so decoding keeps only two (B, H, l, d_head) running sums and the step count: l × d_head numbers per head and per
sum, 2·l·D in all (:class:`LunaState`). Both lines are causal *linear attention* (Katharopoulos et al. 2020) with a
count normaliser: see :mod:`lattn.family.linear`. Its packed sequence P must not depend on the tokens (it would
leak the future), so the causal form takes P but does not update it. Causal Luna keeps its own core (not
:class:`~lattn.attention.Attention`): its packing uses positive weights and running sums divided by t.

The packing weight φ: ``packing="elu"`` (default) is elu(·) + 1, linear attention's feature map and what one
revision of the authors' code uses (fairseq-apollo, ``LunarCausalAttention``, commit 035a360);
``packing="softplus"`` is softplus with β = ln 2, what another revision uses (commit 3e186df); φ(0) = 1 for both.
The default stays elu + 1 because the shipped causal-Luna language model (``lattn/data/lm_luna.pt``) was trained
with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import Attention, merge_heads, split_heads
from ..checks import check_dim_heads, check_int
from ..latent import LatentMaps
from ..masks import causal_mask, masked_softmax, upcast, zero_padded
from ._common import check_input, check_latents, refuse_causal
from .linear import running_sums

__all__ = ["PACKING", "Luna", "LunaCausal", "LunaOutput", "LunaState"]

PACKING = {  # causal Luna's positive packing weight φ(score), both equal to 1 at 0
    "elu": lambda s: F.elu(s) + 1,  # linear attention's feature map; one revision of the authors' code
    "softplus": lambda s: F.softplus(s, beta=math.log(2.0)),  # another revision of the authors' code
}


class Luna(nn.Module):
    """Bidirectional Luna attention with a packed sequence of length l.

    Args: dim, packed_len (l), heads.

    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False, packed (B, l, D) | None,
    return_packed=False)`` → out [, :class:`~lattn.latent.LatentMaps`], out = tokens (B, N, D), or with
    ``return_packed=True`` a :class:`LunaOutput` (tokens, packed_next (B, l, D)): the packed sequence for the next
    layer. ``packed=None`` uses the learned initial packed sequence (l, D) (the first layer). The tokens have no
    residual (the block adds it). Maps: ``gather`` = pack (B, H, l, N), ``broadcast`` = unpack (B, H, N, l).
    Cost O(N·l).
    """

    stages = ("gather", "broadcast")
    is_causal = False
    causal_note = "the pack softmax runs over all N tokens, so each packed slot mixes the future into every output."
    returns_tokens = True

    def __init__(self, dim: int, packed_len: int, *, heads: int = 1) -> None:
        super().__init__()
        check_int(dim=dim, packed_len=packed_len, heads=heads)
        self.dim, self.packed_len, self.heads = dim, packed_len, heads
        self.packed = nn.Parameter(torch.randn(packed_len, dim))  # P (l, D) of the first layer, learned
        self.pack = Attention(dim, heads=heads)  # P → tokens
        self.unpack = Attention(dim, heads=heads)  # tokens → packed context
        self.norm_packed = nn.LayerNorm(dim)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        packed: Tensor | None = None,
        return_packed: bool = False,
    ) -> Tensor | LunaOutput | tuple[Tensor | LunaOutput, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        B = x.shape[0]
        if packed is None:
            packed = self.packed.to(x.dtype).expand(B, -1, -1)  # (B, l, D)
        check_latents(packed, self.packed_len, self.dim, B, "packed")
        p = self.pack(packed, context=x, mask=mask, return_maps=return_maps)
        context, pmap = p if return_maps else (p, None)  # Yp (B, l, D), (B, H, l, N)
        u = self.unpack(x, context=context, query_mask=mask, return_maps=return_maps)  # padded positions output 0
        out, umap = u if return_maps else (u, None)  # (B, N, D), (B, H, N, l)
        if return_packed:
            out = LunaOutput(out, self.norm_packed(packed + context))  # packed_next (B, l, D)
        return (out, LatentMaps(gather=pmap, broadcast=umap)) if return_maps else out


class LunaOutput(NamedTuple):
    """What :class:`Luna` returns with ``return_packed=True``: the tokens and the packed sequence for the next layer."""

    tokens: Tensor  # (B, N, D)
    packed: Tensor  # (B, l, D): LN(P + Yp)


@dataclass
class LunaState:
    """Decoding state of :class:`LunaCausal` (from :meth:`LunaCausal.new_cache`): O(l·d) numbers whatever the length.

    packed_queries (B, H, l, d_head): the (scaled) packing queries from P.  key_sum, value_sum (B, H, l, d_head):
    Σ_{j≤t} φ_j[s]·k_j and Σ_{j≤t} φ_j[s]·v_j.  max_len: the most tokens it may take.  length: t, the tokens seen.
    Updated in place by ``LunaCausal.forward(x, cache=state)``.
    """

    packed_queries: Tensor
    key_sum: Tensor
    value_sum: Tensor
    max_len: int
    length: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes held (grows with l·d, not with the number of tokens)."""
        return sum(t.nbytes for t in (self.packed_queries, self.key_sum, self.value_sum))

    def numel(self) -> int:
        """Numbers held: the three (B, H, l, d_head) tensors and the step count t."""
        return self.packed_queries.numel() + self.key_sum.numel() + self.value_sum.numel() + 1


class LunaCausal(nn.Module):
    """Causal Luna attention: (B, N, D) → (B, N, D), exactly causal, with an O(l·d) decoding state.

    Args: dim, packed_len (l), heads, packing: the positive packing weight φ, "elu" (elu + 1, default) or
    "softplus" (β = ln 2), see :data:`PACKING`.

    * ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False, packed (B, l, D) | None)`` →
      out (B, N, D) [, :class:`LatentMaps`]. Always causal: ``causal`` is accepted for the uniform call and changes
      nothing. The fast path runs cumulative sums, O(N·l·d); ``return_maps=True`` takes the teaching path, which
      writes the same thing with explicit lower-triangular N×N matrices (C = causal averaging matrix,
      C[t, j] = 1/t for j ≤ t)::

          logits = (C ⊙ Q·Kᵀ)·Φ          (B, H, N, l)   Φ = φ(Pk·Pqᵀ) (B, H, N, l): packing weights
          A      = softmax over l slots   (B, H, N, l)   the unpack map
          out    = (C ⊙ A·Φᵀ)·V          (B, H, N, d_head)  C ⊙ A·Φᵀ is the effective token→token map

      Maps: ``gather`` Φᵀ (B, H, l, N) (positive packing weights, not a softmax), ``broadcast`` A (B, H, N, l),
      ``effective_map`` (B, H, N, N), lower-triangular. Padded tokens (mask False) take no part: t counts the real
      tokens ≤ t, and padded positions output zeros.
    * Decoding: ``state = m.new_cache(B, max_len)``, then ``out = m(x_new (B, T, D), cache=state)`` for T ≥ 1 new
      tokens at a time (``start_pos`` defaults to ``state.length``; running sums cannot rewind or skip, so any other
      value is an error). The state is updated in place; outputs equal ``forward`` on the whole sequence.

    ``packed`` (the paper's P) must not depend on the tokens; it is read, never updated.
    """

    stages = ("gather", "broadcast")
    is_causal = True
    causal_note = "position t packs tokens ≤ t with positive weights and running sums divided by t."
    returns_tokens = True

    def __init__(self, dim: int, packed_len: int, *, heads: int = 1, packing: str = "elu") -> None:
        super().__init__()
        check_int(dim=dim, packed_len=packed_len, heads=heads)
        check_dim_heads(dim, heads)
        if packing not in PACKING:
            raise ValueError(f"packing must be one of {sorted(PACKING)}, got {packing!r}")
        self.dim, self.packed_len, self.heads, self.packing = dim, packed_len, heads, packing
        self.packed = nn.Parameter(torch.randn(packed_len, dim))  # P (l, D), learned
        self.to_pq = nn.Linear(dim, dim)  # P → packing queries
        self.to_pk = nn.Linear(dim, dim)  # tokens → packing keys
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    # NOTE: packing weights, running sums and softmax run in float32 for half inputs (upcast): a bfloat16 running
    # sum over thousands of tokens would lose the early ones.
    def _packed_queries(self, packed: Tensor | None, batch: int) -> Tensor:
        if packed is None:
            packed = self.packed.expand(batch, -1, -1)  # (B, l, D)
        check_latents(packed, self.packed_len, self.dim, batch, "packed")
        pq = upcast(split_heads(self.to_pq(packed), self.heads))  # (B, H, l, d_head)
        return pq / math.sqrt(self.dim // self.heads)

    def _project(self, x: Tensor, pq: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Packing weights Φ (B, H, T, l) and q (scaled), k, v (B, H, T, d_head) of new tokens x (B, T, D)."""
        H = self.heads
        pk, q, k, v = (upcast(split_heads(f(x), H)) for f in (self.to_pk, self.to_q, self.to_k, self.to_v))
        phi = PACKING[self.packing](torch.einsum("bhtd,bhld->bhtl", pk, pq))  # (B, H, T, l), positive
        return phi, q / math.sqrt(self.dim // H), k, v

    def new_cache(self, batch: int, max_len: int, *, packed: Tensor | None = None) -> LunaState:
        """The empty decoding state for ``batch`` sequences of up to ``max_len`` tokens; ``packed`` (B, l, D) or the
        learned one."""
        check_int(batch=batch, max_len=max_len)
        pq = self._packed_queries(packed, batch)  # (B, H, l, d_head)
        return LunaState(pq, torch.zeros_like(pq), torch.zeros_like(pq), max_len)

    def _advance(self, x: Tensor, state: LunaState, mask: Tensor | None = None) -> Tensor:
        """The fast path: T new tokens x (B, T, D) after ``state.length`` earlier ones → outputs (B, T, D).

        Updates ``state`` in place. ``mask`` (B, T): padded tokens add nothing, t counts the real ones.
        """
        T = x.shape[1]
        phi, q, k, v = self._project(x, state.packed_queries)  # (B, H, T, l), (B, H, T, d_head) ×3
        if mask is None:
            t = torch.arange(state.length + 1, state.length + T + 1, dtype=phi.dtype, device=x.device)[:, None]
        else:
            keep = mask[:, None, :, None].to(phi.dtype)  # (B, 1, T, 1)
            phi, t = phi * keep, keep.cumsum(2).clamp(min=1)  # t (B, 1, T, 1): real tokens so far
        # running sums over the new tokens, continuing the state's; φ_j[s]·k_j is an outer product: (B, H, T, l, d_head)
        key_sums, value_sums = running_sums(phi, k, state.key_sum), running_sums(phi, v, state.value_sum)
        logits = torch.einsum("bhtd,bhtld->bhtl", q, key_sums) / t  # (B, H, T, l)
        attn = masked_softmax(logits, dim=-1)  # over the l packed slots
        read = torch.einsum("bhtl,bhtld->bhtd", attn, value_sums) / t  # (B, H, T, d_head)
        state.key_sum, state.value_sum, state.length = key_sums[:, :, -1], value_sums[:, :, -1], state.length + T
        return self.to_out(merge_heads(read.to(x.dtype)))  # (B, T, D)

    def _teaching(self, x: Tensor, pq: Tensor, mask: Tensor | None) -> tuple[Tensor, LatentMaps]:
        """The same outputs with explicit N×N matrices, and the maps."""
        N = x.shape[1]
        phi, q, k, v = self._project(x, pq)  # (B, H, N, l), (B, H, N, d_head) ×3
        tri = causal_mask(N, device=x.device).to(phi.dtype)  # (N, N)
        if mask is None:
            t = torch.arange(1, N + 1, dtype=phi.dtype, device=x.device)[:, None]  # (N, 1)
        else:
            keep = mask[:, None, :, None].to(phi.dtype)  # (B, 1, N, 1)
            tri, t = tri * keep.transpose(-1, -2), keep.cumsum(2).clamp(min=1)  # (B, 1, N, N), (B, 1, N, 1)
        causal_avg = tri / t  # C: row t averages the (real) tokens ≤ t
        logits = (causal_avg * (q @ k.transpose(-1, -2))) @ phi  # (B, H, N, l)
        attn = masked_softmax(logits, dim=-1)  # (B, H, N, l)
        effective = causal_avg * (attn @ phi.transpose(-1, -2))  # (B, H, N, N), lower-triangular
        out = self.to_out(merge_heads((effective @ v).to(x.dtype)))  # (B, N, D)
        if mask is None:
            return out, LatentMaps(gather=phi.transpose(-1, -2), broadcast=attn, effective_map=effective)
        # padded tokens: their columns of the packing weights and their rows of the other maps are zeros
        gather = phi.transpose(-1, -2) * keep.transpose(-1, -2)
        return out, LatentMaps(gather=gather, broadcast=attn * keep, effective_map=effective * keep)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        packed: Tensor | None = None,
        cache: LunaState | None = None,
        start_pos: int | None = None,
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        check_input(self, x, mask)
        B = x.shape[0]
        if cache is not None:
            self._check_cache(x, cache, start_pos)
            if mask is not None or packed is not None or return_maps:
                raise ValueError(
                    "decoding with a cache takes neither mask, packed (give it to new_cache) nor return_maps"
                )
            return self._advance(x, cache)
        if start_pos is not None:
            raise ValueError("start_pos needs a cache (from new_cache)")
        x = zero_padded(x, mask)  # whatever padded tokens hold (even NaN) reaches no product
        if return_maps:
            out, maps = self._teaching(x, self._packed_queries(packed, B), mask)
        else:
            out = self._advance(x, self.new_cache(B, x.shape[1], packed=packed), mask)
        out = zero_padded(out, mask)  # padded positions output zeros
        return (out, maps) if return_maps else out

    @staticmethod
    def _check_cache(x: Tensor, cache: LunaState, start_pos: int | None) -> None:
        if not isinstance(cache, LunaState):
            raise TypeError(f"cache must be a LunaState (from LunaCausal.new_cache), got {type(cache).__name__}")
        if x.shape[0] != cache.key_sum.shape[0]:
            raise ValueError(f"x has batch size {x.shape[0]} but the cache was made for {cache.key_sum.shape[0]}")
        if start_pos is not None:
            check_int(start_pos=start_pos, minimum=0)
            if start_pos != cache.length:
                raise ValueError(
                    f"the running sums hold {cache.length} token(s), so new tokens go to position {cache.length}"
                    f" (start_pos defaults to it); they cannot rewind or skip to start_pos={start_pos}"
                )
        if cache.length + x.shape[1] > cache.max_len:
            raise ValueError(
                f"cannot add {x.shape[1]} token(s): the cache holds {cache.length} of max_len={cache.max_len}"
            )
