"""Time adding one paper to a 20-paper run with `reverify`, next to a full rebuild over all 21, in one process.

    .venv/bin/python benchmarks/reverify_cost.py [--workdir DIR] [--stance-model bundled|lexical|...] [--repeat N]

The 21 papers are real text: the XLM-R paper (/work/shared/papers/1911.02116.md, or --md) cut into 11 parts at
paragraph breaks, and the 11 pages of examples/papers/2005.13013v1.pdf cut into 10 parts, written as local files
named by made-up arXiv ids (2101.00001v1 ...). Each paper gets one claim: a sentence of its own text with a number in
it, citing that paper. The paper added later is the XLM-R introduction (2101.00011v1); its claim is in the claims file
from the start, so the first run records it as a gap and checks it against all papers held.

Steps, all in this process: (1) build the 20-paper run (this also loads the embedder and the stance model, so both
timed steps below start warm); (2) `reverify` a copy of it with the 21st paper; (3) `run` from scratch over all 21.
Both (2) and (3) re-render the report. Printed: seconds for each, passages embedded, claims scored, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PDF = ROOT / "examples" / "papers" / "2005.13013v1.pdf"
MD = Path("/work/shared/papers/1911.02116.md")
NEW_INDEX = 10  # the paper added by reverify: the XLM-R paper's introduction (prose, with numbers)
ADAPTER = ROOT / "verify" / "models" / "stance-minilm-lora" / "adapter_model.safetensors"


def _groups(parts: list[str], n: int) -> list[str]:
    """Consecutive parts joined into n chunks of about equal length (cut at part boundaries)."""
    total = sum(len(p) for p in parts)
    groups: list[list[str]] = [[] for _ in range(n)]
    pos = 0
    for p in parts:
        groups[min(n - 1, int((pos + len(p) / 2) / total * n))].append(p)
        pos += len(p)
    groups = [g for g in groups if g]
    while len(groups) < n:  # a very long part left a slot empty: halve the longest group that can be halved
        i = max((j for j, g in enumerate(groups) if len(g) > 1), key=lambda j: sum(map(len, groups[j])))
        g = groups.pop(i)
        groups[i:i] = [g[: len(g) // 2], g[len(g) // 2:]]
    return ["\n\n".join(g) for g in groups]


def make_papers(folder: Path, md: Path) -> list[tuple[str, Path, str]]:
    """Write the 21 paper files; returns (arXiv key, path, claim sentence) per paper."""
    from claimscope.retrieve.passages import split_sentences
    from claimscope.retrieve.pdf import parse_pdf

    paragraphs = [p.strip() for p in md.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    md_chunks = _groups(paragraphs, 11)
    pages = [p.text for p in parse_pdf(PDF).pages]
    pdf_chunks = pages[:9] + ["\n\n".join(pages[9:])]
    chunks = [(text, "txt") for text in pdf_chunks] + [(text, "md") for text in md_chunks]
    if len(chunks) != 21:
        raise SystemExit(f"expected 21 papers, cut {len(chunks)}")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (text, ext) in enumerate(chunks, 1):
        key = f"2101.{i:05d}v1"
        path = folder / f"{key}.{ext}"
        path.write_text(text + "\n", encoding="utf-8")
        flat = " ".join(text.split())
        sentences = [flat[a:b].strip() for a, b in split_sentences(flat)]
        good = [s for s in sentences if 60 <= len(s) <= 250 and any(ch.isdigit() for ch in s)]
        good = good or [s for s in sentences if len(s) >= 40] or sentences
        out.append((key, path, good[len(good) // 2]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="where the papers and runs go (default: a temp dir)")
    ap.add_argument("--md", type=Path, default=MD, help="markdown paper to cut into 11 papers")
    ap.add_argument("--stance-model", default=None,
                    help="stance scorer (default: bundled when its adapter is built, else lexical)")
    ap.add_argument("--repeat", type=int, default=1, help="timed repeats of each step (median printed)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from claimscope.pipeline import run_pipeline
    from claimscope.settings import load_settings
    from claimscope.verify.reverify import reverify

    stance = args.stance_model or ("bundled" if ADAPTER.exists() else "lexical")
    if args.stance_model is None and stance == "lexical":
        print(f"note: {ADAPTER.relative_to(ROOT)} not built; using the lexical stance scorer", file=sys.stderr)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="reverify_cost_"))
    all_dir, base_dir = work / "papers21", work / "papers20"
    papers = make_papers(all_dir, args.md)
    base_dir.mkdir(exist_ok=True)
    added = papers[NEW_INDEX]
    for _, path, _ in papers:
        if path != added[1]:
            shutil.copy(path, base_dir / path.name)
    claims = work / "claims.json"
    claims.write_text(json.dumps({"title": "reverify cost benchmark", "claims": [
        {"id": f"k{i}", "claim": sentence, "cited": [key]} for i, (key, _, sentence) in enumerate(papers, 1)]},
        indent=1))
    new_paper = added[1]

    def settings(folder: Path):  # type: ignore[no-untyped-def]
        return load_settings("laptop", retrieve__papers_dir=folder, retrieve__cache_dir=work / "cache",
                             verify__stance_model=stance)

    t = time.perf_counter()
    run_pipeline(claims, work / "base", settings(base_dir))
    base_s = time.perf_counter() - t
    base_passages = sum(1 for _ in (work / "base" / "passages.jsonl").open())

    rev_times, full_times = [], []
    for r in range(args.repeat):
        target = work / f"reverified{r}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(work / "base", target)
        t = time.perf_counter()
        result = reverify(target, [new_paper])
        rev_times.append(time.perf_counter() - t)

        fresh = work / f"full{r}"
        shutil.rmtree(fresh, ignore_errors=True)
        t = time.perf_counter()
        run_pipeline(claims, fresh, settings(all_dir))
        full_times.append(time.perf_counter() - t)
    full_passages = sum(1 for _ in (fresh / "passages.jsonl").open())
    same = [json.loads(line)["label"] for line in (fresh / "verdicts.jsonl").open()] == [
        json.loads(line)["label"] for line in (target / "verdicts.jsonl").open()]

    rev, full = statistics.median(rev_times), statistics.median(full_times)
    print(f"papers: 20 in the run + 1 added ({new_paper.name}); claims: {len(papers)}; stance model: {stance}; "
          f"work dir: {work}")
    print(f"build of the 20-paper run (cold: loads models): {base_s:.2f} s, {base_passages} passages")
    print(f"reverify, add 1 paper:   {rev:.2f} s  ({result.embedded} passages embedded, "
          f"{len(result.rescored)} of {len(papers)} claims scored, {len(result.diff.changed)} changed)")
    print(f"full rebuild, 21 papers: {full:.2f} s  ({full_passages} passages embedded, {len(papers)} claims scored)")
    print(f"ratio reverify / full rebuild: {rev / full:.3f}  (full rebuild is {full / rev:.1f}x slower)"
          + (f"; median of {args.repeat}" if args.repeat > 1 else ""))
    print(f"verdict labels of the reverified run and the rebuild agree: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
