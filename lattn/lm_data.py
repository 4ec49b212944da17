"""The text the course's tiny language models learn: a public-domain book shipped with the package, cut into
characters, split into training and validation text with a seed. No downloads.

* :func:`load_text` — *Alice's Adventures in Wonderland* (Lewis Carroll, 1865), ``lattn/data/alice.txt`` without
  its header (the header says where the copy comes from and why it is public domain): ≈148,000 characters.
* :class:`CharVocab` — one token per distinct character (≈70 of them); ``encode`` / ``decode``.
* :class:`CharCorpus` — the text as token ids, split by *chunks*: the text is cut into pieces of ``chunk``
  characters and a seeded draw sends ``val_fraction`` of the pieces to validation, so the validation text is
  spread over the whole book but never overlaps the training text. Training batches are random windows of the
  training text; the validation loss runs over every non-overlapping window of the validation text, the same
  windows for every model with the same context.

Example::

    >>> corpus = CharCorpus.load()                          # seed 0: the split every notebook and test uses
    >>> x, y = corpus.batch(4, 32, torch.Generator().manual_seed(0))   # (4, 32) ids, y = x shifted by one
    >>> corpus.vocab.decode(x[0])                           # 32 characters of Alice
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["HEADER_END", "TEXT_FILE", "CharCorpus", "CharVocab", "load_text"]

TEXT_FILE = Path(__file__).parent / "data" / "alice.txt"
HEADER_END = "# ===\n"  # the header ends with this line; the text starts right after it


def load_text(path: str | Path = TEXT_FILE) -> str:
    """The text of a shipped file without its header (comment lines up to and including ``# ===``)."""
    raw = Path(path).read_text(encoding="utf-8")
    head, sep, body = raw.partition(HEADER_END)
    if not sep or any(line and not line.startswith("#") for line in head.splitlines()):
        raise ValueError(f"{path} must start with '#' header lines ending with the line {HEADER_END.strip()!r}")
    return body.lstrip("\n")


@dataclass(frozen=True)
class CharVocab:
    """One token per character: ``chars[i]`` is token i. Example: ``CharVocab("ab").encode("ba") → [1, 0]``."""

    chars: str  # the characters, each once, in token order

    def __post_init__(self) -> None:
        if not self.chars or len(set(self.chars)) != len(self.chars):
            raise ValueError(f"chars must be a non-empty string of distinct characters, got {self.chars!r}")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The sorted distinct characters of ``text``."""
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """V, the number of tokens."""
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """``text`` → ids (len(text),) int64; a character outside the vocabulary is a ValueError naming it."""
        if not isinstance(text, str):
            raise TypeError(f"encode() takes a str, got {type(text).__name__}")
        unknown = sorted(set(text) - set(self.chars))
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary of {self.size} characters")
        return torch.tensor([self._index[c] for c in text], dtype=torch.long)  # type: ignore[attr-defined]

    def decode(self, ids: Tensor | list[int]) -> str:
        """ids (N,) → the string they spell."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        if any(not 0 <= i < self.size for i in ids):
            raise ValueError(f"ids must lie in [0, {self.size}), got {min(ids)}…{max(ids)}")
        return "".join(self.chars[i] for i in ids)


@dataclass
class CharCorpus:
    """A text as ids with a seeded, chunked train/validation split. Make one with :meth:`load`."""

    text: str  # the whole text
    vocab: CharVocab  # built from the whole text, so validation has no unknown characters
    train: Tensor = field(repr=False)  # (N_train,) ids: the training chunks, in book order
    val: Tensor = field(repr=False)  # (N_val,) ids: the validation chunks, in book order
    chunk: int = 1024  # characters per piece of the split
    val_fraction: float = 0.1  # share of the pieces that go to validation
    seed: int = 0  # picks the validation pieces

    @classmethod
    def load(
        cls, text: str | None = None, *, chunk: int = 1024, val_fraction: float = 0.1, seed: int = 0
    ) -> CharCorpus:
        """Split ``text`` (default: the shipped book) into pieces of ``chunk`` characters; a seeded draw puts
        ``val_fraction`` of them (at least one) into validation."""
        text = load_text() if text is None else text
        if chunk < 2 or not 0 < val_fraction < 1:
            raise ValueError(f"need chunk ≥ 2 and 0 < val_fraction < 1, got chunk={chunk}, val_fraction={val_fraction}")
        pieces = math.ceil(len(text) / chunk)
        if pieces < 2:
            raise ValueError(f"the text ({len(text)} characters) needs at least 2 chunks of {chunk} to be split")
        vocab = CharVocab.from_text(text)
        ids = vocab.encode(text)
        n_val = min(max(1, round(val_fraction * pieces)), pieces - 1)
        order = torch.randperm(pieces, generator=torch.Generator().manual_seed(seed))
        is_val = torch.zeros(pieces, dtype=torch.bool)
        is_val[order[:n_val]] = True
        parts = ids.split(chunk)
        train = torch.cat([p for p, v in zip(parts, is_val) if not v])
        val = torch.cat([p for p, v in zip(parts, is_val) if v])
        return cls(text, vocab, train, val, chunk, val_fraction, seed)

    def _split(self, split: str) -> Tensor:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self.train if split == "train" else self.val

    def batch(
        self, batch_size: int, seq_len: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[Tensor, Tensor]:
        """Random windows: inputs x (B, seq_len) and next-character targets y (B, seq_len), y[:, i] = x[:, i + 1]
        in the text. Windows of the training text may straddle the seam where a validation piece was cut out."""
        data = self._split(split)
        if batch_size < 1 or not 1 <= seq_len < len(data):
            raise ValueError(f"need batch_size ≥ 1 and 1 ≤ seq_len < {len(data)}, got {batch_size}, {seq_len}")
        start = torch.randint(len(data) - seq_len, (batch_size,), generator=generator)  # (B,)
        idx = start[:, None] + torch.arange(seq_len + 1)  # (B, seq_len + 1)
        window = data[idx]
        return window[:, :-1], window[:, 1:]

    def windows(self, seq_len: int, split: str = "val") -> tuple[Tensor, Tensor]:
        """Every non-overlapping window of ``seq_len`` + 1 characters, in order: x, y (W, seq_len) each.
        The same windows for every model with the same context, so validation losses compare directly."""
        data = self._split(split)
        count = (len(data) - 1) // seq_len
        if seq_len < 1 or count < 1:
            raise ValueError(f"seq_len must be in [1, {len(data) - 1}], got {seq_len}")
        x = data[: count * seq_len].view(count, seq_len)
        y = data[1 : count * seq_len + 1].view(count, seq_len)
        return x, y

    def unigram_loss(self, split: str = "val") -> float:
        """The baseline a model without context can reach: cross-entropy (nats per character) of ``split`` under
        the training text's character frequencies (add-one smoothed). Every model must beat it."""
        counts = torch.bincount(self.train, minlength=self.vocab.size).double() + 1.0  # (V,)
        logp = (counts / counts.sum()).log()
        return float(-logp[self._split(split)].mean())
