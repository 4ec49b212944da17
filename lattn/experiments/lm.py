"""``python -m lattn.experiments lm``: train notebook 06's character language models and ship them.

One :class:`~lattn.lm.CharLM` per kind of attention, same widths, data, seeds and budget, trained on the shipped
book (:mod:`lattn.lm_data`) with :func:`~lattn.lm.train_lm`, once per seed (the seed draws the initial weights and
the training windows). Writes, under ``--out`` (default ``./lattn-results/lm/``; ``--update-shipped`` with the
shipped settings replaces the files in ``lattn/data``):

* ``lm_<kind>.pt`` — config + float16 weights of the *first* seed's model (:func:`~lattn.lm.save_checkpoint`);
  ≈0.2 MB each (the other seeds' models are measured, not kept);
* ``lm_results.json`` — per kind, for the first seed: validation loss of the *shipped* (float16-rounded) weights,
  which :func:`~lattn.lm.load_checkpoint` + :func:`~lattn.lm.evaluate_lm` reproduce; the validation curve;
  parameters; training tokens/s on the machine that ran it (for the record only). ``by_seed``: every seed's
  validation loss (float16-rounded weights too), last-100-step training loss and tokens/s.

:func:`compare_seeds` turns ``by_seed`` into the notebook's table: mean and range over seeds per kind, and a verdict
against a reference kind by the course's rule (ranges that overlap are "within noise").

Deterministic on the CPU for a given number of threads: the same command gives the same weights and losses (timings
aside; another thread count changes the last bits of the sums). On a busy 2-core machine one seed of the four models
takes ≈20 minutes, the shipped three ≈1 hour; ``--steps 20 --kinds full --seeds 0`` takes seconds (what the tests
do).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from .._cli import DATA_DIR, RESULTS_ROOT, add_output_options, add_parser, announce_done, output_folder
from ..lm import (
    KINDS,
    CharLM,
    LMConfig,
    evaluate_lm,
    save_checkpoint,
    train_lm,
)
from ..lm_cost import decode_state_bytes, prefill_peak_bytes
from ..lm_data import CharCorpus

__all__ = [
    "DATA_DIR",
    "RESULTS",
    "SHIPPED",
    "combine_seeds",
    "compare_seeds",
    "config_for",
    "measure_memory",
    "register",
    "round_to_half",
    "run",
]

RESULTS = "lm_results.json"
DEFAULT_KINDS = ("full", "luna", "mla", "latent")
SHIPPED = {"steps": 1500, "batch_size": 32, "lr": 1e-2, "eval_every": 100, "seeds": (0, 1, 2)}  # the shipped budget

# The shipped models: 2 blocks of width 48 (4 heads of 12) reading 64 characters. The naive latent decoder gets as
# many latents as positions (M = N = 64), so it can copy the next character through them: the leak at full
# strength. Luna gets l = 16 packed slots; MLA caches d_c + d_rope = 20 values per token and layer (full: 96).
SHARED = {"dim": 48, "heads": 4, "layers": 2, "context": 64, "d_c": 16, "d_rope": 4}
LATENTS = {"full": 16, "luna": 16, "mla": 16, "latent": 64}
PREFILL_LENGTHS = (1024, 4096)  # tokens read at once, for the peak memory of one block
DECODE_LENGTHS = (1024, 16384, 131072)  # tokens generated so far, for the decoding state of the whole model


def config_for(kind: str, vocab_size: int, **changes: int) -> LMConfig:
    """The shipped config of ``kind`` (``changes`` override sizes, e.g. for a tiny test run)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    sizes = {**SHARED, "num_latents": LATENTS[kind], **changes}
    return LMConfig(vocab_size, kind=kind, **sizes)


@torch.no_grad()
def round_to_half(model: torch.nn.Module) -> None:
    """Round every floating weight to float16 and back, in place: the model then *is* what a float16 checkpoint
    stores, so the validation loss measured next is the one the shipped file reproduces."""
    for t in model.state_dict().values():
        if t.is_floating_point():
            t.copy_(t.to(torch.float16).to(t.dtype))


