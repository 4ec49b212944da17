"""``python -m lattn.experiments bottleneck``: what the latent bottleneck keeps and what it loses, measured.

Trains small taggers (:class:`~lattn.tagger.Tagger`, width 32, 2 heads unless stated, the same optimiser and budget
for every mixer, seeds 0, 1, 2 wherever a verdict rests on a comparison) on the tasks of :mod:`lattn.tasks` and writes two small files (those shipped in ``lattn/data/``):

* ``bottleneck_runs.json`` — one record per trained model: its configuration (enough to re-run it), parameter
  counts, held-out accuracy, accuracy on shifted tasks (longer, noisier) and, for latent mixers, how far the
  trained maps are from uniform. Runs come in parts:

  - ``sweep``    accuracy vs M (1 … 64) on the global and the retrieval task, against full attention (one layer,
                 and three layers = latent attention's depth and parameter count), local attention and no context;
  - ``ablation`` two of the three stages (write + broadcast, gather + broadcast) on both tasks, M = 2 … 16;
  - ``heads``    retrieval with H = 1 and 4 heads (the sweep has 2): facts per latent = heads;
  - ``capacity`` retrieval accuracy vs the number of facts K for several M, one seed (where the bottleneck runs
                 out of room);
  - ``length``   accuracy when trained at other sequence lengths N;
  - ``distil``   retrieval where some facts are asked far more often: does the bottleneck keep those?

* ``bottleneck_timing.json`` — part ``timing``: seconds per training step vs N (machine-dependent; not part of the
  reproducibility check).

Everything except the timings is reproducible from the seeds: single-threaded runs on one machine repeat bit for bit
(``tests/test_experiments_bottleneck.py`` re-runs a slice and compares). The whole grid (177 runs + timings) takes
about 30 CPU-minutes (25 minutes of wall time as three processes on a busy 2-core machine). The command line writes to
``./lattn-results/bottleneck/``; ``--update-shipped`` (all parts) replaces the files in ``lattn/data/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from importlib import resources
from typing import Any

import torch

from lattn._cli import add_output_options, add_parser, announce_done, output_folder
from lattn.tagger import MixerSpec, Tagger, count_parameters
from lattn.tasks import ClusterMajority, KeyValueRetrieval, shifted, slot_memory_accuracy, slot_memory_oracle
from lattn.train import History, evaluate, train

__all__ = [
    "ABLATION",
    "DIM",
    "HEADS",
    "PARTS",
    "RUNS_FILE",
    "SEEDS",
    "TIMING_FILE",
    "TRAIN",
    "band",
    "config_of",
    "configs",
    "curve",
    "held_out_accuracy",
    "load",
    "make_task",
    "map_distances",
    "mean_over_seeds",
    "register",
    "run_config",
    "seed_values",
    "select",
    "spread",
    "time_per_step",
    "train_config",
    "within_noise",
]

DIM, HEADS = 32, 2  # tagger width and heads, the same for every mixer
TRAIN = {"steps": 400, "batch_size": 64, "lr": 3e-3, "cosine": True}  # the same budget for every model
EVAL_SEEDS = (1234, 1235, 1236, 1237)  # held-out batches of 64 sequences each (the training data use seed 0, 1, …)
RUNS_FILE, TIMING_FILE = "bottleneck_runs.json", "bottleneck_timing.json"
CONFIG_KEYS = ("part", "task", "task_args", "mixer", "heads", "seed", "train", "shifts")  # what defines a run
PARTS = ("sweep", "ablation", "heads", "capacity", "length", "distil", "timing")
LATENTS = (1, 2, 4, 8, 16, 32, 64)  # the M axis of the sweep
SEEDS = (0, 1, 2)  # every comparison that a verdict rests on is trained from these three seeds
ABLATION = (("write", "broadcast"), ("gather", "broadcast"))  # all three stages: the sweep's runs
ABLATION_LATENTS = (2, 4, 8, 16)

TASKS = {"global": ClusterMajority, "retrieval": KeyValueRetrieval}
BASE_TASK = {"global": {"seq_len": 32}, "retrieval": {"seq_len": 32, "num_facts": 8}}
# generalisation probe: the same world, longer or noisier sequences
SHIFTS = {
    "global": [{"seq_len": 128}, {"seq_len": 512}, {"noise": 0.9}, {"noise": 1.2}],
    "retrieval": [{"seq_len": 128}, {"seq_len": 512}, {"noise": 0.1}, {"noise": 0.2}],
}


def make_task(name: str, args: dict[str, Any]):
    """The task called ``name`` ("global" or "retrieval") with constructor arguments ``args``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name](**args)


