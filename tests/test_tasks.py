"""lattn.tasks: shapes, determinism, labels recomputed independently, the ideal clean-slot memory checked by an
oracle (and beaten by an unequal mixture of two facts), and the copy task's targets recomputed by hand."""

from collections import Counter

import pytest
import torch

from lattn.tasks import (
    Batch,
    ClusterMajority,
    KeyValueRetrieval,
    PositionalCopy,
    make_task,
    shifted,
    slot_memory_accuracy,
    slot_memory_oracle,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_batch(a: Batch, b: Batch) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("x", "y", "mask", "role"))


# --- global: ClusterMajority --------------------------------------------------------------------------------------


def test_cluster_majority_shapes_and_determinism():
    task = ClusterMajority(seq_len=10, num_clusters=3, dim=5)
    b = task(4, gen(0))
    assert b.x.shape == (4, 10, 5) and b.y.shape == b.mask.shape == b.role.shape == (4, 10)
    assert b.mask.all() and b.target_mask is None and torch.equal(b.scored, b.mask)
    assert task.num_classes == 2
    assert same_batch(b, task(4, gen(0)))
    assert not torch.equal(b.x, task(4, gen(1)).x)


def test_cluster_majority_stream_is_pinned():
    """Notebook 01 stores outputs of this exact stream: the default task's first batch must not change."""
    b = ClusterMajority()(2, gen(0))
    assert b.role[0, :8].tolist() == [3, 3, 2, 2, 2, 2, 2, 1]
    assert b.y[1, :8].tolist() == [0, 0, 0, 1, 1, 1, 0, 1]
    assert b.x.sum().item() == pytest.approx(57.756, abs=1e-3)


def test_cluster_majority_labels_recounted_by_hand():
    task = ClusterMajority(seq_len=9, num_clusters=3)
    b = task(50, gen(3))
    for role, y in zip(b.role.tolist(), b.y.tolist()):
        counts = Counter(role)
        top = max(counts.values())
        majority = min(c for c, n in counts.items() if n == top)  # ties → lowest cluster index
        assert y == [int(r == majority) for r in role]


def test_cluster_majority_tokens_sit_around_their_centre():
    task = ClusterMajority(noise=0.0)
    b = task(3, gen(0))
    assert torch.allclose(b.x, task.centres[b.role])
    assert torch.allclose(task.centres.norm(dim=-1), torch.full((task.num_clusters,), 3.0))
    assert torch.equal(task.oracle(b), b.y)  # without noise the plug-in oracle is exact


def test_cluster_majority_oracle_is_a_near_ceiling():
    task = ClusterMajority()
    b = task(256, gen(5))
    assert (task.oracle(b) == b.y).float().mean() > 0.99


def test_cluster_majority_groups_are_the_clusters():
    task = ClusterMajority(seq_len=8)
    b = task(2, gen(0))
    labels, names = task.groups(b)
    assert torch.equal(labels, b.role) and names == ["cluster 0", "cluster 1", "cluster 2", "cluster 3"]


def test_cluster_majority_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_clusters"):
        ClusterMajority(num_clusters=1)


# --- retrieval: KeyValueRetrieval ---------------------------------------------------------------------------------


def test_retrieval_shapes_roles_and_determinism():
    task = KeyValueRetrieval(seq_len=20, num_facts=5, num_queries=6, num_keys=10, num_values=4)
    b = task(8, gen(0))
    assert task.dim == 10 + 4 + 3 and task.num_classes == 4
    assert b.x.shape == (8, 20, task.dim) and b.y.shape == (8, 20)
    assert (b.role == 0).sum(1).tolist() == [5] * 8
    assert (b.role == 1).sum(1).tolist() == [6] * 8
    assert (b.role == 2).sum(1).tolist() == [9] * 8
    assert torch.equal(b.target_mask, b.role == 1) and torch.equal(b.scored, b.role == 1)
    assert same_batch(b, task(8, gen(0)))


def test_retrieval_labels_recomputed_from_the_tokens():
    task = KeyValueRetrieval(seq_len=24, num_facts=6, num_queries=7)
    b = task(30, gen(2))
    for x, y, role in zip(b.x, b.y.tolist(), b.role.tolist()):
        facts = {}
        for token, r in zip(x, role):
            if r == 0:
                k = int(token[: task.num_keys].argmax())
                assert k not in facts, "fact keys must be distinct"
                facts[k] = int(token[task.num_keys : task.num_keys + task.num_values].argmax())
        assert len(facts) == task.num_facts
        for token, r, target in zip(x, role, y):
            if r == 1:
                assert token[task.num_keys : task.num_keys + task.num_values].sum() == 0, "a query carries no value"
                assert target == facts[int(token[: task.num_keys].argmax())]


