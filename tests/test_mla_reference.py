"""Independent float64 references for lattn.mla: MLA written out by hand, compared with the module.

Three references, none calling the module's steps: equations 9-19 of DeepSeek-V2 token by token and head by head
(complex-number RoPE); the same equations in matrix form, once with up-projected keys and values (naive) and once
absorbed (W_UK folded into the query, W_UV applied after attention), with RoPE rotating each feature pair by hand;
and a two-layer pre-norm residual stack (RMSNorm → MLA → + x, RMSNorm → ReLU feed-forward → + x) around them.
The configs, `make` and `tokens` here are shared with tests/test_mla.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_close, max_diff
from torch import nn

from lattn.mla import MODES, MLAConfig, MultiHeadLatentAttention, RMSNorm, apply_rope

# d_cq > 0 (V2/V3-style query compression) and d_cq = 0 (V2-Lite-style); all widths differ to catch transposes
TINY = MLAConfig(dim=20, heads=3, d_head=4, d_c=10, d_rope=6, d_cq=8)
TINY_LITE = MLAConfig(dim=16, heads=2, d_head=6, d_c=7, d_rope=4, d_cq=0)
CONFIGS = [pytest.param(TINY, id="q-compressed"), pytest.param(TINY_LITE, id="no-q-compression")]


def make(config: MLAConfig, dtype=torch.float64, seed: int = 0, mode: str = "auto") -> MultiHeadLatentAttention:
    torch.manual_seed(seed)
    m = MultiHeadLatentAttention(config, mode=mode).to(dtype)
    with torch.no_grad():  # RMSNorm weights start at 1; perturb them so a wrong norm cannot hide
        for norm in (m.kv_norm, m.q_norm):
            if norm is not None:
                norm.weight.uniform_(0.5, 1.5)
    return m


def rms(t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """RMSNorm by hand: t / √(mean(t²) + 1e-6) · w over the last axis."""
    return t / t.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt() * w


def tokens(config: MLAConfig, B: int = 2, N: int = 7, dtype=torch.float64, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, N, config.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# --- an independent reference -----------------------------------------------------------------------------------------
def rope_complex(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE as complex multiplication: feature pair (i, i + d/2) is the complex number x_i + j·x_{i+d/2}."""
    d = x.shape[-1]
    freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = torch.complex(x[..., : d // 2], x[..., d // 2 :]) * torch.polar(
        torch.ones(len(positions), d // 2, dtype=torch.float64), positions[:, None].double() * freq
    ).view(len(positions), *([1] * (x.dim() - 2)), d // 2)
    return torch.cat([z.real, z.imag], dim=-1)


def reference_mla(m: MultiHeadLatentAttention, x: torch.Tensor, start_pos: int = 0, rope=None, scale=None):
    """Equations 9-19 of DeepSeek-V2 written out token by token and head by head, in float64.

    ``rope(t, positions)`` (positions on t's first axis) replaces the complex-number RoPE, ``scale`` the softmax
    scale 1/√(d_head + d_rope) (both for the YaRN and pair-layout tests)."""
    c = m.config
    rope = rope or (lambda t, p: rope_complex(t, p, c.rope_theta))
    scale = 1 / math.sqrt(c.d_head + c.d_rope) if scale is None else scale
    B, N, _ = x.shape
    W = {name: p.detach().double() for name, p in m.named_parameters()}
    x = x.double()

    pos = torch.arange(start_pos, start_pos + N)
    src = rms(x @ W["w_dq.weight"].T, W["q_norm.weight"]) if c.d_cq else x
    q_c = (src @ W["w_uq.weight"].T).view(B, N, c.heads, c.d_head)
    q_r = rope((src @ W["w_qr.weight"].T).view(B, N, c.heads, c.d_rope).transpose(0, 1), pos)
    q_r = q_r.transpose(0, 1)  # (B, N, H, d_rope)
    c_kv = rms(x @ W["w_dkv.weight"].T, W["kv_norm.weight"])  # (B, N, d_c)
    k_r = rope((x @ W["w_kr.weight"].T).transpose(0, 1), pos).transpose(0, 1)  # (B, N, d_rope)
    k_c = (c_kv @ W["w_uk.weight"].T).view(B, N, c.heads, c.d_head)
    v = (c_kv @ W["w_uv.weight"].T).view(B, N, c.heads, c.d_head)
    out = torch.zeros(B, N, c.heads, c.d_head, dtype=torch.float64)
    for b in range(B):
        for i in range(N):
            for h in range(c.heads):
                scores = torch.tensor(
                    [(q_c[b, i, h] @ k_c[b, j, h] + q_r[b, i, h] @ k_r[b, j]) * scale for j in range(i + 1)]
                )
                w = torch.exp(scores - scores.max())
                out[b, i, h] = (w / w.sum()) @ v[b, : i + 1, h]
    return out.reshape(B, N, -1) @ W["w_o.weight"].T


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_matches_independent_reference(config, mode):
    m, x = make(config, mode=mode), tokens(config, N=5)
    assert max_diff(m(x), reference_mla(m, x), mode) < 1e-12


def test_apply_rope_matches_complex_rotation_and_is_relative():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 8, generator=g, dtype=torch.float64), torch.randn(2, 8, generator=g, dtype=torch.float64)
    pos = torch.tensor([3, 11])
    assert max_diff(apply_rope(q, pos), rope_complex(q, pos, 10000.0), "rope vs complex") < 1e-14
    rq = lambda t, p: apply_rope(t[None], torch.tensor([p]))[0]
    # the score depends on the offset only: (3, 11) and (103, 111) give the same dot product
    assert abs(rq(q[0], 3) @ rq(k[0], 11) - rq(q[0], 103) @ rq(k[0], 111)) < 1e-12
    assert abs(rq(q[0], 3) @ rq(k[0], 11) - rq(q[0], 3) @ rq(k[0], 12)) > 1e-3
    assert torch.allclose(apply_rope(q, pos).norm(dim=-1), q.norm(dim=-1))  # a rotation keeps lengths


# --- the matrix form, by hand ------------------------------------------------------------------------------------------
def rope_by_pairs(t: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE on t (B, N, …, d), positions on axis 1: pair (i, i + d/2) turns by p·theta^(-2i/d), one pair at a time."""
    d, out = t.shape[-1], t.clone()
    for i in range(d // 2):
        angle = (positions.double() * theta ** (-2 * i / d)).view(1, -1, *[1] * (t.dim() - 3))  # (1, N, 1…)
        a, b = t[..., i], t[..., i + d // 2]
        out[..., i], out[..., i + d // 2] = a * angle.cos() - b * angle.sin(), a * angle.sin() + b * angle.cos()
    return out


def mla_by_hand(m: MultiHeadLatentAttention, x: torch.Tensor, absorbed: bool, start_pos: int = 0) -> torch.Tensor:
    """Causal MLA (DeepSeek-V2 eq. 9-19) in float64 matrix form; ``absorbed`` scores the latents directly."""
    c, H = m.config, m.config.heads
    W = {name: p.detach().double() for name, p in m.named_parameters()}
    B, N, _ = x.shape
    pos = torch.arange(start_pos, start_pos + N)

    h = rms(x @ W["w_dq.weight"].T, W["q_norm.weight"]) if c.d_cq else x  # c_Q or the tokens (eq. 12)
    q_c = (h @ W["w_uq.weight"].T).view(B, N, H, c.d_head)  # eq. 13
    q_r = rope_by_pairs((h @ W["w_qr.weight"].T).view(B, N, H, c.d_rope), pos, c.rope_theta)  # eq. 14
    c_kv = rms(x @ W["w_dkv.weight"].T, W["kv_norm.weight"])  # (B, N, d_c) eq. 9
    k_r = rope_by_pairs(x @ W["w_kr.weight"].T, pos, c.rope_theta)  # (B, N, d_rope) eq. 15, shared by all heads
    w_uk, w_uv = W["w_uk.weight"].view(H, c.d_head, c.d_c), W["w_uv.weight"].view(H, c.d_head, c.d_c)
    rotary = torch.einsum("bnhr,bmr->bhnm", q_r, k_r)
    if absorbed:
        scores = torch.einsum("bnhd,hdc,bmc->bhnm", q_c, w_uk, c_kv) + rotary  # (q_C·W_UK)·c_KV + q_R·k_R
    else:
        k_c = torch.einsum("bmc,hdc->bmhd", c_kv, w_uk)  # eq. 10
        scores = torch.einsum("bnhd,bmhd->bhnm", q_c, k_c) + rotary  # [q_C; q_R]·[k_C; k_R] (eq. 16-17)
    scores = (scores / math.sqrt(c.d_head + c.d_rope)).masked_fill(
        ~torch.ones(N, N, dtype=torch.bool).tril(), -math.inf
    )
    weights = scores.softmax(-1)  # (B, H, N, N) eq. 18
    if absorbed:
        o = torch.einsum("bhnm,bmc,hdc->bnhd", weights, c_kv, w_uv)  # average the latents, then W_UV
    else:
        o = torch.einsum("bhnm,bmhd->bnhd", weights, torch.einsum("bmc,hdc->bmhd", c_kv, w_uv))  # eq. 11, 18
    return o.reshape(B, N, H * c.d_head) @ W["w_o.weight"].T  # eq. 19


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_matrix_form_by_hand_matches_the_module(config, mode):
    m, x = make(config, mode=mode), tokens(config, N=6)
    naive, absorbed = mla_by_hand(m, x, absorbed=False), mla_by_hand(m, x, absorbed=True)
    assert_close(naive, absorbed, 1e-12, "by hand: naive vs absorbed")
    absorbs = m.path(6) == "absorbed"  # auto expands a prompt of 6 tokens
    assert_close(m(x), absorbed if absorbs else naive, 1e-12, f"module ({mode}) vs by hand")
    assert_close(m(x, start_pos=5), mla_by_hand(m, x, absorbed=absorbs, start_pos=5), 1e-12, "start 5")


def test_rope_by_pairs_matches_apply_rope():
    t = torch.randn(2, 5, 3, 6, dtype=torch.float64)
    pos = torch.arange(4, 9)
    assert_close(rope_by_pairs(t, pos, 500.0), apply_rope(t.transpose(1, 2), pos, 500.0).transpose(1, 2), 1e-14)


# --- a residual stack around MLA -------------------------------------------------------------------------------------
class Stack(nn.Module):
    """``depth`` pre-norm blocks: x + MLA(RMSNorm(x)), then x + W2·relu(W1·RMSNorm(x))."""

    def __init__(self, config: MLAConfig, depth: int, mode: str) -> None:
        super().__init__()
        D = config.dim
        self.attn = nn.ModuleList(make(config, mode=mode, seed=i) for i in range(depth))
        self.norms = nn.ModuleList(RMSNorm(D) for _ in range(2 * depth))
        self.ffn = nn.ModuleList(
            nn.Sequential(nn.Linear(D, 2 * D), nn.ReLU(), nn.Linear(2 * D, D)) for _ in range(depth)
        )
        self.double()
        with torch.no_grad():
            for norm in self.norms:
                norm.weight.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor, caches: list | None = None) -> torch.Tensor:
        for i, (attn, ffn) in enumerate(zip(self.attn, self.ffn, strict=True)):
            x = x + attn(self.norms[2 * i](x), cache=None if caches is None else caches[i])
            x = x + ffn(self.norms[2 * i + 1](x))
        return x


def stack_by_hand(s: Stack, x: torch.Tensor, absorbed: bool) -> torch.Tensor:
    for i, attn in enumerate(s.attn):
        n1, n2 = (s.norms[j].weight.detach() for j in (2 * i, 2 * i + 1))
        w1, b1, w2, b2 = (p.detach() for p in s.ffn[i].parameters())
        x = x + mla_by_hand(attn, rms(x, n1), absorbed)
        x = x + (rms(x, n2) @ w1.T + b1).clamp(min=0) @ w2.T + b2
    return x


@pytest.mark.parametrize("mode", MODES)
def test_two_layer_residual_stack_matches_by_hand_and_decodes(mode):
    s, x = Stack(TINY, depth=2, mode=mode), tokens(TINY, N=6)
    full = s(x)
    assert_close(full, stack_by_hand(s, x, absorbed=mode == "absorbed"), 1e-12, "stack vs by hand")
    caches = [attn.new_cache(2, 6) for attn in s.attn]
    steps = [s(x[:, :3], caches)] + [s(x[:, t : t + 1], caches) for t in range(3, 6)]  # start_pos from the caches
    assert_close(torch.cat(steps, 1), full, 1e-12, "prefill 3 + 3 decode steps vs full")
    assert max_diff(full, x, "the layers change the tokens") > 0.1
