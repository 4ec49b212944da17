"""One run of ``python -m lattn.experiments bottleneck``: build the tagger a configuration describes, train it with
:func:`lattn.train.train`, and measure it (held-out accuracy, shifted tasks, map distances, ideal-memory references,
step times). The grid of configurations and the command line are :mod:`lattn.experiments.bottleneck`.

A configuration is plain data (it goes into the result file with the results): ``part``, ``task`` (a name of
:data:`lattn.tasks.TASKS`), ``task_args``, ``mixer`` (a :class:`~lattn.tagger.MixerSpec` as a dict), ``dim``,
``heads``, ``positions``, ``seed``, ``train`` (the arguments of :func:`~lattn.train.train`), ``shifts`` (the test
settings of :func:`~lattn.tasks.shifted`).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from lattn.tagger import MixerSpec, Tagger, count_parameters
from lattn.tasks import ClusterMajority, KeyValueRetrieval, make_task, shifted, slot_memory_accuracy, slot_memory_oracle
from lattn.train import History, evaluate, train

__all__ = [
    "CONFIG_KEYS",
    "EVAL_SEEDS",
    "config_of",
    "held_out_accuracy",
    "map_distances",
    "run_config",
    "run_timing",
    "shift_name",
    "time_per_step",
    "train_config",
]

EVAL_SEEDS = (1234, 1235, 1236, 1237)  # held-out batches (the training data use seed 0, 1, …)
EVAL_BATCH = {"copy": 16}  # sequences per held-out batch: 64 unless listed (the copy task is tested up to N = 2048)
CONFIG_KEYS = ("part", "task", "task_args", "mixer", "dim", "heads", "positions", "seed", "train", "shifts")


def config_of(record: dict[str, Any]) -> dict[str, Any]:
    """The configuration part of a record (what :func:`run_config` and :func:`train_config` take)."""
    return {k: record[k] for k in CONFIG_KEYS}


def held_out_accuracy(model: torch.nn.Module, task, batch_size: int = 64) -> float:
    """Held-out accuracy over the EVAL_SEEDS batches (``batch_size`` sequences each)."""
    return sum(evaluate(model, task, batch_size=batch_size, seed=s)[1] for s in EVAL_SEEDS) / len(EVAL_SEEDS)


def _build(config: dict[str, Any], task) -> Tagger:
    spec = MixerSpec(**config["mixer"])
    return spec.tagger(task, config["dim"], config["heads"], seed=config["seed"], positions=config["positions"])


def train_config(config: dict[str, Any], progress: bool = False) -> tuple[Any, Tagger, History]:
    """Build and train the model of a configuration: returns (task, trained tagger, history)."""
    task = make_task(config["task"], config["task_args"])
    model = _build(config, task)
    desc = MixerSpec(**config["mixer"]).label
    history = train(model, task, seed=config["seed"], progress=progress, desc=desc, **config["train"])
    return task, model, history


def run_config(config: dict[str, Any], progress: bool = False) -> dict[str, Any]:
    """Train the model a configuration describes and measure it. Returns the configuration plus results:

    ``label``, ``params`` (all trainable), ``params_no_latents``, ``train_loss`` (mean of the last 20 steps),
    ``accuracy`` (held out), ``shifted`` ({"seq_len=128": accuracy, …}), ``seconds`` (wall time; machine-dependent),
    for latent mixers ``map_tv`` (how far each stage's maps are from uniform, trained and at initialisation:
    :func:`map_distances`), and for retrieval with latents the accuracy of ideal clean-slot memories with M slots
    (``slot_memory``: keeping the first or the most asked facts, on the same held-out data) and, when all facts are
    asked equally, their expected accuracy ``slot_ceiling`` (:func:`~lattn.tasks.slot_memory_accuracy`; the name is
    kept for the file format: it is a reference, not a bound).
    """
    task, model, history = train_config(config, progress)
    spec = MixerSpec(**config["mixer"])
    fresh = _build(config, task)  # the same model before training
    batch = EVAL_BATCH.get(config["task"], 64)
    record = {
        **config,
        "label": spec.label,
        "params": count_parameters(model),
        "params_no_latents": count_parameters(model, latents=False),
        "train_loss": round(sum(history.loss[-20:]) / len(history.loss[-20:]), 5),
        "accuracy": round(held_out_accuracy(model, task, batch), 5),
        "shifted": {
            shift_name(s): round(held_out_accuracy(model, shifted(task, **s), batch), 5) for s in config["shifts"]
        },
        "seconds": round(history.seconds, 2),
    }
    if spec.kind == "latent":
        trained, init = map_distances(model, task), map_distances(fresh, task)
        record["map_tv"] = {**trained, **{f"{k}_init": v for k, v in init.items()}}
    if config["task"] == "retrieval" and spec.kind == "latent":  # ideal memories with M slots, same held-out data
        m = spec.num_latents
        record["slot_memory"] = {keep: round(_oracle_accuracy(task, m, keep), 5) for keep in ("first", "important")}
        if task.query_skew == 0:
            record["slot_ceiling"] = round(slot_memory_accuracy(task.num_facts, m, task.num_values), 5)
    return record


@torch.no_grad()
def map_distances(model: torch.nn.Module, task) -> dict[str, float]:
    """How far a latent tagger's maps are from uniform, on the first held-out batch: mean total-variation distances
    (0 = uniform, 1 = all weight elsewhere), rounded to 4 decimals.

    ``write``: each latent's write weights renormalised over the N tokens (what its update averages) vs 1/N —
    0 means the latent adds the plain mean of the tokens (a mean-pool); ``write_rows``: each token's split over
    the M latents vs 1/M (always 0 for M = 1); ``gather``: each latent's gather row over the tokens vs 1/N.
    """
    batch = task(64, torch.Generator().manual_seed(EVAL_SEEDS[0]))
    _, maps = model(batch.x, mask=batch.mask, return_maps=True)
    out = {}
    if maps.write is not None:  # (B, H, N, M)
        cols = maps.write / maps.write.sum(-2, keepdim=True)
        out["write"] = 0.5 * (cols - 1 / cols.shape[-2]).abs().sum(-2).mean().item()
        out["write_rows"] = 0.5 * (maps.write - 1 / maps.write.shape[-1]).abs().sum(-1).mean().item()
    if maps.gather is not None:  # (B, H, M, N)
        out["gather"] = 0.5 * (maps.gather - 1 / maps.gather.shape[-1]).abs().sum(-1).mean().item()
    return {k: round(v, 4) for k, v in out.items()}


def _oracle_accuracy(task: KeyValueRetrieval, slots: int, keep: str) -> float:
    """Accuracy of :func:`~lattn.tasks.slot_memory_oracle` on the held-out batches."""
    acc = 0.0
    for s in EVAL_SEEDS:
        batch = task(64, torch.Generator().manual_seed(s))
        pred, m = slot_memory_oracle(task, batch, slots, keep), batch.scored
        acc += (pred[m] == batch.y[m]).float().mean().item()
    return acc / len(EVAL_SEEDS)


def shift_name(change: dict[str, Any]) -> str:
    """The key of a shifted test setting in a record's ``shifted``, e.g. ``"seq_len=512"``."""
    return ",".join(f"{k}={v}" for k, v in change.items())


def time_per_step(spec: MixerSpec, seq_len: int, batch_size: int = 8, steps: int = 5, dim: int = 32) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of a global-task tagger at length N."""
    task = ClusterMajority(seq_len=seq_len)
    model = spec.tagger(task, dim, 2, seed=0)
    times = []
    for i in range(steps + 1):  # the first step warms up
        start = time.perf_counter()
        train(model, task, steps=1, batch_size=batch_size, seed=i, progress=False)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def run_timing(lengths: tuple[int, ...] = (128, 256, 512, 1024, 2048)) -> dict[str, Any]:
    """Seconds per training step vs N for full attention and latent attention (M = 4, 16), batch 8."""
    specs = [MixerSpec("full"), MixerSpec("latent", num_latents=4), MixerSpec("latent", num_latents=16)]
    rows = [{"label": s.label, "seq_len": n, "seconds": time_per_step(s, n)} for s in specs for n in lengths]
    return {"threads": torch.get_num_threads(), "batch_size": 8, "rows": rows}