def _config(part: str, task: str, mixer: MixerSpec, seed: int = 0, heads: int = HEADS, **task_args: Any):
    return {
        "part": part,
        "task": task,
        "task_args": {**BASE_TASK[task], **task_args},
        "mixer": {**dataclasses.asdict(mixer), "stages": list(mixer.stages)},
        "heads": heads,
        "seed": seed,
        "train": dict(TRAIN),
        "shifts": SHIFTS[task] if part == "sweep" else [],
    }


def configs(parts: tuple[str, ...] = PARTS) -> list[dict[str, Any]]:
    """Every run of the chosen parts, as plain configurations (see :func:`run_config`)."""
    full, full3, none = MixerSpec("full"), MixerSpec("full", layers=3), MixerSpec("none")
    latent = [MixerSpec("latent", num_latents=m) for m in LATENTS]
    out: list[dict[str, Any]] = []
    for seed in SEEDS:
        if "sweep" in parts:
            out += [
                _config("sweep", "global", s, seed) for s in (none, MixerSpec("window", window=4), full, full3, *latent)
            ]
            out += [_config("sweep", "retrieval", s, seed) for s in (none, full, full3, *latent)]
        if "ablation" in parts:  # two of the three stages; all three are the sweep's runs with the same M and seed
            out += [_config("ablation", task, MixerSpec("latent", num_latents=m, stages=st), seed)
                    for task in TASKS for st in ABLATION for m in ABLATION_LATENTS]  # fmt: skip
        if "heads" in parts:  # the sweep has H = 2; the same parameter count for every H
            out += [_config("heads", "retrieval", s, seed, heads=h) for h in (1, 4) for s in latent[:3]]
        if "length" in parts:
            for n in (8, 128):  # N = 32 is in the sweep
                out += [_config("length", "global", s, seed, seq_len=n) for s in (full, full3, latent[2])]
        if "distil" in parts:
            out += [_config("distil", "retrieval", s, seed, query_skew=0.5) for s in (*latent[:3], full)]
    if "capacity" in parts:  # one seed: the curves sit on the formula's ceilings
        for k in (2, 4, 16):  # K = 8 is in the sweep
            out += [_config("capacity", "retrieval", s, num_facts=k) for s in (full, *latent[:5])]
    return out


def held_out_accuracy(model: torch.nn.Module, task) -> float:
    """Held-out accuracy over the EVAL_SEEDS batches (64 sequences each)."""
    return sum(evaluate(model, task, batch_size=64, seed=s)[1] for s in EVAL_SEEDS) / len(EVAL_SEEDS)


def config_of(record: dict[str, Any]) -> dict[str, Any]:
    """The configuration part of a record (what :func:`run_config` and :func:`train_config` take)."""
    return {k: record[k] for k in CONFIG_KEYS}


def train_config(config: dict[str, Any], progress: bool = False) -> tuple[Any, Tagger, History]:
    """Build and train the model of a configuration: returns (task, trained tagger, history)."""
    task = make_task(config["task"], config["task_args"])
    spec = MixerSpec(**config["mixer"])
    model = spec.tagger(task, DIM, config["heads"], seed=config["seed"])
    history = train(model, task, seed=config["seed"], progress=progress, desc=spec.label, **config["train"])
    return task, model, history


