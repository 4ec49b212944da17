"""Exercise checkers of notebooks 00-01: reference answers pass, typical mistakes get the right hint."""

import math

import pytest
import torch

from lattn.exercises import basics as ex


def good_softmax(s):
    e = torch.exp(s - s.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


def attention(q, k, v, scale=True, axis=-1):
    s = q @ k.T / (math.sqrt(q.shape[-1]) if scale else 1.0)
    return torch.softmax(s, axis) @ v


def test_softmax_checker(capsys):
    assert ex.check_softmax(good_softmax)
    assert "✅" in capsys.readouterr().out
    assert not ex.check_softmax(lambda s: torch.softmax(s, 0))
    assert "last axis" in capsys.readouterr().out
    assert not ex.check_softmax(lambda s: torch.exp(s) / torch.exp(s).sum(-1, keepdim=True))
    assert "subtract" in capsys.readouterr().out
    assert not ex.check_softmax(None)
    assert "Your turn" in capsys.readouterr().out
    assert not ex.check_softmax(lambda s: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_attention_checker(capsys):
    assert ex.check_attention(attention)
    assert not ex.check_attention(lambda q, k, v: attention(q, k, v, scale=False))
    assert "√d" in capsys.readouterr().out
    assert not ex.check_attention(lambda q, k, v: attention(q, k, v, axis=0))
    assert "over the keys" in capsys.readouterr().out


def test_hints_point_at_the_first_mismatch(capsys):
    assert not ex.check_softmax(lambda s: torch.softmax(s, -1) + 0.5 * (s > 0))
    assert "first mismatch at (0, " in capsys.readouterr().out
    assert not ex.check_attention(lambda q, k, v: 2 * attention(q, k, v))
    out = capsys.readouterr().out
    assert "first mismatch at (0, 0): yours " in out and "expected " in out
    assert not ex.check_gather(lambda q, k, v: attention(q, k, v) + 1)
    assert "first mismatch at (0, 0)" in capsys.readouterr().out


def test_gather_checker(capsys):
    assert ex.check_gather(attention)
    assert not ex.check_gather(lambda q, k, v: attention(q, k, v, axis=0))
    assert "softmax over tokens" in capsys.readouterr().out


def test_verdict_displays_nothing():
    v = ex.check_softmax(good_softmax)
    assert v._ipython_display_() is None and "ok=True" in repr(v)


def global_max_softmax(s):
    e = torch.exp(s - s.max())  # one maximum for the whole tensor
    return e / e.sum(-1, keepdim=True)


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (global_max_softmax, "you subtract ONE maximum for the whole tensor"),
        (lambda s: torch.exp(s - s.max(-1, keepdim=True)), "take .values"),  # max returns (values, indices)
        (lambda s: torch.exp(s - s.max(-1).values), "keepdim=True"),  # (4, 6) − (4,) does not broadcast
        (lambda s: torch.exp(s) / torch.exp(s).sum(), "its OWN sum"),
        (lambda s: torch.exp(s - s.amax(-1, keepdim=True)), "divide by the sum"),
    ],
)
def test_softmax_checker_names_each_slip(fn, hint, capsys):
    assert not ex.check_softmax(fn)
    assert hint in capsys.readouterr().out


def multihead(q, k, v, heads, transpose=True, scale_by_d_head=True, merge="transpose", axis=-1, scale=True):
    """A learner's answer, right or with one slip."""
    B, N, D = q.shape
    d_head = D // heads
    if transpose:
        q, k, v = (t.view(B, N, heads, d_head).transpose(1, 2) for t in (q, k, v))
    else:
        q, k, v = (t.view(B, heads, N, d_head) for t in (q, k, v))
    factor = 1 / math.sqrt(d_head if scale_by_d_head else D) if scale else 1.0
    w = torch.softmax(q @ k.transpose(-1, -2) * factor, dim=axis)
    read = w @ v  # (B, H, N, d_head)
    if not transpose or merge == "reshape":
        return read.reshape(B, N, D)
    if merge == "view":
        return read.transpose(1, 2).view(B, N, D)  # not contiguous after the transpose
    return read.transpose(1, 2).reshape(B, N, D)


def test_multihead_checker_reference_is_torch_sdpa():
    q, k, v = (torch.randn(2, 5, 12, dtype=torch.float64) for _ in range(3))
    heads = [t.view(2, 5, 3, 4).transpose(1, 2) for t in (q, k, v)]
    sdpa = torch.nn.functional.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(2, 5, 12)
    assert (ex._heads(q, k, v, 3) - sdpa).abs().max().item() < 1e-12


@pytest.mark.parametrize(
    ("fn", "ok", "hint"),
    [
        (multihead, True, "head by head"),
        (lambda q, k, v, h: multihead(q, k, v, h, transpose=False), False, "THEN transpose"),
        (lambda q, k, v, h: multihead(q, k, v, h, scale_by_d_head=False), False, "not √D"),
        (lambda q, k, v, h: multihead(q, k, v, h, merge="reshape"), False, "merge without transposing back"),
        (lambda q, k, v, h: multihead(q, k, v, h, merge="view"), False, "use .reshape"),
        (lambda q, k, v, h: multihead(q, k, v, h, axis=-2), False, "softmax over the wrong axis"),
        (lambda q, k, v, h: multihead(q, k, v, h, scale=False), False, "divide the scores by √d_head"),
        (lambda q, k, v, h: multihead(q, k, v, h)[:, :, :4], False, "merge the heads back"),
        (lambda q, k, v, h: multihead(q, k, v, 1), False, "first mismatch"),
        (None, False, "Your turn"),
    ],
)
def test_multihead_checker(fn, ok, hint, capsys):
    assert bool(ex.check_multihead(fn)) is ok
    assert hint in capsys.readouterr().out
