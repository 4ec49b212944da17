"""A small, deterministic training loop, the tagger model the lessons train, and the mixers it compares.

``Tagger`` = input projection → one attention *mixer* (with a residual) → MLP head, giving per-token logits.
Swapping the mixer is the only difference between the models the notebooks compare:

* ``full`` — :class:`~lattn.attention.MultiHeadAttention`, every token sees every token (one layer);
* ``full ×3`` — :class:`StackedAttention`, three full-attention layers: the same depth (three attention steps in a
  row) and the same number of parameters as latent attention apart from the latents;
* ``latent M=…`` — :class:`~lattn.latent.LatentAttention`, write → gather → broadcast through M latents;
* ``window ±w`` — :class:`WindowAttention`, purely local attention (|i − j| ≤ w);
* ``none`` — :class:`NoMixer`, no context at all: what a token can say about itself.

Example::

    >>> task = ClusterMajority()
    >>> model = Tagger(task.dim, 32, 2, LatentAttention(32, num_latents=4))
    >>> history = train(model, task, steps=200, seed=0)      # tqdm progress bar; history.loss[-1] < history.loss[0]
    >>> model = MixerSpec("latent", num_latents=4).tagger(task, dim=32, heads=2, seed=0)   # built from a spec
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attention import MultiHeadAttention, check_mask, check_tokens, fused_attention, merge_heads, scaled_dot_product
from .latent import LatentAttention
from .tasks import Batch

__all__ = [
    "History",
    "MixerSpec",
    "NoMixer",
    "StackedAttention",
    "Tagger",
    "WindowAttention",
    "count_parameters",
    "evaluate",
    "latent_roles",
    "train",
]

Task = Callable[[int, torch.Generator], Batch]


class Tagger(nn.Module):
    """Per-token classifier around one attention mixer.

    ``forward(x (B, N, in_dim), mask (B, N)) → logits (B, N, num_classes)``; ``return_maps=True`` also returns the
    mixer's maps. The mixer maps (B, N, dim) → (B, N, dim) and accepts ``mask`` and ``return_maps``.
    """

    def __init__(self, in_dim: int, dim: int, num_classes: int, mixer: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mixer = mixer
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes))

    def forward(self, x: Tensor, mask: Tensor | None = None, return_maps: bool = False):
        h = self.embed(x)  # (B, N, dim)
        mixed = self.mixer(self.norm(h), mask=mask, return_maps=return_maps)
        mixed, maps = mixed if return_maps else (mixed, None)
        logits = self.head(h + mixed)  # (B, N, C)
        return (logits, maps) if return_maps else logits


class NoMixer(nn.Module):
    """No context: every token's mixer output is zero, so the tagger sees each token alone. (B, N, D) → zeros."""

    def forward(self, x: Tensor, mask: Tensor | None = None, return_maps: bool = False):
        out = torch.zeros_like(x)  # (B, N, D)
        return (out, None) if return_maps else out


class WindowAttention(MultiHeadAttention):
    """Purely local attention: like :class:`~lattn.attention.MultiHeadAttention`, but token i sees only the tokens
    j with |i − j| ≤ ``window``. Computed here with a band mask (O(N²) work, kept simple: it is a baseline).

    ``forward(x (B, N, dim), mask (B, N), return_maps)`` → (B, N, dim) [, maps (B, H, N, N)].
    """

    def __init__(self, dim: int, heads: int = 1, *, window: int) -> None:
        super().__init__(dim, heads)
        if window < 0:
            raise ValueError(f"window must be ≥ 0, got {window}")
        self.window = window

    def forward(self, x: Tensor, mask: Tensor | None = None, return_maps: bool = False):
        check_tokens(x, self.dim)
        check_mask(mask, x)
        pos = torch.arange(x.shape[1], device=x.device)
        allowed = (pos[:, None] - pos[None, :]).abs() <= self.window  # (N, N) the band
        if mask is not None:
            allowed = allowed & mask[:, None, None, :]  # (B, 1, N, N)
        q, k, v = self.project(x)  # (B, H, N, dh) each
        if return_maps:
            out, maps = scaled_dot_product(q, k, v, allowed)  # (B, H, N, dh), (B, H, N, N)
        else:
            out = fused_attention(q, k, v, allowed)
        out = self.to_out(merge_heads(out))  # (B, N, dim)
        if mask is not None:
            out = out * mask[..., None]
        return (out, maps) if return_maps else out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, window={self.window}"


