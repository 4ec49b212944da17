"""The package's one training loop, :func:`fit` (used by the tagger through :func:`train` and by the LM in
:mod:`lattn.lm`), its :class:`History`, and :func:`evaluate`.

The models live elsewhere: the tagger and its mixers in :mod:`lattn.tagger`, the character LM in :mod:`lattn.lm`.
The loop shows a progress bar only through the function it is given (``progress=``; by default
:func:`lattn.display.progress_bar`, imported when a bar is asked for).

Example::

    >>> task = ClusterMajority()
    >>> model = MixerSpec("latent", num_latents=4).tagger(task, dim=32, heads=2, seed=0)
    >>> history = train(model, task, steps=200, seed=0)      # a bar, then one line: "trained: loss …"
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .checks import check_int
from .tasks import Batch

__all__ = ["History", "Progress", "evaluate", "fit", "train"]

Task = Callable[[int, torch.Generator], Batch]
Progress = Callable[[range, str], Iterable[int]]  # (steps, desc) → an iterable over the steps, e.g. a tqdm bar


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
    progress: bool | Progress = True,
    desc: str = "training",
) -> History:
    """THE training loop of the package: ``steps`` AdamW steps (weight decay 0.01) on fresh batches, no early stop.

    ``next_batch(generator) → batch`` draws from a generator seeded with ``seed`` (deterministic on the CPU);
    ``loss_fn(model, batch) → (loss, accuracy or None, tokens)``. ``min_lr``: None = constant ``lr``, else a cosine
    decay from ``lr`` to ``min_lr`` over the budget. ``clip``: clip the gradient norm to it. ``validate() → loss``
    runs before the first step, every ``eval_every`` steps and after the last (``eval_every`` > 0). The model is
    left in eval mode. ``progress=True``: a bar (:func:`lattn.display.progress_bar`) shows the loss while it runs,
    then vanishes and leaves one printed line, :meth:`History.summary`; a function ``(steps, desc) → iterable``:
    that bar instead (anything with ``set_postfix`` gets the loss), then the line; ``False`` shows and prints nothing.
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
    bar = _bar(progress, range(1, steps + 1), desc)
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
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{loss.item():.3f}", **({} if acc is None else {"acc": f"{acc:.2f}"}), refresh=False)
    history.seconds = time.perf_counter() - start - eval_seconds  # training time only
    model.eval()
    if progress:
        print(history.summary(desc), flush=True)
    return history


def _bar(progress: bool | Progress, steps: range, desc: str) -> Iterable[int]:
    """The steps behind the bar ``progress`` asks for (see :func:`fit`)."""
    if progress is True:
        from .display import progress_bar  # NOTE: presentation only when asked for; compute imports no display code

        return progress_bar(steps, desc, len(steps))
    return progress(steps, desc) if callable(progress) else steps


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
    progress: bool | Progress = True,
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
