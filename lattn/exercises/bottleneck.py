"""Checkers for notebook 03 (what the bottleneck keeps and what it loses)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..analysis import latent_roles
from ..tasks import slot_memory_accuracy
from . import Verdict, run_check

__all__ = ["check_capacity", "check_head_capacity", "check_latent_share", "check_min_slots"]


def _ceiling_check(expected: float, num_facts: int, slots: int, num_values: int, wrong: dict[float, str], other: str):
    """A checker of an accuracy ceiling: right within 5e-3; a known wrong value gets its hint (``wrong``: value →
    hint), as do "forgot the guesses" and a value outside [0, 1]; anything else gets ``other``."""

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
    """Expected query accuracy of an ideal memory holding ``slots`` of ``num_facts`` facts (values out of V)."""
    expected = slot_memory_accuracy(num_facts, slots, num_values)
    check = _ceiling_check(
        expected, num_facts, slots, num_values,
        {1 / num_values: "that is pure guessing: the stored facts are answered for sure."},
        "a query asks a stored fact with probability S/K (then it is right), else the memory guesses.",
    )  # fmt: skip
    return run_check(
        answer,
        check,
        f"S/K + (1 − S/K)/V = {slots}/{num_facts} + {num_facts - slots}/{num_facts}·1/{num_values} = {expected:.4f}.",
        f"set accuracy to the expected accuracy of a {slots}-slot memory on {num_facts} facts ({num_values} values).",
    )


def check_head_capacity(
    answer: Any, num_facts: int = 8, latents: int = 1, heads: int = 4, num_values: int = 8
) -> Verdict:
    """Ceiling of a latent layer with ``latents`` latents of ``heads`` heads each on ``num_facts`` facts: an ideal
    memory of heads × latents slots (each head of a latent keeps its own weighted mean, so up to one fact each)."""
    slots = heads * latents
    expected = slot_memory_accuracy(num_facts, slots, num_values)
    one_per_latent = slot_memory_accuracy(num_facts, latents, num_values)
    check = _ceiling_check(
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
        f"set ceiling to the accuracy ceiling of {latents} latent(s) with {heads} heads on {num_facts} facts "
        f"({num_values} values).",
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
            return False, f"with {a} slots the ceiling is {acc:.3f} < {target}: more room is needed."
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
