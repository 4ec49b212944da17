"""Slot Attention (Locatello et al. 2020, arXiv:2006.15055): slots compete for the inputs, a few rounds.

The ``write`` stage, iterated: each input token splits itself among the M slots (softmax over *slots*, so slots
compete), a small epsilon keeps every weight positive, and each slot takes the weighted *mean* of the inputs it won
(its column renormalised over inputs). A GRU turns that update into the slot's new value, and a residual MLP
refines it. Repeat ``iters`` times. Cost O(iters·N·M·D).

Unlike :class:`~lattn.latent.LatentAttention`'s write stage (``w / (Σw + eps)``, a residual add) Slot Attention adds
eps *before* renormalising (``(w + eps) / Σ(w + eps)``) and updates with a GRU, as in the paper's Algorithm 1.
The slots' initial values are random draws from a learned Gaussian, or given: permuting them permutes the result.
It keeps its own core (not :class:`~lattn.attention.Attention`): one head, softmax over the slots, eps-renormalised
weighted means and a GRU update.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_int
from ..latent import LatentMaps
from ..masks import masked_softmax, zero_padded
from ._common import check_input, check_latents, refuse_causal

__all__ = ["SlotAttention"]


class SlotAttention(nn.Module):
    """Slot Attention: (B, N, D) inputs → (B, M, D) slots after ``iters`` rounds of competition.

    Args: dim (D), num_slots (M), iters (rounds), eps (added to the weights before renormalising), mlp_mult;
    seed: when given, every call without ``slots`` or ``generator`` draws the initial slots from
    ``torch.Generator().manual_seed(seed)`` — the same draw each time, so the module is a deterministic function
    of x (the comparison table uses ``seed=0``); None (default) draws from torch's global random stream.

    ``forward(x (B, N, D), *, mask (B, N) | None, causal=False, return_maps=False, slots (B, M, D) | None,
    generator=None)`` → slots (B, M, D). ``slots=None`` draws them from N(μ, σ²) (learned μ, σ; ``generator`` or
    ``seed`` makes the draw reproducible). Padded inputs win nothing. Maps (single head): ``write`` (B, 1, N, M) of the last round, rows summing to 1 over slots,
    and ``extra["iteration i"]`` for every round.
    """

    stages = ("write",)
    is_causal = False
    causal_note = "slots are a summary of the whole input, updated from every token in every round."
    returns_tokens = False

    def __init__(
        self,
        dim: int,
        num_slots: int,
        *,
        iters: int = 3,
        eps: float = 1e-8,
        mlp_mult: int = 2,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        check_int(dim=dim, num_slots=num_slots, iters=iters, mlp_mult=mlp_mult)
        if seed is not None:
            check_int(seed=seed, minimum=0)
        self.dim, self.num_slots, self.iters, self.eps, self.seed = dim, num_slots, iters, eps, seed
        self.slots_mu = nn.Parameter(torch.randn(dim))  # μ (D)
        self.slots_log_sigma = nn.Parameter(torch.zeros(dim))  # log σ (D)
        self.norm_inputs, self.norm_slots, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_mult * dim), nn.ReLU(), nn.Linear(mlp_mult * dim, dim))

    def initial_slots(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (B, M, D) initial slots from the learned Gaussian."""
        mu, sigma = self.slots_mu, self.slots_log_sigma.exp()
        noise = torch.randn(batch_size, self.num_slots, self.dim, generator=generator, dtype=mu.dtype)
        return mu + sigma * noise.to(mu.device)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        slots: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        B, N, D = x.shape
        M = self.num_slots
        if slots is None:
            if generator is None and self.seed is not None:
                generator = torch.Generator().manual_seed(self.seed)
            slots = self.initial_slots(B, generator).to(x.dtype)
        check_latents(slots, M, D, B, "slots")
        x = zero_padded(x, mask)  # whatever padded inputs hold (even NaN) reaches no product
        x = self.norm_inputs(x)
        k, v = self.to_k(x), self.to_v(x)  # (B, N, D)
        rounds: dict[str, Tensor] = {}
        for it in range(1, self.iters + 1):
            previous = slots
            q = self.to_q(self.norm_slots(slots))  # (B, M, D)
            logits = torch.einsum("bnd,bmd->bnm", k, q) / math.sqrt(D)  # (B, N, M)
            attn = masked_softmax(logits, dim=-1)  # over slots: the slots compete for each input
            weights = attn + self.eps
            if mask is not None:
                weights = weights * mask[..., None]  # padded inputs give nothing
                attn = attn * mask[..., None]
            weights = weights / weights.sum(dim=1, keepdim=True)  # each slot: a weighted mean over inputs
            updates = torch.einsum("bnm,bnd->bmd", weights.to(x.dtype), v)  # (B, M, D)
            slots = self.gru(updates.reshape(B * M, D), previous.reshape(B * M, D)).view(B, M, D)
            slots = slots + self.mlp(self.norm_mlp(slots))
            if return_maps:
                rounds[f"iteration {it}"] = attn[:, None]  # (B, 1, N, M)
        if not return_maps:
            return slots
        return slots, LatentMaps(write=rounds[f"iteration {self.iters}"], extra=rounds)
