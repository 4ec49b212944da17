"""Transformer blocks built from any attention of the package, and a tiny decoder-only character language model.

A **pre-norm block** is the unit every Transformer stacks; the attention inside it is the only part that mixes
positions, so it is the slot where latent attention goes::

    h   = x + Attention(LayerNorm(x))        (B, N, D)   tokens talk to each other (or to latents)
    out = h + MLP(LayerNorm(h))              (B, N, D)   each token thinks alone

:class:`Block` takes a module of the package and adapts its calling convention (one thin :class:`Mixer` per kind):

==================================  ======  ======  ==============================================
attention module                    kind    causal  decoding state (per layer)
==================================  ======  ======  ==============================================
``MultiHeadAttention``              full    yes     KV cache, 2·D values per token
``LatentAttention``                 latent  **no**  none: latents shared by all positions
``family.LunaCausal``               luna    yes     running sums, O(l·D) whatever the length
``mla.MultiHeadLatentAttention``    mla     yes     c_KV + k_R, d_c + d_rope values per token
==================================  ======  ======  ==============================================

The naive ``latent`` decoder is here on purpose: its M latents are written by *every* position, so the output at
position i can read the character it must predict (position i + 1). Training loss falls wonderfully; generation,
which has no future to read, fails. :func:`future_leak` measures that.

:class:`CharLM` = character embedding + learned positions → ``layers`` blocks → LayerNorm → logits.
:func:`generate` decodes greedily or with a temperature, with the decoding state (cache) when every block has
one, and gives exactly what the uncached loop gives. :func:`train_lm` is a small deterministic training loop with a
``tqdm.auto`` progress bar; :func:`evaluate_lm` the validation loss.

Perceiver AR (:class:`~lattn.family.PerceiverAR`) is not a kind here: its outputs exist only at the last M
positions, so it is not a (B, N, D) → (B, N, D) block; notebook 04 shows it.

Example::

    >>> corpus = CharCorpus.load()
    >>> model = CharLM.build(LMConfig(corpus.vocab.size, kind="luna", num_latents=8), seed=0)
    >>> history = train_lm(model, corpus, steps=200)          # progress bar; history.loss falls
    >>> generate(model, corpus.vocab.encode("Alice ")[None], 40, temperature=0.8)   # (1, 46) ids
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attention import MultiHeadAttention, check_tokens, fused_attention, merge_heads
from .family import LunaCausal, LunaState
from .latent import LatentAttention
from .lm_data import CharCorpus
from .mla import MLACache, MLAConfig, MultiHeadLatentAttention, chunk_causal_mask

__all__ = [
    "KINDS",
    "Block",
    "CharLM",
    "KVCache",
    "LMConfig",
    "LMHistory",
    "Mixer",
    "cache_bytes",
    "decode_state_bytes",
    "evaluate_lm",
    "future_leak",
    "generate",
    "load_checkpoint",
    "mixer_for",
    "prefill_peak_bytes",
    "sampling_probs",
    "save_checkpoint",
    "speed",
    "train_lm",
]

KINDS = ("full", "latent", "luna", "mla")


# --- one interface for every attention module ------------------------------------------------------------------
class Mixer(nn.Module):
    """Adapter around one attention module (``self.attn``): ``forward(x (B, N, D)) → (B, N, D)``.

    ``causal``: output i depends on tokens ≤ i only.  ``cached``: incremental decoding exists —
    ``new_cache(batch, max_len)`` gives an empty state and ``step(x (B, T, D), cache, start_pos) → (out, cache)``
    feeds T new tokens sitting at positions start_pos …; outputs equal ``forward`` on the whole sequence.
    """

    causal: bool = True
    cached: bool = False

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn

    def new_cache(self, batch: int, max_len: int) -> Any:
        raise ValueError(f"{type(self.attn).__name__} has no decoding state: decode by running the whole prefix")

    def step(self, x: Tensor, cache: Any, start_pos: int) -> tuple[Tensor, Any]:
        raise ValueError(f"{type(self.attn).__name__} has no decoding state: decode by running the whole prefix")


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, for :class:`~lattn.attention.MultiHeadAttention`.

    k, v (B, H, L, dh) preallocated for L = max_len positions; the first ``length`` are filled.
    """

    k: Tensor
    v: Tensor
    length: int = 0


