"""Checkers for notebook 04 (the latent-attention family)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ..family import ISAB
from ..family.compare import MECHANISMS
from ..latent import LatentAttention
from . import Verdict, run_check

__all__ = ["CAUSAL_CANDIDATES", "check_causal_choice", "check_isab_from_stages"]

CAUSAL_CANDIDATES = ("latent", "isab", "luna", "luna_causal", "perceiver_ar", "linformer")


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
