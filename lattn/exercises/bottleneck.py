"""Checkers for notebook 03 (what the bottleneck keeps and what it loses): the ideal clean-slot memory's accuracy
(a reference the learner predicts trained models against), the latent tally of the explorer, and the learner's own
training loop, checked against :func:`lattn.train.fit` with the same seed."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..analysis import latent_roles
from ..tagger import MixerSpec, Tagger
from ..tasks import KeyValueRetrieval, slot_memory_accuracy
from ..train import evaluate, train
from . import Verdict, run_check

__all__ = ["LOOP_SETTINGS", "check_capacity", "check_head_capacity", "check_latent_share", "check_min_slots",
           "check_training_loop", "loop_model"]  # fmt: skip


def _reference_check(expected: float, num_facts: int, slots: int, num_values: int, wrong: dict[float, str], other: str):
    """A checker of an ideal clean-slot memory's accuracy: right within 5e-3; a known wrong value gets its hint
    (``wrong``: value → hint), as do "forgot the guesses" and a value outside [0, 1]; anything else gets ``other``."""

    def check(a):
        a = float(a)
        if math.isclose(a, expected, abs_tol=5e-3):
            return True, ""
        wrong_values = {
            **wrong,
            min(slots, num_facts) / num_facts: "a forgotten fact is not always wrong: a guess among "
            f"{num_values} values is right 1/{num_values} of the time.",
        }
        for value, hint in wrong_values.items():
            if math.isclose(a, value, abs_tol=5e-3):
                return False, hint
        return False, "an accuracy lies between 0 and 1." if a > 1 or a < 0 else other

    return check


def check_capacity(answer: Any, num_facts: int = 16, slots: int = 4, num_values: int = 8) -> Verdict:
    """Expected query accuracy of an ideal clean-slot memory holding ``slots`` of ``num_facts`` facts (V values)."""
    expected = slot_memory_accuracy(num_facts, slots, num_values)
    check = _reference_check(
        expected, num_facts, slots, num_values,
        {1 / num_values: "that is pure guessing: the stored facts are answered for sure."},
        "a query asks a stored fact with probability S/K (then it is right), else the memory guesses.",
    )  # fmt: skip
    return run_check(
        answer,
        check,
        f"S/K + (1 − S/K)/V = {slots}/{num_facts} + {num_facts - slots}/{num_facts}·1/{num_values} = {expected:.4f}.",
        f"set accuracy to the expected accuracy of an ideal {slots}-slot memory on {num_facts} facts ({num_values} "
        "values).",
    )


def check_head_capacity(
    answer: Any, num_facts: int = 8, latents: int = 1, heads: int = 4, num_values: int = 8
) -> Verdict:
    """The H·M-slot reference of a latent layer with ``latents`` latents of ``heads`` heads each on ``num_facts``
    facts: an ideal clean-slot memory of heads × latents slots (each head of a latent keeps its own weighted mean,
    one clean fact each). A reference to compare trained models with, not a bound on them."""
    slots = heads * latents
    expected = slot_memory_accuracy(num_facts, slots, num_values)
    one_per_latent = slot_memory_accuracy(num_facts, latents, num_values)
    check = _reference_check(
        expected, num_facts, slots, num_values,
        {one_per_latent: f"that counts one fact per latent; each of the {heads} heads keeps its own weighted mean."},
        "count the slots (heads × latents), then use S/K + (1 − S/K)/V.",
    )  # fmt: skip
    kept = min(slots, num_facts)
    return run_check(
        answer,
        check,
        f"{heads} heads × {latents} latent(s) = {slots} slots: {kept}/{num_facts} + "
        f"{num_facts - kept}/{num_facts}·1/{num_values} = {expected:.4f}.",
        f"set reference to the accuracy of an ideal clean-slot memory with one slot per head of {latents} latent(s) "
        f"with {heads} heads, on {num_facts} facts ({num_values} values).",
    )


def check_min_slots(answer: Any, num_facts: int = 8, target: float = 0.9, num_values: int = 8) -> Verdict:
    """The fewest slots S with which an ideal memory reaches ``target`` accuracy on ``num_facts`` facts."""
    need = next(s for s in range(num_facts + 1) if slot_memory_accuracy(num_facts, s, num_values) >= target)

    def check(a):
        if int(a) != a:
            return False, "a number of slots is a whole number."
        a = int(a)
        if a == need:
            return True, ""
        acc = slot_memory_accuracy(num_facts, max(a, 0), num_values)
        if a < need:
            return False, f"with {a} slots the ideal memory scores {acc:.3f} < {target}: more room is needed."
        return False, f"{a} slots work ({acc:.3f}), but fewer would too: find the smallest."

    return run_check(
        answer,
        check,
        f"{need} slots: {slot_memory_accuracy(num_facts, need, num_values):.3f} ≥ {target}, while {need - 1} give "
        f"{slot_memory_accuracy(num_facts, need - 1, num_values):.3f}.",
        f"set min_slots to the fewest slots that reach {target:.0%} on {num_facts} facts ({num_values} values).",
    )


def check_latent_share(fn: Callable[..., torch.Tensor] | None) -> Verdict:
    """``fn(write (N, M), groups (N,) ints, num_groups) → (M, G)``: each latent's share of write weight per group."""

    def check(fn):
        g = torch.Generator().manual_seed(0)
        write = torch.rand(9, 3, generator=g).softmax(-1)  # (N, M)
        groups = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0, 2])
        expected = latent_roles(write[None, None], groups[None], 3)[0]  # (M, G)
        got = torch.as_tensor(fn(write, groups, 3), dtype=expected.dtype)
        if tuple(got.shape) == (3, 3) and torch.allclose(got, expected.T, atol=1e-5):
            return False, "one row per latent: the result should be (M, G), latents down, groups across."
        if tuple(got.shape) != (3, 3):
            return False, f"expected shape (M, G) = (3, 3), got {tuple(got.shape)}."
        if not torch.allclose(got.sum(-1), torch.ones(3), atol=1e-5):
            return False, "each latent's shares should sum to 1: divide by the latent's total weight."
        return torch.allclose(got, expected, atol=1e-5), "sum each latent's weights over the tokens of each group."

    return run_check(
        fn,
        check,
        "your tally matches lattn.analysis.latent_roles.",
        "write latent_share(write, groups, num_groups), then call check_latent_share(latent_share).",
    )