def test_retrieval_hand_made_tokens_and_unshuffled_layout():
    task = KeyValueRetrieval(seq_len=6, num_facts=2, num_queries=2, num_keys=4, num_values=3, shuffle=False)
    x = task.encode(torch.tensor([3, 1, 1, -1]), torch.tensor([2, 0, -1, -1]), torch.tensor([0, 0, 1, 2]))
    expected = torch.tensor(
        [
            [0, 0, 0, 1, 0, 0, 1, 1, 0, 0],  # fact k3 → v2
            [0, 1, 0, 0, 1, 0, 0, 1, 0, 0],  # fact k1 → v0
            [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],  # query k1 (answer 0)
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # filler
        ]
    ).float()
    assert torch.equal(x, expected)
    key, value, role = task.decode(x)
    assert key[:3].tolist() == [3, 1, 1] and value[:2].tolist() == [2, 0] and role.tolist() == [0, 0, 1, 2]
    b = task(5, gen(0))
    assert b.role[0].tolist() == [0, 0, 1, 1, 2, 2]


def test_retrieval_example_groups_and_description():
    task = KeyValueRetrieval(seq_len=12, num_facts=3, num_queries=4)
    e = task.example(seed=5)
    assert e.role[0].tolist() == [0] * 3 + [1] * 4 + [2] * 5  # laid out for display
    key, value, _ = task.decode(e.x)
    assert key[0, :3].tolist() == sorted(key[0, :3].tolist())
    labels, names = task.groups(e)
    assert labels[0].tolist() == key[0, :3].tolist() + [16] * 4 + [17] * 5
    assert names[16:] == ["query", "filler"] and len(names) == 18
    text = task.describe(e)
    facts = " ".join(f"k{k}→{v}" for k, v in zip(key[0, :3].tolist(), value[0, :3].tolist()))
    assert text.startswith(f"facts {facts} | queries ") and text.endswith("| 5 filler")
    shuffled = task(1, gen(5))  # the same sequence before the layout: the same facts, the same answers
    assert sorted(task.describe(shuffled).split(" | ")[0].split()) == sorted(text.split(" | ")[0].split())
    assert torch.equal(e.target_mask, e.role == 1)


def test_retrieval_query_skew_asks_small_keys_more_often():
    uniform, skewed = KeyValueRetrieval(num_facts=8), KeyValueRetrieval(num_facts=8, query_skew=0.5)
    for task, lo, hi in ((uniform, 0.0, 0.25), (skewed, 0.4, 1.0)):
        b = task(400, gen(0))
        key, _, _ = task.decode(b.x)
        fact_keys = key.masked_fill(b.role != 0, 10**6)  # (B, N)
        smallest = fact_keys.min(1, keepdim=True).values  # (B, 1)
        share = ((key == smallest) & (b.role == 1)).sum() / (b.role == 1).sum()
        assert lo < share < hi, share


def test_retrieval_rejects_bad_sizes():
    with pytest.raises(ValueError, match="num_facts"):
        KeyValueRetrieval(num_facts=20, num_keys=16)
    with pytest.raises(ValueError, match="seq_len"):
        KeyValueRetrieval(seq_len=10, num_facts=4, num_queries=8)
    with pytest.raises(ValueError, match="query_skew"):
        KeyValueRetrieval(query_skew=-1.0)


# --- the capacity statement, checked by an oracle -----------------------------------------------------------------


def test_slot_memory_accuracy_hand_values():
    assert slot_memory_accuracy(8, 4, 8) == pytest.approx(4 / 8 + 4 / 8 / 8)  # 0.5625
    assert slot_memory_accuracy(8, 8, 8) == 1.0 and slot_memory_accuracy(8, 20, 8) == 1.0
    assert slot_memory_accuracy(8, 0, 8) == pytest.approx(1 / 8)
    with pytest.raises(ValueError):
        slot_memory_accuracy(0, 1, 8)


@pytest.mark.parametrize("num_facts,slots", [(8, 0), (8, 1), (8, 4), (8, 8), (4, 6), (16, 2)])
def test_slot_memory_oracle_meets_the_capacity_statement(num_facts, slots):
    """An ideal memory of S facts scores S/K + (1 − S/K)/V on average (4096 queries: within 4 standard errors)."""
    task = KeyValueRetrieval(num_facts=num_facts)
    b = task(512, gen(7))
    pred, m = slot_memory_oracle(task, b, slots), b.scored
    acc = (pred[m] == b.y[m]).float().mean().item()
    expected = slot_memory_accuracy(num_facts, slots, task.num_values)
    se = (expected * (1 - expected) / m.sum().item()) ** 0.5
    assert abs(acc - expected) <= 4 * se + 1e-9, (acc, expected)
    if slots >= num_facts:
        assert acc == 1.0


