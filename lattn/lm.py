"""A tiny decoder-only character language model built from :class:`~lattn.blocks.Block`: its training, evaluation,
generation, leak test and checkpoints (notebook 06); its speed and memory are measured by :mod:`lattn.lm_cost`.

:class:`CharLM` = character embedding + learned positions → ``layers`` blocks → LayerNorm → logits. The attention
of every block is one of :data:`KINDS` (see the table in :mod:`lattn.blocks`). :func:`generate` decodes greedily or
with a temperature, through the decoding state (cache) when every block has one, and gives exactly what the uncached
loop gives. :func:`train_lm` runs the package's one training loop (:func:`lattn.train.fit`) on random windows of the
book; :func:`evaluate_lm` gives the validation loss; :func:`future_leak` measures whether a model reads the future.

Example::

    >>> corpus = CharCorpus.load()
    >>> model = CharLM.build(LMConfig(corpus.vocab.size, kind="luna", num_latents=8), seed=0)
    >>> history = train_lm(model, corpus, steps=200)          # a bar, then one line "trained: loss …"
    >>> generate(model, corpus.vocab.encode("Alice ")[None], 40, temperature=0.8)   # (1, 46) ids
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import MultiHeadAttention
from .blocks import Block
from .checks import check_int
from .family import LunaCausal
from .latent import LatentAttention
from .lm_data import CharCorpus
from .mla import MLAConfig, MultiHeadLatentAttention
from .train import History, fit

__all__ = [
    "KINDS",
    "CharLM",
    "LMConfig",
    "evaluate_lm",
    "future_leak",
    "generate",
    "load_checkpoint",
    "sampling_probs",
    "save_checkpoint",
    "train_lm",
]

KINDS = ("full", "latent", "luna", "mla")


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
        sizes = ("vocab_size", "dim", "heads", "layers", "context", "num_latents", "d_c", "d_rope", "mlp_mult")
        check_int(**{f"LMConfig.{name}": getattr(self, name) for name in sizes})
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
        mla = MLAConfig(dim=D, heads=H, d_head=D // H, d_c=self.d_c, d_rope=self.d_rope, name="tiny LM")
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

    ``forward(ids (B, N) int64, *, cache=None, start_pos=None) → logits (B, N, V)``: logits[:, i] scores the
    character after position i. Without ``cache`` the ids sit at positions 0 … N − 1 (N ≤ context). With ``cache``
    (from :meth:`new_cache`, when every block has a decoding state: ``can_cache``) they are new characters at
    positions start_pos … (default: what the cache holds), and the cache is updated in place.
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
    def is_causal(self) -> bool:
        return all(b.is_causal for b in self.blocks)

    @property
    def can_cache(self) -> bool:
        return all(b.can_cache for b in self.blocks)

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

    def new_cache(self, batch: int) -> list[Any]:
        """One empty decoding state per block, for ``batch`` sequences of up to ``context`` tokens."""
        if not self.can_cache:
            kinds = sorted({type(b.attn).__name__ for b in self.blocks if not b.can_cache})
            raise ValueError(f"{', '.join(kinds)} has no decoding state: generate without a cache")
        return [b.new_cache(batch, self.config.context) for b in self.blocks]

    def forward(self, ids: Tensor, *, cache: list[Any] | None = None, start_pos: int | None = None) -> Tensor:
        if cache is None and start_pos is not None:
            raise ValueError("start_pos places new characters after cached ones: pass the cache too")
        start = 0 if cache is None else (cache[0].length if start_pos is None else start_pos)
        self._check(ids, start)
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)  # (N,)
        h = self.embed(ids) + self.pos(positions)  # (B, N, D)
        for i, block in enumerate(self.blocks):
            h = block(h) if cache is None else block(h, cache=cache[i], start_pos=start)
        return self.head(self.norm(h))  # (B, N, V)


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
            logits = model(ids[:, fed:], cache=caches, start_pos=fed)  # prefill, then one character at a time
            fed = L
        else:
            logits = model(ids[:, -N:])  # the sliding window: run the last N characters
        nxt = _pick(logits[:, -1], temperature, g)  # (B,)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return ids


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
) -> History:
    """Next-character training on random windows of the training text (AdamW, cosine decay to lr/10, gradient
    clip 1), through :func:`lattn.train.fit`.

    Every step draws ``batch_size`` windows of ``context`` characters from a generator seeded with ``seed``, so a
    run is deterministic on the CPU (initialise the model with :meth:`CharLM.build`). ``eval_every`` > 0 records
    the validation loss before the first step, every ``eval_every`` steps and after the last one.
    """
    check_int(batch_size=batch_size)
    N = model.config.context

    def loss(model: CharLM, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, None, int]:
        x, y = batch  # (B, N) each
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten()), None, x.numel()

    return fit(
        model, lambda g: corpus.batch(batch_size, N, g), loss, steps, lr=lr, seed=seed, min_lr=lr / 10, clip=1.0,
        validate=lambda: evaluate_lm(model, corpus), eval_every=eval_every, progress=progress, desc=desc,
    )  # fmt: skip


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
    # NOTE: files written before the block's MLP became a FeedForward name it blocks.N.mlp.0/2, now mlp.net.0/2
    state = {re.sub(r"^(blocks\.\d+\.mlp)\.(\d+)\.", r"\1.net.\2.", k): v for k, v in blob["state"].items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval(), blob["info"]
