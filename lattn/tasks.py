"""Synthetic tasks made in code (seeded, no downloads), each stated in one line.

A task is a function ``(batch_size, generator) → Batch``; :class:`Batch` holds tokens ``x`` (B, N, D), per-token
targets ``y`` (B, N) (or per-sequence (B,)), a boolean ``mask`` (B, N), optional per-token ``role`` labels used
to colour plots (e.g. the cluster each token came from) and an optional ``target_mask`` (B, N): the tokens whose
targets count (default: every real token).

The tasks of the bottleneck lesson, each with what it needs:

* :class:`ClusterMajority` — **global**: every token's answer depends on a statistic of the whole sequence.
* :class:`KeyValueRetrieval` — **retrieval**: K key→value facts, queries must look one up. The reference is an
  ideal clean-slot memory that stores S facts exactly and guesses the rest (:func:`slot_memory_accuracy` is its
  accuracy, :func:`slot_memory_oracle` is that memory) — a reference, not a bound: a vector holding a weighted mix
  of several facts can do better than one clean slot.
* :class:`PositionalCopy` — **positions**: each token must copy the value of the token at a given *position* (the
  first one, or ``offset`` places to its right); the token contents carry no hint, so only a model that knows
  positions can solve it.
* :func:`shifted` — **generalisation**: the same world (same centres / embeddings) with longer or noisier sequences.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

__all__ = [
    "TASKS",
    "Batch",
    "ClusterMajority",
    "KeyValueRetrieval",
    "PositionalCopy",
    "cluster_centres",
    "make_task",
    "shifted",
    "slot_memory_accuracy",
    "slot_memory_oracle",
]


@dataclass
class Batch:
    """One batch of a task: tokens x (B, N, D), targets y, mask (B, N) True = real token, role (B, N) or None,
    target_mask (B, N) True = this token's target is scored (None: every real token)."""

    x: Tensor
    y: Tensor
    mask: Tensor
    role: Tensor | None = None
    target_mask: Tensor | None = None

    @property
    def scored(self) -> Tensor:
        """(B, N) bool: the tokens whose targets count in the loss and the accuracy."""
        return self.mask if self.target_mask is None else self.mask & self.target_mask


