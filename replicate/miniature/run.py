"""`python -m replicate.miniature.run {prepare,tokenizer,grid}` (no claimscope spine needed), also behind
`claimscope replicate-miniature`.

    prepare   --lists-dir DIR [--fetch] --out DATA        Debian lists -> task files + manifest.json (cached)
    tokenizer --data DATA --out TOK                       shared multilingual tokenizer
    grid      --data DATA --tokenizer TOK --out RUN       sizes x {baseline, intermediate} x seeds -> replication.json
    plot      RUN/replication.json --out FIG.svg         gap against model size
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="step", required=True)
    a = sub.add_parser("prepare", help="build the miniature task files and manifest from Debian's translations")
    a.add_argument("--lists-dir", required=True, help="apt lists folder holding *Translation-XX.lz4 + Packages.lz4")
    a.add_argument("--fetch", action="store_true", help="run apt-get update into --lists-dir first (network)")
    a.add_argument("--out", required=True, help="data folder to write (a cache; not committed)")
    a.add_argument("--languages", default=None, help="comma-separated, default: 15 DDTP languages with most pairs")
    a.add_argument("--n-test", type=int, default=500)
    a.add_argument("--mlm-cap", type=int, default=20000)
    t = sub.add_parser("tokenizer", help="train the shared tokenizer on the MLM corpus")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--vocab", type=int, default=16000)
    t.add_argument("--algorithm", choices=["bpe", "unigram"], default="bpe")
    g = sub.add_parser("grid", help="pretrain each size and run the grid; writes replication.json")
    g.add_argument("--data", required=True)
    g.add_argument("--tokenizer", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--sizes", default="xs,s,m")
    g.add_argument("--seeds", default="1,2,3")
    g.add_argument("--pretrain-steps", type=int, default=3000)
    g.add_argument("--pretrain-batch", type=int, default=128)
    g.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    g.add_argument("--compile", action="store_true")
    g.add_argument("--limit-train", type=int, default=None)
    g.add_argument("--limit-eval", type=int, default=None)
    g.add_argument("--finetune-max-steps", type=int, default=None)
    f = sub.add_parser("plot", help="plot the gap against model size from a miniature replication.json")
    f.add_argument("replication")
    f.add_argument("--out", required=True, help=".svg or .png")


def execute(args: argparse.Namespace) -> int:
    if args.step == "prepare":
        from .debian import DEFAULT_LANGUAGES, fetch_lists
        from .prepare import prepare

        langs = tuple(args.languages.split(",")) if args.languages else DEFAULT_LANGUAGES
        if args.fetch:
            fetch_lists(Path(args.lists_dir), langs)
        m = prepare(Path(args.lists_dir), Path(args.out), languages=langs, n_test=args.n_test, mlm_cap=args.mlm_cap)
        print(f"wrote {args.out}/manifest.json: {len(m['languages'])} languages, labels {m['labels']}")  # noqa: T201
        return 0
    if args.step == "tokenizer":
        from .tokenizer import corpus_texts, train_tokenizer

        tok = train_tokenizer(corpus_texts(Path(args.data)), Path(args.out), args.vocab, args.algorithm)
        print(f"wrote {args.out}: {len(tok)} tokens")  # noqa: T201
        return 0
    if args.step == "plot":
        from .plot import plot_gap_vs_size

        print(f"wrote {plot_gap_vs_size(Path(args.replication), Path(args.out))}")  # noqa: T201
        return 0
    from .grid import MiniatureSpec, run_grid

    spec = MiniatureSpec(
        sizes=args.sizes.split(","), seeds=[int(s) for s in args.seeds.split(",")],
        pretrain_steps=args.pretrain_steps, pretrain_batch=args.pretrain_batch, precision=args.precision,
        compile=args.compile, limit_train=args.limit_train, limit_eval=args.limit_eval,
        finetune_max_steps=args.finetune_max_steps,
    )  # fmt: skip
    doc = run_grid(Path(args.data), Path(args.tokenizer), Path(args.out), spec)
    for row in doc["summary"]:
        print(format_summary_row(row))  # noqa: T201
    print(f"wrote {args.out}/replication.json")  # noqa: T201
    return 0


def format_summary_row(row: dict) -> str:
    def f(ci: dict) -> str:
        if ci["mean"] is None:
            return "-"
        return f"{ci['mean']:.1f}" + (f"±{ci['ci95']:.1f}" if ci["ci95"] is not None else "")

    params = (row.get("params") or {}).get("non_embedding", "?")
    return (f"{row['size']:>4} ({params} non-emb) {row['target']:<8} baseline en {f(row['baseline_en'])} "
            f"non-en {f(row['baseline_non_en_avg'])} gap {f(row['baseline_gap'])} | +debmatch gap "
            f"{f(row['debmatch_gap'])} | delta gap {f(row['delta_gap'])}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m replicate.miniature.run", description=__doc__)
    add_arguments(p)
    return execute(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