def test_slot_memory_oracle_keeping_the_important_facts_wins_under_skew():
    task = KeyValueRetrieval(num_facts=8, query_skew=0.5)
    b = task(256, gen(1))
    m = b.scored
    first, important = (
        (slot_memory_oracle(task, b, 2, keep)[m] == b.y[m]).float().mean().item() for keep in ("first", "important")
    )
    assert important > first + 0.3
    with pytest.raises(ValueError, match="keep"):
        slot_memory_oracle(task, b, 2, keep="random")


def test_an_equal_mixture_of_two_facts_forgets_which_value_is_whose():
    """Why one latent carries about one fact: a latent's update is a weighted mean of (projected) tokens, and the
    mean of facts (k1 → v0, k2 → v3) equals the mean of (k1 → v3, k2 → v0). Any linear projection keeps the tie."""
    task = KeyValueRetrieval()
    fact = lambda k, v: task.encode(torch.tensor(k), torch.tensor(v), torch.tensor(0))
    a = (fact(1, 0) + fact(2, 3)) / 2
    b = (fact(1, 3) + fact(2, 0)) / 2
    assert torch.equal(a, b)
    w = torch.randn(task.dim, 32)
    assert torch.allclose(a @ w, b @ w)


def test_an_unequal_mixture_of_two_facts_answers_both():
    """Why the clean-slot memory is a reference, not a bound: 0.7 · (k1 → v0) + 0.3 · (k2 → v3) keeps which value is
    whose — the key's weight names the value with the same weight — so one vector answers both facts."""
    task = KeyValueRetrieval()
    fact = lambda k, v: task.encode(torch.tensor(k), torch.tensor(v), torch.tensor(0))
    key_w, value_w, _ = (0.7 * fact(1, 0) + 0.3 * fact(2, 3)).split([task.num_keys, task.num_values, 3])
    for key, value in ((1, 0), (2, 3)):
        gap = (value_w - key_w[key]).abs().masked_fill(value_w == 0, float("inf"))
        assert gap.argmin().item() == value


# --- positions: PositionalCopy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["first", "ahead"])
def test_positional_copy_targets_by_hand(source):
    task = PositionalCopy(seq_len=20, source=source, offset=5, num_values=6)
    b = task(3, gen(4))
    assert b.x.shape == (3, 20, 6) and task.dim == task.num_classes == 6
    values = b.x.argmax(-1)  # (B, N)
    assert torch.equal(b.x.sum(-1), torch.ones(3, 20))  # one-hots
    for i in range(3):
        for p in range(20):
            src = 0 if source == "first" else p + 5
            scored = (p >= 1) if source == "first" else (p + 5 < 20)
            assert bool(b.scored[i, p]) is scored
            if scored:
                assert b.y[i, p] == values[i, src]
    again = task(3, gen(4))
    assert torch.equal(again.x, b.x) and torch.equal(again.y, b.y) and torch.equal(again.target_mask, b.target_mask)
    assert make_task("copy", {"seq_len": 20, "source": source}).source == source
    assert shifted(task, seq_len=64)(1, gen(0)).x.shape == (1, 64, 6)


def test_positional_copy_counts_only_reference():
    """The best answer without positions, recomputed by hand: the most frequent value among the other tokens, a
    little above chance (1/8) and far below what positions allow."""
    task = PositionalCopy(seq_len=9, source="first", num_values=3)
    b = task(1, gen(2))
    values = b.x.argmax(-1)[0].tolist()
    want = []
    for p in range(9):
        counts = Counter(v for q, v in enumerate(values) if q != p)
        want.append(min(v for v in counts if counts[v] == max(counts.values())))  # ties: the smallest value
    assert task.counts_only(b)[0].tolist() == want
    big = PositionalCopy(seq_len=128, source="first")
    b = big(400, gen(1))
    acc = (big.counts_only(b) == b.y)[b.scored].float().mean().item()
    assert 1 / 8 < acc < 0.25


# --- generalisation: shifted --------------------------------------------------------------------------------------


def test_shifted_keeps_the_world_and_changes_only_what_is_allowed():
    task = ClusterMajority(seq_len=32, seed=3)
    longer = shifted(task, seq_len=128, noise=0.9)
    assert longer.seq_len == 128 and longer.noise == 0.9 and task.seq_len == 32
    assert torch.equal(longer.centres, task.centres)
    assert longer(2, gen(0)).x.shape == (2, 128, task.dim)
    with pytest.raises(ValueError, match="can shift only"):
        shifted(task, seed=1)
    with pytest.raises(ValueError, match="can shift only"):
        shifted(KeyValueRetrieval(), num_values=4)
    assert shifted(KeyValueRetrieval(), seq_len=64, num_facts=2).num_facts == 2