def cluster_centres(num_clusters: int, dim: int, seed: int = 0) -> Tensor:
    """Fixed, well-separated cluster centres (num_clusters, dim): random unit vectors scaled to norm 3."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(num_clusters, dim, generator=g)
    return 3.0 * c / c.norm(dim=-1, keepdim=True)


@dataclass
class ClusterMajority:
    """Tokens come from a few clusters; each token must say whether its cluster is the sequence's most frequent one.

    Needs global context (the cluster counts of the whole sequence) *and* the token itself — a job for latents that
    specialise on clusters. Each sequence draws cluster proportions from a Dirichlet, so the majority varies.
    """

    seq_len: int = 32  # N
    num_clusters: int = 4  # K, also the natural number of latents
    dim: int = 16  # D of the raw tokens
    noise: float = 0.6  # std of the isotropic noise around each centre
    seed: int = 0  # fixes the cluster centres (the "world"); batches use the generator passed in

    shiftable: ClassVar[tuple[str, ...]] = ("seq_len", "noise")  # what :func:`shifted` may change

    def __post_init__(self) -> None:
        if self.seq_len < 1 or self.num_clusters < 2 or self.dim < 1:
            raise ValueError(
                f"need seq_len ≥ 1, num_clusters ≥ 2, dim ≥ 1; got {self.seq_len}, {self.num_clusters}, {self.dim}"
            )
        self.centres = cluster_centres(self.num_clusters, self.dim, self.seed)  # (K, D)

    @property
    def num_classes(self) -> int:
        """Two answers per token: 0 = my cluster is not the majority, 1 = it is."""
        return 2

    def oracle(self, batch: Batch) -> Tensor:
        """A plug-in reference that sees the whole sequence: put each token in its nearest centre's cluster, count,
        answer. Returns predictions (B, N); its accuracy is a near-ceiling for any model (noise blurs clusters)."""
        nearest = torch.cdist(batch.x, self.centres.expand(batch.x.shape[0], -1, -1)).argmin(-1)  # (B, N)
        counts = torch.nn.functional.one_hot(nearest, self.num_clusters).sum(1)  # (B, K)
        return (nearest == counts.argmax(-1)[:, None]).long()  # (B, N)

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, N, K = batch_size, self.seq_len, self.num_clusters
        # NOTE: torch.distributions ignores generators, so draw Dirichlet(1, …, 1) proportions by hand (seeded).
        gam = -torch.log(torch.rand(B, K, generator=generator).clamp_min(1e-12))  # Gamma(1) = Exp(1)
        props = gam / gam.sum(-1, keepdim=True)  # (B, K)
        role = torch.multinomial(props, N, replacement=True, generator=generator)  # (B, N) cluster of each token
        x = self.centres[role] + self.noise * torch.randn(B, N, self.dim, generator=generator)  # (B, N, D)
        counts = torch.nn.functional.one_hot(role, K).sum(1)  # (B, K)
        majority = counts.argmax(-1)  # (B,) ties → lowest cluster index
        y = (role == majority[:, None]).long()  # (B, N) 1 = my cluster is the majority
        return Batch(x=x, y=y, mask=torch.ones(B, N, dtype=torch.bool), role=role)

    def example(self, seq_len: int | None = None, seed: int = 0) -> Batch:
        """One seeded sequence (batch of 1) of length ``seq_len``, tokens sorted by cluster for display.

        Sorting changes nothing for a model without positions (it is permutation-equivariant); it only makes the
        clusters show up as blocks in the maps.
        """
        n = self.seq_len if seq_len is None else seq_len
        b = ClusterMajority(n, self.num_clusters, self.dim, self.noise, self.seed)(
            1, torch.Generator().manual_seed(seed)
        )
        order = b.role[0].argsort(stable=True)
        return Batch(x=b.x[:, order], y=b.y[:, order], mask=b.mask, role=b.role[:, order])

    def groups(self, batch: Batch) -> tuple[Tensor, list[str]]:
        """Token groups to colour and to tally latents by: each token's cluster (B, N), and the group names."""
        return batch.role, [f"cluster {c}" for c in range(self.num_clusters)]


