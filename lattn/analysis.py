"""Small analyses of attention layers: how much of a map a rank-M bottleneck can keep, which latent each group of
tokens reads, which token groups each latent of a trained tagger specialises on, how much each token's output
depends on each input token, and a printable agreement check.

Eckart–Young: the best rank-r approximation of a matrix (in Frobenius norm) keeps its r largest singular values.
One head's gather→broadcast path (``LatentMaps.effective()``) has rank ≤ M, so as a map of weights it can get no
closer to a given full attention map than this bound. The layer's whole token→token dependence (:func:`dependence`)
is not bound by it: the write path and the mixing of heads add to it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "agreement",
    "dependence",
    "latent_per_group",
    "latent_profile",
    "latent_roles",
    "low_rank",
    "rank_errors",
    "sensitivity",
    "singular_values",
    "token_rows",
]

Layer = Callable[[Tensor], Tensor]  # (B, N, D) → (B, N, D_out): a layer, a model, any function of the tokens


def _one_sequence(x: Tensor) -> Tensor:
    """(N, D) or (1, N, D) → (1, N, D), detached; anything else is a ValueError."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor (N, D) or (1, N, D), got {type(x).__name__}")
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] != 1 or not x.is_floating_point():
        raise ValueError(f"x must be one sequence of float tokens, (N, D) or (1, N, D), got {tuple(x.shape)} {x.dtype}")
    return x.detach()


def dependence(fn: Layer, x: Tensor) -> Tensor:
    """The layer's token→token dependence on one sequence, by autograd: entry (i, j) = ‖∂y_i/∂x_j‖, the Frobenius
    norm of the (D_out, D) Jacobian block of output token i with respect to input token j.

    ``fn`` maps (1, N, D) → (1, N, D_out) (e.g. a :class:`~lattn.latent.LatentAttention`); ``x`` (N, D) or
    (1, N, D). Returns (N, N) in x's dtype. Unlike ``LatentMaps.effective()`` it sees every path (write, gather,
    broadcast, all heads, the projections), and it is a local, linear measure: how y moves for a small change of x.
    """
    x = _one_sequence(x)
    with torch.enable_grad():
        try:  # vectorised (vmap): one batched backward pass instead of N·D_out
            jac = torch.autograd.functional.jacobian(lambda t: fn(t[None])[0], x[0], vectorize=True)
        except (RuntimeError, NotImplementedError):  # an op vmap cannot batch: one backward pass per output entry
            jac = torch.autograd.functional.jacobian(lambda t: fn(t[None])[0], x[0])  # (N, D_out, N, D)
    if jac.dim() != 4 or jac.shape[0] != x.shape[1] or jac.shape[2] != x.shape[1]:
        raise ValueError(f"fn must map (1, N, D) to (1, N, D_out); its Jacobian has shape {tuple(jac.shape)}")
    return jac.square().sum(dim=(1, 3)).sqrt()  # (N, N)


def sensitivity(fn: Layer, x: Tensor, *, token: int = 0, size: float = 1.0, seed: int = 0) -> Tensor:
    """How far one token's output moves when another token changes: entry j = ‖y_token(x with x_j + δ) − y_token(x)‖
    for one fixed random δ of norm ``size`` (the same δ for every j), all j in one batch of N copies of x.

    ``fn`` maps (B, N, D) → (B, N, D_out); ``x`` (N, D) or (1, N, D). Returns (N,). A finite change, not a
    derivative: a window of ±w answers exactly 0 for |j − token| > w.
    """
    x = _one_sequence(x)
    N, D = x.shape[1:]
    if not isinstance(token, int) or not 0 <= token < N:
        raise ValueError(f"token must be an int in 0 … {N - 1}, got {token!r}")
    if not size > 0:
        raise ValueError(f"size must be > 0, got {size}")
    delta = torch.randn(D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(x.dtype)
    delta = size * delta / delta.norm()
    changed = x.repeat(N, 1, 1)  # (N, N, D): copy j has token j changed
    changed[torch.arange(N), torch.arange(N)] += delta
    with torch.no_grad():
        y0, y = fn(x)[0, token], fn(changed)[:, token]  # (D_out,), (N, D_out)
    return (y - y0).norm(dim=-1)  # (N,)


def agreement(a: Tensor, b: Tensor, decimals: int = 6) -> str:
    """``"max |diff| = 0.000000"``: the largest absolute difference, printed at ``decimals`` places.

    Raises AssertionError when the difference would not print as 0 at that precision, so the printed line is the
    same on every machine (a raw value like 3e-08 is not) and a real mismatch stops the notebook, with its value.
    """
    if a.shape != b.shape:
        raise ValueError(f"agreement needs tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = (a.detach().double() - b.detach().double()).abs().max().item() if a.numel() else 0.0
    if not diff < 0.5 * 10.0**-decimals:
        raise AssertionError(f"max |diff| = {diff:.3g}, more than {decimals} decimals allow")
    return f"max |diff| = {0.0:.{decimals}f}"


def latent_per_group(broadcast: Tensor, groups: Tensor) -> list[tuple[int, int, float]]:
    """For each token group (e.g. a cluster): the latent its tokens read most in the broadcast map, and the mean
    weight they give it. ``broadcast`` (N, M) rows sum to 1; ``groups`` (N,) integer labels.
    Returns ``[(group, latent, mean weight), …]`` sorted by group."""
    if broadcast.dim() != 2 or groups.shape != broadcast.shape[:1]:
        raise ValueError(
            f"need broadcast (N, M) and groups (N,), got {tuple(broadcast.shape)} and {tuple(groups.shape)}"
        )
    out = []
    for g in groups.unique().tolist():
        mean = broadcast.detach()[groups == g].double().mean(0)  # (M,)
        out.append((int(g), int(mean.argmax()), float(mean.max())))
    return out


def singular_values(a: Tensor) -> Tensor:
    """Singular values of a (…, N, N) map, largest first, in float64."""
    return torch.linalg.svdvals(a.double())


def low_rank(a: Tensor, rank: int) -> tuple[Tensor, float]:
    """Best rank-``rank`` approximation of a 2-D map (N, K) and its relative Frobenius error ‖a − â‖ / ‖a‖."""
    if a.dim() != 2:
        raise ValueError(f"low_rank expects a 2-D map (N, K), got shape {tuple(a.shape)}")
    if rank < 0:
        raise ValueError(f"rank must be ≥ 0, got {rank}")
    u, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
    r = min(rank, s.numel())
    approx = (u[:, :r] * s[:r]) @ vh[:r]  # (N, K)
    return approx.to(a.dtype), rank_errors(s)[r].item()


def rank_errors(sv: Tensor) -> Tensor:
    """Relative Frobenius error of the best rank-r approximation for r = 0 … K, from the singular values (K,):
    ‖a − â_r‖ / ‖a‖ = √(Σ_{k>r} σ_k²) / √(Σ_k σ_k²). Returns (K + 1,) float64, falling from 1 to 0."""
    if sv.dim() != 1:
        raise ValueError(f"rank_errors expects the singular values (K,), got shape {tuple(sv.shape)}")
    energy = sv.double().square()
    tail = energy.flip(0).cumsum(0).flip(0)  # (K,): Σ_{k ≥ r}
    return torch.cat([tail, tail.new_zeros(1)]).clamp_min(0).sqrt() / energy.sum().sqrt()


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
