"""``python -m lattn.experiments bottleneck``: what the latent bottleneck keeps and what it loses, measured.

Trains small taggers (:class:`~lattn.tagger.Tagger`, width 32, 2 heads unless stated, the same optimiser and budget
for every mixer, seeds 0 … 4 wherever a verdict rests on a comparison) on the tasks of :mod:`lattn.tasks` and
writes two small files (those shipped in ``lattn/data/``):

* ``bottleneck_runs.json`` — one record per trained model: its configuration (enough to re-run it), parameter
  counts, held-out accuracy, accuracy on shifted tasks (longer, noisier) and, for latent mixers, how far the
  trained maps are from uniform. Runs come in parts:

  - ``sweep``    accuracy vs M (1 … 64) on the global and the retrieval task, against full attention (one layer,
                 and three layers = latent attention's depth and parameter count), local attention and no context;
  - ``ablation`` two of the three stages (write + broadcast, gather + broadcast) on both tasks, M = 2 … 16;
  - ``control``  the same two-stage layers widened to D = 38: about the parameter count of the three-stage layer
                 at D = 32 (1–2 % fewer), so a difference to it is not the parameters;
  - ``heads``    retrieval with H = 1 and 4 heads (the sweep has 2);
  - ``capacity`` retrieval accuracy vs the number of facts K for several M, one seed (the shape of the curves);
  - ``length``   the global task trained and tested at other lengths N — a frequency statistic for models without
                 positions, so a test that cannot fail the long-sequence claim;
  - ``position`` the copy task, which needs positions: models with sinusoidal positions trained at N = 128 and
                 tested up to N = 2048 (full, window ±8, latent M=16) — a length test that can fail;
  - ``distil``   retrieval where some facts are asked far more often: does the bottleneck keep those?

* ``bottleneck_timing.json`` — part ``timing``: seconds per training step vs N (machine-dependent; not part of the
  reproducibility check).

Everything except the timings and each record's ``seconds`` is reproducible from the seeds: single-threaded runs on
one machine repeat bit for bit (``tests/test_experiments_bottleneck.py`` re-runs a slice and compares), and runs
of different parts or seeds are independent, so a grid run in pieces equals one run whole. How to train and
measure one configuration: :mod:`lattn.experiments._bottleneck_runs`; queries over the records:
:mod:`lattn.records`; verdicts: :mod:`lattn.stats`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import torch

from lattn import records
from lattn._cli import add_output_options, add_parser, announce_done, output_folder
from lattn.records import band, curve, mean_over_seeds, per_seed, seed_values, select, spread
from lattn.tagger import MixerSpec
from lattn.tasks import make_task

from ._bottleneck_runs import (
    CONFIG_KEYS,
    EVAL_SEEDS,
    config_of,
    held_out_accuracy,
    map_distances,
    run_config,
    run_timing,
    shift_name,
    time_per_step,
    train_config,
)

__all__ = [
    "ABLATION",
    "CONFIG_KEYS",
    "CONTROL_DIM",
    "DIM",
    "EVAL_SEEDS",
    "HEADS",
    "PARTS",
    "POSITION_LENGTHS",
    "RUNS_FILE",
    "SEEDS",
    "TIMING_FILE",
    "TRAIN",
    "band",
    "config_of",
    "configs",
    "curve",
    "held_out_accuracy",
    "in_grid_order",
    "load",
    "make_task",
    "map_distances",
    "mean_over_seeds",
    "per_seed",
    "register",
    "run_config",
    "run_timing",
    "seed_values",
    "select",
    "shift_name",
    "spread",
    "time_per_step",
    "train_config",
]

DIM, HEADS = 32, 2  # tagger width and heads, the same for every mixer (the control part widens to CONTROL_DIM)
TRAIN = {"steps": 400, "batch_size": 64, "lr": 3e-3, "cosine": True}  # the same budget for every model
RUNS_FILE, TIMING_FILE = "bottleneck_runs.json", "bottleneck_timing.json"
PARTS = ("sweep", "ablation", "control", "heads", "capacity", "length", "position", "distil", "timing")
LATENTS = (1, 2, 4, 8, 16, 32, 64)  # the M axis of the sweep
SEEDS = (0, 1, 2, 3, 4)  # every comparison that a verdict rests on is trained from these five seeds
ABLATION = (("write", "broadcast"), ("gather", "broadcast"))  # all three stages: the sweep's runs
ABLATION_LATENTS = (2, 4, 8, 16)
CONTROL_DIM = 38  # two-stage layers this wide have 1–2 % fewer parameters than three stages at DIM (14,366 vs 14,594)
POSITION_TRAIN = 128  # the copy task's training length (with TRAIN's budget: 8,192 tokens per step)
POSITION_LENGTHS = (128, 256, 512, 1024, 2048)  # … and its test lengths

BASE_TASK = {"global": {"seq_len": 32}, "retrieval": {"seq_len": 32, "num_facts": 8}, "copy": {"seq_len": 128}}
# generalisation probe: the same world, longer or noisier sequences
SHIFTS = {
    "global": [{"seq_len": 128}, {"seq_len": 512}, {"noise": 0.9}, {"noise": 1.2}],
    "retrieval": [{"seq_len": 128}, {"seq_len": 512}, {"noise": 0.1}, {"noise": 0.2}],
}


def load(name: str = RUNS_FILE) -> Any:
    """A shipped result file of ``lattn/data/`` (parsed JSON): by default the runs, one record per trained model."""
    return records.load(name)


def _config(part: str, task: str, mixer: MixerSpec, seed: int = 0, heads: int = HEADS, dim: int = DIM,
            positions: str = "none", train: dict | None = None, shifts: list | None = None, **task_args: Any):  # fmt: skip
    config = {
        "part": part,
        "task": task,
        "task_args": {**BASE_TASK[task], **task_args},
        "mixer": {**dataclasses.asdict(mixer), "stages": list(mixer.stages)},
        "dim": dim,
        "heads": heads,
        "positions": positions,
        "seed": seed,
        "train": dict(TRAIN) if train is None else train,
        "shifts": (SHIFTS[task] if part == "sweep" else []) if shifts is None else shifts,
    }
    assert tuple(config) == CONFIG_KEYS
    return config


def _position_configs(seed: int) -> list[dict[str, Any]]:
    """The copy task with sinusoidal positions: full, window ±8 and latent M=16, trained at N = POSITION_TRAIN with
    the shared budget, tested at every other POSITION_LENGTHS length."""
    specs = (MixerSpec("full"), MixerSpec("window", window=8), MixerSpec("latent", num_latents=16))
    shifts = [{"seq_len": n} for n in POSITION_LENGTHS if n != POSITION_TRAIN]
    out = []
    for source, extra in (("first", {}), ("ahead", {"offset": 16})):
        out += [_config("position", "copy", s, seed, positions="sinusoidal", shifts=shifts, seq_len=POSITION_TRAIN,
                        source=source, **extra) for s in specs]  # fmt: skip
    return out


def configs(parts: tuple[str, ...] = PARTS) -> list[dict[str, Any]]:
    """Every run of the chosen parts, as plain configurations (see :func:`run_config`), in the file's order."""
    full, full3, none = MixerSpec("full"), MixerSpec("full", layers=3), MixerSpec("none")
    latent = [MixerSpec("latent", num_latents=m) for m in LATENTS]
    two_stage = [MixerSpec("latent", num_latents=m, stages=st) for st in ABLATION for m in ABLATION_LATENTS]
    out: list[dict[str, Any]] = []
    for seed in SEEDS:
        if "sweep" in parts:
            out += [
                _config("sweep", "global", s, seed) for s in (none, MixerSpec("window", window=4), full, full3, *latent)
            ]
            out += [_config("sweep", "retrieval", s, seed) for s in (none, full, full3, *latent)]
        if "ablation" in parts:  # two of the three stages; all three are the sweep's runs with the same M and seed
            out += [_config("ablation", task, s, seed) for task in ("global", "retrieval") for s in two_stage]
        if "control" in parts:  # the same, widened to about the three-stage layer's parameter count
            out += [_config("control", task, s, seed, dim=CONTROL_DIM) for task in ("global", "retrieval")
                    for s in two_stage]  # fmt: skip
        if "heads" in parts:  # the sweep has H = 2; the same parameter count for every H
            out += [_config("heads", "retrieval", s, seed, heads=h) for h in (1, 4) for s in latent[:3]]
        if "length" in parts:
            for n in (8, 128):  # N = 32 is in the sweep
                out += [_config("length", "global", s, seed, seq_len=n) for s in (full, full3, latent[2])]
        if "position" in parts:
            out += _position_configs(seed)
        if "distil" in parts:
            out += [_config("distil", "retrieval", s, seed, query_skew=0.5) for s in (*latent[:3], full)]
    if "capacity" in parts:  # one seed: the shape of the curves against the ideal clean-slot memory
        for k in (2, 4, 16):  # K = 8 is in the sweep
            out += [_config("capacity", "retrieval", s, num_facts=k) for s in (full, *latent[:5])]
    return out


