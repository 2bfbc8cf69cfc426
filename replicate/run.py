"""Entry point without the claimscope spine: `python -m replicate.run --config NAME` from the repo root, and the same
under torchrun for DDP (`torchrun --nproc_per_node N -m replicate.run ...`). Needs only torch, transformers, pyyaml.
`python -m replicate.run merge SHARD_DIRS... --out DIR` merges `--shard K/N` runs (as `claimscope replicate-merge`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Recipe
    from .shard import ShardPlan


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
        help="throughput JSON for --dry-run and --shard (default: benchmarks/results/replicate_throughput.json)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="K/N",
        help="run only shard K (0-based) of N: a split of the grid's cells balanced by estimated GPU-hours, written "
        "to OUT/shard-K-of-N/; one process per GPU, then `claimscope replicate-merge OUT --out OUT`",
    )


def add_merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="+",
        help="shard run folders, replication.json files, or a folder holding shard-*/ (as --shard writes them)",
    )
    p.add_argument("--out", required=True, help="folder for the merged replication.json")
    p.add_argument("--allow-partial", action="store_true", help="merge even if some of the grid's cells are missing")


def recipe_from_args(args: argparse.Namespace) -> Recipe:
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
    rates = load_rates(Path(args.rates) if args.rates else None)
    shard = split = None
    if args.shard:
        from .shard import ShardSpec, split_cells

        shard = ShardSpec.parse(args.shard)
        split = split_cells(recipe, shard.count, rates)
    if args.dry_run:
        rows = plan_recipe(recipe, rates)
        name = recipe.name
        if shard and split:  # this shard's phase-3 rows and the phase-2 rows of its groups
            mine = set(split.cells[shard.index]) | {c[:3] for c in split.cells[shard.index]}
            rows, name = [r for r in rows if r.key in mine], f"{recipe.name}, shard {shard}"
        print(format_plan(rows, rates, name, recipe.model))  # noqa: T201 - CLI output
        if shard and split:
            print(_split_summary(split, shard.index))  # noqa: T201
        return 0
    from .dist import init_distributed, shutdown
    from .pipeline import run_recipe
    from .results import compare_line, format_table

    env = init_distributed()
    out = Path(args.out or f"runs/replicate-{recipe.name}")
    cells = record = None
    if shard and split:
        out = out / shard.dirname
        cells, record = split.cells[shard.index], split.to_dict(shard.index)
        if not cells:
            logging.getLogger(__name__).warning("shard %s has no cells (more shards than units of work)", shard)
    try:
        doc = run_recipe(recipe, out, env, cells=cells, shard=record)
    finally:
        shutdown(env)
    if env.is_main:
        for cell in doc["cells"]:
            print(compare_line(cell))  # noqa: T201
        print(format_table(doc))  # noqa: T201
        print(f"wrote {out / 'replication.json'}")  # noqa: T201
    return 0


def _split_summary(split: ShardPlan, index: int) -> str:
    n = len(split.cells)
    lines = [f"split of {sum(map(len, split.cells))} cells over {n} shards by {split.basis}:"]
    for k, (cells, cost) in enumerate(zip(split.cells, split.cost, strict=True)):
        groups = len({c[:3] for c in cells})
        mark = "  <- this shard" if k == index else ""
        lines.append(f"  shard {k}/{n}: {len(cells):>4} cells on {groups:>3} phase-2 groups, {cost:10.2f}{mark}")
    if split.repeated > 0:
        lines.append(f"phase-2 groups split over shards train again there: {split.repeated:.2f} more in all")
    return "\n".join(lines)


def execute_merge(args: argparse.Namespace) -> int:
    from .fileio import write_json
    from .results import compare_line, format_table
    from .shard import merge_shards

    doc = merge_shards([Path(r) for r in args.runs], allow_partial=args.allow_partial)
    out = Path(args.out) / "replication.json"
    write_json(out, doc)
    for cell in doc["cells"]:
        print(compare_line(cell))  # noqa: T201
    print(format_table(doc))  # noqa: T201
    if doc.get("partial"):
        print(f"partial: {len(doc['missing_cells'])} cells missing")  # noqa: T201
    print(f"wrote {out} ({len(doc['cells'])} cells from {len(doc['merged_from'])} files)")  # noqa: T201
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    merge = bool(argv) and argv[0] == "merge"
    p = argparse.ArgumentParser(prog="python -m replicate.run" + (" merge" if merge else ""), description=__doc__)
    (add_merge_arguments if merge else add_arguments)(p)
    args = p.parse_args(argv[1:] if merge else argv)
    try:
        return execute_merge(args) if merge else execute(args)
    except Exception as e:  # one clear line for typed errors, the traceback for bugs
        from .errors import ReplicateError

        if isinstance(e, ReplicateError):
            print(f"replicate: error: {e}", file=sys.stderr)  # noqa: T201
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
