"""lattn.train: the one loop (fit) equals a hand-written one, learns and is deterministic, the loss counts only scored
tokens, and the tagger and the baseline mixers agree with hand-written float64 forwards."""

import math

import pytest
import torch
from conftest import assert_close
from torch import nn

from lattn.analysis import latent_roles
from lattn.attention import MultiHeadAttention, scaled_dot_product
from lattn.latent import LatentAttention
from lattn.tagger import MixerSpec, NoMixer, StackedAttention, Tagger, WindowAttention, count_parameters
from lattn.tasks import Batch, ClusterMajority, KeyValueRetrieval
from lattn.train import History, _loss_and_accuracy, evaluate, fit, train


def tiny_tagger(seed: int = 0, mixer: str = "latent") -> Tagger:
    task = ClusterMajority(seq_len=12)
    spec = MixerSpec("latent", num_latents=2) if mixer == "latent" else MixerSpec(mixer)
    return spec.tagger(task, dim=16, heads=2, seed=seed)


# --- the loop -----------------------------------------------------------------------------------------------------


def test_short_run_lowers_the_loss():
    task = ClusterMajority(seq_len=12)
    model = tiny_tagger()
    before = evaluate(model, task, batch_size=128)[0]
    history = train(model, task, steps=60, batch_size=16, seed=0, progress=False)
    after = evaluate(model, task, batch_size=128)[0]
    assert len(history.loss) == len(history.accuracy) == 60 and history.seconds > 0
    assert sum(history.loss[-10:]) < sum(history.loss[:10]) and after < before - 0.1, (before, after)
    assert not model.training  # left in eval mode


def test_same_seed_same_history_and_weights():
    task = KeyValueRetrieval(seq_len=12, num_facts=2, num_queries=4)
    runs = []
    for _ in range(2):
        model = MixerSpec("latent", num_latents=2).tagger(task, dim=16, heads=2, seed=3)
        runs.append((train(model, task, steps=15, batch_size=8, seed=1, progress=False, cosine=True), model))
    (h1, m1), (h2, m2) = runs
    assert h1 == h2 and h1.loss == h2.loss  # `seconds` takes no part in ==
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    other = train(MixerSpec("latent", num_latents=2).tagger(task, 16, 2, seed=3), task, 15, 8, seed=2, progress=False)
    assert other.loss != h1.loss


def test_tagger_seed_does_not_touch_the_global_random_state():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    tiny_tagger(seed=5)
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(a, b) for a, b in zip(tiny_tagger(5).parameters(), tiny_tagger(5).parameters()))