class StackedAttention(nn.Module):
    """``layers`` full-attention layers in a row (pre-norm residual between them): a baseline with the depth and
    the parameter count of latent attention, whose three stages are three attention steps in a row.

    ``h₁ = x + A₁(x)``, ``h₂ = h₁ + A₂(LN(h₁))``, …, output ``A_L(LN(h_{L−1}))`` (the tagger adds the residual).
    ``forward(x (B, N, dim), mask, return_maps)`` → (B, N, dim) [, tuple of L maps (B, H, N, N)].
    """

    def __init__(self, dim: int, heads: int = 1, layers: int = 3) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be ≥ 1, got {layers}")
        self.layers = nn.ModuleList(MultiHeadAttention(dim, heads) for _ in range(layers))
        # no affine weights: then the parameter count is exactly layers × MultiHeadAttention's
        self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False) for _ in range(layers - 1))

    def forward(self, x: Tensor, mask: Tensor | None = None, return_maps: bool = False):
        h, maps = x, []
        for i, layer in enumerate(self.layers):
            inp = h if i == 0 else self.norms[i - 1](h)  # the tagger already normalised x
            out = layer(inp, mask=mask, return_maps=return_maps)
            if return_maps:
                out, m = out
                maps.append(m)
            h = h + out if i < len(self.layers) - 1 else out  # (B, N, dim)
        return (h, tuple(maps)) if return_maps else h


MIXER_KINDS = ("full", "latent", "window", "none")


@dataclass(frozen=True)
class MixerSpec:
    """Which mixer a tagger gets, as plain data (it goes into result files).

    Example: ``MixerSpec("latent", num_latents=4)``, ``MixerSpec("full", layers=3)``, ``MixerSpec("window", window=4)``.
    """

    kind: str  # one of MIXER_KINDS
    num_latents: int = 0  # M, for kind="latent"
    layers: int = 1  # for kind="full": 1 = MultiHeadAttention, more = StackedAttention
    window: int = 0  # w, for kind="window": token i sees |i − j| ≤ w

    def __post_init__(self) -> None:
        if self.kind not in MIXER_KINDS:
            raise ValueError(f"kind must be one of {MIXER_KINDS}, got {self.kind!r}")
        if self.kind == "latent" and self.num_latents < 1:
            raise ValueError(f"a latent mixer needs num_latents ≥ 1, got {self.num_latents}")
        if self.layers < 1:
            raise ValueError(f"layers must be ≥ 1, got {self.layers}")

    @property
    def label(self) -> str:
        """Short name for legends, e.g. "latent M=4", "full ×3", "window ±4"."""
        if self.kind == "latent":
            return f"latent M={self.num_latents}"
        if self.kind == "full":
            return "full" if self.layers == 1 else f"full ×{self.layers}"
        return f"window ±{self.window}" if self.kind == "window" else "none"

    def build(self, dim: int, heads: int) -> nn.Module:
        """The mixer module (dim → dim)."""
        if self.kind == "latent":
            return LatentAttention(dim, self.num_latents, heads=heads)
        if self.kind == "full":
            return MultiHeadAttention(dim, heads) if self.layers == 1 else StackedAttention(dim, heads, self.layers)
        return WindowAttention(dim, heads, window=self.window) if self.kind == "window" else NoMixer()

    def tagger(self, task, dim: int = 32, heads: int = 2, seed: int = 0) -> Tagger:
        """A :class:`Tagger` for ``task`` (needs ``task.dim`` and ``task.num_classes``) with this mixer,
        initialised from ``seed`` without touching the global random state."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Tagger(task.dim, dim, task.num_classes, self.build(dim, heads))


def count_parameters(model: nn.Module, latents: bool = True) -> int:
    """Number of trainable parameters; ``latents=False`` leaves out the learned latents (M·D per latent module)."""
    return sum(p.numel() for name, p in model.named_parameters() if latents or not name.endswith("latents"))


@torch.no_grad()
def latent_roles(write: Tensor, role: Tensor, num_roles: int, per_token: bool = False) -> Tensor:
    """Which tokens each latent specialises on: the share of each latent's weight that goes to each token group.

    write (B, H, N, M) — a map with tokens along N and latents along M (the write or broadcast map, or the
    gather map transposed); role (B, N) — integer group labels in [0, num_roles).
    Returns (H, M, R): for head h and latent m, the fraction of all its weight (over the batch) on tokens of group
    r; each (h, m) row sums to 1 (or 0 if it has no weight). ``per_token=True`` first divides each group's weight
    by the group's number of tokens, so a big group (e.g. filler) does not win by its size alone.
    """
    if write.dim() != 4 or role.shape != (write.shape[0], write.shape[2]):
        raise ValueError(f"need write (B, H, N, M) and role (B, N); got {tuple(write.shape)} and {tuple(role.shape)}")
    onehot = nn.functional.one_hot(role.long(), num_roles).to(write.dtype)  # (B, N, R)
    mass = torch.einsum("bhnm,bnr->hmr", write, onehot)  # (H, M, R)
    if per_token:
        mass = mass / onehot.sum((0, 1)).clamp_min(1)  # (H, M, R) weight per token of each group
    return mass / mass.sum(-1, keepdim=True).clamp_min(1e-12)


@dataclass
class History:
    """Per-step training loss and accuracy (fraction of the scored tokens tagged right), and the wall time.

    ``seconds`` depends on the machine, so it takes no part in comparisons (``==``) of histories.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    seconds: float = field(default=0.0, compare=False)  # wall time of the whole run


