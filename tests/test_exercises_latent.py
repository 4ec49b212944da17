"""Notebook 01's build-it checkers: a right answer passes, and each usual slip gets its own hint; the float64
reference forward equals LatentAttention; dependence() equals a finite-difference Jacobian; sensitivity() of a
window is exactly 0 beyond it."""

import math

import pytest
import torch
from torch import nn

from lattn import LatentAttention, MultiHeadAttention
from lattn.analysis import dependence, sensitivity
from lattn.exercises import latent as ex
from lattn.tagger import WindowAttention


def write(q, k, v, axis=-1, renormalise=True, scale=True, transpose=True):
    w = (q @ k.T / (math.sqrt(q.shape[-1]) if scale else 1.0)).softmax(dim=axis)  # (N, M)
    if renormalise:
        w = w / (w.sum(0, keepdim=True) + 1e-6)
    return (w.T if transpose else w) @ v


@pytest.mark.parametrize(
    ("fn", "ok", "hint"),
    [
        (write, True, "Correct"),
        (lambda q, k, v: write(q, k, v, axis=0), False, "wrong axis"),
        (lambda q, k, v: write(q, k, v, renormalise=False), False, "missing renormalisation"),
        (lambda q, k, v: write(q, k, v, scale=False), False, "divide the scores by √d"),
        (lambda q, k, v: write(q, k, v, transpose=False), False, "the latents receive the values: transpose"),
        (lambda q, k, v: write(q, k, v)[:2], False, "expected shape (M, dv) = (3, 4)"),
        (lambda q, k, v: write(q, v, k), False, "raised"),
        (None, False, "Your turn"),
    ],
)
def test_check_write(fn, ok, hint, capsys):
    assert bool(ex.check_write(fn)) is ok
    assert hint in capsys.readouterr().out


def latent_module(slip: str = ""):
    """A learner's MyLatentAttention, right or with one slip."""

    class Mine(nn.Module):
        def __init__(self, dim, num_latents, heads=1):
            super().__init__()
            self.heads = heads
            self.latents = nn.Parameter(torch.randn(num_latents, dim))
            names = ("to_q", "to_k", "to_v", "to_out")
            self.proj = nn.ModuleDict(
                {s: nn.ModuleDict({n: nn.Linear(dim, dim) for n in names}) for s in ("write", "gather", "broadcast")}
            )

        def forward(self, x):
            B, N, D = x.shape
            H, dh = self.heads, D // self.heads
            scale = {"wide scale": math.sqrt(D), "no scale": 1.0}.get(slip, math.sqrt(dh))

            def split(t):
                return t.view(B, -1, H, dh).transpose(1, 2)  # (B, H, L, dh)

            def merge(t):
                return (t if slip == "merge" else t.transpose(1, 2)).reshape(B, -1, D)

            z = self.latents[None] if slip == "no batch axis" else self.latents.expand(B, -1, -1)
            p = self.proj["write"]
            w = (split(p.to_q(x)) @ split(p.to_k(z)).transpose(-1, -2) / scale).softmax(
                -2 if slip == "axis" else -1
            )  # (B, H, N, M)
            share = w if slip == "renormalise" else w / (w.sum(-2, keepdim=True) + 1e-6)
            upd = p.to_out(merge(share.transpose(-1, -2) @ split(p.to_v(x))))
            z = upd if slip == "residual" else z + upd
            p = self.proj["gather"]
            zq = self.latents.expand(B, -1, -1) if slip == "stale gather" else z
            g = (split(p.to_q(zq)) @ split(p.to_k(x)).transpose(-1, -2) / scale).softmax(
                -2 if slip == "gather axis" else -1
            )  # (B, H, M, N)
            read = p.to_out(merge(g @ split(p.to_v(x))))
            zw, z = z, (read if slip == "gather residual" else z + read)
            p = self.proj["broadcast"]
            zkv = zw if slip == "stale broadcast" else z
            b = (split(p.to_q(x)) @ split(p.to_k(zkv)).transpose(-1, -2) / scale).softmax(
                -2 if slip == "broadcast axis" else -1
            )  # (B, H, N, M)
            out = p.to_out(merge(b @ split(p.to_v(zkv))))
            maps = {"write": share if slip == "share map" else w, "gather": g, "broadcast": b}
            return (out + x if slip == "token residual" else out), maps

    return Mine


@pytest.mark.parametrize(
    ("slip", "ok", "hint"),
    [
        ("", True, "matches lattn.LatentAttention"),
        ("axis", False, "softmax runs over the latents"),
        ("renormalise", False, "weighted MEAN"),
        ("residual", False, "write: add the update"),
        ("gather residual", False, "gather: add what the latents read"),
        ("gather axis", False, "gather: the latents are the queries — softmax over the tokens"),
        ("broadcast axis", False, "broadcast: the tokens are the queries — softmax over the latents"),
        ("merge", False, "merge without transposing back"),
        ("no scale", False, "divide the scores by √d_head"),
        ("no batch axis", False, "give them a batch axis first, z = self.latents.expand(B, -1, -1)"),
        ("token residual", False, "no residual on the tokens"),
        ("share map", False, "you returned it with its columns renormalised"),
        ("wide scale", False, "not by √D"),
        ("stale gather", False, "gather: its queries come from the latents AFTER write"),
        ("stale broadcast", False, "broadcast: its keys and values come from the latents AFTER gather"),
    ],
)
def test_check_latent_attention_names_the_slip(slip, ok, hint, capsys):
    assert bool(ex.check_latent_attention(latent_module(slip))) is ok
    assert hint in capsys.readouterr().out


