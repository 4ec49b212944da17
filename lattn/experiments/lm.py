"""``python -m lattn.experiments lm``: train notebook 06's character language models and ship them.

One :class:`~lattn.lm.CharLM` per kind of attention, same widths, data, seed and budget, trained on the shipped
book (:mod:`lattn.lm_data`) with :func:`~lattn.lm.train_lm`. Writes, under ``--out`` (default
``./lattn-results/lm/``; ``--update-shipped`` with the shipped settings replaces the files in ``lattn/data``):

* ``lm_<kind>.pt`` — config + float16 weights (:func:`~lattn.lm.save_checkpoint`); ≈0.2 MB each;
* ``lm_results.json`` — per kind: validation loss of the *shipped* (float16-rounded) weights, which
  :func:`~lattn.lm.load_checkpoint` + :func:`~lattn.lm.evaluate_lm` reproduce; the validation curve;
  parameters; training tokens/s on the machine that ran it (for the record only).

Deterministic on the CPU: the same command gives the same weights and losses (timings aside). On a busy 2-core
machine the default run takes ≈20 minutes; ``--steps 20 --kinds full`` takes seconds (what the tests do).
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

__all__ = ["DATA_DIR", "RESULTS", "SHIPPED", "config_for", "measure_memory", "register", "round_to_half", "run"]

RESULTS = "lm_results.json"
DEFAULT_KINDS = ("full", "luna", "mla", "latent")
SHIPPED = {"steps": 1500, "batch_size": 32, "lr": 1e-2, "eval_every": 100, "seed": 0}  # the shipped models' budget

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


def run(
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    *,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 1e-2,
    eval_every: int = 100,
    seed: int = 0,
    out: str | Path = RESULTS_ROOT / "lm",
    progress: bool = True,
    memory: bool = True,
    **changes: int,
) -> dict:
    """Train one model per kind, write ``lm_<kind>.pt`` and ``lm_results.json`` under ``out``; return the results.
    ``memory``: also measure the memory at long contexts (:func:`measure_memory`; ≈1 minute)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = CharCorpus.load()
    results: dict = {
        "command": f"python -m lattn.experiments lm --steps {steps} --kinds {','.join(kinds)}",
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "unigram_val_loss": corpus.unigram_loss(),
        "models": {},
    }
    for kind in kinds:
        config = config_for(kind, corpus.vocab.size, **changes)
        model = CharLM.build(config, seed=seed)
        history = train_lm(
            model, corpus, steps, batch_size=batch_size, lr=lr, seed=seed, eval_every=eval_every, progress=progress,
            desc=config.label,
        )  # fmt: skip
        round_to_half(model)
        val = evaluate_lm(model, corpus)
        info = {
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
        path = save_checkpoint(model, out / f"lm_{kind}.pt", **info)
        results["models"][kind] = {**info, "file": path.name, "config": dataclasses.asdict(config)}
        if progress:
            print(f"{config.label:>24}: validation loss {val:.4f} nats/char → {path}")
    if memory:
        results["memory"] = measure_memory(kinds, corpus.vocab.size, **changes)
    (out / RESULTS).write_text(json.dumps(results, indent=1) + "\n")
    return results


DESCRIPTION = """\
Train the four small character language models of notebook 06 (full attention, Luna,
DeepSeek's MLA and a naive latent decoder; same widths, data, seed and budget) on the
book shipped with lattn, then measure their validation loss and their memory at long
contexts.

Time: about 20 CPU-minutes for all four models at the default 1500 steps (on a busy
2-core laptop); --kinds full,mla --steps 300 takes about 3 minutes. The same command gives
the same weights and losses.

Output: lm_<kind>.pt (settings and float16 weights, about 0.2 MB each) and
lm_results.json, in ./lattn-results/lm/ in the current directory unless --out DIR is
given. --update-shipped replaces the models notebook 06 loads; it needs all four kinds and
the default settings."""

EXAMPLES = """\
Examples:
  python -m lattn.experiments lm
  python -m lattn.experiments lm --kinds full,mla --steps 300
  python -m lattn.experiments lm --kinds luna --out my-models
  python -m lattn.experiments lm --update-shipped"""


def _main(args: argparse.Namespace) -> None:
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise SystemExit(f"--kinds takes a comma-separated subset of {','.join(KINDS)}; got {args.kinds!r}")
    changed = (
        [f"--kinds {','.join(kinds)} (shipped: {','.join(DEFAULT_KINDS)})"] if set(kinds) != set(DEFAULT_KINDS) else []
    )
    changed += [
        f"--{k.replace('_', '-')} {getattr(args, k)} (shipped: {v})"
        for k, v in SHIPPED.items()
        if getattr(args, k) != v
    ]
    out = output_folder(args, changed)
    run(kinds, steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every, seed=args.seed,
        out=out)  # fmt: skip
    announce_done(out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "lm", "notebook 06's language models, about 20 CPU-minutes", DESCRIPTION,
                   EXAMPLES)  # fmt: skip
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--steps", type=int, default=SHIPPED["steps"], help="training steps per model (default 1500)")
    p.add_argument("--batch-size", type=int, default=SHIPPED["batch_size"], help="windows per step (default 32)")
    p.add_argument("--lr", type=float, default=SHIPPED["lr"], help="peak AdamW learning rate (default 1e-2)")
    p.add_argument("--eval-every", type=int, default=SHIPPED["eval_every"],
                   help="validation loss every this many steps (default 100)")  # fmt: skip
    p.add_argument("--seed", type=int, default=SHIPPED["seed"], help="initialisation and data seed (default 0)")
    add_output_options(p, "lm", f"lm_<kind>.pt and {RESULTS}")
    p.set_defaults(func=_main)