def measure_memory(
    kinds: tuple[str, ...],
    vocab_size: int,
    *,
    prefill: tuple[int, ...] = PREFILL_LENGTHS,
    decode: tuple[int, ...] = DECODE_LENGTHS,
    **changes: int,
) -> dict:
    """Memory at long contexts for the shipped configs (deterministic: bytes of real tensors, float32, batch 1).

    ``prefill_peak_bytes[kind][N]``: peak of the tensors one block creates reading N tokens at once (fused
    kernels' scratch space is not seen). ``decode_state_bytes[kind][N]``: the whole model's decoding state after N
    tokens (None: no decoding state). Keys are strings (JSON).
    """
    configs = {kind: config_for(kind, vocab_size, **changes) for kind in kinds}
    return {
        "prefill_peak_bytes": {k: {str(n): prefill_peak_bytes(c, n) for n in prefill} for k, c in configs.items()},
        "decode_state_bytes": {k: {str(n): decode_state_bytes(c, n) for n in decode} for k, c in configs.items()},
    }


def _train_one(
    kind: str,
    corpus: CharCorpus,
    seed: int,
    steps: int,
    batch_size: int,
    lr: float,
    eval_every: int,
    progress: bool,
    **changes: int,
) -> tuple[CharLM, dict]:
    """Train the shipped config of ``kind`` from ``seed``, round its weights to float16; the model and its record."""
    config = config_for(kind, corpus.vocab.size, **changes)
    model = CharLM.build(config, seed=seed)
    history = train_lm(
        model, corpus, steps, batch_size=batch_size, lr=lr, seed=seed, eval_every=eval_every, progress=progress,
        desc=f"{config.label}, seed {seed}",
    )  # fmt: skip
    round_to_half(model)
    val = evaluate_lm(model, corpus)
    if progress:
        print(f"{config.label:>24}, seed {seed}: validation loss {val:.4f} nats/char")
    return model, {
        "kind": kind,
        "label": config.label,
        "val_loss": val,
        "val_steps": history.val_steps,
        "val_curve": history.val_loss,
        "train_loss_last_100": sum(history.loss[-100:]) / len(history.loss[-100:]),
        "params": sum(p.numel() for p in model.parameters()),
        "train_tokens_per_s": round(history.tokens_per_s),
        "steps": steps,
        "seed": seed,
    }


def combine_seeds(runs: list[dict]) -> dict:
    """One results dict from runs with the same settings and different seeds (each as :func:`run` returns it for
    one seed): the first run's fields and models (files, curves), the seeds, and ``by_seed[kind][str(seed)]`` =
    that seed's ``val_loss``, ``train_loss_last_100`` and ``train_tokens_per_s``."""
    if not runs:
        raise ValueError("combine_seeds() needs at least one run, got none")
    first = runs[0]
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds) or any(set(r["models"]) != set(first["models"]) for r in runs):
        raise ValueError(f"runs must have distinct seeds and the same kinds; got seeds {seeds}")
    keep = ("val_loss", "train_loss_last_100", "train_tokens_per_s")
    kinds = ",".join(first["models"])
    out = {k: v for k, v in first.items() if k not in ("by_seed", "seeds")}
    out["command"] = (
        f"python -m lattn.experiments lm --steps {first['steps']} --kinds {kinds} --seeds {','.join(map(str, seeds))}"
    )
    out["seeds"] = seeds
    out["by_seed"] = {k: {str(r["seed"]): {f: r["models"][k][f] for f in keep} for r in runs} for k in first["models"]}
    return out


def compare_seeds(by_seed: dict, kinds: tuple[str, ...], reference: str = "full") -> list[dict]:
    """One row per kind of ``kinds``: ``kind``, ``seeds``, ``losses`` (validation loss by seed), ``mean``, ``low``
    and ``high`` (the range over seeds), and ``verdict`` against ``reference`` by the course's rule: ranges that
    overlap are "within noise"; otherwise "beats <reference>" or "worse than <reference>" (lower loss is better).
    ``by_seed`` as in the results file: {kind: {seed: {"val_loss": …}}}."""
    for kind in (reference, *kinds):
        if kind not in by_seed:
            raise ValueError(f"kind {kind!r} has no results; by_seed holds {sorted(by_seed)}")
    ref = [r["val_loss"] for r in by_seed[reference].values()]
    rows = []
    for kind in kinds:
        seeds = sorted(by_seed[kind], key=int)
        losses = [by_seed[kind][s]["val_loss"] for s in seeds]
        low, high = min(losses), max(losses)
        if kind == reference:
            verdict = "the reference"
        elif low <= max(ref) and min(ref) <= high:
            verdict = "within noise"
        else:
            verdict = f"{'beats' if high < min(ref) else 'worse than'} {reference}"
        rows.append({"kind": kind, "seeds": [int(s) for s in seeds], "losses": losses, "mean": sum(losses) / len(losses),
                     "low": low, "high": high, "verdict": verdict})  # fmt: skip
    return rows