class FullMixer(Mixer):
    """Causal multi-head attention (``MultiHeadAttention(x, causal=True)``) with a KV cache for decoding."""

    causal, cached = True, True

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x, causal=True)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        w = self.attn.to_k.weight
        H, dh = self.attn.heads, self.attn.dim // self.attn.heads
        return KVCache(*(torch.zeros(batch, H, max_len, dh, dtype=w.dtype, device=w.device) for _ in range(2)))

    def step(self, x: Tensor, cache: KVCache, start_pos: int) -> tuple[Tensor, KVCache]:
        check_tokens(x, self.attn.dim)
        T = x.shape[1]
        if start_pos > cache.length or start_pos + T > cache.k.shape[2]:
            raise ValueError(
                f"cannot write {T} tokens at {start_pos}: cache holds {cache.length} of {cache.k.shape[2]}"
            )
        q, k, v = self.attn.project(x)  # (B, H, T, dh) each
        cache.k[:, :, start_pos : start_pos + T] = k
        cache.v[:, :, start_pos : start_pos + T] = v
        cache.length = start_pos + T
        keys, values = cache.k[:, :, : cache.length], cache.v[:, :, : cache.length]  # (B, H, L, dh)
        mask = None if T == 1 else chunk_causal_mask(start_pos, T, x.device)  # (T, L); one new token sees all
        out = fused_attention(q, keys, values, mask)  # (B, H, T, dh)
        return self.attn.to_out(merge_heads(out)), cache  # (B, T, D)


class LatentMixer(Mixer):
    """Naive latent attention in a decoder: every position writes into and reads from the same M latents, so
    position i sees the future. Not causal, no decoding state (decode by re-running the prefix)."""

    causal, cached = False, False

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x)


class LunaMixer(Mixer):
    """Causal Luna: running sums of the packed context; its decoding state (:class:`~lattn.family.LunaState`)
    has O(l·D) numbers whatever the length."""

    causal, cached = True, True

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x)

    def new_cache(self, batch: int, max_len: int) -> LunaState:
        return self.attn.init_state(batch)

    def step(self, x: Tensor, cache: LunaState, start_pos: int) -> tuple[Tensor, LunaState]:
        if start_pos != cache.steps:
            raise ValueError(f"Luna's running sums hold {cache.steps} tokens; cannot continue at {start_pos}")
        return self.attn.step(x, cache)


class MLAMixer(Mixer):
    """DeepSeek MLA: causal, its cache holds c_KV and k_R (absorbed mode)."""

    causal, cached = True, True

    def forward(self, x: Tensor) -> Tensor:
        return self.attn(x)

    def new_cache(self, batch: int, max_len: int) -> MLACache:
        return self.attn.new_cache(batch, max_len)

    def step(self, x: Tensor, cache: MLACache, start_pos: int) -> tuple[Tensor, MLACache]:
        return self.attn(x, cache, start_pos=start_pos), cache


_MIXERS: dict[type, type[Mixer]] = {
    MultiHeadAttention: FullMixer,
    LatentAttention: LatentMixer,
    LunaCausal: LunaMixer,
    MultiHeadLatentAttention: MLAMixer,
}


def mixer_for(attn: nn.Module) -> Mixer:
    """The :class:`Mixer` adapter for an attention module of the package (see the table at the top)."""
    for cls, mixer in _MIXERS.items():
        if type(attn) is cls:
            return mixer(attn)
    names = ", ".join(c.__name__ for c in _MIXERS)
    raise TypeError(f"Block takes one of {names}; got {type(attn).__name__}")


def _module_dim(attn: nn.Module) -> int:
    return attn.config.dim if isinstance(attn, MultiHeadLatentAttention) else attn.dim


