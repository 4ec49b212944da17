"""The package's one training loop (:func:`fit`, used by the tagger here and the LM in :mod:`lattn.lm`), the tagger
model the lessons train, and the mixers it compares.

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
    >>> history = train(model, task, steps=200, seed=0)      # a tqdm bar, then one line: "trained: loss …"
    >>> model = MixerSpec("latent", num_latents=4).tagger(task, dim=32, heads=2, seed=0)   # built from a spec
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .attention import Attention, MultiHeadAttention
from .checks import check_int, check_tokens
from .latent import STAGES, LatentAttention, check_stages
from .notebooks import progress_bar
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
    "fit",
    "latent_profile",
    "latent_roles",
    "token_rows",
    "train",
]

Task = Callable[[int, torch.Generator], Batch]


class Tagger(nn.Module):
    """Per-token classifier around one attention mixer.

    ``forward(x (B, N, in_dim), *, mask (B, N) = None, return_maps=False) → logits (B, N, num_classes)``;
    ``return_maps=True`` also returns the mixer's maps. The mixer follows the package's calling convention:
    ``mixer(x (B, N, dim), *, mask, return_maps) → (B, N, dim)``.
    """

    def __init__(self, in_dim: int, dim: int, num_classes: int, mixer: nn.Module) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.mixer = mixer
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_classes))

    def forward(self, x: Tensor, *, mask: Tensor | None = None, return_maps: bool = False):
        h = self.embed(x)  # (B, N, dim)
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
        pos = torch.arange(x.shape[1], device=x.device)  # (N,)
        band = (pos[:, None] - pos[None, :]).abs() <= self.window  # (N, N) True = within the window
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


def token_rows(maps, stage: str) -> Tensor:
    """One stage of :class:`~lattn.latent.LatentMaps` with tokens along the rows: write / broadcast (B, H, N, M),
    gather transposed (B, H, N, M), or ``"effective"`` broadcast @ gather (B, H, N, N)."""
    if stage == "effective":
        return maps.effective()  # (B, H, N, N)
    m = getattr(maps, stage)
    return m.transpose(-1, -2) if stage == "gather" else m  # (B, H, N, M)


@torch.no_grad()
def latent_profile(model: nn.Module, task, size: int = 64, seed: int = 2024) -> dict[str, Tensor]:
    """Per stage (write / gather / broadcast), (H, M, G): the share of each latent's weight per token group of a
    trained latent tagger, over one batch of ``size`` sequences of ``task`` (which gives ``groups(batch)``),
    weighted per token (:func:`latent_roles` with ``per_token=True``)."""
    batch = task(size, torch.Generator().manual_seed(seed))
    labels, names = task.groups(batch)
    _, maps = model(batch.x, mask=batch.mask, return_maps=True)
    stages = ("write", "gather", "broadcast")
    return {s: latent_roles(token_rows(maps, s), labels, len(names), per_token=True) for s in stages}


@dataclass
class History:
    """What a run of :func:`fit` recorded: the training loss (and accuracy, where the task has one) per step, the
    validation loss at ``val_steps``, the training tokens and the wall time of the training steps.

    ``seconds`` depends on the machine, so it takes no part in comparisons (``==``) of histories.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)  # per step, fraction of the scored tokens right (tagger)
    val_steps: list[int] = field(default_factory=list)  # steps after which the validation loss was measured
    val_loss: list[float] = field(default_factory=list)
    tokens: int = 0  # training tokens processed (B·N per step)
    seconds: float = field(default=0.0, compare=False)  # wall time of the training steps (validation excluded)

    def summary(self, desc: str = "") -> str:
        """The line a run leaves behind, e.g. ``trained latent M=4: loss 0.0523, accuracy 0.98 (300 steps, 1.2 s)``.

        The last step's loss (3 significant digits) and accuracy (2 decimals), the last validation loss if any
        (3 significant digits), then the steps and the wall time (machine-dependent: the only part that a notebook
        comparison must mask, by ``steps, <time> s)``).
        """
        parts = [f"loss {self.loss[-1]:.3g}"] if self.loss else ["no steps"]
        if self.accuracy:
            parts.append(f"accuracy {self.accuracy[-1]:.2f}")
        if self.val_loss:
            parts.append(f"validation loss {self.val_loss[-1]:.3g}")
        name = f"trained {desc}" if desc and desc != "training" else "trained"
        return f"{name}: {', '.join(parts)} ({len(self.loss)} steps, {self.seconds:.1f} s)"

    @property
    def tokens_per_s(self) -> float:
        """Training throughput: tokens (forward + backward + update) per second of wall time."""
        return self.tokens / self.seconds if self.seconds else float("nan")


