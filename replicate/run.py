"""Entry point without the claimscope spine: `python -m replicate.run --config NAME` from the repo root, and the same
under torchrun for DDP (`torchrun --nproc_per_node N -m replicate.run ...`). Needs only torch, transformers, pyyaml.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="bundled config name (e.g. paper-grid) or a YAML file")
    p.add_argument("--scale", choices=["full", "miniature"], default=None, help="override the config's scale")
    p.add_argument("--dry-run", action="store_true", help="print the plan and its estimated GPU-hours; train nothing")
    p.add_argument("--out", default=None, help="output folder for replication.json and phase-2 encoders")
    p.add_argument(
        "--data-dir",
        default=None,
        help="local task data (DATA_DIR/<task>/<split>.<lang>.jsonl); sets data_source=local",
    )
    p.add_argument("--model", default=None, help="override the model (hub name or local folder)")
    p.add_argument("--max-steps", type=int, default=None, help="cap the optimiser steps of every phase (smoke runs)")
    p.add_argument("--limit-train", type=int, default=None, help="use at most N training examples per task")
    p.add_argument("--limit-eval", type=int, default=None, help="use at most N evaluation examples per language")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (CUDA only)")
    p.add_argument(
        "--stack-cells",
        type=int,
        default=None,
        help="train phase 3 of up to N cells of one target as one batched model on one GPU (see replicate/stacked.py)",
    )
    p.add_argument(
        "--rates",
        default=None,
        help="throughput JSON for --dry-run (default: benchmarks/results/replicate_throughput.json)",
    )


def recipe_from_args(args: argparse.Namespace) -> object:
    from .config import load_recipe

    overrides = {"scale": args.scale, "model": args.model}
    if args.data_dir:
        overrides.update(data_source="local", data_dir=str(args.data_dir))
    recipe = load_recipe(args.config, **overrides)
    t = recipe.train
    if args.max_steps is not None:
        t.max_steps = args.max_steps
    if args.limit_train is not None:
        t.limit_train = args.limit_train
    if args.limit_eval is not None:
        t.limit_eval = args.limit_eval
    if args.compile:
        t.compile = True
    if args.stack_cells is not None:
        if args.stack_cells < 1:
            raise SystemExit(f"--stack-cells must be at least 1, got {args.stack_cells}")
        t.stack_cells = args.stack_cells
    return recipe


def execute(args: argparse.Namespace) -> int:
    from .plan import format_plan, load_rates, plan_recipe

    recipe = recipe_from_args(args)
    if args.dry_run:
        rates = load_rates(Path(args.rates) if args.rates else None)
        print(format_plan(plan_recipe(recipe, rates), rates, recipe.name, recipe.model))  # noqa: T201 - CLI output
        return 0
    from .dist import init_distributed, shutdown
    from .pipeline import run_recipe
    from .results import compare_line

    env = init_distributed()
    out = Path(args.out or f"runs/replicate-{recipe.name}")
    try:
        doc = run_recipe(recipe, out, env)
    finally:
        shutdown(env)
    if env.is_main:
        for cell in doc["cells"]:
            print(compare_line(cell))  # noqa: T201
        print(f"wrote {out / 'replication.json'}")  # noqa: T201
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m replicate.run", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return execute(args)
    except Exception as e:  # one clear line for typed errors, the traceback for bugs
        from .errors import ReplicateError

        if isinstance(e, ReplicateError):
            print(f"replicate: error: {e}", file=sys.stderr)  # noqa: T201
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
