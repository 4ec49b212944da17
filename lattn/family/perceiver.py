"""The Perceiver family: latents gather from the tokens, think among themselves, and (IO) answer output queries.

* :class:`Perceiver` (Jaegle et al. 2021, arXiv:2103.03206) — M learned latents *gather* from N tokens by
  cross-attention (the ``gather`` stage), then ``depth`` blocks of latent self-attention; the original repeats this
  pair (``repeats``, weights shared after the first). Returns the latents (B, M, D); no broadcast.
  Cost O(repeats·(N·M + depth·M²)).
* :class:`PerceiverIO` (Jaegle et al. 2021, arXiv:2107.14795) — the encoder above (it gathers once) plus a decoder in which O output
  queries read the latents (the ``broadcast`` stage with queries of your choice). Cost + O(O·M). With the tokens as
  queries and no mask it is still bidirectional: every output reads latents that saw every token.
* :class:`PerceiverAR` (Hawthorne et al. 2022, arXiv:2202.07765) — causal: the latents *are* the last M positions,
  and a block-causal mask lets the latent at position p gather only from tokens ≤ p; the latent self-attention is
  causal too. Outputs exist only at the latent positions.

Blocks are pre-norm (LayerNorm → attention or MLP → residual); the latents are layer-normalised before they query
the tokens, as in the reference implementations (DeepMind's and lucidrains'). No positional encodings here: add them to the tokens
(without them the Perceiver encoder cannot tell token order apart — a test checks exactly that).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention import Attention, MultiHeadAttention
from ..checks import check_int, check_tokens
from ..latent import LatentMaps
from ..masks import causal_mask, zero_padded
from ._common import FeedForward, check_input, refuse_causal

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
    """Perceiver encoder: learned latents (M, dim) gather from the tokens, then ``depth`` latent self-attention blocks;
    ``repeats`` > 1 repeats that pair (cross-attention, then the latent blocks), as the original Perceiver does.

    Args:
        dim: width D.  num_latents: M.  heads: heads of the latent self-attention.  cross_heads: heads of the gather.
        depth: latent self-attention blocks after each gather (0 = gather only).  ff_mult: MLP width multiplier.
        repeats: how many times the latents gather (1 = once, as in Perceiver IO; Jaegle et al. 2021 use up to 8
        on images). Repeats 2 … share one set of weights (the paper shares all but the first).
        query_norm: LayerNorm on the latents before they query the tokens (True, as the reference implementations
        do; False = raw latents as queries).

    ``forward(x (B, N, D), *, mask (B, N) bool = real token, causal=False, return_maps=False)`` → latents
    (B, M, D); with ``return_maps=True`` also :class:`LatentMaps` with ``gather`` (B, Hc, M, N) (the first gather),
    ``extra["gather r"]`` for repeats r ≥ 2 and ``extra["latent self-attention i"]`` (B, H, M, M). One gather is
    ``z = z + CrossAttention(LN(z), LN(x))``, then ``z = z + MLP(LN(z))`` (pre-norm).

    Example: ``Perceiver(32, 8)(torch.randn(2, 1000, 32)).shape == (2, 8, 32)`` — a thousand tokens, eight latents.
    """

    stages = ("gather",)
    is_causal = False
    causal_note = "latents shared by all positions gather from every token, so any output would see the future."
    returns_tokens = False

    def __init__(
        self,
        dim: int,
        num_latents: int,
        *,
        heads: int = 1,
        cross_heads: int = 1,
        depth: int = 1,
        ff_mult: int = 4,
        repeats: int = 1,
        query_norm: bool = True,
    ) -> None:
        super().__init__()
        _check_sizes(dim, num_latents, heads, cross_heads, depth, ff_mult)
        check_int(repeats=repeats)
        self.dim, self.num_latents, self.depth, self.repeats = dim, num_latents, depth, repeats
        self.latents = nn.Parameter(torch.randn(num_latents, dim))  # (M, D), learned
        self.norm_tokens = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            _CrossBlock(dim, cross_heads, depth, heads, ff_mult, query_norm) for _ in range(min(repeats, 2))
        )  # block 0: the first gather; block 1 (repeats ≥ 2): shared by every later repeat

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        xn = self.norm_tokens(x)  # (B, N, D), normalised once, read by every gather
        z = self.latents.to(x.dtype).expand(x.shape[0], -1, -1)  # (B, M, D)
        extra: dict[str, Tensor] | None = {} if return_maps else None
        first = None
        for r in range(self.repeats):
            z, gmap = self.blocks[min(r, 1)](z, xn, mask, extra)  # (B, M, D), (B, Hc, M, N) | None
            if r == 0:
                first = gmap
            elif extra is not None:
                extra[f"gather {r + 1}"] = gmap
        return (z, LatentMaps(gather=first, extra=extra)) if return_maps else z


class _CrossBlock(nn.Module):
    """One gather and its latent blocks: z += CrossAttn(LN z → LN x); z += MLP(LN z); then ``depth`` latent blocks.

    A Perceiver repeat, or Perceiver AR's block with ``attn_mask`` (block-causal), ``causal`` latent blocks and
    ``latent_mask`` (B, M) (padded latent positions)."""

    def __init__(self, dim: int, cross_heads: int, depth: int, heads: int, ff_mult: int, query_norm: bool) -> None:
        super().__init__()
        self.norm_latents = nn.LayerNorm(dim) if query_norm else nn.Identity()
        self.gather = Attention(dim, heads=cross_heads)  # latents → tokens
        self.norm_ff, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult)
        self.layers = nn.ModuleList(LatentBlock(dim, heads, ff_mult) for _ in range(depth))

    def forward(
        self,
        z: Tensor,
        xn: Tensor,
        mask: Tensor | None,
        extra: dict[str, Tensor] | None,
        *,
        attn_mask: Tensor | None = None,
        latent_mask: Tensor | None = None,
        causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        zn, rm = self.norm_latents(z), extra is not None
        g = self.gather(zn, context=xn, mask=mask, query_mask=latent_mask, attn_mask=attn_mask, return_maps=rm)
        read, gmap = g if rm else (g, None)  # (B, M, D), (B, Hc, M, N)
        z = z + read
        z = z + self.ff(self.norm_ff(z))  # (B, M, D)
        return _latent_stack(self.layers, z, latent_mask, causal=causal, extra=extra), gmap


class PerceiverIO(nn.Module):
    """Perceiver IO: the :class:`Perceiver` encoder, then output queries read the latents (a broadcast stage).

    Args: as :class:`Perceiver` (one gather: no ``repeats``), plus ``num_outputs`` O: learn O output queries (None =
    use the tokens themselves). The decoder layer-normalises the output queries and the latents it reads.

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
        query_norm: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = Perceiver(
            dim, num_latents, heads=heads, cross_heads=cross_heads, depth=depth, ff_mult=ff_mult, query_norm=query_norm
        )  # gathers once, as Perceiver IO does
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
    ) -> Tensor | tuple[Tensor, LatentMaps]:
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
        qn, zn = self.norm_queries(queries), self.norm_latents(z)
        dec = self.decode(qn, context=zn, query_mask=out_mask, return_maps=return_maps)  # padded rows: zeros
        read, bmap = dec if return_maps else (dec, None)  # (B, O, D), (B, Hc, O, M)
        out = queries + read
        out = out + self.ff(self.norm_ff(out))  # (B, O, D)
        out = zero_padded(out, out_mask)  # padded positions output zeros
        if not return_maps:
            return out
        return out, LatentMaps(gather=enc_maps.gather, broadcast=bmap, extra=enc_maps.extra)


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
        self.norm_tokens = nn.LayerNorm(dim)
        self.block = _CrossBlock(dim, cross_heads, depth, heads, ff_mult, query_norm=True)  # gather: block-causal

    def output_positions(self, seq_len: int) -> range:
        """The positions whose outputs forward returns for a sequence of ``seq_len`` tokens."""
        return range(max(seq_len - self.num_latents, 0), seq_len)

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        check_input(self, x, mask)
        B, N, D = x.shape
        M = min(N, self.num_latents)
        z = x[:, N - M :]  # (B, M, D): the latents are the last M tokens
        latent_mask = None if mask is None else mask[:, N - M :]  # (B, M)
        allowed = causal_mask(M, N, start_pos=N - M, device=x.device)  # (M, N): latent i sits at position N − M + i
        extra: dict[str, Tensor] | None = {} if return_maps else None
        xn = self.norm_tokens(x)  # (B, N, D)
        z, gmap = self.block(z, xn, mask, extra, attn_mask=allowed, latent_mask=latent_mask, causal=True)
        z = zero_padded(z, latent_mask)  # padded latent positions output zeros
        return (z, LatentMaps(gather=gmap, extra=extra)) if return_maps else z  # (B, M, D), (B, Hc, M, N)