# --- the block and the language model ----------------------------------------------------------------------------
class Block(nn.Module):
    """Pre-norm Transformer block around any attention module of the package.

    ``forward(x (B, N, D)) → (B, N, D)``: ``h = x + A(LN(x))``, ``out = h + MLP(LN(h))`` with a GELU MLP of width
    ``mlp_mult``·D. ``step(x (B, T, D), cache, start_pos) → (out, cache)`` is the same with the attention's
    decoding state (``mixer.cached`` says whether there is one).
    """

    def __init__(self, attn: nn.Module, *, mlp_mult: int = 4) -> None:
        super().__init__()
        self.mixer = mixer_for(attn)
        dim = _module_dim(attn)
        self.dim = dim
        self.norm_attn, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_mult * dim), nn.GELU(), nn.Linear(mlp_mult * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        h = x + self.mixer(self.norm_attn(x))  # (B, N, D)
        return h + self.mlp(self.norm_mlp(h))  # (B, N, D)

    def step(self, x: Tensor, cache: Any, start_pos: int) -> tuple[Tensor, Any]:
        read, cache = self.mixer.step(self.norm_attn(x), cache, start_pos)  # (B, T, D)
        h = x + read
        return h + self.mlp(self.norm_mlp(h)), cache


@dataclass(frozen=True)
class LMConfig:
    """Sizes of a :class:`CharLM`. Example: ``LMConfig(vocab_size=72, kind="mla")`` — 2 blocks of width 64."""

    vocab_size: int  # V: characters
    kind: str = "full"  # which attention mixes the positions: one of KINDS
    dim: int = 64  # D: token width
    heads: int = 4  # H (dim % heads == 0)
    layers: int = 2  # blocks
    context: int = 128  # N: longest sequence the model reads (learned positions); longer text slides a window
    num_latents: int = 16  # M latents (latent) or packed length l (luna)
    d_c: int = 16  # MLA: width of the cached latent c_KV
    d_rope: int = 8  # MLA: width of the rotary query/key part (even)
    mlp_mult: int = 4  # MLP hidden width = mlp_mult · dim

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("vocab_size", "dim", "heads", "layers", "context", "num_latents", "d_c", "d_rope", "mlp_mult"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LMConfig.{name} must be an integer ≥ 1, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"LMConfig.dim={self.dim} must be divisible by heads={self.heads}")

    def attention(self) -> nn.Module:
        """A fresh attention module of this config's kind (random weights from the global generator)."""
        D, H = self.dim, self.heads
        if self.kind == "full":
            return MultiHeadAttention(D, H)
        if self.kind == "latent":
            return LatentAttention(D, self.num_latents, heads=H)
        if self.kind == "luna":
            return LunaCausal(D, self.num_latents, heads=H)
        mla = MLAConfig(dim=D, heads=H, d_h=D // H, d_c=self.d_c, d_rope=self.d_rope, name="tiny LM")
        return MultiHeadLatentAttention(mla)

    @property
    def label(self) -> str:
        """Short name for legends: "full causal", "latent M=16 (leaks)", "Luna causal l=16", "MLA d_c=16"."""
        return {
            "full": "full causal",
            "latent": f"latent M={self.num_latents} (leaks)",
            "luna": f"Luna causal l={self.num_latents}",
            "mla": f"MLA d_c={self.d_c}",
        }[self.kind]


class CharLM(nn.Module):
    """Decoder-only character language model: embedding + positions → blocks → LayerNorm → logits.

    ``forward(ids (B, N) int64, N ≤ context) → logits (B, N, V)``: logits[:, i] scores the character after
    position i. ``new_cache(batch)`` / ``step(ids (B, T), caches, start_pos)`` decode incrementally when every
    block's attention has a decoding state (``can_cache``).
    """

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        if not isinstance(config, LMConfig):
            raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.dim)
        self.pos = nn.Embedding(c.context, c.dim)  # learned absolute positions 0 … context − 1
        self.blocks = nn.ModuleList(Block(c.attention(), mlp_mult=c.mlp_mult) for _ in range(c.layers))
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.vocab_size)

    @classmethod
    def build(cls, config: LMConfig, seed: int = 0) -> CharLM:
        """A model initialised from ``seed`` without touching the global random state."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(config)

    @property
    def causal(self) -> bool:
        return all(b.mixer.causal for b in self.blocks)

    @property
    def can_cache(self) -> bool:
        return all(b.mixer.cached for b in self.blocks)

    def _check(self, ids: Tensor, start_pos: int = 0) -> None:
        if not isinstance(ids, Tensor) or ids.dtype != torch.long or ids.dim() != 2:
            got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(f"ids must be an int64 tensor (B, N) of character ids, got {got}")
        N = ids.shape[1]
        if N < 1 or start_pos + N > self.config.context:
            raise ValueError(
                f"positions {start_pos}…{start_pos + N - 1} do not fit the context of {self.config.context}"
                " (slide a window, as generate() does)"
            )
        if ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < self.config.vocab_size:
            raise ValueError(f"ids must lie in [0, {self.config.vocab_size}), got {int(ids.min())}…{int(ids.max())}")

    def _embed(self, ids: Tensor, start_pos: int) -> Tensor:
        positions = torch.arange(start_pos, start_pos + ids.shape[1], device=ids.device)  # (N,)
        return self.embed(ids) + self.pos(positions)  # (B, N, D)

    def forward(self, ids: Tensor) -> Tensor:
        self._check(ids)
        h = self._embed(ids, 0)  # (B, N, D)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))  # (B, N, V)

    def new_cache(self, batch: int) -> list[Any]:
        """One empty decoding state per block, for ``batch`` sequences of up to ``context`` tokens."""
        if not self.can_cache:
            kinds = sorted({type(b.mixer.attn).__name__ for b in self.blocks if not b.mixer.cached})
            raise ValueError(f"{', '.join(kinds)} has no decoding state: generate without a cache")
        return [b.mixer.new_cache(batch, self.config.context) for b in self.blocks]

    def step(self, ids: Tensor, caches: list[Any], start_pos: int) -> Tensor:
        """ids (B, T) at positions start_pos … start_pos + T − 1 → logits (B, T, V); updates ``caches`` in place."""
        self._check(ids, start_pos)
        h = self._embed(ids, start_pos)  # (B, T, D)
        for i, block in enumerate(self.blocks):
            h, caches[i] = block.step(h, caches[i], start_pos)
        return self.head(self.norm(h))  # (B, T, V)


def cache_bytes(caches: list[Any]) -> int:
    """Bytes held by decoding states (all layers, all allocated slots): what decoding keeps besides the weights."""
    total = 0
    for c in caches:
        if isinstance(c, KVCache):
            total += c.k.nbytes + c.v.nbytes
        elif isinstance(c, MLACache):
            total += c.nbytes
        elif isinstance(c, LunaState):
            total += sum(t.nbytes for t in (c.packed_queries, c.key_sum, c.value_sum))
        else:
            raise TypeError(f"unknown decoding state {type(c).__name__}")
    return total


# --- generation ---------------------------------------------------------------------------------------------------
def sampling_probs(logits: Tensor, temperature: float) -> Tensor:
    """Next-character probabilities from logits (…, V): softmax(logits / temperature) in float64; temperature 0 is
    greedy decoding (all the mass on the arg-max). Low temperatures sharpen the distribution, high ones flatten it."""
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).double()
    return (logits.double() / temperature).softmax(-1)


def _pick(logits: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
    """One id per row of logits (B, V): arg-max, or inverse-CDF sampling with one uniform number per row."""
    if temperature == 0:
        return logits.argmax(-1)  # (B,)
    cdf = sampling_probs(logits, temperature).cumsum(-1)  # (B, V)
    u = torch.rand(logits.shape[0], 1, generator=generator, dtype=torch.float64) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_max(logits.shape[-1] - 1)  # (B,)


@torch.no_grad()
def generate(
    model: CharLM,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    seed: int = 0,
    use_cache: bool = True,
) -> Tensor:
    """Extend ``prompt`` (B, T) ids by ``max_new_tokens`` characters → (B, T + max_new_tokens).

    temperature 0 = greedy; otherwise sample from softmax(logits / temperature) with a generator seeded by ``seed``.
    The model reads at most ``context`` characters: a longer text slides a window over the last ``context``.
    ``use_cache`` (when the model ``can_cache``): prefill the prompt once, then feed one character at a time
    through the decoding state; once the window is full, it slides like the uncached loop. Both give the same text.
    """
    if not isinstance(prompt, Tensor) or prompt.dim() != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be (B, T ≥ 1) int64 ids, got {getattr(prompt, 'shape', type(prompt))}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer ≥ 0, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0 (0 = greedy), got {temperature}")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    N, ids = model.config.context, prompt
    caches = model.new_cache(prompt.shape[0]) if use_cache and model.can_cache and prompt.shape[1] <= N else None
    fed = 0  # how many characters of ids the caches hold
    for _ in range(max_new_tokens):
        L = ids.shape[1]
        if caches is not None and L <= N:
            logits = model.step(ids[:, fed:], caches, fed)  # prefill, then one character at a time
            fed = L
        else:
            logits = model(ids[:, -N:])  # the sliding window: run the last N characters
        nxt = _pick(logits[:, -1], temperature, g)  # (B,)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return ids


# --- training ------------------------------------------------------------------------------------------------------
@dataclass
class LMHistory:
    """Training loss per step, validation loss every ``eval_every`` steps, wall time (not compared by ``==``)."""

    loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    tokens: int = 0  # training tokens processed (B·N per step)
    seconds: float = field(default=0.0, compare=False)

    @property
    def tokens_per_s(self) -> float:
        """Training throughput: tokens (forward + backward + update) per second of wall time."""
        return self.tokens / self.seconds if self.seconds else float("nan")


@torch.no_grad()
def evaluate_lm(
    model: CharLM,
    corpus: CharCorpus,
    split: str = "val",
    *,
    hide_future: bool = False,
    max_windows: int | None = None,
    batch_size: int = 64,
) -> float:
    """Mean cross-entropy (nats per character) over the non-overlapping ``context``-long windows of ``split``
    (the first ``max_windows`` of them, or all).

    ``hide_future=False`` scores every position of a window in one pass (teacher forcing, as in training).
    ``hide_future=True`` scores position i by running the model on the window cut right after i, so no later
    character exists to be read — exactly what generation does. A causal model gets the same loss both ways; a
    model that reads the future does not. Costs about ``context``/2 times more.
    """
    model.eval()
    x, y = corpus.windows(model.config.context, split)  # (W, N) each
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be ≥ 1 or None, got {max_windows}")
        x, y = x[:max_windows], y[:max_windows]
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]  # (b, N)
        if hide_future:  # logits (b, N, V): position t sees the characters ≤ t only
            logits = torch.stack([model(xb[:, : t + 1])[:, -1] for t in range(xb.shape[1])], dim=1)
        else:
            logits = model(xb)
        total += F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum").item()
    return total / y.numel()


def train_lm(
    model: CharLM,
    corpus: CharCorpus,
    steps: int = 300,
    *,
    batch_size: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
    eval_every: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> LMHistory:
    """Next-character training on random windows of the training text (AdamW, cosine decay, gradient clip 1).

    Every step draws ``batch_size`` windows of ``context`` characters from a generator seeded with ``seed``, so a
    run is deterministic on the CPU (initialise the model with :meth:`CharLM.build`). ``eval_every`` > 0 records
    the validation loss before the first step, every ``eval_every`` steps and after the last one.
    """
    if steps < 1 or batch_size < 1 or eval_every < 0:
        raise ValueError(f"need steps ≥ 1, batch_size ≥ 1, eval_every ≥ 0; got {steps}, {batch_size}, {eval_every}")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 10)
    history = LMHistory()
    N = model.config.context
    eval_seconds = 0.0

    def validate(step: int) -> None:
        nonlocal eval_seconds
        start = time.perf_counter()
        history.val_steps.append(step)
        history.val_loss.append(evaluate_lm(model, corpus))
        eval_seconds += time.perf_counter() - start

    start = time.perf_counter()
    if eval_every:
        validate(0)
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False)
    model.train()
    for step in bar:
        x, y = corpus.batch(batch_size, N, g)  # (B, N) each
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history.loss.append(loss.item())
        history.tokens += x.numel()
        if eval_every and (step % eval_every == 0 or step == steps):
            validate(step)
            model.train()
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    history.seconds = time.perf_counter() - start - eval_seconds  # training time only
    model.eval()
    return history


# --- measuring the leak ------------------------------------------------------------------------------------------
@torch.no_grad()
def future_leak(model: CharLM, ids: Tensor, position: int, replacement: int | None = None) -> Tensor:
    """Change the character at ``position`` and measure how far every position's logits move: (N,) max |Δlogit|.

    A causal model gives exactly 0 at every position before ``position``. ``ids`` (1, N) or (B, N); the
    replacement is ``replacement`` or the next id (cyclically). Compare :func:`lattn.family.compare.future_leak`,
    the same test on a bare attention module.
    """
    model._check(ids)
    if not 0 <= position < ids.shape[1]:
        raise ValueError(f"position must be in [0, {ids.shape[1]}), got {position}")
    changed = ids.clone()
    changed[:, position] = (ids[:, position] + 1) % model.config.vocab_size if replacement is None else replacement
    model.eval()
    return (model(ids) - model(changed)).abs().amax(dim=(0, 2))  # (N,)


# --- speed and memory ------------------------------------------------------------------------------------------------
def speed(model: CharLM, corpus: CharCorpus, *, steps: int = 3, batch_size: int = 32, new_tokens: int = 100) -> dict:
    """Wall-clock throughput on this machine: ``train`` tokens/s (a few steps on a copy of the model, the model
    itself is untouched), ``generate`` and ``generate_uncached`` tokens/s (greedy, one sequence, from one
    character; the same as ``generate`` when the model has no decoding state)."""
    import copy

    out = {"train": train_lm(copy.deepcopy(model), corpus, steps, batch_size=batch_size, progress=False).tokens_per_s}
    prompt = corpus.val[:1][None]  # (1, 1)
    for name, cached in (("generate", True), ("generate_uncached", False)):
        start = time.perf_counter()
        generate(model, prompt, new_tokens, use_cache=cached)
        out[name] = new_tokens / (time.perf_counter() - start)
    return out


def decode_state_bytes(config: LMConfig, context: int) -> int | None:
    """Bytes of the decoding state of all ``config.layers`` blocks after ``context`` tokens, float32 — measured on
    the real cache tensors. None for attention without a decoding state (the naive latent decoder)."""
    mixers = [mixer_for(config.attention()) for _ in range(config.layers)]
    if not mixers[0].cached:
        return None
    return cache_bytes([m.new_cache(1, context) for m in mixers])


def prefill_peak_bytes(config: LMConfig, context: int) -> int:
    """Peak bytes of the tensors one block creates while reading ``context`` tokens at once (a prompt, or one
    training sequence), batch 1, float32, no gradients (:func:`lattn.complexity.peak_bytes`: kernel scratch space,
    e.g. inside fused attention, is not seen)."""
    from .complexity import peak_bytes

    block = Block(config.attention(), mlp_mult=config.mlp_mult)
    x = torch.randn(1, context, config.dim)
    return peak_bytes(lambda: block(x))


# --- checkpoints ---------------------------------------------------------------------------------------------------
def save_checkpoint(model: CharLM, path: str | Path, **info: Any) -> Path:
    """Save the config and the weights in float16 (half the bytes; :func:`load_checkpoint` turns them back into
    float32), plus ``info`` (plain numbers, strings and lists: e.g. the validation loss of the float16 weights)."""
    path = Path(path)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"config": asdict(model.config), "state": state, "info": info}, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[CharLM, dict[str, Any]]:
    """A model saved by :func:`save_checkpoint` (float32, eval mode) and its ``info`` dict."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = CharLM(LMConfig(**blob["config"]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()})
    return model.eval(), blob["info"]