def run(
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    *,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 1e-2,
    eval_every: int = 100,
    seeds: tuple[int, ...] = (0,),
    out: str | Path = RESULTS_ROOT / "lm",
    progress: bool = True,
    memory: bool = True,
    **changes: int,
) -> dict:
    """Train one model per kind and seed; write the first seed's ``lm_<kind>.pt`` and ``lm_results.json``
    (:func:`combine_seeds` of the seeds) under ``out``; return the results. ``memory``: also measure the memory at
    long contexts (:func:`measure_memory`; ≈1 minute)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = CharCorpus.load()
    runs = []
    for seed in seeds:
        results: dict = {
            "steps": steps,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "unigram_val_loss": corpus.unigram_loss(),
            "models": {},
        }
        for kind in kinds:
            model, info = _train_one(kind, corpus, seed, steps, batch_size, lr, eval_every, progress, **changes)
            kept = {"file": save_checkpoint(model, out / f"lm_{kind}.pt", **info).name} if seed == seeds[0] else {}
            results["models"][kind] = {**info, **kept, "config": dataclasses.asdict(model.config)}
        runs.append(results)
    results = combine_seeds(runs)
    if memory:
        results["memory"] = measure_memory(kinds, corpus.vocab.size, **changes)
    (out / RESULTS).write_text(json.dumps(results, indent=1) + "\n")
    return results


DESCRIPTION = """\
Train the four small character language models of notebook 06 (full attention, Luna,
DeepSeek's MLA and a naive latent decoder; same widths, data, seeds and budget) on the
book shipped with lattn, once per seed, then measure their validation loss and their
memory at long contexts.

Time: about 20 CPU-minutes per seed for all four models at the default 1500 steps (on a
busy 2-core laptop), about an hour for the default seeds 0,1,2; --seeds 0 --kinds full,mla
--steps 300 takes about 3 minutes. The same command gives the same weights and losses.

Output: lm_<kind>.pt (settings and float16 weights of the first seed's models, about
0.2 MB each) and lm_results.json (every seed's validation loss), in ./lattn-results/lm/ in
the current directory unless --out DIR is given. --update-shipped replaces the models
notebook 06 loads; it needs all four kinds and the default settings."""

EXAMPLES = """\
Examples:
  python -m lattn.experiments lm
  python -m lattn.experiments lm --seeds 0 --kinds full,mla --steps 300
  python -m lattn.experiments lm --kinds luna --out my-models
  python -m lattn.experiments lm --update-shipped"""


def _shown(value: object) -> str:
    """An option's value as typed: seeds (0, 1, 2) → 0,1,2."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _main(args: argparse.Namespace) -> None:
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise SystemExit(f"--kinds takes a comma-separated subset of {','.join(KINDS)}; got {args.kinds!r}")
    changed = (
        [f"--kinds {','.join(kinds)} (shipped: {','.join(DEFAULT_KINDS)})"] if set(kinds) != set(DEFAULT_KINDS) else []
    )
    try:
        args.seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise SystemExit(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {args.seeds!r}") from None
    if not args.seeds or len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"--seeds takes distinct integers, e.g. 0,1,2; got {','.join(map(str, args.seeds))!r}")
    changed += [
        f"--{k.replace('_', '-')} {_shown(getattr(args, k))} (shipped: {_shown(v)})"
        for k, v in SHIPPED.items()
        if getattr(args, k) != v
    ]
    out = output_folder(args, changed)
    run(kinds, steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every, seeds=args.seeds,
        out=out)  # fmt: skip
    announce_done(out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "lm", "notebook 06's language models, about 20 CPU-minutes per seed", DESCRIPTION,
                   EXAMPLES)  # fmt: skip
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--steps", type=int, default=SHIPPED["steps"], help="training steps per model (default 1500)")
    p.add_argument("--batch-size", type=int, default=SHIPPED["batch_size"], help="windows per step (default 32)")
    p.add_argument("--lr", type=float, default=SHIPPED["lr"], help="peak AdamW learning rate (default 1e-2)")
    p.add_argument("--eval-every", type=int, default=SHIPPED["eval_every"],
                   help="validation loss every this many steps (default 100)")  # fmt: skip
    p.add_argument("--seeds", default=",".join(map(str, SHIPPED["seeds"])),
                   help="comma-separated initialisation and data seeds; the first seed's models are saved "
                   "(default 0,1,2)")  # fmt: skip
    add_output_options(p, "lm", f"lm_<kind>.pt and {RESULTS}")
    p.set_defaults(func=_main)