def test_check_latent_attention_asks_for_the_class_not_an_instance(capsys):
    assert not ex.check_latent_attention(latent_module()(8, 3, 2))
    out = capsys.readouterr().out
    assert "pass the class itself, check_latent_attention(MyLatentAttention), not an instance" in out
    assert "forward()" not in out  # not the argument-count error of calling the instance


@pytest.mark.parametrize(
    ("answer", "ok", "hint"),
    [(8, True, "at most H·M = 8"), (4, False, "rank(A + B) ≤ rank A + rank B"), (32, False, "inner size M"),
     (3, False, "what can the sum"), (None, False, "Your turn")],
)  # fmt: skip
def test_check_mean_rank(answer, ok, hint, capsys):
    assert bool(ex.check_mean_rank(answer)) is ok
    assert hint in capsys.readouterr().out


@pytest.mark.parametrize(
    ("full", "latent", "ok", "hint"),
    [
        (64, 32.125, True, "fused full attention must hold 64 MiB, latent attention 32.125 MiB"),
        (64, 32, True, "Correct"),  # M-row tensors neglected: within 1 %
        (16, 32.125, False, "the output alone"),
        (48, 32.125, False, "add the output"),
        (64 + 4096, 32.125, False, "never stores the N×N map"),
        (64, 64, False, "N rows only on the token side"),
        (64, 96.375, False, "the largest stage, not the sum"),
        (64, 16, False, "one N×D tensor"),
        (None, 32, False, "Your turn"),
    ],
)
def test_check_held_memory(full, latent, ok, hint, capsys):
    assert ex.held_mib("full-sdpa") == 64 and ex.held_mib("latent-fast") == 32.125  # (2N + 2M)·D·4 bytes
    assert bool(ex.check_held_memory(full, latent)) is ok
    assert hint in capsys.readouterr().out


def test_check_latent_attention_explains_wrong_parameter_names(capsys):
    class Renamed(nn.Module):
        def __init__(self, dim, num_latents, heads=1):
            super().__init__()
            self.slots = nn.Parameter(torch.randn(num_latents, dim))

    assert not ex.check_latent_attention(Renamed)
    assert "named like LatentAttention's" in capsys.readouterr().out


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_reference_equals_latent_attention(heads):
    torch.manual_seed(heads)
    la = LatentAttention(8, 3, heads=heads).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    out, maps = la(x, return_maps=True)
    ref, ref_maps = ex.reference(la, x)
    diff = (out - ref).abs().max().item()
    assert diff < 1e-12, f"max |diff| = {diff:.3g}"
    for s in ("write", "gather", "broadcast"):
        assert torch.allclose(getattr(maps, s), ref_maps[s], atol=1e-12)


def test_dependence_equals_finite_differences():
    torch.manual_seed(0)
    la = LatentAttention(6, 2, heads=2).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    h, jac = 1e-6, torch.zeros(5, 6, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        for j in range(5):
            for c in range(6):
                step = torch.zeros_like(x)
                step[j, c] = h
                jac[:, :, j, c] = (la((x + step)[None])[0] - la((x - step)[None])[0]) / (2 * h)
    ref = jac.square().sum(dim=(1, 3)).sqrt()  # (N, N)
    got = dependence(la, x)
    assert got.shape == (5, 5) and (got - ref).abs().max().item() < 1e-8
    # more than the per-head effective maps see: with 2 heads of M = 2 latents the dependence has rank > 2
    assert torch.linalg.matrix_rank(got).item() > 2


def test_sensitivity_of_a_window_stops_at_its_edge():
    torch.manual_seed(0)
    x = torch.randn(1, 16, 8, dtype=torch.float64)
    window = WindowAttention(8, 2, window=4).double()
    full = MultiHeadAttention(8, 2).double()
    s_window, s_full = sensitivity(window, x), sensitivity(full, x)
    assert s_window.shape == (16,) and (s_window[5:] == 0).all() and (s_window[:5] > 0).all()
    assert (s_full > 0).all()
    with pytest.raises(ValueError, match=r"token must be an int in 0 … 15"):
        sensitivity(full, x, token=16)
    with pytest.raises(ValueError, match="one sequence"):
        dependence(full, x.expand(2, -1, -1))


def test_unfinished_module_prints_where_to_start(capsys):
    class Unfinished(latent_module()):
        def forward(self, x):
            raise NotImplementedError("your code here")

    assert not ex.check_latent_attention(Unfinished)
    assert "Your turn" in capsys.readouterr().out


class _ItemInBackward(torch.autograd.Function):
    """Identity whose backward calls .item(): vmap cannot batch it."""

    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * (1.0 if grad.abs().sum().item() >= 0 else 0.0)


def test_dependence_falls_back_where_vmap_cannot_batch():
    torch.manual_seed(1)
    la = LatentAttention(6, 2, heads=2).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    with pytest.raises(RuntimeError):  # the vectorised Jacobian fails on it …
        torch.autograd.functional.jacobian(lambda t: _ItemInBackward.apply(la(t[None])), x, vectorize=True)
    got = dependence(lambda t: _ItemInBackward.apply(la(t)), x)  # … so dependence() loops instead
    assert torch.allclose(got, dependence(la, x), atol=1e-12)
