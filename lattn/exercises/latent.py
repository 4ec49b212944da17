"""Checkers for notebook 01's exercises: the write stage, a whole latent-attention module, the rank of the mean of
H heads' gather→broadcast maps, and the memory an attention call must hold.

:func:`check_latent_attention` copies the weights of a :class:`~lattn.latent.LatentAttention` into the learner's
module and compares outputs and maps stage by stage; at the first stage that differs it tries the usual slips (a
softmax on the wrong axis, no renormalisation, no residual, heads merged without transposing back, no scale or √D
for √(D/H)) on an independent float64 forward (:func:`reference`) and names the one that reproduces the learner's
numbers; latents without a batch axis and an instance passed instead of the class get their own hints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..complexity import Shape, method_cost
from ..latent import STAGES, LatentAttention
from . import Verdict, run_check, usual_slip

__all__ = ["check_held_memory", "check_latent_attention", "check_mean_rank", "check_write", "reference", "write_update"]

ATOL = 1e-6  # float64 everywhere: a right answer agrees to ~1e-15, so this only absorbs a forgotten eps


def _inputs(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def write_update(token_q: Tensor, latent_k: Tensor, token_v: Tensor, *, axis: str = "latents",
                 renormalise: bool = True, eps: float = 1e-6,
                 factor: float | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The write stage on (…, N, d) queries, (…, M, d) latent keys, (…, N, dv) values → (each latent's weighted
    mean of the values (…, M, dv), the map (…, N, M)). ``axis``/``renormalise``/``factor`` (what the scores are
    multiplied by, default 1/√d) switch on the usual slips."""
    factor = 1 / math.sqrt(token_q.shape[-1]) if factor is None else factor
    scores = token_q @ latent_k.transpose(-1, -2) * factor  # (…, N, M)
    w = scores.softmax(dim=-1 if axis == "latents" else -2)  # right: each token splits itself over the latents
    share = w / (w.sum(dim=-2, keepdim=True) + eps) if renormalise else w  # each latent's column → weights summing to 1
    return share.transpose(-1, -2) @ token_v, w  # (…, M, dv), (…, N, M)


