"""The tagger the lessons train, and the mixers it compares: a per-token classifier around one attention mixer.

``Tagger`` = input projection (+ optional sinusoidal positions) → one attention *mixer* (with a residual) → MLP head,
giving per-token logits. Swapping the mixer is the only difference between the models the notebooks compare
(:class:`MixerSpec` names one as plain data for result files):

* ``full`` — :class:`~lattn.attention.MultiHeadAttention`, every token sees every token (one layer);
* ``full ×3`` — :class:`StackedAttention`, three full-attention layers: the same depth (three attention steps in a
  row) and the same number of parameters as latent attention apart from the latents;
* ``latent M=…`` — :class:`~lattn.latent.LatentAttention`, write → gather → broadcast through M latents;
* ``window ±w`` — :class:`WindowAttention`, purely local attention (|i − j| ≤ w);
* ``none`` — :class:`NoMixer`, no context at all: what a token can say about itself.

Training is :mod:`lattn.train`; the tasks are :mod:`lattn.tasks`.

Example::

    >>> task = ClusterMajority()
    >>> model = Tagger(task.dim, 32, 2, LatentAttention(32, num_latents=4))
    >>> model = MixerSpec("latent", num_latents=4).tagger(task, dim=32, heads=2, seed=0)   # built from a spec
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .attention import Attention, MultiHeadAttention
from .checks import check_int, check_tokens
from .latent import STAGES, LatentAttention, check_stages
from .masks import band_mask
from .rope import rope_frequencies

__all__ = [
    "MIXER_KINDS",
    "POSITIONS",
    "MixerSpec",
    "NoMixer",
    "StackedAttention",
    "Tagger",
    "WindowAttention",
    "count_parameters",
    "sinusoidal_positions",
]

POSITIONS = ("none", "sinusoidal")  # what a Tagger adds to its tokens about where they are


def sinusoidal_positions(seq_len: int, dim: int) -> Tensor:
    """Sinusoidal position codes (seq_len, dim), float32: position p gets [sin(p·ω_i) | cos(p·ω_i)] with
    ω_i = 10000^(−2i/dim) (the frequencies of :func:`lattn.rope.rope_frequencies`), i = 0 … dim/2 − 1.

    Why these: latents have no position, so relative schemes (RoPE, ALiBi) have nothing to act on in write, gather or
    broadcast — a code added to the tokens is the one kind every mixer uses the same way. It is defined at every
    position (a learned table stops at the training length), and the code of p + k is the code of p turned by a fixed
    angle per frequency pair, the same for every p: "look k ahead" is one linear map at any position. What it cannot
    promise: past the training length the slow pairs reach angles never seen in training.
    """
    check_int(seq_len=seq_len, dim=dim)
    angle = torch.arange(seq_len, dtype=torch.float64)[:, None] * rope_frequencies(dim)[None]  # (N, dim/2)
    return torch.cat([angle.sin(), angle.cos()], dim=-1).float()  # (N, dim)


class Tagger(nn.Module):
    """Per-token classifier around one attention mixer.

    ``forward(x (B, N, in_dim), *, mask (B, N) = None, return_maps=False) → logits (B, N, num_classes)``;
    ``return_maps=True`` also returns the mixer's maps. The mixer follows the package's calling convention:
    ``mixer(x (B, N, dim), *, mask, return_maps) → (B, N, dim)``.
    ``positions="sinusoidal"`` adds :func:`sinusoidal_positions` to the embedded tokens (no parameters; the default
    ``"none"`` leaves the model blind to order). ``dropout`` > 0 adds a dropout layer after the head's GELU (off in
    eval mode; the default 0 adds no layer).
    """

    def __init__(
        self, in_dim: int, dim: int, num_classes: int, mixer: nn.Module, *, positions: str = "none",
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.positions = positions
        self.embed = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mixer = mixer
        drop = [nn.Dropout(dropout)] if dropout else []
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), *drop, nn.Linear(dim, num_classes))

    def forward(self, x: Tensor, *, mask: Tensor | None = None, return_maps: bool = False):
        h = self.embed(x)  # (B, N, dim)
        if self.positions == "sinusoidal":
            h = h + sinusoidal_positions(x.shape[1], h.shape[-1]).to(h)  # (B, N, dim)
        mixed = self.mixer(self.norm(h), mask=mask, return_maps=return_maps)
        mixed, maps = mixed if return_maps else (mixed, None)
        logits = self.head(h + mixed)  # (B, N, C)
        return (logits, maps) if return_maps else logits


class NoMixer(nn.Module):
    """No context: every token's mixer output is zero, so the tagger sees each token alone. (B, N, D) → zeros."""

    is_causal = True  # trivially: nothing is read from any other position
    returns_tokens = True
    stages = ()

    def forward(self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False):
        out = torch.zeros_like(x)  # (B, N, D)
        return (out, None) if return_maps else out