LossFn = Callable[[nn.Module, Any], tuple[Tensor, float | None, int]]  # (model, batch) → (loss, accuracy, tokens)


def fit(
    model: nn.Module,
    next_batch: Callable[[torch.Generator], Any],
    loss_fn: LossFn,
    steps: int,
    *,
    lr: float,
    seed: int = 0,
    min_lr: float | None = None,
    clip: float | None = None,
    validate: Callable[[], float] | None = None,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """THE training loop of the package: ``steps`` AdamW steps (weight decay 0.01) on fresh batches, no early stop.

    ``next_batch(generator) → batch`` draws from a generator seeded with ``seed`` (deterministic on the CPU);
    ``loss_fn(model, batch) → (loss, accuracy or None, tokens)``. ``min_lr``: None = constant ``lr``, else a cosine
    decay from ``lr`` to ``min_lr`` over the budget. ``clip``: clip the gradient norm to it. ``validate() → loss``
    runs before the first step, every ``eval_every`` steps and after the last (``eval_every`` > 0). The model is
    left in eval mode. ``progress=True``: a tqdm bar shows the loss while it runs, then vanishes and leaves one
    printed line, :meth:`History.summary`; ``progress=False`` prints nothing.
    """
    check_int(steps=steps)
    check_int(eval_every=eval_every, minimum=0)
    if eval_every and validate is None:
        raise ValueError("eval_every > 0 needs a validate() function")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = None if min_lr is None else torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=min_lr)
    history = History()
    eval_seconds = 0.0

    def run_validation(step: int) -> None:
        nonlocal eval_seconds
        start = time.perf_counter()
        history.val_steps.append(step)
        history.val_loss.append(validate())
        eval_seconds += time.perf_counter() - start
        model.train()

    start = time.perf_counter()
    if eval_every:
        run_validation(0)
    model.train()
    bar = progress_bar(range(1, steps + 1), desc, steps, disable=not progress)
    for step in bar:
        loss, acc, tokens = loss_fn(model, next_batch(g))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if sched is not None:
            sched.step()
        history.loss.append(loss.item())
        history.tokens += tokens
        if acc is not None:
            history.accuracy.append(acc)
        if eval_every and (step % eval_every == 0 or step == steps):
            run_validation(step)
        bar.set_postfix(loss=f"{loss.item():.3f}", **({} if acc is None else {"acc": f"{acc:.2f}"}), refresh=False)
    history.seconds = time.perf_counter() - start - eval_seconds  # training time only
    model.eval()
    if progress:
        print(history.summary(desc), flush=True)
    return history


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
    """Train a tagger on fresh batches of ``task`` for a fixed budget of ``steps`` (AdamW, through :func:`fit`).

    ``task`` is any callable ``(batch_size, generator) → Batch`` whose targets ``model(batch.x, mask=batch.mask)``
    scores with logits (B, N, C) (per-token targets (B, N), only ``batch.scored`` tokens count) or (B, C) (one
    target per sequence). ``cosine=True`` decays the learning rate to 0 along a cosine over the budget.
    Deterministic on the CPU: the data come from a generator seeded with ``seed`` (initialise the model with its
    own seed). Returns the :class:`History` (loss and accuracy per step).
    """
    check_int(batch_size=batch_size)

    def loss(model: nn.Module, batch: Batch) -> tuple[Tensor, float, int]:
        return (*_loss_and_accuracy(model, batch), batch.x.shape[0] * batch.x.shape[1])

    return fit(
        model, lambda g: task(batch_size, g), loss, steps, lr=lr, seed=seed, min_lr=0.0 if cosine else None,
        progress=progress, desc=desc,
    )  # fmt: skip


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, batch_size: int = 256, seed: int = 1234) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on one held-out batch drawn with ``seed`` (the training data use others)."""
    model.eval()
    loss, acc = _loss_and_accuracy(model, task(batch_size, torch.Generator().manual_seed(seed)))
    return loss.item(), acc