def reference(la: LatentAttention, x: Tensor, *, write_axis: str = "latents", renormalise: bool = True,
              residual: tuple[str, ...] = ("write", "gather"), scale: str = "d_head", merge_transpose: bool = True,
              axes: dict[str, int] | None = None,
              stale: tuple[str, ...] = ()) -> tuple[Tensor, dict[str, Tensor]]:  # fmt: skip
    """An independent forward of ``la`` (all three stages) on x (B, N, D), in x's dtype, with einsum per head.
    Returns (out (B, N, D), {stage: map}). The keyword arguments reproduce the usual slips: ``write_axis="tokens"``,
    ``renormalise=False``, the stages whose latent update forgets the residual (left out of ``residual``),
    ``scale`` ("D": scores divided by √D instead of √(D/H); "none": not divided), ``merge_transpose=False`` (heads
    (B, H, L, d_head) reshaped to (B, L, D) without transposing back) and ``axes`` ({"gather": -2} or
    {"broadcast": -2}: that stage's softmax over the queries instead of the keys), ``stale`` (the stages that read
    the latents as they were before the stage in front of them: gather's queries from the original latents,
    broadcast's keys and values from the latents before gather)."""
    B, N, D = x.shape
    H = la.heads
    factor = {"d_head": 1 / math.sqrt(D // H), "D": 1 / math.sqrt(D), "none": 1.0}[scale]
    dims = {"gather": -1, "broadcast": -1, **(axes or {})}
    P = {s: {n: getattr(la.proj[s], n) for n in ("to_q", "to_k", "to_v", "to_out")} for s in STAGES}

    def heads(t: Tensor) -> Tensor:  # (B, L, D) → (B, H, L, d_head)
        return t.view(B, t.shape[1], H, D // H).transpose(1, 2)

    def merge(t: Tensor) -> Tensor:  # (B, H, L, d_head) → (B, L, D)
        return (t.transpose(1, 2) if merge_transpose else t).reshape(B, t.shape[2], D)

    def softmax_read(stage: str, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        w = (torch.einsum("bhid,bhjd->bhij", q, k) * factor).softmax(dims[stage])
        return torch.einsum("bhij,bhjd->bhid", w, v), w

    maps: dict[str, Tensor] = {}
    z = la.latents.to(x.dtype).expand(B, -1, -1)  # (B, M, D)
    p = P["write"]
    upd, maps["write"] = write_update(heads(p["to_q"](x)), heads(p["to_k"](z)), heads(p["to_v"](x)),
                                      axis=write_axis, renormalise=renormalise, eps=la.eps, factor=factor)  # fmt: skip
    z0, z = z, (z if "write" in residual else 0) + p["to_out"](merge(upd))  # (B, M, D)
    p = P["gather"]
    zq = z0 if "gather" in stale else z
    read, maps["gather"] = softmax_read("gather", heads(p["to_q"](zq)), heads(p["to_k"](x)), heads(p["to_v"](x)))
    zw, z = z, (z if "gather" in residual else 0) + p["to_out"](merge(read))  # (B, M, D)
    p = P["broadcast"]
    zkv = zw if "broadcast" in stale else z
    read, maps["broadcast"] = softmax_read(
        "broadcast", heads(p["to_q"](x)), heads(p["to_k"](zkv)), heads(p["to_v"](zkv))
    )
    return p["to_out"](merge(read)), maps  # (B, N, D)


def _close(a: Any, b: Tensor) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.double(), b, atol=ATOL)


def check_write(fn: Callable[..., Tensor] | None) -> Verdict:
    """``fn(token_q (N, d), latent_k (M, d), token_v (N, dv)) → (M, dv)``: each latent's weighted mean."""

    def check(fn):
        q, k, v = _inputs(6, 9, 8), _inputs(7, 3, 8), _inputs(8, 9, 4)
        got = fn(q, k, v)
        if not isinstance(got, Tensor) or tuple(got.shape) != (3, 4):
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            return False, f"one weighted mean per latent: expected shape (M, dv) = (3, 4), got {shape}."
        if _close(got, write_update(q, k, v, axis="tokens")[0]):
            return False, "wrong axis: in write each token splits itself over the latents — softmax over latents."
        if _close(got, write_update(q, k, v, renormalise=False)[0]):
            return False, "missing renormalisation: divide each latent's column by its sum over tokens (a mean)."
        if _close(got, write_update(q, k, v, factor=1.0)[0]):
            return False, "divide the scores by √d before the softmax."
        if _close(got, write_update(q, k, v)[0]):
            return True, ""
        return False, "scores q·kᵀ/√d (N, M) → softmax over latents → columns / column sums → transpose · v."

    def explain(exc: Exception) -> str | None:
        if "cannot be multiplied" in str(exc):
            return "the latents receive the values: transpose the (N, M) map, Ãᵀ (M×N) · V (N×dv) → (M, dv)"
        return usual_slip(exc)

    return run_check(fn, check, "your write stage matches the package's (softmax over latents, then a weighted mean).",
                     "write my_write(token_q, latent_k, token_v), then call check_write(my_write).",
                     explain=explain)  # fmt: skip


def _maps_of(out: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """Learner's ``(out, maps)`` with maps a dict or a :class:`~lattn.latent.LatentMaps`."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"forward(x) must return (out, maps), got {type(out).__name__}")
    y, maps = out
    get = maps.get if isinstance(maps, dict) else lambda s: getattr(maps, s, None)
    return y, {s: get(s) for s in STAGES}


_SLIPS = {  # the slip, the keyword arguments of reference() that reproduce it, the hint
    "write axis": ({"write_axis": "tokens"}, "write: the softmax runs over the latents (each token splits itself), "
                   "not over the tokens."),
    "renormalise": ({"renormalise": False}, "write: each latent takes a weighted MEAN — divide the map's columns by "
                    "their sums over tokens (+ eps) before multiplying by the values."),
    "write residual": ({"residual": ("gather",)}, "write: add the update to the latents (z = z + …), don't replace them."),
    "gather residual": ({"residual": ("write",)}, "gather: add what the latents read to them (z = z + …), don't "
                        "replace them."),
    "merge": ({"merge_transpose": False}, "merge without transposing back: a stage's read is (B, H, L, d_head); "
              "transpose(1, 2) to (B, L, H, d_head) BEFORE reshape(B, L, D), or heads and rows get mixed."),
    "gather axis": ({"axes": {"gather": -2}}, "gather: the latents are the queries — softmax over the tokens, the "
                    "LAST axis of the (B, H, M, N) scores (dim=-2 normalises over the latents)."),
    "broadcast axis": ({"axes": {"broadcast": -2}}, "broadcast: the tokens are the queries — softmax over the "
                       "latents, the LAST axis of the (B, H, N, M) scores (dim=-2 normalises over the tokens)."),
    "stale gather": ({"stale": ("gather",)}, "gather: its queries come from the latents AFTER write (z = z + the "
                     "write update), not from self.latents as they were."),
    "stale broadcast": ({"stale": ("broadcast",)}, "broadcast: its keys and values come from the latents AFTER "
                        "gather — the summary they just read — not from the latents before gather."),
    "no scale": ({"scale": "none"}, "divide the scores by √d_head = √(D/H) before each softmax."),
    "wide scale": ({"scale": "D"}, "scale the scores by √d_head = √(D/H), the width of one head, not by √D."),
}  # fmt: skip

NO_BATCH_AXIS = (
    "your module works for one sequence but not for a batch of 2: the latents are (M, D), one set shared by the "
    "whole batch — give them a batch axis first, z = self.latents.expand(B, -1, -1) → (B, M, D)."
)
INSTANCE = (
    "pass the class itself, check_latent_attention(MyLatentAttention), not an instance: the checker builds it with "
    "its own sizes and copies the package's weights in."
)


def _runs(module: nn.Module, x: Tensor) -> bool:
    """True when ``module(x)`` runs without an exception."""
    try:
        with torch.no_grad():
            module(x)
    except Exception:
        return False
    return True


def check_latent_attention(cls: type[nn.Module] | None, dim: int = 8, num_latents: int = 3, heads: int = 2) -> Verdict:
    """``cls(dim, num_latents, heads)`` with the parameters of :class:`~lattn.latent.LatentAttention` (``latents``;
    ``proj[stage].to_q/to_k/to_v/to_out``) and ``forward(x (B, N, D)) → (out (B, N, D), maps)``, maps a dict with
    write (B, H, N, M), gather (B, H, M, N), broadcast (B, H, N, M). Weights are copied from the package's module."""

    def check(cls):
        if isinstance(cls, nn.Module):
            return False, INSTANCE
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            return False, f"pass your nn.Module class (MyLatentAttention), got {type(cls).__name__}."
        torch.manual_seed(0)
        ref_la = LatentAttention(dim, num_latents, heads=heads).double()
        try:
            mine = cls(dim, num_latents, heads).double()
        except TypeError as err:
            return False, f"{cls.__name__}(dim, num_latents, heads) must build, as the given __init__ does: {err}"
        try:
            mine.load_state_dict(ref_la.state_dict())
        except RuntimeError as err:
            first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
            return False, f"the parameters must be named like LatentAttention's (latents, proj[stage].to_q …): {first}"
        x = _inputs(9, 2, 7, dim)
        with torch.no_grad():
            try:
                y, maps = _maps_of(mine(x))
            except Exception:
                if _runs(mine, x[:1]):
                    return False, NO_BATCH_AXIS
                raise
            out, want = ref_la(x, return_maps=True)
            variants = {slip: reference(ref_la, x, **kw)[1] for slip, (kw, _) in _SLIPS.items()}
        for s in STAGES:
            expected = getattr(want, s)
            if _close(maps[s], expected):
                continue
            if not isinstance(maps[s], Tensor) or maps[s].shape != expected.shape:
                got = tuple(maps[s].shape) if isinstance(maps[s], Tensor) else type(maps[s]).__name__
                return False, f"maps['{s}'] should have shape {tuple(expected.shape)} (B, H, …), got {got}."
            for slip, (_, hint) in _SLIPS.items():
                if _close(maps[s], variants[slip][s]):
                    return False, hint
            if s == "write" and _close(maps[s], expected / (expected.sum(-2, keepdim=True) + ref_la.eps)):
                return False, (
                    "maps['write'] should be the softmax itself (each row sums to 1 over the latents); "
                    "you returned it with its columns renormalised — keep that for the update only."
                )
            over = "tokens" if s == "gather" else "latents"
            sums = maps[s].double().sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=ATOL):
                return False, f"wrong axis: each row of the {s} map must sum to 1 — softmax over {over} (last axis)."
            return False, f"the first map that differs is {s} (softmax over {over}); {_mismatch(maps[s], expected)}."
        if not isinstance(y, Tensor) or y.shape != out.shape:
            return False, f"the output should have shape (B, N, D) = {tuple(out.shape)}."
        if _close(y, out + x):
            return False, "the output has no residual on the tokens: return to_out(broadcast read) alone."
        if not _close(y, out):
            return False, f"every map matches, the output does not: {_mismatch(y, out)} — broadcast's read → to_out."
        return True, ""

    return run_check(None if _unfinished(cls, dim, num_latents, heads) else cls, check,
                     "your module matches lattn.LatentAttention: the output and all three maps.",
                     "complete MyLatentAttention.forward, then call check_latent_attention(MyLatentAttention).")  # fmt: skip


def _unfinished(cls: Any, dim: int, num_latents: int, heads: int) -> bool:
    """True when the learner's forward still raises NotImplementedError (the notebook's starting point)."""
    if cls is None:
        return True
    if isinstance(cls, nn.Module) or getattr(cls, "forward", None) is nn.Module.forward:  # the check explains
        return False
    try:
        with torch.no_grad():
            cls(dim, num_latents, heads).double()(_inputs(9, 1, 2, dim))
    except NotImplementedError:
        return True
    except Exception:  # any other failure is the check's to explain
        return False
    return False


def check_mean_rank(answer: Any, n: int = 32, m: int = 4, heads: int = 2) -> Verdict:
    """The largest possible rank of the mean of H heads' gather→broadcast maps (each (N×M)·(M×N)): min(N, H·M)."""
    best = min(n, heads * m)

    def check(a):
        if float(a) != int(float(a)):
            return False, f"a rank counts independent rows: a whole number, not {a}."
        a = int(float(a))
        if a == best:
            return True, ""
        if a == m:
            return False, (
                f"each head's map has rank ≤ M = {m}, but the mean adds H = {heads} of them, and a sum can reach "
                "rank A + rank B (rank(A + B) ≤ rank A + rank B): the heads' column spaces need not be the same."
            )
        if a == n:
            return False, "each head's map is (N×M)·(M×N): its inner size M caps its rank; add the H heads' caps."
        return False, f"each of the H = {heads} heads' maps has rank ≤ M = {m}; what can the sum of H such maps reach?"

    return run_check(answer, check, f"at most H·M = {best} (and never more than N = {n}).",
                     f"set mean_rank to the largest rank the mean of H = {heads} heads' maps can have for N = {n}, "
                     f"M = {m}.")  # fmt: skip


def held_mib(method: str, n: int = 16_384, m: int = 64, heads: int = 4, d_head: int = 64) -> float:
    """MiB one attention call of ``method`` must hold (q, k, v, output, kept maps), B = 1, float32."""
    return method_cost(method, Shape(seq_len=n, num_latents=m, heads=heads, d_head=d_head)).peak_bytes / 2**20


def check_held_memory(full_mib: Any, latent_mib: Any, n: int = 16_384, m: int = 64, heads: int = 4,
                      d_head: int = 64) -> Verdict:  # fmt: skip
    """The memory (MiB) the attention call of fused full attention and of latent attention's fast path must hold
    at N tokens: q, k, v and the output (no map is stored on these paths); for latent attention, the largest stage.
    Answers within 1 % pass (so 32 MiB for 32.125 MiB)."""
    want = {"full": held_mib("full-sdpa", n, m, heads, d_head), "latent": held_mib("latent-fast", n, m, heads, d_head)}
    one = n * heads * d_head * 4 / 2**20  # MiB of one N×D float32 tensor

    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 0.01 * b

    def check(answers):
        full, latent = (float(a) for a in answers)
        if near(full, want["full"] * 2**20) or near(latent, want["latent"] * 2**20):
            return False, "answer in MiB: divide the bytes by 2**20 (1 MiB = 1,048,576 bytes)."
        if not near(full, want["full"]):
            hints = [(one, "that is the output alone: the call also holds its inputs q, k and v (each N×D)."),
                     (3 * one, "q, k and v are counted; add the output."),
                     (want["full"] + n * n * heads * 4 / 2**20, "the fused kernel never stores the N×N map: count "
                      "q, k, v and the output only.")]  # fmt: skip
            hint = next((h for v, h in hints if near(full, v)), "count four N×D float32 tensors: q, k, v, output.")
            return False, f"full attention: {hint}"
        if not near(latent, want["latent"]):
            hints = [(one, "that is one N×D tensor: count the stage's q, k, v and output."),
                     (4 * one, "a latent stage has N rows only on the token side: two of its q, k, v, output (e.g. "
                      "broadcast's q and output); the other two have M rows."),
                     (3 * want["latent"], "the stages run one after another: take the largest stage, not the sum.")]  # fmt: skip
            hint = next((h for v, h in hints if near(latent, v)), "for one stage add q, k, v and the output: N×D on "
                        "the token side, M×D on the latent side, 4 bytes per number; the largest stage is the peak.")  # fmt: skip
            return False, f"latent attention: {hint}"
        return True, ""

    answer = None if full_mib is None or latent_mib is None else (full_mib, latent_mib)
    return run_check(answer, check,
                     f"fused full attention must hold {want['full']:g} MiB, latent attention {want['latent']:g} MiB "
                     f"(q, k, v and the output; the largest stage) at N = {n:,}.",
                     f"set full_mib and latent_mib to the MiB each attention call must hold at N = {n:,}.")  # fmt: skip


def _mismatch(got: Tensor, expected: Tensor) -> str:
    bad = (got.double() - expected).abs() > ATOL
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"first mismatch at {idx}: yours {got[idx].item():.4g}, expected {expected[idx].item():.4g}"