@dataclass
class KeyValueRetrieval:
    """K facts "key → value" hide among filler tokens; each query token names a key and must answer its value.

    Needs one particular fact per query, not a summary: the honest limit of a bottleneck. An ideal clean-slot
    memory that stores S of the K facts exactly and guesses the others scores :func:`slot_memory_accuracy`
    (S/K + (1 − S/K)/V); :func:`slot_memory_oracle` is that memory. It is a reference, not a bound: one vector
    holding a weighted mix of two facts can answer both.

    Tokens are readable one-hots, dim = num_keys + num_values + 3, laid out as [key | value | role], role one of
    fact (0), query (1), filler (2); a fact has a key and a value, a query only a key, a filler only its role.
    Positions are shuffled (the models have no positional encoding, so order carries no information anyway).
    Only the queries are scored (``target_mask``); ``y`` of a fact is its own value, of a filler 0.

    Example: num_facts=2, facts (k3 → v1), (k7 → v5); a query holding k7 must answer 5; chance is 1/num_values.
    """

    seq_len: int = 32  # N = facts + queries + filler
    num_facts: int = 4  # K distinct keys per sequence, each with a value
    num_queries: int = 8  # Q query tokens per sequence, each asking one of the K keys (uniformly, with repeats)
    num_keys: int = 16  # size of the key vocabulary (K ≤ num_keys)
    num_values: int = 8  # V, size of the value vocabulary; chance accuracy is 1/V
    noise: float = 0.0  # std of Gaussian noise added to every token
    shuffle: bool = True  # shuffle positions (False: facts, then queries, then filler — easier to read)
    query_skew: float = 0.0  # 0: queries ask every fact equally; > 0: fact with key k is asked ∝ exp(−skew·k)

    shiftable: ClassVar[tuple[str, ...]] = ("seq_len", "num_facts", "num_queries", "noise", "query_skew")
    ROLES: ClassVar[tuple[str, ...]] = ("fact", "query", "filler")

    def __post_init__(self) -> None:
        if not 1 <= self.num_facts <= self.num_keys:
            raise ValueError(f"need 1 ≤ num_facts ≤ num_keys, got num_facts={self.num_facts}, num_keys={self.num_keys}")
        if self.num_queries < 1 or self.num_values < 2:
            raise ValueError(f"need num_queries ≥ 1 and num_values ≥ 2, got {self.num_queries}, {self.num_values}")
        if self.query_skew < 0:
            raise ValueError(f"query_skew must be ≥ 0, got {self.query_skew}")
        if self.seq_len < self.num_facts + self.num_queries:
            raise ValueError(
                f"seq_len={self.seq_len} cannot hold num_facts={self.num_facts} + num_queries={self.num_queries}"
            )

    @property
    def dim(self) -> int:
        """Width of the raw tokens: key one-hot + value one-hot + role one-hot."""
        return self.num_keys + self.num_values + 3

    @property
    def num_classes(self) -> int:
        """The answer is a value: V classes."""
        return self.num_values

    def encode(self, key: Tensor, value: Tensor, role: Tensor) -> Tensor:
        """One-hot tokens (…, dim) from integer key, value and role tensors (…); key/value −1 = absent."""
        onehot = torch.nn.functional.one_hot
        k = onehot(key.clamp_min(0), self.num_keys) * (key >= 0)[..., None]
        v = onehot(value.clamp_min(0), self.num_values) * (value >= 0)[..., None]
        return torch.cat([k, v, onehot(role, 3)], dim=-1).float()  # (…, dim)

    def decode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Inverse of :meth:`encode` by arg-max of each part (robust to small noise): key, value, role, each (…)."""
        k, v, r = x.split([self.num_keys, self.num_values, 3], dim=-1)
        return k.argmax(-1), v.argmax(-1), r.argmax(-1)

    def example(self, seed: int = 0) -> Batch:
        """One seeded sequence (batch of 1) laid out for display: facts, then queries, then filler, each by key.

        The models have no positions (they are permutation-equivariant), so the layout changes nothing they compute.
        """
        b = self(1, torch.Generator().manual_seed(seed))
        key, _, _ = self.decode(b.x)
        key = key.masked_fill(b.role == 2, 0)  # filler has no key
        order = (b.role[0] * self.num_keys + key[0]).argsort(stable=True)  # (N,)
        return Batch(x=b.x[:, order], y=b.y[:, order], mask=b.mask, role=b.role[:, order],
                     target_mask=b.target_mask[:, order])  # fmt: skip

    def describe(self, batch: Batch, index: int = 0) -> str:
        """One sequence of ``batch`` in words, e.g. ``facts k2→4 k9→0 | queries k9→0 k2→4 | 20 filler``."""
        key, value, role = (t[index].tolist() for t in self.decode(batch.x))
        y = batch.y[index].tolist()
        facts = " ".join(f"k{k}→{v}" for k, v, r in zip(key, value, role) if r == 0)
        queries = " ".join(f"k{k}→{t}" for k, t, r in zip(key, y, role) if r == 1)
        return f"facts {facts} | queries {queries} | {role.count(2)} filler"

    def groups(self, batch: Batch) -> tuple[Tensor, list[str]]:
        """Token groups to colour and to tally latents by: a fact's key (0 … num_keys − 1), then "query" and
        "filler". Returns labels (B, N) and the group names."""
        key, _, _ = self.decode(batch.x)
        labels = torch.where(batch.role == 0, key, self.num_keys + batch.role - 1)  # (B, N)
        return labels, [f"fact k{k}" for k in range(self.num_keys)] + ["query", "filler"]

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, N, K, Q = batch_size, self.seq_len, self.num_facts, self.num_queries
        F = N - K - Q  # filler tokens
        keys = torch.rand(B, self.num_keys, generator=generator).argsort(-1)[:, :K]  # (B, K) distinct keys
        values = torch.randint(self.num_values, (B, K), generator=generator)  # (B, K)
        if self.query_skew > 0:  # important facts (small keys) are asked more often
            weight = torch.exp(-self.query_skew * keys.float())  # (B, K)
            asked = torch.multinomial(weight, Q, replacement=True, generator=generator)  # (B, Q)
        else:
            asked = torch.randint(K, (B, Q), generator=generator)  # (B, Q) which fact each query asks
        none_q, none_f = torch.full((B, Q), -1), torch.full((B, F), -1)
        key = torch.cat([keys, keys.gather(1, asked), none_f], dim=1)  # (B, N)
        value = torch.cat([values, none_q, none_f], dim=1)  # (B, N); queries carry no value
        role = torch.cat([torch.zeros(B, K), torch.ones(B, Q), torch.full((B, F), 2)], dim=1).long()  # (B, N)
        y = torch.cat([values, values.gather(1, asked), torch.zeros(B, F, dtype=torch.long)], dim=1)  # (B, N)
        if self.shuffle:
            perm = torch.rand(B, N, generator=generator).argsort(-1)  # (B, N)
            key, value, role, y = (t.gather(1, perm) for t in (key, value, role, y))
        x = self.encode(key, value, role)  # (B, N, dim)
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=generator)
        return Batch(x=x, y=y, mask=torch.ones(B, N, dtype=torch.bool), role=role, target_mask=role == 1)


@dataclass
class PositionalCopy:
    """Each token must answer the value of the token at a given position: the first token (``source="first"``) or
    the token ``offset`` places to its right (``source="ahead"``).

    Tokens are one-hots of V random values with nothing else in them: the answer depends on *where* the source token
    is. A model without positions sees only the values and how often each occurs; the best it can do is
    :meth:`counts_only` (the most frequent value among the other tokens), a little above chance (1/V) — unlike the
    other tasks, whose models need no positions. ``"first"`` asks every token for one distant detail (the same for
    all of them); ``"ahead"`` asks each token for a different one. Scored: every token whose source exists and is not itself
    (tokens 1 … N − 1 for ``"first"``, 0 … N − 1 − offset for ``"ahead"``).

    Example: values 3 5 1 6 …, ``source="first"``: every token answers 3; ``source="ahead"``, offset 2: token 0
    answers 1, token 1 answers 6.
    """

    seq_len: int = 128  # N
    source: str = "first"  # "first": copy token 0; "ahead": copy the token `offset` places to the right
    offset: int = 16  # k, for source="ahead"
    num_values: int = 8  # V; chance accuracy is 1/V

    shiftable: ClassVar[tuple[str, ...]] = ("seq_len",)
    SOURCES: ClassVar[tuple[str, ...]] = ("first", "ahead")

    def __post_init__(self) -> None:
        if self.source not in self.SOURCES:
            raise ValueError(f"source must be one of {self.SOURCES}, got {self.source!r}")
        if self.num_values < 2 or self.offset < 1:
            raise ValueError(
                f"need num_values ≥ 2 and offset ≥ 1, got num_values={self.num_values}, offset={self.offset}"
            )
        need = 2 if self.source == "first" else self.offset + 1
        if self.seq_len < need:
            raise ValueError(
                f"seq_len={self.seq_len} is too short: source={self.source!r} needs at least {need} tokens"
            )

    @property
    def dim(self) -> int:
        """Width of the raw tokens: a value one-hot."""
        return self.num_values

    @property
    def num_classes(self) -> int:
        """The answer is a value: V classes."""
        return self.num_values

    def counts_only(self, batch: Batch) -> Tensor:
        """Answers of the best reference without positions, (B, N): each token names the most frequent value among
        the *other* tokens (ties: the smallest value). Given only its own value and the counts of all values — all
        that a model without positions sees — this is the most likely answer: the source is one of the other tokens,
        each equally likely."""
        onehot = torch.nn.functional.one_hot(batch.x.argmax(-1), self.num_values)  # (B, N, V)
        others = onehot.sum(1, keepdim=True) - onehot  # (B, N, V): the counts among the other tokens
        return others.argmax(-1)  # (B, N); argmax takes the first of tied maxima

    def __call__(self, batch_size: int, generator: torch.Generator) -> Batch:
        B, N = batch_size, self.seq_len
        value = torch.randint(self.num_values, (B, N), generator=generator)  # (B, N)
        scored = torch.zeros(B, N, dtype=torch.bool)
        if self.source == "first":
            y = value[:, :1].expand(B, N).clone()  # (B, N): every token answers token 0's value
            scored[:, 1:] = True
        else:
            k = self.offset
            y = torch.zeros_like(value)
            y[:, : N - k] = value[:, k:]  # token p answers the value at p + k
            scored[:, : N - k] = True
        x = torch.nn.functional.one_hot(value, self.num_values).float()  # (B, N, V)
        return Batch(x=x, y=y, mask=torch.ones(B, N, dtype=torch.bool), target_mask=scored)


def slot_memory_accuracy(num_facts: int, slots: int, num_values: int) -> float:
    """Expected query accuracy of an ideal clean-slot memory: ``slots`` slots, each storing one of the
    ``num_facts`` facts exactly, the other facts unknown.

    A query asks a uniformly chosen fact: with probability min(S, K)/K it is stored (right for sure); otherwise the
    memory guesses one of V uniformly drawn values (right with probability 1/V). A reference model, not a bound on
    other memories: a slot holding a weighted mix of several facts can answer more than one.
    Example: K=8 facts, S=4 slots, V=8 values → 4/8 + 4/8 · 1/8 = 0.5625.
    """
    if num_facts < 1 or slots < 0 or num_values < 1:
        raise ValueError(f"need num_facts ≥ 1, slots ≥ 0, num_values ≥ 1; got {num_facts}, {slots}, {num_values}")
    kept = min(slots, num_facts) / num_facts
    return kept + (1 - kept) / num_values


def slot_memory_oracle(task: KeyValueRetrieval, batch: Batch, slots: int, keep: str = "first") -> Tensor:
    """Answers of an ideal clean-slot memory with ``slots`` slots, read from the raw tokens ``batch.x`` (B, N, dim).

    It stores ``slots`` facts of each sequence exactly — the first ones in the sequence (``keep="first"``, as good
    as any choice when all facts are asked equally) or the ones with the smallest keys (``keep="important"``, the
    most asked when ``query_skew`` > 0) — answers a query whose key it stored, and guesses value 0 for the rest.
    Returns predicted values (B, N) (meaningful on the query tokens).
    """
    if keep not in ("first", "important"):
        raise ValueError(f"keep must be 'first' or 'important', got {keep!r}")
    key, value, role = task.decode(batch.x)  # (B, N) each
    is_fact = role == 0
    if keep == "first":
        rank = is_fact.long().cumsum(1) - 1  # (B, N): 0 for the first fact, 1 for the second, …
    else:  # how many facts have a smaller key
        rank = ((key[:, None, :] < key[:, :, None]) & is_fact[:, None, :]).sum(-1)  # (B, N)
    stored = is_fact & (rank < slots)  # (B, N)
    # token i finds a stored fact j with its key (fact keys are distinct, so at most one); none → the guess 0
    found = (key[:, :, None] == key[:, None, :]) & stored[:, None, :]  # (B, N, N)
    return (found.long() * value[:, None, :]).sum(-1)  # (B, N)


def shifted(task, **changes):
    """The same task in the same world (same centres, same vocabulary), with some fields changed.

    Only the fields listed in ``type(task).shiftable`` may change (e.g. ``seq_len``, ``noise``): a generalisation
    probe trains on one setting and tests on another without moving the world.
    Example: ``shifted(ClusterMajority(seq_len=32), seq_len=128, noise=0.9)``.
    """
    allowed = getattr(type(task), "shiftable", ())
    bad = [k for k in changes if k not in allowed]
    if bad:
        raise ValueError(f"{type(task).__name__} can shift only {allowed}, not {bad}")
    return dataclasses.replace(task, **changes)


TASKS = {"global": ClusterMajority, "retrieval": KeyValueRetrieval, "copy": PositionalCopy}  # names in result files


def make_task(name: str, args: dict):
    """The task called ``name`` (a key of :data:`TASKS`) with constructor arguments ``args``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name](**args)