def _loss_and_accuracy(model: nn.Module, batch: Batch) -> tuple[Tensor, float]:
    """Cross-entropy and accuracy over the scored tokens (per-token targets) or over sequences (targets (B,))."""
    logits = model(batch.x, mask=batch.mask)  # (B, N, C) or (B, C)
    if batch.y.dim() == 1:  # one target per sequence
        logits, y = logits, batch.y  # (B, C), (B,)
    else:
        m = batch.scored  # (B, N)
        logits, y = logits[m], batch.y[m]  # (T, C), (T,) over the T scored tokens
    loss = nn.functional.cross_entropy(logits, y)
    acc = (logits.argmax(-1) == y).float().mean().item()
    return loss, acc


def train(
    model: nn.Module,
    task: Task,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
    cosine: bool = False,
) -> History:
    """Train ``model`` on fresh batches of ``task`` for a fixed budget of ``steps`` (AdamW, no early stopping).

    ``task`` is any callable ``(batch_size, generator) → Batch`` whose targets ``model(batch.x, mask=batch.mask)``
    scores with logits (B, N, C) (per-token targets (B, N), only ``batch.scored`` tokens count) or (B, C) (one
    target per sequence). ``cosine=True`` decays the learning rate to 0 along a cosine over the budget.
    Deterministic on the CPU: the data come from a generator seeded with ``seed`` (initialise the model with its
    own seed). Returns the :class:`History`.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be ≥ 1, got steps={steps}, batch_size={batch_size}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    history = History()
    model.train()
    start = time.perf_counter()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        loss, acc = _loss_and_accuracy(model, task(batch_size, g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        history.loss.append(loss.item())
        history.accuracy.append(acc)
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.2f}", refresh=False)
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, batch_size: int = 256, seed: int = 1234) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on one held-out batch drawn with ``seed`` (the training data use others)."""
    model.eval()
    loss, acc = _loss_and_accuracy(model, task(batch_size, torch.Generator().manual_seed(seed)))
    return loss.item(), acc