def test_fit_equals_a_hand_written_loop():
    """AdamW (weight decay 0.01), cosine decay to min_lr, gradient clipping, validation: the loop written out."""
    X, Y = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), torch.randn(64, 1)

    def next_batch(g):
        return torch.randint(64, (8,), generator=g)

    def loss_fn(model, idx):
        return ((model(X[idx]) - Y[idx]) ** 2).mean(), None, len(idx)

    torch.manual_seed(0)
    model, ref = nn.Linear(3, 1), nn.Linear(3, 1)
    ref.load_state_dict(model.state_dict())
    history = fit(model, next_batch, loss_fn, 7, lr=0.1, seed=4, min_lr=0.01, clip=0.5,
                  validate=lambda: ((model(X) - Y) ** 2).mean().item(), eval_every=3, progress=False)  # fmt: skip
    g, opt, losses = torch.Generator().manual_seed(4), torch.optim.AdamW(ref.parameters(), lr=0.1), []
    for step in range(7):
        for group in opt.param_groups:  # cosine from lr to min_lr, closed form
            group["lr"] = 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * step / 7)) / 2
        idx = next_batch(g)
        loss = ((ref(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        opt.step()
        losses.append(loss.item())
    assert history.loss == pytest.approx(losses, rel=1e-6)
    assert_close(model.weight, ref.weight, 1e-6, "weights")
    assert history.val_steps == [0, 3, 6, 7] and len(history.val_loss) == 4
    assert history.tokens == 7 * 8 and history.accuracy == [] and history.tokens_per_s > 0
    with pytest.raises(ValueError, match="validate"):
        fit(model, next_batch, loss_fn, 2, lr=0.1, eval_every=1)


def test_train_rejects_an_empty_budget():
    with pytest.raises(ValueError, match="steps"):
        train(tiny_tagger(), ClusterMajority(), steps=0)


class Fixed(nn.Module):
    """A 'model' that returns given logits, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x, mask=None):
        return self.logits


def test_loss_counts_only_scored_tokens():
    logits = torch.randn(2, 5, 3)
    y = torch.tensor([[0, 1, 2, 0, 1], [2, 2, 1, 0, 0]])
    target_mask = torch.tensor([[True, False, True, False, False], [False, True, True, True, False]])
    batch = Batch(x=torch.zeros(2, 5, 4), y=y, mask=torch.ones(2, 5, dtype=torch.bool), target_mask=target_mask)
    loss, acc = _loss_and_accuracy(Fixed(logits), batch)
    picked = [(0, 0), (0, 2), (1, 1), (1, 2), (1, 3)]
    by_hand = sum(-torch.log_softmax(logits[b, n], -1)[y[b, n]] for b, n in picked) / len(picked)
    assert loss.item() == pytest.approx(by_hand.item(), abs=1e-6)
    assert acc == pytest.approx(sum(int(logits[b, n].argmax() == y[b, n]) for b, n in picked) / len(picked))


def test_loss_with_one_target_per_sequence():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    batch = Batch(x=torch.zeros(3, 4, 2), y=torch.tensor([0, 0, 1]), mask=torch.ones(3, 4, dtype=torch.bool))
    loss, acc = _loss_and_accuracy(Fixed(logits), batch)
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(logits, batch.y).item())
    assert acc == pytest.approx(1 / 3)


# --- the mixers ---------------------------------------------------------------------------------------------------


def test_window_attention_covering_everything_is_full_attention():
    torch.manual_seed(0)
    win, mha = WindowAttention(16, heads=2, window=10), MultiHeadAttention(16, heads=2)
    mha.load_state_dict(win.state_dict())
    x, mask = torch.randn(3, 7, 16), torch.rand(3, 7) > 0.2
    assert_close(win(x, mask=mask), mha(x, mask=mask), 1e-5)


def test_window_attention_band_against_a_reference():
    torch.manual_seed(1)
    win = WindowAttention(8, heads=2, window=1)
    x = torch.randn(2, 6, 8)
    out, maps = win(x, return_maps=True)  # (2, 6, 8), (2, 2, 6, 6)
    i = torch.arange(6)
    assert (maps[..., (i[:, None] - i[None, :]).abs() > 1] == 0).all()
    q, k, v = win.project(x)
    band = (i[:, None] - i[None, :]).abs() <= 1
    ref, _ = scaled_dot_product(q.double(), k.double(), v.double(), band)
    ref = win.to_out(ref.transpose(1, 2).reshape(2, 6, 8).float())
    assert_close(out, ref, 1e-5, "teaching path")
    assert_close(win(x), out, 1e-5, "fast path")  # teaching path == fast path == reference
    zero = WindowAttention(8, heads=2, window=0)
    _, v0 = zero.project(x)[1:]
    assert_close(zero(x), zero.to_out(v0.transpose(1, 2).reshape(2, 6, 8)), 1e-5)  # each token reads only itself
    with pytest.raises(ValueError, match="window"):
        WindowAttention(8, window=-1)


def test_stacked_attention_one_layer_is_mha_and_three_match_latent_parameters():
    torch.manual_seed(2)
    one, mha = StackedAttention(16, heads=2, layers=1), MultiHeadAttention(16, heads=2)
    mha.load_state_dict(one.layers[0].state_dict())
    x = torch.randn(2, 5, 16)
    assert_close(one(x), mha(x), 1e-5)
    three, latent = StackedAttention(32, 2, layers=3), LatentAttention(32, num_latents=4, heads=2)
    per_layer = count_parameters(MultiHeadAttention(32, 2))
    assert count_parameters(three) == count_parameters(latent, latents=False) == 3 * per_layer
    assert count_parameters(latent) - count_parameters(latent, latents=False) == 4 * 32
    out, maps = three(x.repeat(1, 1, 2), return_maps=True)
    assert out.shape == (2, 5, 32) and len(maps) == 3 and maps[0].shape == (2, 2, 5, 5)


def test_stacked_attention_by_hand():
    torch.manual_seed(3)
    st = StackedAttention(8, heads=1, layers=2)
    x = torch.randn(1, 4, 8)
    h1 = x + st.layers[0](x)
    expected = st.layers[1](nn.functional.layer_norm(h1, (8,)))
    assert_close(st(x), expected, 1e-5)


def test_no_mixer_gives_no_context():
    x = torch.randn(2, 5, 8)
    assert torch.equal(NoMixer()(x), torch.zeros_like(x))
    out, maps = NoMixer()(x, return_maps=True)
    assert maps is None and torch.equal(out, torch.zeros_like(x))


def test_mixer_spec_builds_labels_and_validates():
    assert isinstance(MixerSpec("full").build(16, 2), MultiHeadAttention)
    assert isinstance(MixerSpec("full", layers=3).build(16, 2), StackedAttention)
    assert MixerSpec("latent", num_latents=8).build(16, 2).num_latents == 8
    assert MixerSpec("window", window=3).build(16, 2).window == 3
    labels = [MixerSpec(*a, **k).label for a, k in [(("full",), {}), (("full",), {"layers": 3}), (("none",), {})]]
    assert labels == ["full", "full ×3", "none"]
    assert MixerSpec("latent", num_latents=4).label == "latent M=4"
    with pytest.raises(ValueError, match="kind"):
        MixerSpec("sparse")
    with pytest.raises(ValueError, match="num_latents"):
        MixerSpec("latent")


def attention_by_hand(mha, x, allowed=None):
    """softmax(q·kᵀ/√dh) over the allowed keys, times v, heads merged, projected out; float64, written out."""
    B, N, D = x.shape
    H = mha.heads
    q, k, v = (
        (x @ lin.weight.T + lin.bias).view(B, N, H, D // H).transpose(1, 2) for lin in (mha.to_q, mha.to_k, mha.to_v)
    )  # (B, H, N, dh) each
    scores = q @ k.transpose(-1, -2) / math.sqrt(D // H)  # (B, H, N, N)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    read = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)
    return read @ mha.to_out.weight.T + mha.to_out.bias


def layer_norm(x, norm=None, eps=1e-5):
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    y = (x - mean) / torch.sqrt(var + eps)
    return y if norm is None or norm.weight is None else y * norm.weight + norm.bias


@pytest.mark.parametrize("kind", ["full", "full3", "window", "none"])
def test_tagger_matches_a_hand_written_forward(kind):
    """embed → LN → mixer (+ residual) → LN → Linear → GELU → Linear, float64, mixers written out too."""
    spec = {"full": MixerSpec("full"), "full3": MixerSpec("full", layers=3), "window": MixerSpec("window", window=1),
            "none": MixerSpec("none")}[kind]  # fmt: skip
    model = spec.tagger(ClusterMajority(seq_len=6), dim=8, heads=2, seed=1).double()
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)  # LayerNorm γ, β away from 1, 0
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    h = x @ model.embed.weight.T + model.embed.bias
    a, mixer = layer_norm(h, model.norm), model.mixer
    i = torch.arange(6)
    if kind == "full":
        mixed = attention_by_hand(mixer, a)
    elif kind == "window":
        mixed = attention_by_hand(mixer, a, (i[:, None] - i[None, :]).abs() <= 1)
    elif kind == "full3":
        r = a + attention_by_hand(mixer.layers[0], a)
        r = r + attention_by_hand(mixer.layers[1], layer_norm(r))
        mixed = attention_by_hand(mixer.layers[2], layer_norm(r))
    else:
        mixed = torch.zeros_like(a)
    t = layer_norm(h + mixed, model.head[0])
    t = nn.functional.gelu(t @ model.head[1].weight.T + model.head[1].bias)
    want = t @ model.head[3].weight.T + model.head[3].bias
    with torch.no_grad():
        assert_close(model(x), want, 1e-12, kind)


def test_tagger_returns_the_mixer_maps():
    model = tiny_tagger()
    logits, maps = model(torch.randn(2, 12, 16), return_maps=True)
    assert logits.shape == (2, 12, 2) and maps.write.shape == (2, 2, 12, 2)


# --- inspecting trained latents -----------------------------------------------------------------------------------


def test_latent_roles_by_hand():
    write = torch.zeros(1, 1, 4, 2)  # (B, H, N, M)
    write[0, 0, :, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0])  # latent 0 hears only role-0 tokens
    write[0, 0, :, 1] = torch.tensor([0.1, 0.1, 0.4, 0.2])  # latent 1: 0.2 from role 0, 0.6 from role 1
    role = torch.tensor([[0, 0, 1, 1]])
    share = latent_roles(write, role, num_roles=3)
    assert share.shape == (1, 2, 3)
    assert_close(share[0], torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0]]), 1e-5)
    uneven = torch.tensor([[0, 1, 1, 1]])  # latent 1: 0.1 from the one role-0 token, 0.7 from three role-1 tokens
    assert_close(latent_roles(write, uneven, 2)[0, 1], torch.tensor([0.125, 0.875]), 1e-5)
    assert_close(latent_roles(write, uneven, 2, per_token=True)[0, 1], torch.tensor([0.3, 0.7]), 1e-5)  # 0.1/1 : 0.7/3
    with pytest.raises(ValueError, match="role"):
        latent_roles(write, role[:, :3], 3)


def test_history_defaults_are_empty():
    assert History() == History(loss=[], accuracy=[], seconds=5.0)