# --- the learner's training loop --------------------------------------------------------------------------------------

LOOP_SETTINGS = {"steps": 12, "batch_size": 8, "lr": 3e-3, "seed": 3}  # what check_training_loop passes
_DROPOUT_SEED = 0  # the global random state the dropout masks come from, the same for both runs


def loop_model() -> tuple[KeyValueRetrieval, Tagger]:
    """The small task and tagger of the training-loop exercise: retrieval at N = 12 (2 facts, 4 scored queries), a
    latent tagger (M = 2, width 16, 2 heads) with dropout 0.1 in its head — so training mode and evaluation mode
    give different outputs."""
    task = KeyValueRetrieval(seq_len=12, num_facts=2, num_queries=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Tagger(task.dim, 16, task.num_classes, MixerSpec("latent", num_latents=2).build(16, 2), dropout=0.1)
    return task, model


def _run(fn, model: Tagger, task) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_DROPOUT_SEED)
        return fn(model, task, **LOOP_SETTINGS)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def check_training_loop(fn: Callable[..., Any] | None) -> Verdict:
    """``fn(model, task, steps, batch_size, lr, seed) → (losses, accuracy)``: the learner's training loop (AdamW,
    weight decay 0.01, constant learning rate, data drawn from a generator seeded with ``seed``) followed by the
    held-out accuracy on ``task(256, Generator().manual_seed(1234))`` in evaluation mode.

    Compared with :func:`lattn.train.train` (which runs :func:`lattn.train.fit`) and :func:`lattn.train.evaluate`
    on the same fresh model (:func:`loop_model`), the same seed and the same dropout masks: the losses step by step,
    the final weights and the accuracy. Each usual slip gets its own hint.
    """

    def check(fn):
        task, ref = loop_model()
        _, model = loop_model()
        start = [p.detach().clone() for p in model.parameters()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_DROPOUT_SEED)
            s = LOOP_SETTINGS
            want = train(ref, task, s["steps"], s["batch_size"], s["lr"], s["seed"], progress=False).loss
        want_acc = evaluate(ref, task, batch_size=256, seed=1234)[1]
        out = _run(fn, model, task)
        if not isinstance(out, tuple) or len(out) != 2:
            return False, "return two things: the list of losses (one per step) and the held-out accuracy."
        losses, acc = [float(v) for v in out[0]], float(out[1])
        if len(losses) != len(want):
            return False, f"expected one loss per step ({len(want)}), got {len(losses)}."
        unchanged = all(torch.equal(p, q) for p, q in zip(model.parameters(), start))
        if unchanged and all(p.grad is None for p in model.parameters()):
            return False, ("no gradients reached opt.step(): call loss.backward() before opt.step(), and "
                           "opt.zero_grad() before loss.backward() (not between it and the step).")  # fmt: skip
        if unchanged:
            return False, "the weights never changed: after loss.backward(), call opt.step() to apply the gradients."
        if not _close(losses[0], want[0]):
            return False, (f"the first loss is {losses[0]:.4f}, fit's is {want[0]:.4f}: take the cross-entropy over the "
                           "scored tokens only, logits[batch.scored] against batch.y[batch.scored].")  # fmt: skip
        first_off = next((i for i, (a, b) in enumerate(zip(losses, want)) if not _close(a, b)), None)
        if first_off == 1:
            return False, ("the first loss agrees, the second does not: the first update differs from fit's — use "
                           "AdamW(model.parameters(), lr=lr, weight_decay=0.01) and call opt.zero_grad() before "
                           "loss.backward(), not between it and opt.step().")  # fmt: skip
        if first_off is not None:
            return False, (f"the losses agree for {first_off} steps, then drift ({losses[first_off]:.4f} vs "
                           f"{want[first_off]:.4f}): gradients add up across steps unless you clear them — call "
                           "opt.zero_grad() every step.")  # fmt: skip
        if not all(torch.allclose(p, q, rtol=1e-4, atol=1e-6) for p, q in zip(model.parameters(), ref.parameters())):
            return False, "the losses match fit's, but the final weights do not: make the last step like the others."
        if model.training:
            return False, ("the model is still in training mode: call model.eval() before measuring (this tagger has "
                           "dropout, which switches units off at random in training mode, so the accuracy comes out "
                           f"wrong: {acc:.3f} instead of {want_acc:.3f}).")  # fmt: skip
        if not _close(acc, want_acc):
            return False, (f"training matches fit, but the accuracy is {acc:.3f}, not {want_acc:.3f}: compare "
                           "logits.argmax(-1) with y on the scored tokens of the held-out batch.")  # fmt: skip
        return True, ""

    s = LOOP_SETTINGS
    return run_check(
        fn,
        check,
        f"your loop matches lattn.train.fit step by step ({s['steps']} steps, seed {s['seed']}: same losses, same "
        "weights) and measures the held-out accuracy in evaluation mode.",
        "write my_train(model, task, steps, batch_size, lr, seed), then call check_training_loop(my_train).",
    )
