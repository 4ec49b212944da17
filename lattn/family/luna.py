"""Luna — linear unified nested attention (Ma et al. 2021, arXiv:2106.01540): pack, then unpack.

An extra *packed sequence* P (B, l, D) travels through the layers beside the tokens:

* **pack** (the ``gather`` stage): P queries the tokens, softmax over tokens → packed context Yp (B, l, D);
* **unpack** (the ``broadcast`` stage): the tokens query Yp, softmax over the l slots → output (B, N, D);
* the packed sequence for the next layer is ``LN(P + Yp)`` — its own residual and LayerNorm.

:class:`Luna` is that, bidirectional. :class:`LunaCausal` is the decoder form: the packed context seen at position t
is built from tokens ≤ t only, with positive packing weights φ = elu(·) + 1 (no softmax over tokens, whose
normaliser would include the future) and running sums divided by t::

    packed_t[s] = (1/t) Σ_{j≤t} φ(pk_j · pq_s) · (k_j, v_j)      (l keys and l values for position t)
    out_t       = softmax_s(q_t · packed_keys_t[s]) · packed_values_t

so decoding keeps only two (B, H, l, dh) running sums and the step count: an O(l·d) state (:class:`LunaState`).
Its packed sequence P must not depend on the tokens (it would leak the future), so the causal form takes P but
does not update it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import check_dim_heads, check_mask, check_tokens, merge_heads, split_heads, upcast
from ._common import CrossAttention, FamilyMaps, check_latents, check_positive, refuse_causal, softmax

__all__ = ["Luna", "LunaCausal", "LunaState"]


class Luna(nn.Module):
    """Bidirectional Luna attention with a packed sequence of length l.

    Args: dim, packed_len (l), heads.

    ``forward(x (B, N, D), packed (B, l, D) | None, mask (B, N) | None, return_maps=False)`` →
    ``(out (B, N, D), packed_next (B, l, D))`` [, :class:`FamilyMaps`]. ``packed=None`` uses the learned initial
    packed sequence (l, D) (the first layer); pass ``packed_next`` to the next layer. ``out`` has no residual (the
    block adds it). Maps: ``gather`` = pack (B, H, l, N), ``broadcast`` = unpack (B, H, N, l). Cost O(N·l).
    """

    stages_used = ("gather", "broadcast")
    is_causal = False
    causal_note = "the pack softmax runs over all N tokens, so each packed slot mixes the future into every output."

    def __init__(self, dim: int, packed_len: int, *, heads: int = 1) -> None:
        super().__init__()
        check_positive(packed_len=packed_len)
        self.dim, self.packed_len, self.heads = dim, packed_len, heads
        self.packed = nn.Parameter(torch.randn(packed_len, dim))  # P (l, D) of the first layer, learned
        self.pack = CrossAttention(dim, heads)  # P → tokens
        self.unpack = CrossAttention(dim, heads)  # tokens → packed context
        self.norm_packed = nn.LayerNorm(dim)

    def forward(
        self,
        x: Tensor,
        packed: Tensor | None = None,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, FamilyMaps]:
        refuse_causal(causal, type(self).__name__, self.causal_note)
        check_tokens(x, self.dim)
        check_mask(mask, x)
        B = x.shape[0]
        if packed is None:
            packed = self.packed.to(x.dtype).expand(B, -1, -1)  # (B, l, D)
        check_latents(packed, self.packed_len, self.dim, B, "packed")
        if return_maps:
            context, pmap = self.pack(packed, x, mask, return_maps=True)  # Yp (B, l, D), (B, H, l, N)
            out, umap = self.unpack(x, context, return_maps=True)  # (B, N, D), (B, H, N, l)
        else:
            context = self.pack(packed, x, mask)
            out = self.unpack(x, context)
        if mask is not None:
            out = out * mask[..., None]
        packed_next = self.norm_packed(packed + context)  # (B, l, D)
        if return_maps:
            return out, packed_next, FamilyMaps(gather=pmap, broadcast=umap)
        return out, packed_next


@dataclass(frozen=True)
class LunaState:
    """Decoding state of :class:`LunaCausal` after ``steps`` tokens: O(l·d) numbers whatever the length.

    packed_queries (B, H, l, dh): the (scaled) packing queries from P.  key_sum, value_sum (B, H, l, dh):
    Σ_{j≤t} φ_j[s]·k_j and Σ_{j≤t} φ_j[s]·v_j.  steps: t, the number of tokens seen.
    """

    packed_queries: Tensor
    key_sum: Tensor
    value_sum: Tensor
    steps: int

    def numel(self) -> int:
        """Numbers held (grows with l·d, not with the number of tokens)."""
        return self.packed_queries.numel() + self.key_sum.numel() + self.value_sum.numel() + 1


class LunaCausal(nn.Module):
    """Causal Luna attention: (B, N, D) → (B, N, D), exactly causal, with an O(l·d) decoding state.

    Args: dim, packed_len (l), heads.

    * ``forward(x (B, N, D), packed (B, l, D) | None, return_maps=False)`` → out (B, N, D) [, :class:`FamilyMaps`].
      The fast path runs cumulative sums, O(N·l·d); ``return_maps=True`` takes the teaching path, which writes the
      same thing with explicit lower-triangular N×N matrices (C = causal averaging matrix, C[t, j] = 1/t for j ≤ t)::

          logits = (C ⊙ Q·Kᵀ)·Φ          (B, H, N, l)   Φ = elu(Pk·Pqᵀ) + 1 (B, H, N, l): packing weights
          A      = softmax over l slots   (B, H, N, l)   the unpack map
          out    = (C ⊙ A·Φᵀ)·V          (B, H, N, dh)  C ⊙ A·Φᵀ is the effective token→token map

      Maps: ``gather`` Φᵀ (B, H, l, N) (positive packing weights, not a softmax), ``broadcast`` A (B, H, N, l),
      ``effective_map`` (B, H, N, N), lower-triangular.
    * Decoding: ``state = m.init_state(B)``, then ``out, state = m.step(x_new (B, T, D), state)`` for T ≥ 1 new
      tokens at a time; outputs equal ``forward`` on the whole sequence.

    ``packed`` (the paper's P) must not depend on the tokens; it is read, never updated.
    """

    stages_used = ("gather", "broadcast")
    is_causal = True
    causal_note = "position t packs tokens ≤ t with positive weights and running sums divided by t."

    def __init__(self, dim: int, packed_len: int, *, heads: int = 1) -> None:
        super().__init__()
        check_positive(packed_len=packed_len)
        check_dim_heads(dim, heads)
        self.dim, self.packed_len, self.heads = dim, packed_len, heads
        self.packed = nn.Parameter(torch.randn(packed_len, dim))  # P (l, D), learned
        self.to_pq = nn.Linear(dim, dim)  # P → packing queries
        self.to_pk = nn.Linear(dim, dim)  # tokens → packing keys
        self.to_q, self.to_k, self.to_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    # --- shared pieces --------------------------------------------------------------------------------------------
    # NOTE: packing weights, running sums and softmax run in float32 for half inputs (upcast): a bfloat16 running
    # sum over thousands of tokens would lose the early ones.
    def _packed_queries(self, packed: Tensor | None, batch: int) -> Tensor:
        if packed is None:
            packed = self.packed.expand(batch, -1, -1)  # (B, l, D)
        check_latents(packed, self.packed_len, self.dim, batch, "packed")
        pq = upcast(split_heads(self.to_pq(packed), self.heads))  # (B, H, l, dh)
        return pq / math.sqrt(self.dim // self.heads)

    def _project(self, x: Tensor, pq: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Packing weights Φ (B, H, T, l) and q (scaled), k, v (B, H, T, dh) of new tokens x (B, T, D)."""
        H = self.heads
        pk, q, k, v = (upcast(split_heads(f(x), H)) for f in (self.to_pk, self.to_q, self.to_k, self.to_v))
        phi = F.elu(torch.einsum("bhtd,bhld->bhtl", pk, pq)) + 1  # (B, H, T, l), positive
        return phi, q / math.sqrt(self.dim // H), k, v

    # --- decoding (also the fast path) ----------------------------------------------------------------------------
    def init_state(self, batch_size: int, packed: Tensor | None = None) -> LunaState:
        """The empty state (no token seen yet) for a batch of ``batch_size`` sequences; ``packed`` (B, l, D) or the
        learned one."""
        check_positive(batch_size=batch_size)
        pq = self._packed_queries(packed, batch_size)  # (B, H, l, dh)
        zeros = torch.zeros_like(pq)
        return LunaState(pq, zeros, zeros, 0)

    def step(self, x: Tensor, state: LunaState) -> tuple[Tensor, LunaState]:
        """Feed T ≥ 1 new tokens x (B, T, D) after ``state.steps`` earlier ones → outputs (B, T, D), new state."""
        check_tokens(x, self.dim)
        if not isinstance(state, LunaState):
            raise TypeError(f"state must be a LunaState (from init_state), got {type(state).__name__}")
        if x.shape[0] != state.key_sum.shape[0]:
            raise ValueError(f"x has batch size {x.shape[0]} but the state was made for {state.key_sum.shape[0]}")
        T = x.shape[1]
        phi, q, k, v = self._project(x, state.packed_queries)  # (B, H, T, l), (B, H, T, dh) ×3
        # running sums over the new tokens, continuing the state's; φ_j[s]·k_j is an outer product: (B, H, T, l, dh)
        key_sums = state.key_sum[:, :, None] + (phi[..., None] * k[:, :, :, None]).cumsum(2)
        value_sums = state.value_sum[:, :, None] + (phi[..., None] * v[:, :, :, None]).cumsum(2)
        t = torch.arange(state.steps + 1, state.steps + T + 1, dtype=phi.dtype, device=x.device)  # positions 1…
        logits = torch.einsum("bhtd,bhtld->bhtl", q, key_sums) / t[:, None]  # (B, H, T, l)
        attn = softmax(logits, dim=-1)  # over the l packed slots
        read = torch.einsum("bhtl,bhtld->bhtd", attn, value_sums) / t[:, None]  # (B, H, T, dh)
        out = self.to_out(merge_heads(read.to(x.dtype)))  # (B, T, D)
        return out, LunaState(state.packed_queries, key_sums[:, :, -1], value_sums[:, :, -1], state.steps + T)

    # --- the whole sequence ---------------------------------------------------------------------------------------
    def forward(
        self, x: Tensor, packed: Tensor | None = None, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, FamilyMaps]:
        check_tokens(x, self.dim)
        B, N, D = x.shape
        if not return_maps:
            return self.step(x, self.init_state(B, packed))[0]
        phi, q, k, v = self._project(x, self._packed_queries(packed, B))  # (B, H, N, l), (B, H, N, dh) ×3
        t = torch.arange(1, N + 1, dtype=phi.dtype, device=x.device)
        causal_avg = torch.ones(N, N, dtype=phi.dtype, device=x.device).tril() / t[:, None]  # C (N, N)
        logits = (causal_avg * (q @ k.transpose(-1, -2))) @ phi  # (B, H, N, l)
        attn = softmax(logits, dim=-1)  # (B, H, N, l)
        effective = causal_avg * (attn @ phi.transpose(-1, -2))  # (B, H, N, N), lower-triangular
        out = self.to_out(merge_heads((effective @ v).to(x.dtype)))  # (B, N, D)
        return out, FamilyMaps(gather=phi.transpose(-1, -2), broadcast=attn, effective_map=effective)
