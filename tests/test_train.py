"""lattn.train and lattn.tagger: the one loop (fit) equals a hand-written AdamW + cosine + clipping loop, learns and
is deterministic, the loss counts only scored tokens; the tagger with every mixer (the latent one stage by stage),
with and without positions, equals a float64 forward written out from its copied weights."""

import math

import pytest
import torch
from conftest import assert_close
from torch import nn

from lattn.analysis import latent_roles
from lattn.attention import MultiHeadAttention
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


def adamw_by_hand(params, grads, state, t, lr, wd=0.01, betas=(0.9, 0.999), eps=1e-8):
    """One AdamW step written out (Loshchilov & Hutter; torch's defaults): decoupled decay, then Adam with bias
    correction. ``state``: per-parameter (m, v); ``t``: the step number from 1."""
    b1, b2 = betas
    for i, (p, g) in enumerate(zip(params, grads)):
        m, v = state.get(i, (torch.zeros_like(p), torch.zeros_like(p)))
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        state[i] = (m, v)
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p.mul_(1 - lr * wd).sub_(lr * m_hat / (v_hat.sqrt() + eps))


def test_fit_equals_a_hand_written_loop():
    """fit = AdamW (weight decay 0.01) + cosine decay from lr to min_lr + gradient-norm clipping + validation; the
    reference writes out the update equations, the schedule and the clipping (autograd gives the gradients)."""
    X = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 3.0

    def next_batch(g):
        return torch.randint(64, (8,), generator=g)

    def loss_fn(model, idx):
        return ((model(X[idx]) - Y[idx]) ** 2).mean(), None, len(idx)

    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    params = [p.detach().clone() for p in model.parameters()]  # the reference's weight, bias
    steps, lr, min_lr, clip = 7, 0.1, 0.01, 0.5
    history = fit(model, next_batch, loss_fn, steps, lr=lr, seed=4, min_lr=min_lr, clip=clip,
                  validate=lambda: ((model(X) - Y) ** 2).mean().item(), eval_every=3, progress=False)  # fmt: skip
    g, state, losses, clipped = torch.Generator().manual_seed(4), {}, [], 0
    for step in range(steps):
        idx = next_batch(g)
        w, b = (p.clone().requires_grad_() for p in params)
        loss = ((X[idx] @ w.T + b - Y[idx]) ** 2).mean()
        grads = torch.autograd.grad(loss, [w, b])
        norm = math.sqrt(sum((gr**2).sum().item() for gr in grads))
        if norm > clip:  # scale every gradient by clip / norm (torch adds 1e-6 to the norm)
            grads, clipped = [gr * (clip / (norm + 1e-6)) for gr in grads], clipped + 1
        step_lr = min_lr + (lr - min_lr) * (1 + math.cos(math.pi * step / steps)) / 2  # cosine, closed form
        adamw_by_hand(params, grads, state, step + 1, step_lr)
        losses.append(loss.item())
    assert clipped >= 3  # the clipping took part
    assert history.loss == pytest.approx(losses, rel=1e-9)
    assert_close(model.weight, params[0], 1e-9, "weights")
    assert_close(model.bias, params[1], 1e-9, "bias")
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
    """The band |i − j| ≤ w against the float64 attention written out from the copied weights."""
    torch.manual_seed(1)
    win = WindowAttention(8, heads=2, window=1).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    out, maps = win(x, return_maps=True)  # (2, 6, 8), (2, 2, 6, 6)
    i = torch.arange(6)
    band = (i[:, None] - i[None, :]).abs() <= 1
    assert (maps[..., ~band] == 0).all()
    with torch.no_grad():
        assert_close(out, attention_by_hand(win, x, band), 1e-12, "teaching path")
        assert_close(win(x), attention_by_hand(win, x, band), 1e-12, "fast path")
        zero = WindowAttention(8, heads=2, window=0).double()
        v = x @ zero.to_v.weight.T + zero.to_v.bias  # each token reads only its own value
        assert_close(zero(x), v @ zero.to_out.weight.T + zero.to_out.bias, 1e-12, "window 0")
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
    """h₁ = x + A₁(x), output A₂(LN(h₁)) (LayerNorm without affine weights), every A written out in float64."""
    torch.manual_seed(3)
    st = StackedAttention(8, heads=2, layers=2).double()
    x = torch.randn(1, 4, 8, dtype=torch.float64)
    h1 = x + attention_by_hand(st.layers[0], x)
    with torch.no_grad():
        assert_close(st(x), attention_by_hand(st.layers[1], layer_norm(h1)), 1e-12)


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