class WindowAttention(MultiHeadAttention):
    """Purely local attention: like :class:`~lattn.attention.MultiHeadAttention`, but token i sees only the tokens
    j with |i − j| ≤ ``window``: the attention layer with a band ``attn_mask`` (O(N²) work, kept simple: it is a
    baseline).

    ``forward(x (B, N, dim), *, mask (B, N) = None, causal=False, return_maps=False)`` → (B, N, dim)
    [, maps (B, H, N, N)].
    """

    def __init__(self, dim: int, heads: int = 1, *, window: int) -> None:
        super().__init__(dim, heads)
        check_int(window=window, minimum=0)
        self.window = window

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        check_tokens(x, self.dim)
        band = band_mask(x.shape[1], self.window, x.device)  # (N, N) True = within the window
        return Attention.forward(self, x, mask=mask, attn_mask=band, causal=causal, return_maps=return_maps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, window={self.window}"


class StackedAttention(nn.Module):
    """``layers`` full-attention layers in a row (pre-norm residual between them): a baseline with the depth and
    the parameter count of latent attention, whose three stages are three attention steps in a row.

    ``h₁ = x + A₁(x)``, ``h₂ = h₁ + A₂(LN(h₁))``, …, output ``A_L(LN(h_{L−1}))`` (the tagger adds the residual).
    ``forward(x (B, N, dim), *, mask=None, causal=False, return_maps=False)`` → (B, N, dim)
    [, tuple of L maps (B, H, N, N)].
    """

    is_causal = True  # causal=True makes every layer causal
    returns_tokens = True

    def __init__(self, dim: int, heads: int = 1, layers: int = 3) -> None:
        super().__init__()
        check_int(layers=layers)
        self.layers = nn.ModuleList(MultiHeadAttention(dim, heads) for _ in range(layers))
        # no affine weights: then the parameter count is exactly layers × MultiHeadAttention's
        self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False) for _ in range(layers - 1))

    def forward(self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False):
        h, maps = x, []
        for i, layer in enumerate(self.layers):
            inp = h if i == 0 else self.norms[i - 1](h)  # the tagger already normalised x
            out = layer(inp, mask=mask, causal=causal, return_maps=return_maps)
            if return_maps:
                out, m = out
                maps.append(m)
            h = h + out if i < len(self.layers) - 1 else out  # (B, N, dim)
        return (h, tuple(maps)) if return_maps else h


MIXER_KINDS = ("full", "latent", "window", "none")


@dataclass(frozen=True)
class MixerSpec:
    """Which mixer a tagger gets, as plain data (it goes into result files).

    Example: ``MixerSpec("latent", num_latents=4)``, ``MixerSpec("full", layers=3)``, ``MixerSpec("window", window=4)``,
    ``MixerSpec("latent", num_latents=4, stages=("gather", "broadcast"))`` (a stage ablation).
    """

    kind: str  # one of MIXER_KINDS
    num_latents: int = 0  # M, for kind="latent"
    layers: int = 1  # for kind="full": 1 = MultiHeadAttention, more = StackedAttention
    window: int = 0  # w, for kind="window": token i sees |i − j| ≤ w
    stages: tuple[str, ...] = STAGES  # for kind="latent": which stages (a list from a JSON file becomes a tuple)

    def __post_init__(self) -> None:
        if self.kind not in MIXER_KINDS:
            raise ValueError(f"kind must be one of {MIXER_KINDS}, got {self.kind!r}")
        if self.kind == "latent" and self.num_latents < 1:
            raise ValueError(f"a latent mixer needs num_latents ≥ 1, got {self.num_latents}")
        object.__setattr__(self, "stages", check_stages(self.stages))  # frozen: set once, validated
        if self.kind == "latent" and "broadcast" not in self.stages:
            raise ValueError(f"a tagger's latent mixer must end with the broadcast stage, got {self.stages}")
        if self.layers < 1:
            raise ValueError(f"layers must be ≥ 1, got {self.layers}")

    @property
    def label(self) -> str:
        """Short name for legends, e.g. "latent M=4", "gather+broadcast M=4", "full ×3", "window ±4"."""
        if self.kind == "latent":
            name = "latent" if self.stages == STAGES else "+".join(self.stages)
            return f"{name} M={self.num_latents}"
        if self.kind == "full":
            return "full" if self.layers == 1 else f"full ×{self.layers}"
        return f"window ±{self.window}" if self.kind == "window" else "none"

    def build(self, dim: int, heads: int) -> nn.Module:
        """The mixer module (dim → dim)."""
        if self.kind == "latent":
            return LatentAttention(dim, self.num_latents, heads=heads, stages=self.stages)
        if self.kind == "full":
            return MultiHeadAttention(dim, heads) if self.layers == 1 else StackedAttention(dim, heads, self.layers)
        return WindowAttention(dim, heads, window=self.window) if self.kind == "window" else NoMixer()

    def tagger(self, task, dim: int = 32, heads: int = 2, seed: int = 0, positions: str = "none") -> Tagger:
        """A :class:`Tagger` for ``task`` (needs ``task.dim`` and ``task.num_classes``) with this mixer,
        initialised from ``seed`` without touching the global random state (``positions``: see :class:`Tagger`)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Tagger(task.dim, dim, task.num_classes, self.build(dim, heads), positions=positions)


def count_parameters(model: nn.Module, latents: bool = True) -> int:
    """Number of trainable parameters; ``latents=False`` leaves out the learned latents (M·D per latent module)."""
    return sum(p.numel() for name, p in model.named_parameters() if latents or not name.endswith("latents"))