def run_config(config: dict[str, Any], progress: bool = False) -> dict[str, Any]:
    """Train the model a configuration describes and measure it. Returns the configuration plus results:

    ``label``, ``params`` (all trainable), ``params_no_latents``, ``train_loss`` (mean of the last 20 steps),
    ``accuracy`` (held out), ``shifted`` ({"seq_len=128": accuracy, …}), ``seconds`` (wall time; machine-dependent),
    for latent mixers ``map_tv`` (how far each stage's maps are from uniform, trained and at initialisation:
    :func:`map_distances`), and for retrieval with latents the accuracy of ideal memories with M slots (``slot_memory``: keeping the first
    or the most asked facts, on the same held-out data) and, when all facts are asked equally, their ceiling
    ``slot_ceiling`` (:func:`~lattn.tasks.slot_memory_accuracy`).
    """
    task, model, history = train_config(config, progress)
    spec = MixerSpec(**config["mixer"])
    fresh = spec.tagger(task, DIM, config["heads"], seed=config["seed"])  # the same model before training
    record = {
        **config,
        "label": spec.label,
        "params": count_parameters(model),
        "params_no_latents": count_parameters(model, latents=False),
        "train_loss": round(sum(history.loss[-20:]) / len(history.loss[-20:]), 5),
        "accuracy": round(held_out_accuracy(model, task), 5),
        "shifted": {_shift_name(s): round(held_out_accuracy(model, shifted(task, **s)), 5) for s in config["shifts"]},
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


def _shift_name(change: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in change.items())


def time_per_step(spec: MixerSpec, seq_len: int, batch_size: int = 8, steps: int = 5) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of a global-task tagger at length N."""
    task = ClusterMajority(seq_len=seq_len)
    model = spec.tagger(task, DIM, HEADS, seed=0)
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


def load(name: str = RUNS_FILE) -> Any:
    """A shipped result file of ``lattn/data/`` (parsed JSON)."""
    return json.loads(resources.files("lattn").joinpath("data", name).read_text())


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A record's fields, its task's fields (defaults included) and its mixer's fields, in one dict."""
    task = make_task(record["task"], record["task_args"])
    fields = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    mixer = {**record["mixer"], "stages": tuple(record["mixer"].get("stages", ()))}  # JSON lists → tuples
    return {**fields, **mixer, **record}


def select(records: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    """The records whose fields match ``where``; task and mixer fields count too, with their defaults.

    Example: ``select(runs, task="retrieval", kind="latent", num_facts=16)``.
    """
    return [r for r in records if all(_flat(r).get(k) == v for k, v in where.items())]


def seed_values(records: list[dict[str, Any]], x: str, y: str = "accuracy", **where: Any) -> dict[Any, list[float]]:
    """For each value of field ``x`` among the selected records (sorted), the values of ``y``, one per seed.
    ``y`` is a record field, a shift name such as ``"seq_len=512"`` (looked up in ``shifted``) or a map distance
    such as ``"map_tv.write"`` (a field of ``map_tv``)."""
    groups: dict[Any, list[float]] = {}
    for r in select(records, **where):
        if y in r.get("shifted", {}):
            value = r["shifted"][y]
        elif y.startswith("map_tv."):
            value = r["map_tv"][y.removeprefix("map_tv.")]
        else:
            value = r[y]
        groups.setdefault(_flat(r)[x], []).append(value)
    return {v: groups[v] for v in sorted(groups)}


def curve(records: list[dict[str, Any]], x: str, y: str = "accuracy", **where: Any) -> tuple[list, list[float]]:
    """``(xs, ys)``: for each value of field ``x`` among the selected records (sorted), the mean of ``y`` over the
    seeds (``y`` as for :func:`seed_values`).

    Example: ``curve(runs, "num_latents", part="sweep", task="global", kind="latent")`` → accuracy vs M.
    """
    groups = seed_values(records, x, y, **where)
    return list(groups), [sum(v) / len(v) for v in groups.values()]


def band(records: list[dict[str, Any]], x: str, y: str = "accuracy", **where: Any):
    """``(xs, means, lows, highs)`` over the seeds of each x (lowest and highest seed: the seed spread), e.g. for
    a line with a shaded band: ``band(runs, "num_latents", part="sweep", task="global", kind="latent")``."""
    groups = seed_values(records, x, y, **where)
    vals = list(groups.values())
    return list(groups), [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def spread(values: list[float], digits: int = 2) -> str:
    """Mean and seed range as text, e.g. ``"0.63 (0.58–0.66)"``; one value alone is just that value."""
    mean = f"{sum(values) / len(values):.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def within_noise(a: list[float], b: list[float]) -> bool:
    """True when two sets of seed results overlap (neither's range lies wholly above the other's): the difference
    of their means is then within seed noise, by the course's plain rule."""
    return not (min(a) > max(b) or min(b) > max(a))


def mean_over_seeds(records: list[dict[str, Any]], y: str = "accuracy", **where: Any) -> float | None:
    """Mean of ``y`` over the seeds of the selected records (None if there are none), e.g. a baseline's accuracy:
    ``mean_over_seeds(runs, part="sweep", task="global", label="full")``."""
    _, ys = curve(records, "part", y, **where)
    return ys[0] if ys else None


DESCRIPTION = """\
Train small taggers (full attention, latent attention with 1 to 64 latents, and
baselines) on the tasks of notebook 03 and measure what the latent bottleneck keeps and
what it loses, from 3 seeds. The runs come in parts:
  sweep     accuracy vs the number of latents M, on the global and the retrieval task
  ablation  latent attention with two of its three stages (write or gather left out)
  heads     retrieval with 1 and 4 heads: how many facts a latent holds
  capacity  retrieval accuracy vs the number of facts, for several M
  length    accuracy when trained at other sequence lengths
  distil    retrieval when some facts are asked far more often
  timing    seconds per training step vs sequence length (depends on the machine)

Time: all 177 runs plus the timings take about 30 CPU-minutes; one part takes
a few minutes (sweep and ablation about 10 each). Parts can run in parallel processes
with different --out folders. The same command gives the same
accuracies (the timings aside).

Output: bottleneck_runs.json (one record per trained model) and bottleneck_timing.json,
in ./lattn-results/bottleneck/ in the current directory unless --out DIR is given. A later
run with --part adds its part to the runs file there. --update-shipped replaces the
results notebook 03 reads (all parts at once)."""

EXAMPLES = """\
Examples:
  python -m lattn.experiments bottleneck
  python -m lattn.experiments bottleneck --part capacity
  python -m lattn.experiments bottleneck --part sweep --part length --out my-runs
  python -m lattn.experiments bottleneck --update-shipped"""


def _main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)  # tiny models: one thread is fastest and makes the runs bit-reproducible
    parts = tuple(dict.fromkeys(args.part)) if args.part else PARTS
    partial = [f"--part {' '.join(parts)} (shipped: all parts)"] if set(parts) != set(PARTS) else []
    out = output_folder(args, partial)
    todo = configs(parts)
    if todo:
        records, start = [], time.perf_counter()
        for i, config in enumerate(todo, 1):
            records.append(run_config(config))
            r = records[-1]
            print(f"[{i}/{len(todo)} {time.perf_counter() - start:6.0f} s] {r['part']:8} {r['task']:9} "
                  f"{_shift_name(r['task_args']):32} {r['label']:13} seed {r['seed']}: acc {r['accuracy']:.3f}",
                  flush=True)  # fmt: skip
        path = out / RUNS_FILE
        if args.part and path.exists():  # keep the other parts' records
            records = [r for r in json.loads(path.read_text()) if r["part"] not in parts] + records
        path.write_text(json.dumps(records, indent=1) + "\n")
        print(f"wrote {path} ({len(records)} runs)")
    if "timing" in parts:
        (out / TIMING_FILE).write_text(json.dumps(run_timing(), indent=1) + "\n")
        print(f"wrote {out / TIMING_FILE}")
    announce_done(out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "bottleneck", "notebook 03's bottleneck runs, about 30 CPU-minutes",
                   DESCRIPTION, EXAMPLES)  # fmt: skip
    p.add_argument("--part", action="append", choices=PARTS, help="run only this part (repeatable; default: all)")
    add_output_options(p, "bottleneck", f"{RUNS_FILE} and {TIMING_FILE}")
    p.set_defaults(func=_main)
