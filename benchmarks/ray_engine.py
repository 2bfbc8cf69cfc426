"""The Ray engine against the local engine on the same passage shards, in one run: passages/s, Ray's fixed cost, and
whether both wrote the same bytes.

The shards are SciFact sentences (the first `--docs` abstracts of the corpus, one passage per sentence), cut into
shards of `--shard-size` rows. Each round embeds them with `LocalEngine(--workers)` and with
`RayEngine(num_cpus=--workers, actors=--workers)` (which starts and stops its own local Ray), alternating which goes
first, and checks that the embedding shards are identical. Wall time includes each engine's start-up: spawning
workers and loading the model for the local engine; starting Ray, its actors and the model, and stopping Ray, for the
Ray engine. A run with the `hash` embedder (no model) isolates the engines' fixed costs.

On a shared machine the absolute numbers move with the load of other jobs; the load average is printed with them.

Usage: .venv/bin/python benchmarks/ray_engine.py [CORPUS] [--docs 700] [--shard-size 1000] [--workers 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "benchmarks" / "scifact"
RESULTS = ROOT / "benchmarks" / "results"
FOOTER = """\
# wall s includes start-up (local: spawning workers, loading the model; Ray: starting Ray, its actors and the model,
# stopping Ray); Ray start = ray.init alone; load avg = the machine's 1-minute load when the row finished (other jobs);
# same bytes = every embedding shard identical between the two engines of that round"""


def shards_of(corpus: Path, docs: int, shard_size: int, work: Path) -> list[Path]:
    from claimscope.verify.corpus.shards import iter_passage_shards
    from claimscope.verify.corpus.sources import CorpusSource

    small = work / "corpus.jsonl"
    with open(corpus, encoding="utf-8") as src, open(small, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= docs:
                break
            dst.write(line)
    source = CorpusSource(small)
    return [p for p, _, _ in iter_passage_shards(source.stream, work / "passages", source=str(small),
                                                 fingerprint=source.fingerprint(), shard_size=shard_size)]


def timed(engine: Any, shards: list[Path], out: Path, spec: Any) -> tuple[int, float, list[str]]:
    """(passages, wall seconds, sha256 of each embedding shard)."""
    shutil.rmtree(out, ignore_errors=True)
    rows: list[int] = []
    t0 = time.perf_counter()
    paths = engine.embed_shards(shards, out, spec, on_shard=lambda p, n: rows.append(n))
    wall = time.perf_counter() - t0
    return sum(rows), wall, [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, nargs="?", default=SCIFACT / "corpus.jsonl")
    ap.add_argument("--docs", type=int, default=700, help="abstracts taken from the corpus")
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2, help="local worker processes = Ray CPUs = Ray actors")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", type=Path, default=RESULTS / "ray_engine.txt")
    args = ap.parse_args()

    from claimscope.types import EncoderSpec
    from claimscope.verify.corpus.engines import LocalEngine
    from claimscope.verify.corpus.ray_engine import RayEngine

    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory(prefix="claimscope-ray-bench-") as tmp:
        work = Path(tmp)
        shards = shards_of(args.corpus, args.docs, args.shard_size, work)
        say(f"# {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"{len(shards)} shards of <= {args.shard_size} SciFact sentences ({args.docs} abstracts); "
            f"--workers {args.workers}, precision {args.precision}")
        say(f"{'embedder':8s} {'engine':34s} {'passages':>8s} {'wall s':>7s} {'passages/s':>10s}  {'Ray start':>9s}"
            f"  {'load avg':>8s}  same bytes")
        for model, rounds in (("hash", 1), ("bundled:all-MiniLM-L6-v2", args.rounds)):
            spec = EncoderSpec(model=model, precision=args.precision, dtype="float32")
            label = "hash" if model == "hash" else "MiniLM"
            for r in range(rounds):
                order = ["local", "ray"] if r % 2 == 0 else ["ray", "local"]
                digests: dict[str, list[str]] = {}
                for name in order:
                    if name == "local":
                        engine: Any = LocalEngine(args.workers, progress=False)
                    else:
                        engine = RayEngine(num_cpus=args.workers, actors=args.workers, progress=False)
                    n, wall, digests[name] = timed(engine, shards, work / f"emb-{name}", spec)
                    start = getattr(engine, "last_run", {}).get("connect_seconds")
                    desc = (f"local engine, {args.workers} workers" if name == "local"
                            else f"Ray engine, {args.workers} actors (local Ray)")
                    say(f"{label:8s} {desc:34s} {n:8d} {wall:7.1f} {n / wall:10.1f}  "
                        f"{'-' if start is None else f'{start:.1f} s':>9s}  {os.getloadavg()[0]:8.1f}  "
                        f"{'' if len(digests) < 2 else digests['local'] == digests['ray']}")
    say(FOOTER)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"-> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
