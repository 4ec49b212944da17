"""The Perceiver family: latents gather from the tokens, think among themselves, and (IO) answer output queries.

* :class:`Perceiver` (Jaegle et al. 2021, arXiv:2103.03206) — M learned latents *gather* from N tokens by
  cross-attention (the ``gather`` stage of :class:`~lattn.latent.LatentAttention`), then ``depth`` blocks of latent
  self-attention. Returns the latents (B, M, D); no broadcast. Cost O(N·M + depth·M²).
* :class:`PerceiverIO` (Jaegle et al. 2021, arXiv:2107.14795) — the encoder above plus a decoder in which O output
  queries read the latents (the ``broadcast`` stage with queries of your choice). Cost + O(O·M). With the tokens as
  queries and no mask it is still bidirectional: every output reads latents that saw every token.
* :class:`PerceiverAR` (Hawthorne et al. 2022, arXiv:2202.07765) — causal: the latents *are* the last M positions,
  and a block-causal mask lets the latent at position p gather only from tokens ≤ p; the latent self-attention is
  causal too. Outputs exist only at the latent positions.

Blocks are pre-norm (LayerNorm → attention or MLP → residual). No positional encodings here: add them to the tokens
(without them the Perceiver encoder cannot tell token order apart — a test checks exactly that).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention import Attention, MultiHeadAttention
from ..checks import check_int, check_tokens
from ..latent import LatentAttention
from ._common import FamilyMaps, FeedForward, block_causal_mask, check_input, refuse_causal

__all__ = ["LatentBlock", "Perceiver", "PerceiverAR", "PerceiverIO"]


class LatentBlock(nn.Module):
    """Pre-norm self-attention block over the latents: z += MHA(LN z); z += MLP(LN z). (B, M, D) → (B, M, D)."""

    def __init__(self, dim: int, heads: int = 1, ff_mult: int = 4) -> None:
        super().__init__()
        self.norm_attn, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.ff = FeedForward(dim, ff_mult)

    def forward(
        self, z: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        out = self.attn(self.norm_attn(z), mask=mask, causal=causal, return_maps=return_maps)
        read, maps = out if return_maps else (out, None)  # (B, M, D), (B, H, M, M)
        z = z + read
        z = z + self.ff(self.norm_ff(z))
        return (z, maps) if return_maps else z


def _latent_stack(
    layers: nn.ModuleList, z: Tensor, mask: Tensor | None, causal: bool, extra: dict[str, Tensor] | None
) -> Tensor:
    """Run the latent self-attention blocks; store each map in ``extra`` when it is a dict (teaching path)."""
    for i, layer in enumerate(layers, start=1):
        if extra is None:
            z = layer(z, mask=mask, causal=causal)
        else:
            z, extra[f"latent self-attention {i}"] = layer(z, mask=mask, causal=causal, return_maps=True)
    return z


def _check_sizes(dim: int, num_latents: int, heads: int, cross_heads: int, depth: int, ff_mult: int) -> None:
    check_int(dim=dim, num_latents=num_latents, heads=heads, cross_heads=cross_heads, ff_mult=ff_mult)
    check_int(depth=depth, minimum=0)


class Perceiver(nn.Module):
    """Perceiver encoder: learned latents (M, dim) gather from the tokens, then ``depth`` latent self-attention blocks.

    Args:
        dim: width D.  num_latents: M.  heads: heads of the latent self-attention.  cross_heads: heads of the gather.
        depth: number of latent self-attention blocks (0 = gather only).  ff_mult: MLP width multiplier.

    ``forward(x (B, N, D), *, mask (B, N) bool = real token, causal=False, return_maps=False)`` → latents
    (B, M, D); with ``return_maps=True`` also :class:`FamilyMaps` with ``gather`` (B, Hc, M, N) and ``extra["latent
    self-attention i"]`` (B, H, M, M). The gather is ``LatentAttention(stages=("gather",))`` applied to LN(x).

    Example: ``Perceiver(32, 8)(torch.randn(2, 1000, 32)).shape == (2, 8, 32)`` — a thousand tokens, eight latents.
    """

    stages = ("gather",)
    is_causal = False
    causal_note = "latents shared by all positions gather from every token, so any output would see the future."
    returns_tokens = False

    def __init__(
        self, dim: int, num_latents: int, *, heads: int = 1, cross_heads: int = 1, depth: int = 1, ff_mult: int = 4
    ) -> None:
        super().__init__()
        _check_sizes(dim, num_latents, heads, cross_heads, depth, ff_mult)
        self.dim, self.num_latents, self.depth = dim, num_latents, depth
        self.norm_tokens = nn.LayerNorm(dim)
        self.gather = LatentAttention(dim, num_latents, cross_heads, stages=("gather",))  # owns the latents (M, D)
        self.norm_ff, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult)
        self.layers = nn.ModuleList(LatentBlock(dim, heads, ff_mult) for _ in range(depth))

    @property
    def latents(self) -> nn.Parameter:
        """The learned latents (M, D)."""
        return self.gather.latents

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, FamilyMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        out = self.gather(self.norm_tokens(x), mask=mask, return_maps=return_maps)
        z, stage_maps = out if return_maps else (out, None)  # (B, M, D), gather map (B, Hc, M, N)
        z = z + self.ff(self.norm_ff(z))  # (B, M, D)
        extra: dict[str, Tensor] | None = {} if return_maps else None
        z = _latent_stack(self.layers, z, None, causal=False, extra=extra)
        if not return_maps:
            return z
        return z, FamilyMaps(gather=stage_maps.gather, extra=extra)


class PerceiverIO(nn.Module):
    """Perceiver IO: the :class:`Perceiver` encoder, then output queries read the latents (a broadcast stage).

    Args: as :class:`Perceiver`, plus ``num_outputs`` O: learn O output queries (None = use the tokens themselves).

    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False, queries (B, O, D) | None)`` →
    (B, O, D). The queries are, in this order of preference: the ``queries`` argument, the learned output queries,
    the tokens x (then O = N and padded positions output zeros). Maps: encoder's ``gather`` (B, Hc, M, N),
    ``broadcast`` (B, Hc, O, M), latent self-attention maps in ``extra``; ``maps.effective()`` (B, Hc, O, N) follows
    the attention path only (it skips the latent self-attention and residuals).
    """

    stages = ("gather", "broadcast")
    is_causal = False
    causal_note = "every output query reads latents that gathered from every token (the future included)."

    def __init__(
        self,
        dim: int,
        num_latents: int,
        *,
        num_outputs: int | None = None,
        heads: int = 1,
        cross_heads: int = 1,
        depth: int = 1,
        ff_mult: int = 4,
    ) -> None:
        super().__init__()
        self.encoder = Perceiver(dim, num_latents, heads=heads, cross_heads=cross_heads, depth=depth, ff_mult=ff_mult)
        self.dim, self.num_latents = dim, num_latents
        if num_outputs is not None:
            check_int(num_outputs=num_outputs)
            self.output_queries = nn.Parameter(0.02 * torch.randn(num_outputs, dim))  # (O, D), learned
        else:
            self.register_parameter("output_queries", None)
        self.norm_queries, self.norm_latents = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.decode = Attention(dim, heads=cross_heads)  # output queries → latents
        self.norm_ff, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult)

    @property
    def returns_tokens(self) -> bool:
        """True when the tokens are the output queries (no learned ones): one output per token."""
        return self.output_queries is None

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        queries: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, FamilyMaps]:
        refuse_causal(self, causal)
        enc = self.encoder(x, mask=mask, return_maps=return_maps)
        z, enc_maps = enc if return_maps else (enc, None)  # (B, M, D)
        B = x.shape[0]
        out_mask = None
        if queries is not None:
            check_tokens(queries, self.dim, "queries")
            if queries.shape[0] != B:
                raise ValueError(f"queries need batch size B={B} like x, got shape {tuple(queries.shape)}")
        elif self.output_queries is not None:
            queries = self.output_queries.to(x.dtype).expand(B, -1, -1)  # (B, O, D)
        else:
            queries, out_mask = x, mask  # (B, N, D): one output per token
        dec = self.decode(self.norm_queries(queries), context=self.norm_latents(z), return_maps=return_maps)
        read, bmap = dec if return_maps else (dec, None)  # (B, O, D), (B, Hc, O, M)
        out = queries + read
        out = out + self.ff(self.norm_ff(out))  # (B, O, D)
        if out_mask is not None:
            out = out.masked_fill(~out_mask[..., None], 0)  # padded positions output zeros
        if not return_maps:
            return out
        return out, FamilyMaps(gather=enc_maps.gather, broadcast=bmap, extra=enc_maps.extra)


class PerceiverAR(nn.Module):
    """Perceiver AR: the latents are the last M positions; block-causal gather, causal latent self-attention.

    Args: dim, num_latents (M, the most latents; fewer when N < M), heads, cross_heads, depth, ff_mult as
    :class:`Perceiver`.

    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False)`` → (B, M', D) with
    M' = min(N, M): the outputs at positions N − M' … N − 1 (:meth:`output_positions`). Always causal: ``causal`` is
    accepted for the uniform call and changes nothing. When N ≤ M every position is a latent and the shape is (B, N, D), the block
    interface ``(B, N, D) → (B, N, D)``; for N > M train a language model on the last M targets only. Exactly causal:
    the output at position p depends only on tokens ≤ p. Padded tokens take no part; padded latent positions output
    zeros. Maps: ``gather`` (B, Hc, M', N), block-causal (latent i sees tokens ≤ N − M' + i), and the causal latent
    self-attention maps in ``extra``. Cost O(N·M + depth·M²).
    """

    stages = ("gather",)
    is_causal = True
    causal_note = "latent i sits at position p = N − M + i and gathers only tokens ≤ p (block-causal mask)."
    returns_tokens = False  # outputs at the last M positions only (all of them when N ≤ M)

    def __init__(
        self, dim: int, num_latents: int, *, heads: int = 1, cross_heads: int = 1, depth: int = 1, ff_mult: int = 4
    ) -> None:
        super().__init__()
        _check_sizes(dim, num_latents, heads, cross_heads, depth, ff_mult)
        self.dim, self.num_latents, self.depth = dim, num_latents, depth
        self.norm_latents, self.norm_tokens = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.gather = Attention(dim, heads=cross_heads)  # latents → tokens, block-causal
        self.norm_ff, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult)
        self.layers = nn.ModuleList(LatentBlock(dim, heads, ff_mult) for _ in range(depth))

    def output_positions(self, seq_len: int) -> range:
        """The positions whose outputs forward returns for a sequence of ``seq_len`` tokens."""
        return range(max(seq_len - self.num_latents, 0), seq_len)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, FamilyMaps]:
        check_input(self, x, mask)
        B, N, D = x.shape
        M = min(N, self.num_latents)
        z = x[:, N - M :]  # (B, M, D): the latents are the last M tokens
        latent_mask = None if mask is None else mask[:, N - M :]  # (B, M)
        allowed = block_causal_mask(M, N, x.device)  # (M, N)
        zn, xn = self.norm_latents(z), self.norm_tokens(x)
        g = self.gather(zn, context=xn, mask=mask, attn_mask=allowed, return_maps=return_maps)
        read, gmap = g if return_maps else (g, None)  # (B, M, D), (B, Hc, M, N)
        z = z + read
        z = z + self.ff(self.norm_ff(z))  # (B, M, D)
        extra: dict[str, Tensor] | None = {} if return_maps else None
        z = _latent_stack(self.layers, z, latent_mask, causal=True, extra=extra)
        if latent_mask is not None:
            z = z.masked_fill(~latent_mask[..., None], 0)  # padded latent positions output zeros
        return (z, FamilyMaps(gather=gmap, extra=extra)) if return_maps else z
