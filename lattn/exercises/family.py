"""Checkers for notebook 04 (the latent-attention family)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ..attention import merge_heads
from ..family import ISAB, LunaCausal
from ..family.compare import MECHANISMS
from ..latent import LatentAttention
from . import Verdict, run_check

__all__ = ["CAUSAL_CANDIDATES", "check_causal_choice", "check_isab_from_stages", "check_luna_step", "luna_step_inputs"]

CAUSAL_CANDIDATES = ("latent", "isab", "luna", "luna_causal", "perceiver_ar", "linformer", "nystrom")


def check_isab_from_stages(fn: Callable[[LatentAttention, Tensor], Tensor] | None) -> Verdict:
    """``fn(la, x (B, N, D)) → (B, N, D)``: ISAB (no feed-forward) from a LatentAttention's gather and broadcast
    projections — ``H = I + gather(I → x)``, then ``x + broadcast(x → H)``."""

    def check(fn):
        for seed in (0, 1):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                la = LatentAttention(8, 3, stages=("gather", "broadcast")).double()
            x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(10 + seed), dtype=torch.float64)
            with torch.no_grad():
                want = ISAB.from_latent_attention(la)(x)
                got = fn(la, x)
                if not isinstance(got, Tensor) or tuple(got.shape) != (2, 6, 8):
                    shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
                    return False, f"return one vector per token, shape (B, N, D) = (2, 6, 8); got {shape}."
                if torch.allclose(got, want - x, atol=1e-8):
                    return False, "add the residual: ISAB's second block returns x + attention(x → H)."
                inducing = la.latents.expand(2, -1, -1)
                raw = x + la.proj["broadcast"](x, context=inducing)  # read the raw inducing points
                if torch.allclose(got, raw, atol=1e-8):
                    return False, (
                        "the broadcast must read H = I + gather(I → x), the inducing points *after* they gathered, "
                        "not the raw inducing points I."
                    )
                if not torch.allclose(got, want, atol=1e-8):
                    return False, (
                        "build it in two lines: H = I + gather(I → x) with la.proj['gather'], then "
                        "x + broadcast(x → H) with la.proj['broadcast']; each is q/k/v projections, "
                        "scaled_dot_product, to_out."
                    )
        return True, ""

    return run_check(
        fn,
        check,
        "your ISAB matches lattn.family.ISAB: inducing points gather, then the set reads them back.",
        "write my_isab(la, x) from la.latents, la.proj['gather'] and la.proj['broadcast'], then call "
        "check_isab_from_stages(my_isab).",
    )


def check_causal_choice(answer: Iterable[str] | None) -> Verdict:
    """The keys among :data:`CAUSAL_CANDIDATES` that can run as a decoder without reading the future."""

    def check(answer):
        if isinstance(answer, str):
            return False, 'give a set of keys, e.g. {"latent", "luna"}, not a single string.'
        chosen = set(answer)
        unknown = chosen - set(CAUSAL_CANDIDATES)
        if unknown:
            return False, f"unknown key(s) {sorted(unknown)}; choose among {list(CAUSAL_CANDIDATES)}."
        for key in CAUSAL_CANDIDATES:
            mech = MECHANISMS[key]
            if key in chosen and not mech.causal:
                return False, f"{mech.title} cannot be causal: {mech.causal_note}"
            if key not in chosen and mech.causal:
                return False, f"{mech.title} can: {mech.causal_note}"
        return True, ""

    expected = sorted(k for k in CAUSAL_CANDIDATES if MECHANISMS[k].causal)
    return run_check(
        answer,
        check,
        f"{' and '.join(MECHANISMS[k].title for k in expected)} — each position only ever reads positions ≤ its own.",
        f"set can_be_causal to the set of keys among {list(CAUSAL_CANDIDATES)} that can decode without the future.",
    )


LunaStep = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, int], tuple[Tensor, Tensor, Tensor]]


def luna_step_inputs(m: LunaCausal, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The per-token pieces of a causal Luna layer for x (B, N, D): packing weights φ (B, H, N, l) and q (already
    scaled by 1/√d_head), k, v (B, H, N, d_head) — what one decoding step consumes, token by token."""
    with torch.no_grad():
        return m._project(x, m.new_cache(x.shape[0], x.shape[1]).packed_queries)


def _run_steps(step: LunaStep, phi: Tensor, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Call ``step`` once per token from empty sums; stack its reads → (B, H, N, d_head)."""
    B, H, N, slots = phi.shape
    key_sum = torch.zeros(B, H, slots, q.shape[-1], dtype=q.dtype)  # (B, H, l, d_head)
    value_sum = torch.zeros_like(key_sum)
    reads = []
    for t in range(N):
        read, key_sum, value_sum = step(phi[:, :, t], q[:, :, t], k[:, :, t], v[:, :, t], key_sum, value_sum, t + 1)
        reads.append(read)
    return torch.stack(reads, 2)


def check_luna_step(step: LunaStep | None) -> Verdict:
    """``step(phi (B, H, l), q, k, v (B, H, d_head), key_sum, value_sum (B, H, l, d_head), t) → (read (B, H, d_head),
    key_sum, value_sum)``: one causal Luna decoding step from running sums (t = 1, 2, … counts the tokens so far).

    Add φ_t ⊗ k_t and φ_t ⊗ v_t to the sums; logits = q_t · key_sum / t (l,); a = softmax over the l slots;
    read = a · value_sum / t. Checked by running it token by token against :class:`~lattn.family.LunaCausal`.
    """

    def check(step):
        for seed in (0, 1):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                m = LunaCausal(8, 3, heads=2).double()
            x = torch.randn(2, 7, 8, generator=torch.Generator().manual_seed(20 + seed), dtype=torch.float64)
            phi, q, k, v = luna_step_inputs(m, x)
            with torch.no_grad():
                want = m(x)
                got = _run_steps(step, phi, q, k, v)
                if not isinstance(got, Tensor) or tuple(got.shape) != tuple(q.shape):
                    B, H, _, d_head = q.shape
                    return False, f"read must be one vector per head, shape (B, H, d_head) = {(B, H, d_head)}."
                out = m.to_out(merge_heads(got))  # (B, N, D)
            diff = (out - want).abs().amax(dim=(0, 2))  # (N,): the error at each position
            if diff.max() < 1e-8:
                continue
            first = int((diff > 1e-8).nonzero()[0])
            if first == 0:
                return False, (
                    "the very first token already differs (t = 1, one token in the sums): check the outer "
                    "products φ_t[s]·k_t and φ_t[s]·v_t, logits = q_t · key_sum[s] / t and the softmax over the l slots."
                )
            return False, (
                f"tokens before position {first} match, position {first} does not: the sums must *accumulate* "
                "(key_sum + φ_t ⊗ k_t, returned for the next step) and both the logits and the read are divided by t."
            )
        return True, ""

    return run_check(
        step,
        check,
        "your step reproduces lattn.family.LunaCausal token by token: an l × d_head state per head and per sum.",
        "write my_luna_step(phi, q, k, v, key_sum, value_sum, t) → (read, key_sum, value_sum), then call "
        "check_luna_step(my_luna_step).",
    )