def latent_by_hand(la, x):
    """LatentAttention written out in float64 from its copied weights: write (tokens query latents, softmax over
    latents, each latent adds the weighted mean of the token values: its column renormalised over tokens), gather
    (latents query tokens, softmax over tokens, added), broadcast (tokens query latents, softmax over latents)."""
    B, N, D = x.shape
    H, dh = la.heads, D // la.heads

    def lin(layer, t):
        return t @ layer.weight.T + layer.bias

    def heads(t):  # (B, L, D) → (B, H, L, dh)
        return t.reshape(B, t.shape[1], H, dh).transpose(1, 2)

    def merge(t):  # (B, H, L, dh) → (B, L, D)
        return t.transpose(1, 2).reshape(B, t.shape[2], D)

    z = la.latents.expand(B, -1, -1)  # (B, M, D)
    if "write" in la.stages:
        p = la.proj["write"]
        w = (heads(lin(p.to_q, x)) @ heads(lin(p.to_k, z)).transpose(-1, -2) / math.sqrt(dh)).softmax(-1)  # (B,H,N,M)
        mean = (w / (w.sum(-2, keepdim=True) + la.eps)).transpose(-1, -2) @ heads(lin(p.to_v, x))  # (B, H, M, dh)
        z = z + lin(p.to_out, merge(mean))
    if "gather" in la.stages:
        p = la.proj["gather"]
        g = (heads(lin(p.to_q, z)) @ heads(lin(p.to_k, x)).transpose(-1, -2) / math.sqrt(dh)).softmax(-1)  # (B,H,M,N)
        z = z + lin(p.to_out, merge(g @ heads(lin(p.to_v, x))))
    p = la.proj["broadcast"]
    r = (heads(lin(p.to_q, x)) @ heads(lin(p.to_k, z)).transpose(-1, -2) / math.sqrt(dh)).softmax(-1)  # (B, H, N, M)
    return lin(p.to_out, merge(r @ heads(lin(p.to_v, z))))


def positions_by_hand(n, d):
    """PE[p, i] = sin(p / 10000^(2i/d)), PE[p, d/2 + i] = cos(p / 10000^(2i/d)), i < d/2; float64."""
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            pe[pos, i], pe[pos, d // 2 + i] = math.sin(angle), math.cos(angle)
    return pe


SPECS = {
    "full": MixerSpec("full"),
    "full3": MixerSpec("full", layers=3),
    "window": MixerSpec("window", window=1),
    "none": MixerSpec("none"),
    "latent": MixerSpec("latent", num_latents=3),
    "gather+broadcast": MixerSpec("latent", num_latents=3, stages=("gather", "broadcast")),
    "write+broadcast": MixerSpec("latent", num_latents=3, stages=("write", "broadcast")),
}


@pytest.mark.parametrize("positions", ["none", "sinusoidal"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_tagger_matches_a_hand_written_forward(kind, positions):
    """embed (+ sinusoidal positions) → LN → mixer (+ residual) → LN → Linear → GELU → Linear, float64, every mixer
    written out too — the latent one stage by stage."""
    model = SPECS[kind].tagger(ClusterMajority(seq_len=6), dim=8, heads=2, seed=1, positions=positions).double()
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)  # LayerNorm γ, β away from 1, 0
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    h = x @ model.embed.weight.T + model.embed.bias
    if positions == "sinusoidal":
        h = h + positions_by_hand(6, 8)
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
    elif kind == "none":
        mixed = torch.zeros_like(a)
    else:
        mixed = latent_by_hand(mixer, a)
    t = layer_norm(h + mixed, model.head[0])
    t = nn.functional.gelu(t @ model.head[1].weight.T + model.head[1].bias)
    want = t @ model.head[3].weight.T + model.head[3].bias
    with torch.no_grad():
        assert_close(model(x), want, 1e-6 if positions == "sinusoidal" else 1e-12, kind)  # positions: float32 codes


def test_positions_and_dropout():
    """Sinusoidal codes are the written-out formula; positions change the output of a model without them only by
    where the tokens are; dropout is a layer in the head, active in training mode only."""
    from lattn.tagger import sinusoidal_positions

    assert_close(sinusoidal_positions(50, 8).double(), positions_by_hand(50, 8), 1e-6)
    task = ClusterMajority(seq_len=6)
    plain, placed = (MixerSpec("full").tagger(task, 8, 2, seed=0, positions=p) for p in ("none", "sinusoidal"))
    assert count_parameters(plain) == count_parameters(placed)  # the codes have no parameters
    x, perm = torch.randn(1, 6, 16), torch.tensor([3, 1, 4, 0, 5, 2])
    with torch.no_grad():
        assert_close(plain(x[:, perm]), plain(x)[:, perm], 1e-5)  # without positions: order carries nothing
        assert (placed(x[:, perm]) - placed(x)[:, perm]).abs().max() > 1e-3  # with them it does
    model = Tagger(16, 8, 2, MixerSpec("full").build(8, 2), dropout=0.5)
    assert isinstance(model.head[3], nn.Dropout) and len(model.head) == 5
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        assert not torch.equal(model.train()(x), model(x))
    with pytest.raises(ValueError, match="positions"):
        Tagger(16, 8, 2, NoMixer(), positions="rope")
    with pytest.raises(ValueError, match="dropout"):
        Tagger(16, 8, 2, NoMixer(), dropout=1.0)


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