DESCRIPTION = """\
Train small taggers (full attention, latent attention with 1 to 64 latents, and
baselines) on the tasks of notebook 03 and measure what the latent bottleneck keeps and
what it loses, from 5 seeds. The runs come in parts:
  sweep     accuracy vs the number of latents M, on the global and the retrieval task
  ablation  latent attention with two of its three stages (write or gather left out)
  control   the two-stage layers widened to the three-stage layer's parameter count
  heads     retrieval with 1 and 4 heads: how many facts a latent holds
  capacity  retrieval accuracy vs the number of facts, for several M
  length    the global task trained at other sequence lengths (no positions)
  position  a task that needs positions, trained at N = 128, tested up to 2048
  distil    retrieval when some facts are asked far more often
  timing    seconds per training step vs sequence length (depends on the machine)

Time: all 393 runs plus the timings take about an hour of CPU time on one thread
(an estimate from timed runs of each part); one part takes from a few minutes
(capacity, distil) to about 20 minutes (sweep). Parts can run in parallel processes
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


def in_grid_order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records in the order of :func:`configs` (all parts), so that parts run apart and merged give the same
    file as one run of everything; records of configurations outside the grid go last, in their order."""
    order = {json.dumps(c, sort_keys=True): i for i, c in enumerate(configs(PARTS))}
    return sorted(records, key=lambda r: order.get(json.dumps(config_of(r), sort_keys=True), len(order)))


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
                  f"{shift_name(r['task_args']):32} {r['label']:13} seed {r['seed']}: acc {r['accuracy']:.3f}",
                  flush=True)  # fmt: skip
        path = out / RUNS_FILE
        if args.part and path.exists():  # keep the other parts' records
            records = [r for r in json.loads(path.read_text()) if r["part"] not in parts] + records
        path.write_text(json.dumps(in_grid_order(records), indent=1) + "\n")
        print(f"wrote {path} ({len(records)} runs)")
    if "timing" in parts:
        (out / TIMING_FILE).write_text(json.dumps(run_timing(), indent=1) + "\n")
        print(f"wrote {out / TIMING_FILE}")
    announce_done(out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "bottleneck", "notebook 03's bottleneck runs, about 60 CPU-minutes",
                   DESCRIPTION, EXAMPLES)  # fmt: skip
    p.add_argument("--part", action="append", choices=PARTS, help="run only this part (repeatable; default: all)")
    add_output_options(p, "bottleneck", f"{RUNS_FILE} and {TIMING_FILE}")
    p.set_defaults(func=_main)
