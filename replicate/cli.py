"""`claimscope replicate`: run (or plan) the X-STILTs recipe. Heavy imports happen inside the handler."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from .run import add_arguments

    p = subparsers.add_parser(
        "replicate",
        help="rerun the paper's XLM-R intermediate-task experiments (or --dry-run to see the plan and GPU-hours)",
        description=(
            "Three phases per cell: pretrained XLM-R -> English intermediate task -> English target task, evaluated "
            "zero-shot in every language; writes replication.json with the paper's Table 2 values beside ours. "
            "For several GPUs run one process per GPU, each on a share of the cells (--shard K/N), then "
            "`claimscope replicate-merge`; DDP (`torchrun --nproc_per_node N -m replicate.run`) also works but ran at "
            "0.41x one GPU on the H200 host."
        ),
    )
    add_arguments(p)
    p.set_defaults(handler=_handle)

    from .run import add_merge_arguments

    g = subparsers.add_parser(
        "replicate-merge",
        help="merge the replication.json of `replicate --shard K/N` runs into one (the paper's table layout)",
        description="Combines the shards' cells into one replication.json in the grid's order, with the paper's "
        "values beside ours. Refuses files from different configs or splits, a cell in two files, and missing cells "
        "(named) unless --allow-partial.",
    )
    add_merge_arguments(g)
    g.set_defaults(handler=_handle_merge)

    from .miniature.run import add_arguments as add_miniature_arguments

    m = subparsers.add_parser(
        "replicate-miniature",
        help="the research question in miniature on Debian's translated package descriptions (prepare/tokenizer/grid)",
        description="XTREME in miniature: real multilingual text, XLM-R architecture at several sizes, MLM-pretrained "
        "here, then the three phases with and without intermediate training over several seeds (scale: miniature).",
    )
    add_miniature_arguments(m)
    m.set_defaults(handler=_handle_miniature)


def _handle_miniature(args: argparse.Namespace) -> int:
    from .miniature.run import execute

    return execute(args)


def _handle_merge(args: argparse.Namespace) -> int:
    from .run import execute_merge

    return execute_merge(args)


def _handle(args: argparse.Namespace) -> int:
    from .run import execute

    return execute(args)
